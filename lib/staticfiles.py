"""Static files under content-hashed names, in every mode.

Django's manifest storage hands out the plain name while DEBUG is on, so the demo (./run) and a
debugging deployment revalidated app.css and the htmx scripts on every navigation. Hashed names
in every mode let WhiteNoise mark each file immutable for a year: a page's repeat visit asks for
none of them. The price in development: an edited file is served once ``collectstatic`` has run
(./run and the test suite run it).
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def url(self, name: str | None, force: bool = False) -> str:
        return super().url(name, force=True)

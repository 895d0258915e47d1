"""Random secrets that are shown once and stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets


def new_token(prefix: str = "", nbytes: int = 24) -> str:
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def hash_token(raw: str) -> str:
    # SHA-256 is enough here: the tokens are long random strings, not passwords,
    # and a fast hash keeps the per-request API token check cheap.
    return hashlib.sha256(raw.encode()).hexdigest()


def short_id(nbytes: int = 8) -> str:
    """A URL-safe, unguessable public identifier (e.g. a form's /f/<id>/)."""
    return secrets.token_urlsafe(nbytes).replace("-", "a").replace("_", "b")

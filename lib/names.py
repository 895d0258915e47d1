"""The one rule for names people give things (workspaces, flows, fields, users).

A name is one line of visible text. It lands in page titles, email subjects and headers, CSV
cells and audit lines: a line break there splits a mail header (Django refuses to send it: a 500
after the invitation was stored), and a bidi override makes "Acme" read as something else.
Forms and the model fields use :func:`validate_name` as a validator (the model's: Django's admin
and every ModelForm); services call :func:`clean_name`, so a caller that skips the form (a command,
the admin's actions, a script) meets the same rule.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

# C0/C1 controls and DEL (Cc), lone surrogates (Cs: PostgreSQL cannot store them), the line and
# paragraph separators (Zl, Zp), and the bidi embeddings, overrides and isolates (Cf, but unlike
# the joiners that emoji and several scripts need, they only ever reorder what is shown).
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def _refused(ch: str) -> bool:
    return unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _BIDI_CONTROLS


def validate_name(value: str) -> None:
    """Raise ValidationError when ``value`` holds a control character (a Django validator)."""
    bad = next((ch for ch in value if _refused(ch)), None)
    if bad is not None:
        raise ValidationError(
            "A name is one line of text: no line breaks, tabs or other control characters (found U+%(code)04X).",
            code="control_character",
            params={"code": ord(bad)},
        )


def clean_name(value: str, *, field: str = "name") -> str:
    """``value`` stripped, or a ValidationError on ``field`` (for services)."""
    try:
        validate_name(value)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None
    return value.strip()

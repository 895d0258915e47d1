"""One reading of a number typed by a person, shared by capture and sync.

Python's own ``int()``/``float()`` are too lenient for people's input: they take
``1_000``, ``nan`` and ``inf``; and a comma has to be read one way only. A comma
is a thousands separator only where it groups digits by three (``12,500``);
anything else (``1,5``) is ambiguous between locales and is refused rather than
guessed, because guessing wrong syncs a value ten times off.
"""

from __future__ import annotations

import re

_PLAIN = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


MAX_LENGTH = 100  # longer than any number a form field holds (a long has 19 digits)


class NotANumber(ValueError):
    """The message says what is wrong with the text, for the person who typed it."""


def parse_number(text: str) -> int | float:
    """``"12,500"`` -> 12500, ``"1.5"`` -> 1.5, ``"1e3"`` -> 1000.0; raises NotANumber."""
    text = text.strip()
    if len(text) > MAX_LENGTH:  # also keeps int() under Python's limit on digits (ValueError past 4,300)
        raise NotANumber(f"'{text[:20]}…' is too long to be a number")
    if _GROUPED.match(text):
        text = text.replace(",", "")
    elif "," in text:
        raise NotANumber(f"'{text}' is ambiguous: write decimals with a dot (1.5) and no other commas")
    if not _PLAIN.match(text):
        raise NotANumber(f"'{text}' is not a number")
    if "." in text or "e" in text.lower():
        return float(text)  # finite: the pattern admits no nan/inf, and an overflow is inf
    return int(text)

"""The one form of an email address the app compares, stores and counts by."""

from __future__ import annotations


def normalize_email(value: str) -> str:
    """``value`` stripped and lower-cased: Erin@Example.com is erin@example.com to its owner.

    Strictly the local part is case-sensitive (RFC 5321), but no mail system in use treats it
    so, and a login, an invitation or a lockout that told the two apart would confuse people.
    """
    return (value or "").strip().lower()

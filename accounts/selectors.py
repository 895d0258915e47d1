"""Reads for accounts."""

from __future__ import annotations

from accounts.models import User


def user_by_email(email: str) -> User | None:
    """The account of ``email`` in any case, or None (the login path's own lookup)."""
    try:
        return User.objects.get_by_natural_key(email)
    except User.DoesNotExist:
        return None

"""Reads for accounts."""

from __future__ import annotations

from django.db.models.functions import Lower

from accounts.models import User
from lib.emails import normalize_email


def user_by_email(email: str) -> User | None:
    """The account of ``email`` in any case, or None."""
    # lower(email) is what the case-insensitive unique index covers.
    return User.objects.alias(email_lower=Lower("email")).filter(email_lower=normalize_email(email)).first()

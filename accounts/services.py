from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from lib.names import clean_name

EMAIL_TAKEN = "An account with this email already exists. Log in instead."


def user_create(*, email: str, password: str, name: str = "") -> User:
    """Create a user; a ValidationError on ``email`` when the address is taken.

    The form checks first, but two sign-ups for one address (a double submit, two tabs)
    can both pass that check: the unique index decides, and the loser gets the same
    answer as if it had come second, not a 500.
    """
    try:
        with transaction.atomic():  # a savepoint: the surrounding transaction stays usable
            return User.objects.create_user(email=email.strip().lower(), password=password, name=clean_name(name))
    except IntegrityError:
        raise ValidationError({"email": EMAIL_TAKEN}) from None

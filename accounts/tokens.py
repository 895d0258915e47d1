"""The link that proves a user owns their email address.

Signed (django.core.signing, keyed by SECRET_KEY), expiring (EMAIL_VERIFICATION_MAX_AGE_SECONDS)
and single-use: it carries a digest of the state it was made for (the address, and "not yet
verified"), so once the address is verified, or changed, every link made before stops working.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import User

_SALT = "accounts.email-verification"


def _state(user: User) -> str:
    # SECURITY: what the link is good for. Any change to these makes earlier links stale.
    verified = user.email_verified_at.isoformat() if user.email_verified_at else ""
    return salted_hmac(_SALT, f"{user.pk}:{user.email.lower()}:{verified}").hexdigest()[:20]


def email_verification_token(user: User) -> str:
    return signing.dumps({"u": user.pk, "s": _state(user)}, salt=_SALT, compress=False)


def email_verification_user(token: str) -> User | None:
    """The user the token was made for, while it is fresh and unused; None otherwise."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE_SECONDS)
        user = User.objects.get(pk=data["u"], is_active=True)
    except (signing.BadSignature, User.DoesNotExist, KeyError, TypeError, ValueError):
        return None
    return user if constant_time_compare(str(data.get("s", "")), _state(user)) else None

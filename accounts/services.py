"""Writes for accounts: sign-up, address verification. Mail goes out through mailer (after commit)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_by_email
from accounts.tokens import email_verification_token
from lib import ratelimit
from lib.emails import normalize_email
from lib.names import clean_name
from mailer.services import mail_queue

# A stranger can type anyone's address into the sign-up form: its owner hears about it at most this often.
SIGNUP_NOTE_EVERY_SECONDS = 3600


def user_signup(*, email: str, password: str, name: str = "", next_url: str = "") -> None:
    """Sign up ``email``, seen from outside the same way whether or not it already has an account.

    SECURITY: a new address gets an unverified account and the link that verifies it; an address
    that has an account gets nothing created, and its owner a note instead. Both mail the address
    and nothing else, so the page (and its timing: the password is hashed either way) cannot tell
    an attacker which addresses have accounts. Nobody is logged in by signing up: the account is
    of use only once its owner has followed the link from their inbox.
    """
    email = normalize_email(email)
    name = clean_name(name)  # first: a refused name must read the same whether or not the address is taken
    existing = user_by_email(email)
    if existing is None:
        try:
            with transaction.atomic():  # a savepoint: the surrounding transaction stays usable
                user = User.objects.create_user(email=email, password=password, name=name)
        except IntegrityError:  # the same address signed up at the same moment (a double submit)
            existing = user_by_email(email)
        else:
            email_verification_send(user=user, next_url=next_url)
            return
    else:
        make_password(password)  # the cost create_user paid above
    if existing is not None:
        _signup_note(existing)


def _signup_note(user: User) -> None:
    if not ratelimit.cooldown("signup-note", str(user.pk), seconds=SIGNUP_NOTE_EVERY_SECONDS).allowed:
        return
    mail_queue(
        to=[user.email],
        subject="Your Flowsync account",
        body=(
            "Someone, maybe you, tried to create a Flowsync account with this address. "
            "It already has one, so nothing was changed.\n\n"
            f"Log in: {settings.SITE_URL}{reverse('accounts:login')}\n"
            f"Forgot your password? Choose a new one: {settings.SITE_URL}{reverse('accounts:password_reset')}\n\n"
            "If it wasn't you, ignore this email."
        ),
    )


def email_verification_send(*, user: User, next_url: str = "") -> None:
    """Mail ``user`` the link that verifies their address; ``next_url`` is where it leads afterwards."""
    link = settings.SITE_URL + reverse("accounts:verify-email", args=[email_verification_token(user)])
    if next_url:
        link += "?" + urlencode({"next": next_url})
    days = max(1, settings.EMAIL_VERIFICATION_MAX_AGE_SECONDS // 86400)
    mail_queue(
        to=[user.email],
        subject="Confirm your email address for Flowsync",
        body=(
            "Confirm that this address is yours to start using Flowsync: open this link, "
            "log in with the password you chose, and press Confirm.\n\n"
            f"{link}\n\n"
            f"The link works once, for {days} day{'s' if days != 1 else ''}. "
            "If you did not sign up, ignore this email: the account stays unusable."
        ),
    )


def user_email_verify(*, user: User) -> User:
    """Mark the address proven (a verification link or a password reset followed from the inbox)."""
    if user.email_verified_at is None:
        now = timezone.now()
        # Conditional: two clicks at once verify once, and the link made for "unverified" goes stale.
        User.objects.filter(pk=user.pk, email_verified_at=None).update(email_verified_at=now)
        user.email_verified_at = User.objects.values_list("email_verified_at", flat=True).get(pk=user.pk)
    return user

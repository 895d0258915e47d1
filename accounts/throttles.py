"""Abuse limits on the account pages, counted in the shared cache (lib/ratelimit.py, Redis in production).

SECURITY: every limit keyed by an email address is counted for the address as typed, whether
or not an account has it, and its refusal reads the same either way: a refusal never tells
whether an account exists. Per-IP limits take the address from ``ratelimit.client_ip``, the
one helper every per-IP limit of the app uses.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.http import HttpRequest

from accounts.models import User
from lib import ratelimit


def _address(email: str) -> str:
    return (email or "").strip().lower()


def _in_words(seconds: int) -> str:
    """'in 40 seconds', 'in 1 minute', 'in 15 minutes': how long a refusal lasts."""
    if seconds < 60:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"in {minutes} minute{'s' if minutes != 1 else ''}"


def login_refusal(request: HttpRequest, email: str) -> str | None:
    """Why this log-in attempt is refused before its password is even checked; None to go on.

    Checked first, so that during a lockout the right password does not log in either.
    """
    window = settings.LOGIN_LOCKOUT_SECONDS
    account = ratelimit.peek("login-account", _address(email), limit=settings.LOGIN_FAILURES_PER_ACCOUNT, window=window)
    if not account.allowed:
        return (
            "Too many failed log-ins for this email address. "
            f"Try again {_in_words(account.retry_after)}, or reset your password."
        )
    network = ratelimit.peek(
        "login-ip", ratelimit.client_ip(request), limit=settings.LOGIN_FAILURES_PER_IP, window=window
    )
    if not network.allowed:
        return f"Too many failed log-ins from your network. Try again {_in_words(network.retry_after)}."
    return None


def login_failed(request: HttpRequest, email: str) -> None:
    """Count one failed log-in against the address typed and against the client's address."""
    window = settings.LOGIN_LOCKOUT_SECONDS
    ratelimit.hit("login-account", _address(email), limit=settings.LOGIN_FAILURES_PER_ACCOUNT, window=window)
    ratelimit.hit("login-ip", ratelimit.client_ip(request), limit=settings.LOGIN_FAILURES_PER_IP, window=window)


def signup_refusal(request: HttpRequest) -> str | None:
    verdict = ratelimit.hit(
        "signup-ip", ratelimit.client_ip(request), limit=settings.SIGNUPS_PER_IP_PER_HOUR, window=3600
    )
    if verdict.allowed:
        return None
    return f"Too many sign-ups from your network. Try again {_in_words(verdict.retry_after)}."


def password_reset_refusal(email: str) -> str | None:
    verdict = ratelimit.cooldown("password-reset", _address(email), seconds=settings.PASSWORD_RESET_EVERY_SECONDS)
    if verdict.allowed:
        return None
    return (
        "A reset link was requested for this address a moment ago: check your inbox and spam folder, "
        f"or ask again {_in_words(verdict.retry_after)}."
    )


def verification_resend_refusal(user: User) -> str | None:
    verdict = ratelimit.cooldown("verify-resend", str(user.pk), seconds=settings.EMAIL_VERIFICATION_RESEND_SECONDS)
    if verdict.allowed:
        return None
    return (
        "We sent a link a moment ago: check your inbox and spam folder, "
        f"or ask for another {_in_words(verdict.retry_after)}."
    )

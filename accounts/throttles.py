"""Abuse limits on the account pages, counted in the shared cache (lib/ratelimit.py, Redis in production).

SECURITY: every limit keyed by an email address is counted for the address as typed, whether
or not an account has it, and its refusal reads the same either way: a refusal never tells
whether an account exists. Per-IP limits take the address from ``ratelimit.client_ip``, the
one helper every per-IP limit of the app uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from accounts.models import User
from lib import ratelimit
from lib.emails import normalize_email


def _in_words(seconds: int) -> str:
    """'in 40 seconds', 'in 1 minute', 'in 15 minutes', 'in 5 hours': how long a refusal lasts."""
    if seconds < 60:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 2 * 3600:
        minutes = math.ceil(seconds / 60)
        return f"in {minutes} minute{'s' if minutes != 1 else ''}"
    return f"in {math.ceil(seconds / 3600)} hours"


@dataclass(frozen=True)
class LoginAttempt:
    """One log-in attempt, counted as a failure until :func:`login_succeeded` takes it back."""

    refusal: str | None  # why it is refused before its password is even checked; None to go on
    counted: tuple[ratelimit.Verdict, ...] = ()


def login_attempt(request: HttpRequest, email: str) -> LoginAttempt:
    """Count this attempt against the address typed and the client's address, then judge it.

    Counted first, as a failure: attempts sent at once are each counted before any password is
    checked, so no more than the limit get a check (judging first and counting failures after let
    every attempt in flight through). Checked before the password, so that during a lockout the
    right password does not log in either; a refused attempt is not counted.
    """
    window = settings.LOGIN_LOCKOUT_SECONDS
    account = ratelimit.hit(
        "login-account", normalize_email(email), limit=settings.LOGIN_FAILURES_PER_ACCOUNT, window=window
    )
    if not account.allowed:
        return LoginAttempt(
            "Too many failed log-ins for this email address. "
            f"Try again {_in_words(account.retry_after)}, or reset your password."
        )
    network = ratelimit.hit(
        "login-ip", ratelimit.client_ip(request), limit=settings.LOGIN_FAILURES_PER_IP, window=window
    )
    if not network.allowed:
        ratelimit.refund(account)  # never tried: no failure of this address
        return LoginAttempt(f"Too many failed log-ins from your network. Try again {_in_words(network.retry_after)}.")
    return LoginAttempt(None, (account, network))


def login_succeeded(attempt: LoginAttempt) -> None:
    """The password was right: the attempt was no failure."""
    for verdict in attempt.counted:
        ratelimit.refund(verdict)


def login_failures_clear(email: str) -> None:
    """Forget the failed log-ins of ``email`` (its owner just set a new password from the inbox).

    Not those of any client address: a network's count is about who tried, not which account.
    """
    ratelimit.clear("login-account", normalize_email(email), window=settings.LOGIN_LOCKOUT_SECONDS)


def signup_refusal(request: HttpRequest) -> str | None:
    verdict = ratelimit.hit(
        "signup-ip", ratelimit.client_ip(request), limit=settings.SIGNUPS_PER_IP_PER_HOUR, window=3600
    )
    if verdict.allowed:
        return None
    return f"Too many sign-ups from your network. Try again {_in_words(verdict.retry_after)}."


def password_reset_refusal(email: str) -> str | None:
    verdict = ratelimit.cooldown(
        "password-reset", normalize_email(email), seconds=settings.PASSWORD_RESET_EVERY_SECONDS
    )
    if verdict.allowed:
        return None
    return (
        "A reset link was requested for this address a moment ago: check your inbox and spam folder, "
        f"or ask again {_in_words(verdict.retry_after)}."
    )


def verification_resend_refusal(user: User) -> str | None:
    """One resend per EMAIL_VERIFICATION_RESEND_SECONDS per account, and a daily cap per address
    (the page is open to whoever signed up with it, the address's owner or not)."""
    verdict = ratelimit.cooldown("verify-resend", str(user.pk), seconds=settings.EMAIL_VERIFICATION_RESEND_SECONDS)
    if not verdict.allowed:
        return (
            "We sent a link a moment ago: check your inbox and spam folder, "
            f"or ask for another {_in_words(verdict.retry_after)}."
        )
    daily = ratelimit.hit(
        "verify-resend-day",
        normalize_email(user.email),
        limit=settings.EMAIL_VERIFICATION_RESENDS_PER_DAY,
        window=86400,
    )
    if not daily.allowed:
        return (
            "We have sent this address all the links we send in a day: check your inbox and spam folder, "
            f"or ask for another {_in_words(daily.retry_after)}."
        )
    return None

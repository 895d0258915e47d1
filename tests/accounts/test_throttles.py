"""Abuse limits: log-in lockout (app and /admin/), reset mails, sign-ups, invitations, workspaces.
Refusals say what and for how long, and never whether an account exists."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.signals import user_login_failed
from django.core import mail
from django.test import Client, RequestFactory, TestCase

from accounts.forms import EmailAuthenticationForm
from lib import ratelimit
from tests.accounts.conftest import link_in, without_csrf
from tests.factories import PASSWORD, UserFactory
from tests.flows.test_ratelimit import redis_cache  # noqa: F401 - the real Redis, when the run has one
from tests.workspaces.test_workspaces import _invite
from workspaces.models import Invitation, Membership, Role, Workspace

pytestmark = pytest.mark.django_db
LOCKED = "Too many failed log-ins for this email address"


@pytest.fixture
def clock(monkeypatch):
    """The limiter's clock, moved by the test (the counters' only notion of time)."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(ratelimit, "_clock", lambda: now[0])
    return now


def _log_in(client, email, password, path="/accounts/login/"):
    return client.post(path, {"username": email, "password": password})


def test_wrong_passwords_lock_the_account_out_the_right_one_included_until_it_expires(client, settings, clock):
    """The report: 60 wrong passwords, then the right one logged in."""
    settings.LOGIN_FAILURES_PER_ACCOUNT, settings.LOGIN_LOCKOUT_SECONDS = 5, 900
    UserFactory(email="erin@example.com")
    for _ in range(5):
        assert "correct email address and password" in _log_in(client, "erin@example.com", "nope").content.decode()
    refused = _log_in(client, "Erin@Example.com", PASSWORD)  # the right one, any case
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    page = refused.content.decode()
    assert LOCKED in page and re.search(r"Try again in 1\d minutes, or reset your password", page)
    clock[0] += 2 * 900  # the failures have aged out of the window
    assert _log_in(client, "erin@example.com", PASSWORD).status_code == 302


def test_attempts_at_once_get_no_more_password_checks_than_the_limit(settings, clock):
    """Attempts in flight together were each judged before any of them was counted, so all of
    them had their password checked. Here each attempt starts while the previous one's password
    is being judged (Django's user_login_failed fires inside that check): as with parallel
    requests, none of the earlier ones has finished."""
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    UserFactory(email="erin@example.com")
    checked = []

    def attempt() -> bool:
        data = {"username": "erin@example.com", "password": "nope"}
        return EmailAuthenticationForm(RequestFactory().post("/accounts/login/", data), data=data).is_valid()

    def meanwhile(**kwargs) -> None:
        checked.append(kwargs["credentials"]["username"])
        if len(checked) < 10:
            attempt()

    user_login_failed.connect(meanwhile)
    try:
        assert attempt() is False
    finally:
        user_login_failed.disconnect(meanwhile)
    assert len(checked) == 3


def test_a_right_password_does_not_count_toward_the_lockout(client, settings, clock):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    UserFactory(email="erin@example.com")
    for _ in range(5):  # counted before the check, taken back once the password is right
        assert _log_in(Client(), "erin@example.com", PASSWORD).status_code == 302
    for _ in range(2):
        _log_in(client, "erin@example.com", "nope")
    assert _log_in(client, "erin@example.com", PASSWORD).status_code == 302


def test_a_completed_password_reset_ends_the_accounts_lockout(client, settings, clock):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    UserFactory(email="erin@example.com")
    for _ in range(3):
        _log_in(client, "erin@example.com", "nope")
    assert LOCKED in _log_in(client, "erin@example.com", PASSWORD).content.decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post("/accounts/password-reset/", {"email": "erin@example.com"})
    form = client.get(link_in(mail.outbox[0], "/accounts/reset/"), follow=True)
    client.post(
        form.redirect_chain[-1][0], {"new_password1": "brand-new-secret-9", "new_password2": "brand-new-secret-9"}
    )
    assert _log_in(client, "erin@example.com", "brand-new-secret-9").status_code == 302


def test_an_address_without_an_account_locks_out_the_same_way(client, settings, clock):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    UserFactory(email="erin@example.com")
    pages = {}
    for email in ("erin@example.com", "nobody@example.com"):
        for _ in range(3):
            _log_in(client, email, "nope")
        pages[email] = without_csrf(_log_in(client, email, "nope").content.decode().replace(email, "ADDRESS"))
    assert LOCKED in pages["erin@example.com"]
    assert pages["erin@example.com"] == pages["nobody@example.com"]


def test_failures_from_one_address_lock_out_that_network_only(settings, clock):
    settings.LOGIN_FAILURES_PER_ACCOUNT, settings.LOGIN_FAILURES_PER_IP = 100, 4
    UserFactory(email="erin@example.com")
    attacker, office = Client(REMOTE_ADDR="203.0.113.9"), Client(REMOTE_ADDR="198.51.100.7")
    for n in range(4):  # a different address each time: only the per-IP count sees them together
        _log_in(attacker, f"guess{n}@example.com", "nope")
    page = _log_in(attacker, "erin@example.com", PASSWORD).content.decode()
    assert "Too many failed log-ins from your network. Try again in" in page
    assert _log_in(office, "erin@example.com", PASSWORD).status_code == 302


def test_admin_login_is_throttled_too(client, settings, clock):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    for _ in range(3):
        assert _log_in(client, "staff@example.com", "nope", "/admin/login/").status_code == 200
    refused = _log_in(client, "staff@example.com", PASSWORD, "/admin/login/")
    assert LOCKED in refused.content.decode() and "_auth_user_id" not in client.session
    # Failures on /admin/ and on the app's page count against the same address.
    assert LOCKED in _log_in(client, "staff@example.com", PASSWORD).content.decode()


def test_one_reset_mail_per_address_every_few_minutes(client, clock):
    UserFactory(email="frank@example.com")
    answers = {}
    for email in ("frank@example.com", "ghost@example.com"):
        with TestCase.captureOnCommitCallbacks(execute=True):
            first = client.post("/accounts/password-reset/", {"email": email})
            second = client.post("/accounts/password-reset/", {"email": email})
        assert first.status_code == 302 and first["Location"] == "/accounts/password-reset/sent/"
        assert second.status_code == 200
        answers[email] = without_csrf(second.content.decode().replace(email, "ADDRESS"))
    assert "check your inbox and spam folder, or ask again in 5 minutes" in answers["frank@example.com"]
    assert answers["frank@example.com"] == answers["ghost@example.com"]  # an account or not: the same answer
    assert [m.to for m in mail.outbox] == [["frank@example.com"]]
    clock[0] += 301
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert client.post("/accounts/password-reset/", {"email": "frank@example.com"}).status_code == 302
    assert len(mail.outbox) == 2


def test_the_reset_link_comes_from_site_url_not_the_requests_host(client, settings):
    settings.ALLOWED_HOSTS, settings.SITE_URL = ["*"], "https://app.flowsync.example"
    UserFactory(email="frank@example.com")
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post("/accounts/password-reset/", {"email": "frank@example.com"}, HTTP_HOST="attacker.example")
    body = mail.outbox[0].body
    assert "https://app.flowsync.example/accounts/reset/" in body and "attacker.example" not in body


def test_verification_resends_per_address_are_capped_per_day(client, settings, clock):
    settings.EMAIL_VERIFICATION_RESEND_SECONDS, settings.EMAIL_VERIFICATION_RESENDS_PER_DAY = 120, 3
    client.force_login(UserFactory(email="jo@example.com", email_verified_at=None))
    pages = []
    for _ in range(4):
        clock[0] += 121  # past the per-account pause every time
        with TestCase.captureOnCommitCallbacks(execute=True):
            pages.append(client.post("/accounts/verify/", follow=True).content.decode())
    assert all("We sent a new link" in page for page in pages[:3])
    assert "all the links we send in a day" in pages[3] and re.search(r"ask for another in \d+ hours", pages[3])
    assert len(mail.outbox) == 3
    clock[0] += 2 * 86400
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert "We sent a new link" in client.post("/accounts/verify/", follow=True).content.decode()


def test_signups_per_network_are_limited(settings, sign_up, clock):
    settings.SIGNUPS_PER_IP_PER_HOUR = 2
    for n in range(2):
        assert "Check your inbox" in sign_up(f"new{n}@example.com").content.decode()
    refused = sign_up("new2@example.com")
    assert "Too many sign-ups from your network. Try again in" in refused.content.decode()
    assert not Membership.objects.exists() and len(mail.outbox) == 2
    assert "Check your inbox" in sign_up("new2@example.com", REMOTE_ADDR="192.0.2.50").content.decode()


def test_invitations_per_inviter_and_per_workspace_are_limited(alice, alice_client, workspace_a, settings):
    """The report: 25 invitations from a fresh account."""
    settings.INVITATIONS_PER_USER_PER_DAY, settings.INVITATIONS_PER_WORKSPACE_PER_DAY = 3, 4
    for n in range(3):
        assert _invite(alice_client, f"p{n}@example.com").status_code == 302
    refused = _invite(alice_client, "p3@example.com")
    assert refused.status_code == 200 and "You sent 3 invitations in the last 24 hours" in refused.content.decode()

    other_admin = UserFactory()
    Membership.objects.create(workspace=workspace_a, user=other_admin, role=Role.ADMIN)
    admin_client = Client()
    admin_client.force_login(other_admin)
    assert _invite(admin_client, "q0@example.com").status_code == 302
    refused = _invite(admin_client, "q1@example.com")
    assert "This workspace sent 4 invitations in the last 24 hours" in refused.content.decode()
    assert Invitation.objects.count() == 4 and len(mail.outbox) == 4

    Invitation.objects.update(created_at=Invitation.objects.first().created_at.replace(year=2000))
    assert _invite(alice_client, "p3@example.com").status_code == 302  # a day later


def test_workspaces_per_user_are_limited(alice, alice_client, settings):
    settings.WORKSPACES_PER_USER_PER_DAY = 2
    Workspace.objects.filter(slug="acme").update(created_by=alice)
    assert alice_client.post("/new/", {"name": "Second"}).status_code == 302
    refused = alice_client.post("/new/", {"name": "Third"})
    assert refused.status_code == 200 and "You created 2 workspaces in the last 24 hours" in refused.content.decode()
    assert not Workspace.objects.filter(name="Third").exists()


# --- The limiter's shapes these use, on the real shared cache (Redis) when the run has one ---------


def test_refund_and_clear_take_hits_back_and_longer_windows_keep_their_own_counters(redis_cache):  # noqa: F811
    ident = uuid.uuid4().hex
    for _ in range(5):
        ratelimit.refund(ratelimit.hit("test", ident, limit=2, window=900))
    first = ratelimit.hit("test", ident, limit=2, window=900)
    ratelimit.hit("test", ident, limit=2, window=900)
    locked = ratelimit.hit("test", ident, limit=2, window=900)
    assert not locked.allowed and 0 < locked.retry_after <= 2 * 900
    ratelimit.refund(locked)  # a refused hit was never counted: nothing to take back
    assert not ratelimit.hit("test", ident, limit=2, window=900).allowed
    assert ratelimit.hit("test", ident, limit=2).allowed  # the one-minute window counts apart
    ratelimit.refund(first)
    assert ratelimit.hit("test", ident, limit=2, window=900).allowed
    ratelimit.clear("test", ident, window=900)
    assert ratelimit.hit("test", ident, limit=1, window=900).allowed


def test_cooldown_lets_one_through(redis_cache):  # noqa: F811
    ident = uuid.uuid4().hex
    verdicts = [ratelimit.cooldown("test", ident, seconds=300) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, False, False]
    assert 299 <= verdicts[-1].retry_after <= 300

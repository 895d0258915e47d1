"""Sessions end after SESSION_IDLE_TIMEOUT_SECONDS without a request (lib.middleware.session_idle_timeout)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from lib import middleware

pytestmark = pytest.mark.django_db


def _session(client) -> Session:
    return Session.objects.get(session_key=client.cookies[django_settings.SESSION_COOKIE_NAME].value)


def _expires_in(client) -> float:
    return (_session(client).expire_date - timezone.now()).total_seconds()


def _logged_in(client) -> bool:
    response = client.get("/")
    return not (response.status_code == 302 and response.url.startswith("/accounts/login/"))


@pytest.fixture
def clock(monkeypatch):
    now = [1_800_000_000.0]
    monkeypatch.setattr(middleware, "_clock", lambda: now[0])
    return now


def _age(client, seconds: float) -> None:
    """As if the last request had been ``seconds`` ago: the expiry it set is that much nearer."""
    session = _session(client)
    session.expire_date -= timedelta(seconds=seconds)
    session.save()


def test_a_session_lasts_the_idle_timeout_not_two_weeks(alice_client):
    assert django_settings.SESSION_IDLE_TIMEOUT_SECONDS == 8 * 3600  # the default
    assert _logged_in(alice_client)
    assert 8 * 3600 - 60 < _expires_in(alice_client) <= 8 * 3600


def test_each_request_moves_the_expiry_at_most_once_a_minute(alice_client, settings, clock):
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 600
    assert _logged_in(alice_client)
    assert 540 < _expires_in(alice_client) <= 600
    _age(alice_client, 300)  # five quiet minutes: 300 s left

    clock[0] += 30  # a request half a minute after the last touch writes nothing
    assert _logged_in(alice_client)
    assert 240 < _expires_in(alice_client) <= 300

    clock[0] += 40  # over a minute since the last touch: the expiry slides to now + 600
    assert _logged_in(alice_client)
    assert 540 < _expires_in(alice_client) <= 600
    cookie = alice_client.cookies[django_settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == 600


def test_a_session_idle_past_the_timeout_is_over(alice_client, settings, clock):
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 600
    assert _logged_in(alice_client)
    _age(alice_client, 601)
    clock[0] += 601
    assert not _logged_in(alice_client)

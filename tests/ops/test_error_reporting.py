"""Sentry gets errors without the people or the secrets in them: an event captured from a failing request and from
a failing piece of code, through sentry-sdk's real pipeline (its Django integration, breadcrumbs from log lines,
before_send), holds no email, key or token when it reaches the transport."""

from __future__ import annotations

import json
import logging

import pytest
import sentry_sdk
from django.http import HttpResponse
from django.urls import path
from sentry_sdk.transport import Transport

from lib.error_reporting import event_scrub, sentry_init, text_scrub

pytestmark = pytest.mark.django_db

EMAIL = "ada.lovelace@example.com"
API_KEY = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
TOKEN = "fs_Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4"


class Recording(Transport):
    """Keeps what would be sent to Sentry, as the JSON it would be."""

    sent: list[str] = []

    def capture_envelope(self, envelope) -> None:
        for item in envelope.items:
            Recording.sent.append(item.payload.get_bytes().decode())


@pytest.fixture
def sentry():
    Recording.sent = []
    sentry_init(
        dsn="https://public@sentry.example.com/1",
        environment="test",
        release="",
        traces_sample_rate=0.0,
        transport=Recording,
    )
    yield Recording.sent
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: off again for the other tests


def fail(request):
    logging.getLogger("flows").warning("capturing %s with Api-Key: %s", EMAIL, API_KEY)
    raise RuntimeError(f"could not sync {EMAIL} (Authorization: Bearer {TOKEN})")


def fine(request):
    return HttpResponse("ok")


urlpatterns = [path("boom/", fail), path("fine/", fine)]


def _leaks(sent: list[str]) -> list[str]:
    blob = "\n".join(sent)
    return [secret for secret in (EMAIL, "ada.lovelace%40example.com", API_KEY, TOKEN) if secret in blob]


def test_a_failing_request_reaches_sentry_without_people_or_secrets(sentry, client, settings):
    settings.ROOT_URLCONF = __name__
    client.raise_request_exception = False
    response = client.post(
        f"/boom/?email={EMAIL}&forget=true",
        data=json.dumps({"email": EMAIL, "api_key": API_KEY}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}", "Api-Key": API_KEY, "Cookie": "sessionid=abc123"},
    )
    assert response.status_code == 500
    sentry_sdk.flush()
    assert sentry, "no event was captured"
    event = next(json.loads(item) for item in sentry if '"exception"' in item)
    assert event["exception"]["values"][0]["type"] == "RuntimeError"
    assert "could not sync [email]" in event["exception"]["values"][0]["value"]
    assert _leaks(sentry) == []
    assert "sessionid" not in "\n".join(sentry)


def test_code_outside_a_request_is_scrubbed_too(sentry):
    with sentry_sdk.new_scope() as scope:
        scope.set_user({"id": 7, "email": EMAIL})
        scope.set_extra("payload", {"email": EMAIL, "access_token": TOKEN, "note": f"sent with Api-Key: {API_KEY}"})
        logging.getLogger("integrations").error("run failed for %s", EMAIL)
        try:
            raise ValueError(f"bad answer for {EMAIL}")
        except ValueError:
            sentry_sdk.capture_exception()
    sentry_sdk.flush()
    assert sentry and _leaks(sentry) == []


def test_the_scrubber_masks_what_it_finds_anywhere():
    event = {
        "message": f"to {EMAIL}",
        "request": {"url": "https://x/api", "query_string": f"email={EMAIL}", "data": {"a": 1}, "cookies": {"s": 1},
                    "headers": {"Authorization": f"Bearer {TOKEN}", "Api-Key": API_KEY, "Accept": "json"}},
        "user": {"id": 3, "email": EMAIL, "ip_address": "10.0.0.1"},
        "breadcrumbs": {"values": [{"message": f"Api-Key: {API_KEY}"}]},
    }  # fmt: skip
    scrubbed = event_scrub(event)
    assert "data" not in scrubbed["request"] and "cookies" not in scrubbed["request"]
    assert scrubbed["request"]["query_string"] == "email=[Filtered]"
    assert scrubbed["request"]["headers"] == {"Authorization": "[Filtered]", "Api-Key": "[Filtered]", "Accept": "json"}
    assert scrubbed["user"] == {"id": 3}
    assert _leaks([json.dumps(scrubbed)]) == []
    assert text_scrub("write to Ada@Example.COM now") == "write to [email] now"

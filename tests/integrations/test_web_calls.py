"""Calls to Iterable made inside a web request (connect, re-verify, the list picker) never wait on it.

A worker's call may retry 5xx with long timeouts and wait out 429s for minutes; a page's call is one
request with a short timeout, and a busy Iterable (a 429, or no room in the project's shared budget)
is answered "try again in N s" at once. What reached Iterable is counted at the emulator, every
request that arrived whatever its answer; no timing is asserted.
"""

from __future__ import annotations

import time

import pytest

from integrations.credentials import rate_bucket_id
from integrations.destinations.base import BusyError, DeadlineError
from integrations.destinations.iterable import ENDPOINT_RATES, PACE, IterableClient
from integrations.models import Integration
from lib import ratebucket
from lib.deadline import deadline
from tests.integrations.webcalls import GET_FIELDS, SAID, arrived, break_iterable

pytestmark = pytest.mark.django_db
CONNECT = "/w/acme/integrations/iterable/connect/"


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


@pytest.mark.parametrize("failure", ["5xx", "429", "slow", "no-room"])
def test_connect_makes_one_call_and_says_try_again(alice_client, web, failure):
    key = web.keys.server_side
    break_iterable(web, failure, GET_FIELDS, IterableClient(region="us", api_key=key).bucket_id)
    response = alice_client.post(CONNECT, {"api_key": key, "region": "us", "project_type": "hybrid"})
    assert response.status_code == 400
    errors = " ".join(str(e) for errors in response.context["form"].errors.values() for e in errors)
    assert SAID[failure] in errors and "Nothing was saved" in errors
    assert arrived(web, GET_FIELDS) == (0 if failure == "no-room" else 1)
    assert not Integration.objects.exists()


@pytest.fixture
def connected(alice_client, web):
    alice_client.post(CONNECT, {"api_key": web.keys.server_side, "region": "us", "project_type": "hybrid"})
    return Integration.objects.get()


@pytest.mark.parametrize("failure", ["5xx", "429", "slow", "no-room"])
def test_reverify_makes_one_call_and_keeps_the_status(alice_client, web, connected, failure):
    before = arrived(web, GET_FIELDS)
    break_iterable(web, failure, GET_FIELDS, rate_bucket_id(connected))
    response = alice_client.post("/w/acme/integrations/iterable/reverify/", follow=True)
    said = SAID[failure] if failure in ("429", "no-room") else "Could not reach Iterable to check"
    assert said in _messages(response)
    assert arrived(web, GET_FIELDS) - before == (0 if failure == "no-room" else 1)
    connected.refresh_from_db()
    assert connected.status == "connected" and not connected.error_code  # busy or down says nothing of the key


def test_reverify_of_a_busy_write_probe_keeps_the_status(alice_client, web, connected):
    # The second probe (bulkUpdate, 5 per second) is the one a running sync keeps busy.
    web.fault("/api/users/bulkUpdate", status=429, times=20)
    response = alice_client.post("/w/acme/integrations/iterable/reverify/", follow=True)
    assert "Iterable is busy, try again in" in _messages(response)
    assert arrived(web, "/api/users/bulkUpdate") == 2  # the connect's probe, and this one
    connected.refresh_from_db()
    assert connected.status == "connected"


@pytest.mark.parametrize("failure", ["5xx", "429", "slow", "no-room"])
def test_the_list_picker_makes_one_call_and_keeps_the_chosen_list(alice_client, web, connected, failure):
    connected.list_id, connected.list_name = 1234, "Newsletter"
    connected.save()
    break_iterable(web, failure, "/api/lists", rate_bucket_id(connected))
    response = alice_client.get("/w/acme/integrations/iterable/sync/")
    assert response.status_code == 200
    assert response.context["lists_error"].startswith("Could not load Iterable's lists")
    if failure in ("429", "no-room"):
        assert SAID[failure] in response.context["lists_error"]
    assert arrived(web, "/api/lists") == (0 if failure == "no-room" else 1)
    # The list already chosen is still a choice, so the other settings can be saved meanwhile.
    assert (1234, "Newsletter") in response.context["form"].fields["list_id"].choices


def _busy_budget(client: IterableClient) -> tuple[str, float]:
    """The getFields budget of ``client``'s project with its token just taken (by a worker)."""
    name, rate = f"iterable:{client.bucket_id}:GET {GET_FIELDS}", ENDPOINT_RATES[f"GET {GET_FIELDS}"] * PACE
    ratebucket.reserve(name, rate=rate)
    return name, rate


def test_a_web_call_waits_for_its_turn_when_it_comes_within_one_interval(web):
    # A page's call takes a token only when one is free, as a worker's does (pacing at send time):
    # when the next one comes within one request interval it waits for it, and asks once more.
    client = IterableClient(region="us", api_key=web.keys.server_side, interactive=True)
    _busy_budget(client)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    client.sleep = sleep
    assert client.request("GET", GET_FIELDS).status == 200
    assert len(slept) == 1 and 0 < slept[0] <= 1 / (3 * PACE)


def test_a_web_call_that_loses_the_next_token_to_a_worker_is_busy_not_sent(web):
    # No slot is promised ahead: a worker that asks first when the token comes free takes it, and the
    # page says "try again" rather than sending right behind the worker (a 429 for a limiter with no burst).
    client = IterableClient(region="us", api_key=web.keys.server_side, interactive=True)
    name, rate = _busy_budget(client)

    def sleep_then_a_worker_takes_the_token(seconds: float) -> None:
        time.sleep(seconds)
        while ratebucket.reserve(name, rate=rate, max_wait=0) > 0:
            time.sleep(0.01)

    client.sleep = sleep_then_a_worker_takes_the_token
    with pytest.raises(BusyError) as caught:
        client.request("GET", GET_FIELDS)
    assert "Iterable is busy, try again in" in caught.value.message
    assert arrived(web, GET_FIELDS) == 0


# --- One deadline per web request (DESTINATION_WEB_DEADLINE_SECONDS) --------------------------------


def test_past_the_deadline_a_web_call_is_not_made(web):
    interactive = IterableClient(region="us", api_key=web.keys.server_side, interactive=True)
    with deadline(0), pytest.raises(DeadlineError) as caught:
        interactive.request("GET", GET_FIELDS)
    assert caught.value.retryable and "slow to answer" in caught.value.message
    assert arrived(web, GET_FIELDS) == 0
    with deadline(0):  # a worker's call has no deadline
        assert IterableClient(region="us", api_key=web.keys.server_side).request("GET", GET_FIELDS).status == 200


def test_connect_gives_up_at_the_deadline_not_after_every_call(alice_client, web, settings):
    # Each call answers within the web timeout, but connecting takes three (read, write, plus auto-detect's):
    # without a deadline for them together the page would wait for all of them.
    settings.DESTINATION_WEB_DEADLINE_SECONDS = 1
    web.configure(latency_ms=400)
    response = alice_client.post(CONNECT, {"api_key": web.keys.server_side, "region": "auto", "project_type": "hybrid"})
    errors = " ".join(str(e) for errors in response.context["form"].errors.values() for e in errors)
    assert "Iterable is slow to answer: this page stopped waiting after 1 s" in errors and "Nothing was saved" in errors
    assert arrived(web, GET_FIELDS) + arrived(web, "/api/users/bulkUpdate") <= 3
    assert not Integration.objects.exists()

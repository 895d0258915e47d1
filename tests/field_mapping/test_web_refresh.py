"""Iterable's fields fetched from a page: one short call, debounced per integration (issue 10 item 9).

Counted at the emulator: every getFields that arrived there, whatever it was answered.
"""

from __future__ import annotations

import ast
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from field_mapping.models import DestinationSchema
from integrations.credentials import rate_bucket_id
from tests.integrations.webcalls import FAULTS, GET_FIELDS, SAID, arrived, break_iterable

URL = "/w/acme/integrations/iterable/mapping/"

ROOT = Path(__file__).resolve().parents[2]


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


@pytest.mark.django_db
@pytest.mark.parametrize("failure", [*FAULTS, "no-room"])
def test_refresh_makes_one_call_and_keeps_the_last_copy(alice_client, web, connected, flows, failure):
    alice_client.get(URL)  # the first copy
    before = arrived(web, GET_FIELDS)
    break_iterable(web, failure, GET_FIELDS, rate_bucket_id(connected))
    response = alice_client.post(URL + "refresh/", follow=True)
    assert "Could not fetch Iterable&#x27;s fields" in response.content.decode()
    if failure in ("429", "no-room"):
        assert SAID[failure] in _messages(response)
    assert arrived(web, GET_FIELDS) - before == (0 if failure == "no-room" else 1)
    assert "age" in DestinationSchema.objects.get().fields


@pytest.mark.django_db
def test_pages_loading_a_stale_copy_at_once_fetch_it_once(alice_client, web, connected, flows):
    alice_client.get(URL)
    cache.clear()  # the first copy's fetch a while ago
    before = arrived(web, GET_FIELDS)
    for _ in range(3):
        DestinationSchema.objects.update(fetched_at=timezone.now() - timedelta(hours=1))
        assert alice_client.get(URL).status_code == 200
    assert arrived(web, GET_FIELDS) - before == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_refreshes_at_once_make_one_call(web, connected, flows, alice, settings):
    # The web fixture's 0.5 s timeout is too near the 300 ms answer below: twenty threads of one process
    # (and a collection of its garbage) once held the fetch past it, and the fetch read as a failure.
    settings.DESTINATION_WEB_TIMEOUT_SECONDS = 5
    clients = []
    for _ in range(20):
        client = Client()
        client.force_login(alice)
        clients.append(client)
    assert clients[0].get(URL).status_code == 200  # the copy the others will be shown
    web.configure(latency_ms=300)  # the first call is still out while the others arrive
    before = arrived(web, GET_FIELDS)
    said: list[str] = []

    def press(client: Client) -> None:
        try:
            # The page itself: the test client's response.context gathers every thread's templates.
            said.append(client.post(URL + "refresh/", follow=True).content.decode())
        finally:
            connection.close()

    threads = [threading.Thread(target=press, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert arrived(web, GET_FIELDS) - before == 1
    assert len(said) == 20
    assert sum("fields from Iterable." in page for page in said) == 1
    assert sum("fetched moments ago (or are being fetched): showing" in page for page in said) == 19


def _string_constants(path: Path) -> list[str]:
    return [
        n.value
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_the_mapping_views_name_no_destination():
    # DESIGN: views know no destination by name; messages take the integration's display name.
    named = [text for text in _string_constants(ROOT / "field_mapping" / "views.py") if "Iterable" in text]
    assert named == []


def test_the_integration_views_call_no_destination():
    # The list picker's call lives in integrations.selectors (integration_destination_lists). The views
    # read the registry's declarations (a tile, a connect form) but never build a client.
    source = (ROOT / "integrations" / "views.py").read_text()
    assert "destination_for" not in source and "for_integration" not in source

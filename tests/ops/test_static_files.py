"""Static files go out under content-hashed names, cached for a year: a repeat visit asks for none."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db

STATIC = re.compile(r'(?:href|src)="(/static/[^"]+)"')
HASHED = re.compile(r"\.[0-9a-f]{12}\.(?:css|js|svg)$")


def _static_urls(html: str) -> list[str]:
    return STATIC.findall(html)


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_pages_name_hashed_files_served_immutable_for_a_year(alice_client, settings, debug):
    settings.DEBUG = debug  # the demo runs with DEBUG on: hashed there too
    urls = _static_urls(alice_client.get("/w/acme/flows/").content.decode())
    assert {u.rsplit("/", 1)[-1].split(".")[0] for u in urls} >= {"app", "favicon", "htmx-2"}, urls
    for url in urls:
        assert HASHED.search(url), f"{url} has no content hash"
        response = alice_client.get(url)
        assert response.status_code == 200, url
        assert "immutable" in response["Cache-Control"] and "max-age=315360000" in response["Cache-Control"], url


def test_a_file_under_its_plain_name_is_still_served_but_revalidated(client):
    # An old page or a bookmark naming app.css gets it, but only for a minute (not pinned for a year).
    response = client.get("/static/css/app.css")
    assert response.status_code == 200 and "immutable" not in response["Cache-Control"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_moving_between_pages_fetches_no_static_file_again(page, live_server, log_in, alice):
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    from_cache: set[str] = set()
    fetched: list[str] = []
    cdp.on("Network.requestServedFromCache", lambda event: from_cache.add(event["requestId"]))

    def received(event) -> None:
        response = event["response"]
        if "/static/" in response["url"] and not response.get("fromDiskCache") and event["requestId"] not in from_cache:
            fetched.append(f"{response['status']} {response['url']}")

    cdp.on("Network.responseReceived", received)
    log_in(alice)  # the login page fetches the stylesheet and the scripts, once
    assert len(fetched) >= 3 and all(line.startswith("200 ") for line in fetched), fetched
    fetched.clear()
    for path in ("/w/acme/flows/", "/w/acme/contacts/", "/w/acme/integrations/", "/w/acme/flows/"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")
    assert fetched == [], f"fetched again (or revalidated): {fetched}"

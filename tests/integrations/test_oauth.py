"""OAuth 2 (authorization code + PKCE, refresh rotation) against the emulator's authorization server."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import requests
from django.db import connection

from integrations.destinations import destination_for
from integrations.destinations.base import AuthError, BusyError, ConnectError, ServerError
from integrations.destinations.iterable import oauth
from integrations.destinations.iterable.connect import connect_oauth
from integrations.models import Integration
from tests.conftest import _database_url_for_subprocess
from workspaces.models import Role

pytestmark = pytest.mark.django_db
CALLBACK = "http://testserver/integrations/oauth/iterable/callback/"
CONNECT = "/w/acme/integrations/iterable/connect/"
START = "/w/acme/integrations/iterable/oauth/start/"


@pytest.fixture
def eu_oauth_server(oauth_server, settings):
    """The same client, registered for the emulator's EU project (userID-based) and configured for the EU."""
    settings.ITERABLE_OAUTH_REGION = "eu"
    oauth_server.register_oauth_client(project_id=2, region="eu")
    return oauth_server


def _authorize(client, project_type: str = "hybrid") -> str:
    """Start in Flowsync, let the emulator approve; returns the callback path + query."""
    start = client.post(START, {"project_type": project_type})
    assert start.status_code == 302
    query = parse_qs(urlsplit(start["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"] and query["state"]
    back = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert back.status_code == 302
    return back.headers["Location"].removeprefix("http://testserver")


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def _refused(response, words: str, *, ends_on: str = CONNECT) -> None:
    """A failed callback: it says why, ends on the workspace's Iterable connect page, and stored nothing."""
    assert words in _messages(response)
    assert response.redirect_chain[-1][0] == ends_on
    assert not Integration.objects.exists()


def test_full_flow_connects_and_the_client_uses_the_token(alice_client, oauth_server):
    response = alice_client.get(_authorize(alice_client), follow=True)
    assert "Connected to Iterable with OAuth" in _messages(response)
    integration = Integration.objects.get()
    assert integration.auth_method == "oauth" and integration.status == "connected"
    assert set(integration.credentials) == {"access_token", "refresh_token", "obtained_at", "expires_at"}
    fields = destination_for(integration).fetch_fields()
    assert any(f.name == "email" for f in fields)
    assert oauth_server.requests("/api/users/getFields")[-1]["auth"] == "server_side"


def test_a_401_refreshes_once_and_persists_the_new_tokens(alice_client, oauth_server):
    alice_client.get(_authorize(alice_client))
    integration = Integration.objects.get()
    before = integration.credentials
    oauth_server.expire_access_tokens()
    destination_for(integration).fetch_fields()
    integration.refresh_from_db()
    after = integration.credentials
    assert after["access_token"] != before["access_token"] and after["refresh_token"] != before["refresh_token"]
    # Refresh tokens rotate: the old one is now refused.
    with pytest.raises(AuthError):
        oauth.refresh(before["refresh_token"])


def test_the_token_is_refreshed_at_half_life_before_any_401(alice_client, oauth_server):
    alice_client.get(_authorize(alice_client))
    integration = Integration.objects.get()
    credentials = integration.credentials
    now = int(time.time())
    integration.credentials = {**credentials, "obtained_at": now - 3000, "expires_at": now + 600}
    integration.save()
    destination_for(integration).fetch_fields()
    integration.refresh_from_db()
    assert integration.credentials["access_token"] != credentials["access_token"]
    assert oauth.needs_refresh(integration.credentials) is False


def test_a_refused_refresh_needs_attention(alice_client, oauth_server):
    alice_client.get(_authorize(alice_client))
    integration = Integration.objects.get()
    oauth_server.revoke_oauth_grants()  # the grant was withdrawn in Iterable
    with pytest.raises(AuthError):
        destination_for(integration).fetch_fields()
    integration.refresh_from_db()
    assert integration.status == "needs_attention" and integration.error_code == "oauth_refresh_failed"


def test_a_token_endpoint_outage_during_refresh_is_retryable_not_fatal(alice_client, oauth_server):
    alice_client.get(_authorize(alice_client))
    integration = Integration.objects.get()
    oauth_server.expire_access_tokens()
    oauth_server.configure(oauth_fail_token_endpoint=True)
    with pytest.raises(ServerError):
        destination_for(integration).fetch_fields()
    integration.refresh_from_db()
    assert integration.status == "connected"


def test_denied_consent(alice_client, oauth_server):
    oauth_server.configure(oauth_deny_next=True)
    _refused(alice_client.get(_authorize(alice_client), follow=True), "You declined access in Iterable")


def test_bad_state(alice_client, oauth_server):
    callback = _authorize(alice_client)
    _refused(alice_client.get(callback.replace("state=", "state=tampered"), follow=True), "state mismatch")
    # The sign-in is spent: the genuine answer arriving after the forged one is refused, on the same page.
    _refused(alice_client.get(callback, follow=True), "already completed or has expired")


def test_a_state_that_is_not_ascii_is_a_mismatch_not_a_500(alice_client, oauth_server):
    callback = _authorize(alice_client)
    _refused(alice_client.get(callback.replace("state=", "state=%C3%A9"), follow=True), "state mismatch")
    # Spent now; a replay with such a state is not trusted to name a workspace, and is not a 500 either.
    assert alice_client.get(callback.replace("state=", "state=%C3%A9")).status_code == 302


def test_replayed_callback(alice_client, oauth_server):
    callback = _authorize(alice_client)
    alice_client.get(callback)
    Integration.objects.all().delete()
    _refused(alice_client.get(callback, follow=True), "already completed or has expired")


def test_token_endpoint_error(alice_client, oauth_server):
    oauth_server.configure(oauth_fail_token_endpoint=True)
    response = alice_client.get(_authorize(alice_client), follow=True)
    _refused(response, "could not be reached")
    assert "Nothing was saved" in _messages(response)


def test_an_admin_demoted_during_the_sign_in_connects_nothing(alice_client, alice, oauth_server):
    callback = _authorize(alice_client)
    alice.memberships.update(role=Role.VIEWER)
    # A viewer may not open the connect page: the integrations tiles instead.
    _refused(alice_client.get(callback, follow=True), "Only workspace admins", ends_on="/w/acme/integrations/")


def test_a_callback_for_another_user_session_does_nothing(alice_client, charlie_client, oauth_server):
    callback = _authorize(alice_client)
    response = charlie_client.get(callback, follow=True)
    # Charlie's session never started this sign-in, so nothing in it names a workspace: his own home page.
    _refused(response, "already completed or has expired", ends_on="/w/bravo/")


@pytest.mark.parametrize("refusal_status", [401, 403])
def test_a_grant_without_write_rights_is_refused(alice_client, oauth_server, settings, refusal_status):
    oauth_server.configure(refusal_status=refusal_status)  # Iterable's Swagger lists 401 on bulkUpdate
    settings.ITERABLE_OAUTH_SCOPES = "users:read"  # the token can read the project but not write users
    response = alice_client.get(_authorize(alice_client), follow=True)
    _refused(response, "cannot create or update users")
    assert "Nothing was connected" in _messages(response)


def test_a_token_for_another_data_center_is_refused(alice_client, oauth_server, settings):
    settings.ITERABLE_OAUTH_REGION = "eu"  # but the client belongs to the emulator's US project
    _refused(alice_client.get(_authorize(alice_client), follow=True), "did not accept the token")


def test_eu_oauth_connects_a_userid_project(alice_client, eu_oauth_server):
    response = alice_client.get(_authorize(alice_client, "userId"), follow=True)
    assert "Connected to Iterable with OAuth" in _messages(response)
    integration = Integration.objects.get()
    assert (integration.config["region"], integration.config["project_type"]) == ("eu", "userId")


def test_eu_has_no_email_based_projects_with_oauth_either(alice_client, alice, workspace_a, eu_oauth_server):
    # Refused before the admin is sent to Iterable...
    response = alice_client.post(START, {"project_type": "email"}, follow=True)
    _refused(response, "no email-based projects")
    # ...and by the service itself, before it spends the code.
    with pytest.raises(ConnectError, match="no email-based projects"):
        connect_oauth(
            bucket_id="test",
            code="any",
            code_verifier="any",
            redirect_uri=CALLBACK,
            project_type="email",
        )
    assert not Integration.objects.exists()


def test_pkce_is_enforced(oauth_server):
    url, _state, _verifier = oauth.authorization_request(CALLBACK)
    code = parse_qs(urlsplit(requests.get(url, allow_redirects=False, timeout=5).headers["Location"]).query)["code"][0]
    with pytest.raises(AuthError, match="PKCE"):
        oauth.exchange_code(code=code, code_verifier="not-the-verifier" * 3, redirect_uri=CALLBACK)


def test_start_is_refused_when_oauth_is_off(alice_client, iterable, settings):
    settings.ITERABLE_OAUTH_ENABLED = False
    response = alice_client.post(START, follow=True)
    assert "no OAuth broker configured" in _messages(response)


# --- A page and a worker renewing the token (#10 item 9) -----------------------------------------------


@pytest.mark.django_db(transaction=True)  # the row lock is held from another connection: it must see the row
def test_a_page_does_not_wait_for_a_worker_renewing_the_token(alice_client, oauth_server):
    alice_client.get(_authorize(alice_client))
    integration = Integration.objects.get()
    now = int(time.time())
    stale = {**integration.credentials, "obtained_at": now - 3000, "expires_at": now + 600}  # past half-life
    integration.credentials = stale
    integration.save()
    with psycopg.connect(_database_url_for_subprocess()) as worker, connection.cursor() as cursor:
        # A worker renewing it holds the row (as StoredTokenProvider does); a page that waited for it
        # would fail here after 3 s rather than hang the test.
        worker.execute("SELECT 1 FROM integrations_integration WHERE id = %s FOR NO KEY UPDATE", [integration.pk])
        cursor.execute("SET lock_timeout = '3s'")
        try:
            with pytest.raises(BusyError) as caught:
                destination_for(integration, interactive=True).fetch_fields()
            assert "Iterable is busy, try again in" in caught.value.message
            response = alice_client.post("/w/acme/integrations/iterable/mapping/refresh/", follow=True)
            assert "Iterable is busy, try again in" in _messages(response)
        finally:
            cursor.execute("SET lock_timeout = 0")
        assert oauth_server.stats()["arrived"].get("/api/users/getFields", 0) == 1  # the connect's, no other
    integration.refresh_from_db()
    assert integration.credentials == stale and integration.status == "connected"  # nothing renewed, nothing marked
    destination_for(integration, interactive=True).fetch_fields()  # the lock is free: the page renews it
    integration.refresh_from_db()
    assert integration.credentials["access_token"] != stale["access_token"]

"""Connecting Iterable by API key through the views, against the emulator."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.db import connection

from integrations.models import Integration
from sync_logs.models import SyncRun
from tests.sync_logs.factories import run_with_records
from workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db
CONNECT = "/w/acme/integrations/iterable/connect/"


def _connect(client, key, region="us", project_type="hybrid"):
    return client.post(CONNECT, {"api_key": key, "region": region, "project_type": project_type})


def _error_text(response) -> str:
    form = response.context["form"]
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


def test_it_works(alice_client, iterable):
    response = _connect(alice_client, f"  {iterable.keys.server_side}\n")  # pasted with whitespace
    assert response.status_code == 302 and response["Location"] == "/w/acme/integrations/iterable/mapping/"
    integration = Integration.objects.get()
    assert integration.status == "connected" and integration.credentials == {"api_key": iterable.keys.server_side}
    assert integration.key_last4 == iterable.keys.server_side[-4:] and integration.config["region"] == "us"
    assert AuditEvent.objects.filter(verb="integration.connected").exists()


def test_every_label_points_at_its_own_field(alice_client, iterable, settings):
    settings.ITERABLE_OAUTH_ENABLED = True  # both forms on the page
    html = alice_client.get(CONNECT).content.decode()
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert set(re.findall(r'<label for="([^"]+)"', html)) <= set(ids)


def test_it_checks_workspace(charlie_client, iterable):
    assert _connect(charlie_client, iterable.keys.server_side).status_code == 404
    assert not Integration.objects.exists()


def test_it_requires_admin(bob_client, iterable):
    assert _connect(bob_client, iterable.keys.server_side).status_code == 403
    assert not Integration.objects.exists()


def test_the_key_is_encrypted_at_rest_and_never_rendered(alice_client, iterable):
    key = iterable.keys.server_side
    _connect(alice_client, key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM integrations_integration")
        stored = cursor.fetchone()[0]
    assert key not in stored and stored.startswith("gAAAA")  # a Fernet token
    from io import StringIO

    dump = StringIO()
    call_command("dumpdata", "integrations", "workspaces", stdout=dump)
    assert key not in dump.getvalue()
    for url in ["/w/acme/integrations/", "/w/acme/integrations/iterable/", CONNECT, "/w/acme/settings/audit/"]:
        html = alice_client.get(url).content.decode()
        assert key not in html, url
    assert f"••••{key[-4:]}" in alice_client.get("/w/acme/integrations/").content.decode()


@pytest.mark.parametrize(
    ("which", "region", "field", "words"),
    [
        ("wrong", "us", "api_key", "does not recognise this key"),
        ("wrong", "auto", "api_key", "in the US or the EU data center"),
        ("eu_server_side", "us", "region", "belongs to a project in the EU"),
        ("read_only", "us", "api_key", "read-only key"),
        ("mobile", "us", "api_key", "client-side (mobile or JavaScript) key"),
        ("javascript", "us", "api_key", "JavaScript key"),
        ("read_only", "auto", "api_key", "read-only key"),
        ("mobile", "auto", "api_key", "client-side (mobile or JavaScript) key"),
        ("javascript", "auto", "api_key", "JavaScript key"),
    ],
)
@pytest.mark.parametrize("refusal_status", [401, 403])
def test_bad_keys_are_refused_with_what_to_do(alice_client, iterable, which, region, field, words, refusal_status):
    # Iterable's Swagger lists only 401 "Invalid API key" where a key type is refused (getFields,
    # bulkUpdate, users/update); the emulator answers either way, and the verdict must not change.
    iterable.configure(refusal_status=refusal_status)
    key = "wrong-key-123456" if which == "wrong" else getattr(iterable.keys, which)
    response = _connect(alice_client, key, region=region)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and words in " ".join(errors[field])
    if which != "eu_server_side":
        assert "Server-side" in _error_text(response)  # says how to get the right key
    assert not Integration.objects.exists()


def test_a_refused_key_stays_in_its_field_on_a_page_no_cache_keeps(alice_client, iterable):
    # The EU project's key tried in the US: the admin changes the data center, not the paste.
    response = _connect(alice_client, iterable.keys.eu_server_side, region="us")
    assert response.status_code == 400
    assert f'value="{iterable.keys.eu_server_side}"' in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert iterable.keys.eu_server_side not in alice_client.get(CONNECT).content.decode()  # only sent back, never kept


@pytest.mark.parametrize(("key_status", "others_status"), [(401, 403), (403, 401)])
def test_the_refusal_status_may_differ_per_key(alice_client, iterable, key_status, others_status):
    iterable.configure(refusal_status=others_status)
    iterable.add_key("ro-own-status-1234", "read_only", refusal_status=key_status)
    iterable.add_key("mob-own-status-1234", "mobile", refusal_status=key_status)
    assert "read-only key" in _error_text(_connect(alice_client, "ro-own-status-1234"))
    assert "client-side (mobile or JavaScript) key" in _error_text(_connect(alice_client, "mob-own-status-1234"))
    assert iterable.users() == []  # the probes identify no user: nothing was written
    assert not Integration.objects.exists()


@pytest.mark.parametrize("refusal_status", [401, 403])
def test_a_mobile_key_of_the_eu_is_told_apart_from_an_unknown_one(alice_client, iterable, refusal_status):
    iterable.configure(refusal_status=refusal_status)
    iterable.add_key("mob-eu-key-5678", "mobile", project_id=2, region="eu")
    response = _connect(alice_client, "mob-eu-key-5678", region="auto", project_type="userId")
    assert "client-side (mobile or JavaScript) key" in _error_text(response)
    response = _connect(alice_client, "mob-eu-key-5678", region="us", project_type="userId")
    assert "belongs to a project in the EU" in _error_text(response)


@pytest.mark.parametrize("region", ["us", "auto"])
def test_a_javascript_key_allowed_users_update_is_a_client_side_key(alice_client, iterable, region):
    # The reference's list of a JavaScript key's endpoints is cut off, and its SDK calls users/update:
    # the emulator may allow it, and then nothing tells it from a mobile key. Either way it is refused.
    iterable.configure(javascript_may_update_users=True)
    response = _connect(alice_client, iterable.keys.javascript, region=region)
    assert "client-side (mobile or JavaScript) key" in _error_text(response) and "Server-side" in _error_text(response)
    assert iterable.users() == [] and not Integration.objects.exists()


@pytest.mark.parametrize("region", ["us", "auto"])
def test_a_client_side_key_that_requires_jwt_reads_as_unknown_and_the_text_says_so(alice_client, iterable, region):
    iterable.add_key("mob-jwt-key-4321", "mobile", jwt_required=True)
    errors = _error_text(_connect(alice_client, "mob-jwt-key-4321", region=region))
    assert "does not recognise this key" in errors and "requires JWT" in errors
    assert not Integration.objects.exists()


def test_auto_detect_finds_the_eu_data_center(alice_client, iterable):
    _connect(alice_client, iterable.keys.eu_server_side, region="auto", project_type="userId")
    assert Integration.objects.get().config["region"] == "eu"


def test_eu_has_no_email_based_projects(alice_client, iterable):
    response = _connect(alice_client, iterable.keys.eu_server_side, region="eu", project_type="email")
    assert "no email-based projects" in " ".join(response.context["form"].errors["project_type"])
    assert not Integration.objects.exists()


def test_an_unreachable_iterable_stores_nothing_and_says_so(alice_client, iterable, settings):
    settings.ITERABLE_US_BASE_URL = "http://127.0.0.1:9/us"  # nothing listens there
    settings.DESTINATION_MAX_RETRIES = 0
    response = _connect(alice_client, iterable.keys.server_side)
    assert "could not be reached" in _error_text(response) and "Nothing was saved" in _error_text(response)
    assert not Integration.objects.exists()


@pytest.mark.parametrize("failure", ["unreachable", "5xx", "429"])
def test_auto_detect_with_iterable_down_stores_nothing_and_says_so(alice_client, iterable, settings, failure):
    # Auto-detect (the form's default) probes both data centers before the key is verified: a probe
    # that gets no answer must end in the same message as the explicit-region path, not in a 500.
    if failure == "unreachable":
        settings.ITERABLE_US_BASE_URL = "http://127.0.0.1:9/us"  # nothing listens there
        settings.ITERABLE_EU_BASE_URL = "http://127.0.0.1:9/eu"
    else:
        settings.DESTINATION_MAX_RATE_WAIT_SECONDS = 0  # a 429 is given up at once: its budget is spent
        iterable.fault("/api/users/getFields", status=503 if failure == "5xx" else 429, times=20)
    response = _connect(alice_client, iterable.keys.server_side, region="auto")
    assert response.status_code == 400
    said = "Iterable is busy, try again in" if failure == "429" else "could not be reached"
    assert said in _error_text(response) and "Nothing was saved" in _error_text(response)
    assert not Integration.objects.exists()


def test_auto_detect_finds_the_eu_while_the_us_is_down(alice_client, iterable, settings):
    settings.ITERABLE_US_BASE_URL = "http://127.0.0.1:9/us"
    _connect(alice_client, iterable.keys.eu_server_side, region="auto", project_type="userId")
    assert Integration.objects.get().config["region"] == "eu"


def test_the_rate_budget_is_the_integrations_and_survives_a_new_key(alice_client, iterable):
    # Iterable's limits are per project (reference 2.3): a second key of the same project, pasted when
    # the first is rotated, must not bring a second, full budget with it.
    from integrations.destinations import destination_for

    _connect(alice_client, iterable.keys.server_side)
    before = destination_for(Integration.objects.get()).client.bucket_id
    iterable.add_key("srv-rotated-key-9876", project_id=1)
    _connect(alice_client, "srv-rotated-key-9876")
    integration = Integration.objects.get()
    assert integration.credentials == {"api_key": "srv-rotated-key-9876"}
    assert destination_for(integration).client.bucket_id == before


def test_disconnect_deletes_the_credentials_and_keeps_the_history(alice_client, iterable):
    _connect(alice_client, iterable.keys.server_side)
    run = run_with_records(Integration.objects.get(), 4, failed_every=2)
    response = alice_client.post("/w/acme/integrations/iterable/disconnect/")
    assert response.status_code == 302
    integration = Integration.objects.get()
    assert integration.credentials is None and integration.status == "disconnected" and not integration.key_last4
    kept = SyncRun.objects.get(pk=run.pk)
    assert kept.integration == integration and (kept.total, kept.delivered, kept.failed) == (4, 2, 2)
    assert sorted(kept.records.values_list("identifier", "status")) == [
        ("user0000@example.com", "failed"),
        ("user0001@example.com", "delivered"),
        ("user0002@example.com", "failed"),
        ("user0003@example.com", "delivered"),
    ]
    assert (
        "user0002@example.com"
        in alice_client.get(f"/w/acme/integrations/iterable/logs/runs/{run.pk}/").content.decode()
    )
    assert AuditEvent.objects.filter(verb="integration.disconnected").exists()
    assert alice_client.get("/w/acme/integrations/iterable/")["Location"].endswith("/connect/")


def test_reverify_a_revoked_key_needs_attention(alice_client, iterable):
    _connect(alice_client, iterable.keys.server_side)
    iterable.reset()  # every key is gone: as if the key was deleted in Iterable
    response = alice_client.post("/w/acme/integrations/iterable/reverify/", follow=True)
    integration = Integration.objects.get()
    assert integration.status == "needs_attention" and "revoked" in integration.error_message
    assert "Needs attention" in alice_client.get("/w/acme/integrations/").content.decode()
    assert "revoked" in response.content.decode()


@pytest.mark.parametrize("refusal_status", [401, 403])
def test_reverify_a_key_that_lost_its_write_rights_says_read_only(alice_client, iterable, refusal_status):
    _connect(alice_client, iterable.keys.server_side)
    iterable.configure(refusal_status=refusal_status)
    iterable.add_key(iterable.keys.server_side, "read_only")  # changed in Iterable since it was connected
    alice_client.post("/w/acme/integrations/iterable/reverify/")
    integration = Integration.objects.get()
    assert integration.status == "needs_attention" and integration.error_code == "read_only_key"
    assert "read-only key" in integration.error_message and "revoked" not in integration.error_message


def test_reverify_a_good_key(alice_client, iterable):
    _connect(alice_client, iterable.keys.server_side)
    response = alice_client.post("/w/acme/integrations/iterable/reverify/", follow=True)
    assert "The connection works" in response.content.decode()


def test_the_oauth_button_explains_why_it_is_off(alice_client, iterable, settings):
    settings.ITERABLE_OAUTH_ENABLED = False
    html = alice_client.get(CONNECT).content.decode()
    assert "disabled" in html and "no OAuth broker configured" in html


def test_a_kind_no_package_provides_is_not_found(alice_client):
    assert alice_client.get("/w/acme/integrations/mailchimp/connect/").status_code == 404

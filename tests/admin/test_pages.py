"""What the admin pages show (and never show), and that they stay cheap on big tables."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from flows.models import Contact
from flows.services import capture_token_rotate
from health.models import Heartbeat
from integrations import engine
from integrations.models import Integration, OutboxItem
from integrations.sync import sync_now
from lib import admin_tools
from sync_logs.models import SyncRecord, SyncRun
from tests.admin.conftest import ADMIN, run_action
from workspaces.models import Invitation

pytestmark = pytest.mark.django_db

OAUTH_ACCESS = "oat-access-7f3c9a1d2e4b6c8d0e1f2a3b"
OAUTH_REFRESH = "oat-refresh-0a9b8c7d6e5f4a3b2c1d0e9f"


@pytest.fixture
def history(integration, capture, iterable, workspace_a, workspace_b, alice, charlie):
    """A bit of everything the admin lists: two runs (one with failures), an OAuth integration, tokens, invitations."""
    capture(2)
    engine.sync_run_execute(sync_now(integration=integration).pk)
    capture(2, prefix="later")
    iterable.fault("/api/users/bulkUpdate", status=400, body={"code": "BadJsonBody", "msg": "nope"}, times=10)
    engine.sync_run_execute(sync_now(integration=integration).pk)
    Integration.objects.create(
        workspace=workspace_b,
        kind="iterable",
        status="connected",
        auth_method="oauth",
        credentials={"access_token": OAUTH_ACCESS, "refresh_token": OAUTH_REFRESH, "expires_at": 4102444800},
    )
    capture_token_rotate(workspace=workspace_a, actor=alice)
    Invitation.objects.create(
        workspace=workspace_b, email="new@example.com", token_hash="0" * 64, expires_at=timezone.now()
    )
    Heartbeat.objects.create(name="beat", beat_at=timezone.now())
    return integration


def _admin_urls():
    """Every registered model's changelist and add page, and the change page of each of its first rows."""
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        yield reverse("admin:{}_{}_changelist".format(*info))
        yield reverse("admin:{}_{}_add".format(*info))
        for pk in model._default_manager.order_by("pk").values_list("pk", flat=True)[:5]:
            yield reverse("admin:{}_{}_change".format(*info), args=[pk])
            yield reverse("admin:{}_{}_history".format(*info), args=[pk])


def test_no_secret_in_any_admin_page(staff_client, history, iterable):
    key = iterable.keys.server_side
    secrets = [key, key[:-4], OAUTH_ACCESS, OAUTH_REFRESH]
    urls = list(_admin_urls())
    urls += [
        f"{ADMIN}integrations/integration/?q={key[-4:]}",
        f"{ADMIN}sync_logs/syncrecord/?q=user0@example.com",
        f"{ADMIN}flows/contact/?q=user0@example.com",
    ]
    assert len([u for u in urls if u.endswith("/change/")]) >= 10
    visited = 0
    for url in urls:
        response = staff_client.get(url)
        assert response.status_code in (200, 403), url  # 403: an add page the admin does not offer
        html = response.content.decode()
        for secret in secrets:
            assert secret not in html, f"{url} shows a secret"
        visited += response.status_code == 200
    # Also the action pages: the reset-backfill confirmation and the messages after an action.
    for action in ["reset_backfill", "reverify", "start_sync"]:
        html = run_action(staff_client, "integrations/integration", action, [history.pk]).content.decode()
        assert not any(secret in html for secret in secrets), action
    assert visited > 30


def test_the_integration_shows_the_masked_key_and_its_queue(staff_client, history, iterable):
    html = staff_client.get(f"{ADMIN}integrations/integration/{history.pk}/change/").content.decode()
    assert f"••••{iterable.keys.server_side[-4:]}" in html
    assert "Delivered: 2" in html and "Failed: 2" in html
    assert f"?integration__id__exact={history.pk}" in html


def test_integration_filters_and_search(staff_client, history, workspace_b):
    changelist = f"{ADMIN}integrations/integration/"
    paused = staff_client.get(changelist + "?paused=yes").context["cl"].result_list
    assert list(paused) == []
    found = staff_client.get(changelist + "?status__exact=connected&kind__exact=iterable&paused=no")
    assert {i.workspace.slug for i in found.context["cl"].result_list} == {"acme", "bravo"}
    assert [i.workspace for i in staff_client.get(changelist + "?q=bravo").context["cl"].result_list] == [workspace_b]


def test_the_workspace_page_counts_and_lists_integrations(staff_client, history, workspace_a):
    html = staff_client.get(f"{ADMIN}workspaces/workspace/{workspace_a.pk}/change/").content.decode()
    assert f"?workspace__id__exact={workspace_a.pk}" in html  # its contacts: 4
    assert '">4</a>' in html and '">2</a>' in html  # 4 contacts, 2 runs
    assert "Connected" in html and f"••••{history.key_last4}" in html
    runs = staff_client.get(f"{ADMIN}sync_logs/syncrun/?integration__workspace__id__exact={workspace_a.pk}")
    assert runs.status_code == 200 and len(runs.context["cl"].result_list) == 2


def test_the_run_list_and_its_link_to_the_records(staff_client, history):
    response = staff_client.get(f"{ADMIN}sync_logs/syncrun/?status__exact=failed")
    (run,) = response.context["cl"].result_list
    assert (run.total, run.failed) == (2, 2)
    html = response.content.decode()
    assert f"run__id__exact={run.pk}&amp;status__exact=failed" in html
    records = staff_client.get(f"{ADMIN}sync_logs/syncrecord/?run__id__exact={run.pk}&status__exact=failed")
    assert {r.identifier for r in records.context["cl"].result_list} == {"later0@example.com", "later1@example.com"}
    page = staff_client.get(f"{ADMIN}sync_logs/syncrun/{run.pk}/change/").content.decode()
    assert "(invalid)" in page  # the error summary, by Flowsync's code


def test_the_record_list_searches_by_email_and_filters_by_error_code(staff_client, history):
    changelist = f"{ADMIN}sync_logs/syncrecord/"
    found = staff_client.get(changelist + "?q=LATER0@example.com").context["cl"].result_list
    assert [r.identifier for r in found] == ["later0@example.com"]
    assert len(staff_client.get(changelist + "?error_code=invalid").context["cl"].result_list) == 2
    assert len(staff_client.get(changelist + "?error_code=invalid_identifier").context["cl"].result_list) == 0
    assert "BadJsonBody" in staff_client.get(changelist).content.decode()  # Iterable's own code, beside it
    assert len(staff_client.get(changelist + "?status__exact=delivered").context["cl"].result_list) == 2


def test_a_record_page_shows_the_payload_and_links_to_the_contact(staff_client, history):
    record = SyncRecord.objects.get(identifier="user1@example.com")
    html = staff_client.get(f"{ADMIN}sync_logs/syncrecord/{record.pk}/change/").content.decode()
    assert "<pre" in html and "&quot;firstName&quot;: &quot;U1&quot;" in html
    assert reverse("admin:flows_contact_change", args=[record.contact_id]) in html


def test_contact_search_across_workspaces_and_where_it_went(staff_client, history):
    found = staff_client.get(f"{ADMIN}flows/contact/?q=Later1@Example.com").context["cl"].result_list
    (contact,) = found
    html = staff_client.get(f"{ADMIN}flows/contact/{contact.pk}/change/").content.decode()
    assert "Where it went" in html
    assert "Failed" in html and "BadJsonBody" in html  # its outbox row and its log row
    run = SyncRecord.objects.get(contact=contact).run
    assert reverse("admin:sync_logs_syncrun_change", args=[run.pk]) in html
    by_slug = staff_client.get(f"{ADMIN}flows/contact/?q=acme").context["cl"].result_list
    assert len(by_slug) == 4


def test_audit_events_are_read_only(staff_client, history):
    from workspaces.models import AuditEvent

    event = AuditEvent.objects.first()
    assert staff_client.get(f"{ADMIN}workspaces/auditevent/add/").status_code == 403
    html = staff_client.get(f"{ADMIN}workspaces/auditevent/{event.pk}/change/").content.decode()
    assert 'name="_save"' not in html
    assert staff_client.post(f"{ADMIN}workspaces/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403


# --- Big tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [Contact, SyncRecord, SyncRun])
def test_big_lists_never_count_the_whole_table(staff_client, history, model):
    table = model._meta.db_table
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    for query in ["", "?q=user0@example.com", "?status__exact=failed"]:
        if model is Contact and "status" in query:
            continue
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(url + query).status_code == 200
        counts = [q["sql"] for q in queries if "COUNT(" in q["sql"] and table in q["sql"]]
        assert counts, "the list counts its rows"
        assert all("LIMIT" in sql for sql in counts), counts


def test_the_paginator_caps_the_count(monkeypatch, history):
    monkeypatch.setattr(admin_tools, "COUNT_CAP", 3)
    queryset = Contact.objects.order_by("-id")
    assert admin_tools.LargeTablePaginator(queryset, 2).count == 3
    assert admin_tools.LargeTablePaginator(queryset.filter(email__startswith="later"), 2).count == 2
    assert admin_tools.capped_count_text(queryset) == "3+"


def test_the_paginator_uses_the_estimate_unfiltered(monkeypatch, history):
    monkeypatch.setattr(admin_tools, "table_estimate", lambda qs: 5_000_000)
    queryset = SyncRecord.objects.order_by("-id")
    assert admin_tools.LargeTablePaginator(queryset, 100).count == 5_000_000
    assert admin_tools.LargeTablePaginator(queryset.filter(status="failed"), 100).count == 2


def test_the_table_estimate_reads_the_catalog_on_postgresql(history):
    estimate = admin_tools.table_estimate(SyncRecord.objects.all())
    if connection.vendor == "postgresql":
        assert estimate is None or estimate >= 0
    else:
        assert estimate is None


def test_every_registered_admin_has_a_changelist(staff_client, db):
    for model in admin.site._registry:
        try:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        except NoReverseMatch:  # pragma: no cover - would be a broken registration
            pytest.fail(f"{model} has no changelist")
        assert staff_client.get(url).status_code == 200, url


def test_outbox_rows_are_not_lost_by_an_admin_page_view(staff_client, history):
    # Viewing is side-effect free: the pages above only read.
    before = list(OutboxItem.objects.order_by("pk").values_list("status", "attempts"))
    for url in _admin_urls():
        staff_client.get(url)
    assert list(OutboxItem.objects.order_by("pk").values_list("status", "attempts")) == before

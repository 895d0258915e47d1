"""Each admin action works, is audited, and is out of reach of anyone but staff."""

from __future__ import annotations

import pytest
from django.test import Client

from integrations import engine
from integrations.models import Integration, OutboxItem
from integrations.sync import sync_now
from sync_logs.models import SyncRun
from tests.admin.conftest import ADMIN, run_action
from tests.factories import UserFactory, WorkspaceFactory
from workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db

INTEGRATIONS = "integrations/integration"


def _events(staff, verb: str):
    return AuditEvent.objects.filter(actor=staff, verb=verb)


def _messages(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def test_sync_now_starts_a_run_and_is_audited(staff_client, staff, integration, capture):
    capture(2)
    response = run_action(staff_client, INTEGRATIONS, "start_sync", [integration.pk])
    run = SyncRun.objects.get()
    assert (run.trigger, run.status) == ("manual", "queued")
    assert "sync started" in _messages(response)
    event = _events(staff, "integration.sync_started").get()
    assert event.workspace == integration.workspace and event.data["run"] == run.pk


def test_sync_now_refused_is_a_warning_and_is_audited(staff_client, staff, integration, alice):
    from integrations.sync import integration_pause

    integration_pause(integration=integration, actor=alice)
    response = run_action(staff_client, INTEGRATIONS, "start_sync", [integration.pk])
    assert not SyncRun.objects.exists()
    assert "paused" in _messages(response)
    event = _events(staff, "admin.action_refused").get()
    assert event.data["action"] == "sync_now" and event.data["staff"] is True and "paused" in event.data["reason"]


def test_pause_and_resume(staff_client, staff, integration):
    run_action(staff_client, INTEGRATIONS, "pause", [integration.pk])
    integration.refresh_from_db()
    assert integration.is_paused
    assert _events(staff, "integration.paused").count() == 1

    response = run_action(staff_client, INTEGRATIONS, "pause", [integration.pk])  # a second press changes nothing
    assert "already paused" in _messages(response)
    assert _events(staff, "integration.paused").count() == 1
    assert _events(staff, "admin.action_refused").get().data["action"] == "pause"

    run_action(staff_client, INTEGRATIONS, "resume", [integration.pk])
    integration.refresh_from_db()
    assert not integration.is_paused and integration.next_run_at is not None
    assert _events(staff, "integration.resumed").count() == 1


def test_retry_failed_records_requeues_them_and_starts_a_run(staff_client, staff, integration, capture):
    capture(3)
    OutboxItem.objects.filter(contact__email__in=["user0@example.com", "user1@example.com"]).update(
        status="failed", attempts=5, error_code="invalid_email", error_message="bad"
    )
    response = run_action(staff_client, INTEGRATIONS, "retry_failed_records", [integration.pk])
    assert "2 failed contact(s) queued again; a sync started: run #" in _messages(response)
    assert set(OutboxItem.objects.values_list("status", "attempts")) == {("pending", 0)}
    assert _events(staff, "integration.retry_requested").get().data["requeued"] == 2
    assert SyncRun.objects.get().trigger == "retry"


def test_retry_with_nothing_failed_says_so(staff_client, staff, integration, capture):
    capture(1)
    response = run_action(staff_client, INTEGRATIONS, "retry_failed_records", [integration.pk])
    assert "Nothing to retry" in _messages(response)
    assert _events(staff, "integration.retry_requested").get().data["requeued"] == 0
    assert not SyncRun.objects.exists()


def test_retry_the_failed_records_of_one_run(staff_client, staff, integration, capture, iterable):
    capture(2)
    iterable.fault("/api/users/bulkUpdate", status=400, body={"code": "BadJsonBody", "msg": "nope"}, times=10)
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    assert run.failed == 2
    response = run_action(staff_client, "sync_logs/syncrun", "retry_failed_records", [run.pk])
    assert f"Run {run.pk}: 2 failed contact(s) queued again" in _messages(response)
    assert _events(staff, "integration.retry_requested").get().data["run"] == run.pk


def test_reverify_a_good_key(staff_client, staff, integration):
    response = run_action(staff_client, INTEGRATIONS, "reverify", [integration.pk])
    assert "the connection works" in _messages(response)
    assert _events(staff, "integration.verified").count() == 1


def test_reverify_a_revoked_key_needs_attention(staff_client, staff, integration, iterable):
    iterable.reset()  # every key is gone: as if it was deleted in Iterable
    response = run_action(staff_client, INTEGRATIONS, "reverify", [integration.pk])
    integration.refresh_from_db()
    assert integration.status == "needs_attention"
    assert "revoked" in _messages(response)
    assert _events(staff, "integration.verify_failed").count() == 1


def test_reverify_with_iterable_down_keeps_the_status_and_is_audited(
    staff_client, staff, integration, iterable, settings
):
    settings.DESTINATION_MAX_RETRIES = 0
    iterable.fault("*", status=503, times=10)
    response = run_action(staff_client, INTEGRATIONS, "reverify", [integration.pk])
    integration.refresh_from_db()
    assert integration.status == "connected"
    assert "Could not reach Iterable" in _messages(response)
    assert _events(staff, "admin.integration_reverify_unreachable").get().data["staff"] is True


def test_reverify_a_disconnected_integration_is_refused(staff_client, staff, workspace_a):
    integration = Integration.objects.create(workspace=workspace_a, kind="iterable")
    run_action(staff_client, INTEGRATIONS, "reverify", [integration.pk])
    integration.refresh_from_db()
    assert integration.status == "disconnected"
    assert _events(staff, "admin.action_refused").get().data == {
        "staff": True,
        "integration": integration.pk,
        "action": "reverify",
        "reason": "not connected.",
    }


def test_reset_backfill_asks_first_then_requeues_everything(staff_client, staff, integration, capture, iterable):
    capture(3)
    engine.sync_run_execute(sync_now(integration=integration).pk)
    assert set(OutboxItem.objects.values_list("status", flat=True)) == {"delivered"}

    page = run_action(staff_client, INTEGRATIONS, "reset_backfill", [integration.pk])
    assert "Reset backfill?" in page.content.decode() and "3 contact(s)" in page.content.decode()
    assert set(OutboxItem.objects.values_list("status", flat=True)) == {"delivered"}  # nothing yet
    assert not _events(staff, "integration.backfill_reset").exists()

    response = run_action(staff_client, INTEGRATIONS, "reset_backfill", [integration.pk], confirmed="yes")
    assert "3 contact(s) queued again; a sync started: run #" in _messages(response)
    assert set(OutboxItem.objects.values_list("status", flat=True)) == {"pending"}
    assert _events(staff, "integration.backfill_reset").get().data == {"added": 0, "requeued": 3}


# --- Who may ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"{ADMIN}",
        f"{ADMIN}integrations/integration/",
        f"{ADMIN}sync_logs/syncrun/",
        f"{ADMIN}sync_logs/syncrecord/",
        f"{ADMIN}flows/contact/",
        f"{ADMIN}workspaces/workspace/",
        f"{ADMIN}workspaces/auditevent/",
    ],
)
def test_a_non_staff_user_is_sent_to_the_login(alice_client, url):
    response = alice_client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("action", ["start_sync", "pause", "resume", "retry_failed_records", "reverify"])
def test_a_non_staff_user_cannot_run_an_action(alice_client, alice, integration, capture, action):
    capture(1)
    OutboxItem.objects.update(status="failed")
    Integration.objects.filter(pk=integration.pk).update(paused_at=None)
    before = AuditEvent.objects.count()
    response = alice_client.post(
        f"{ADMIN}{INTEGRATIONS}/", {"action": action, "_selected_action": [integration.pk], "confirmed": "yes"}
    )
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert AuditEvent.objects.count() == before
    assert not SyncRun.objects.exists()
    assert set(OutboxItem.objects.values_list("status", flat=True)) == {"failed"}


def test_staff_without_permissions_cannot_run_an_action(integration):
    clerk = UserFactory(email="clerk@flowsync.test", is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get(f"{ADMIN}{INTEGRATIONS}/").status_code == 403
    response = client.post(f"{ADMIN}{INTEGRATIONS}/", {"action": "pause", "_selected_action": [integration.pk]})
    assert response.status_code == 403
    integration.refresh_from_db()
    assert not integration.is_paused


def test_the_integration_page_cannot_edit_or_add(staff_client, integration):
    url = f"{ADMIN}{INTEGRATIONS}/{integration.pk}/change/"
    assert 'name="_save"' not in staff_client.get(url).content.decode()
    staff_client.post(url, {"status": "disconnected", "frequency": "15"})
    integration.refresh_from_db()
    assert (integration.status, integration.frequency) == ("connected", 0)
    assert staff_client.get(f"{ADMIN}{INTEGRATIONS}/add/").status_code == 403


def test_workspace_and_member_edits_are_audited(staff_client, staff, workspace_a, alice, bob):
    owner, viewer = (workspace_a.memberships.get(user=u) for u in (alice, bob))
    management = {"TOTAL_FORMS": "2", "INITIAL_FORMS": "2", "MIN_NUM_FORMS": "0", "MAX_NUM_FORMS": "1000"}
    data = {
        "name": "Acme Corp",
        "slug": "acme",
        "created_by": "",
        **{f"memberships-{k}": v for k, v in management.items()},
        **{f"integrations-{k}": "0" for k in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS")},
        "integrations-MAX_NUM_FORMS": "1000",
    }
    for i, (membership, role) in enumerate([(owner, "owner"), (viewer, "admin")]):
        data.update(
            {
                f"memberships-{i}-id": str(membership.pk),
                f"memberships-{i}-workspace": str(workspace_a.pk),
                f"memberships-{i}-user": str(membership.user_id),
                f"memberships-{i}-role": role,
            }
        )
    response = staff_client.post(f"{ADMIN}workspaces/workspace/{workspace_a.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    workspace_a.refresh_from_db()
    assert workspace_a.name == "Acme Corp"
    assert _events(staff, "admin.workspace_changed").get().data == {"staff": True, "fields": ["name"]}
    assert _events(staff, "admin.members_changed").get().data == {
        "staff": True,
        "changes": [{"member": "bob@example.com", "role": "admin", "was": "viewer"}],
    }


def _connected_integrations(count: int, key: str) -> list[Integration]:
    return [
        Integration.objects.create(
            workspace=WorkspaceFactory(), kind="iterable", status="connected", credentials={"api_key": key}
        )
        for _ in range(count)
    ]


def test_reverify_checks_at_most_20_at_once_and_says_which_were_left(staff_client, staff, iterable, settings):
    iterable.configure(rate_limits_on=False)
    settings.DESTINATION_WEB_DEADLINE_SECONDS = 60  # only the cap at work here
    integrations = _connected_integrations(22, iterable.keys.server_side)
    response = run_action(staff_client, INTEGRATIONS, "reverify", [i.pk for i in integrations])
    assert _events(staff, "integration.verified").count() == 20
    assert "2 of the 22 selected integrations were not checked" in _messages(response)


def test_reverify_stops_at_the_request_deadline(staff_client, staff, iterable, settings):
    settings.DESTINATION_WEB_DEADLINE_SECONDS = 1
    iterable.configure(rate_limits_on=False, latency_ms=300)  # two calls each: a few fit in the deadline
    integrations = _connected_integrations(5, iterable.keys.server_side)
    response = run_action(staff_client, INTEGRATIONS, "reverify", [i.pk for i in integrations])
    assert "of the 5 selected integrations were not checked" in _messages(response)
    assert iterable.stats()["arrived"].get("/api/users/getFields", 0) < 5
    assert set(Integration.objects.values_list("status", flat=True)) == {"connected"}  # slow says nothing of a key

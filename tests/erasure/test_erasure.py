"""Erase a person: their contacts in every flow, the personal data of their log rows, their queued syncs,
and the person at each destination (Iterable delete or forget, Customer.io delete or suppress), retried until
done; a record without personal data stays. From the app, the capture API and the Django admin."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from erasure import services
from erasure.models import ErasureRequest, ErasureStep
from flows.models import Contact
from flows.services import contact_capture
from integrations import engine
from integrations.models import OutboxItem
from integrations.sync import sync_now
from sync_logs.models import SyncRecord, SyncRun
from workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db


def _due(step: ErasureStep) -> None:
    ErasureStep.objects.filter(pk=step.pk).update(due_at=timezone.now())


def _erase(workspace, alice, email="user0@example.com", **kw) -> ErasureRequest:
    return services.erasure_request(workspace=workspace, email=email, via="app", actor=alice, **kw)


def test_the_person_goes_from_flowsync_and_from_iterable(
    integration, capture, iterable, workspace_a, alice, queued, django_capture_on_commit_callbacks
):
    capture(2)
    engine.sync_run_execute(sync_now(integration=integration).pk)
    again = contact_capture(flow=integration.workspace.flows.get(), raw={"email": "USER0@example.com"}, source="api")
    assert iterable.user("user0@example.com") is not None
    assert SyncRecord.objects.filter(identifier="user0@example.com").exists()

    with django_capture_on_commit_callbacks(execute=True):
        request = _erase(workspace_a, alice, email=" User0@Example.com ")
    assert not Contact.objects.filter(email="user0@example.com").exists()
    assert Contact.objects.filter(email="user1@example.com").exists()  # nobody else
    assert not OutboxItem.objects.filter(contact_id=again.pk).exists()  # out of the queue
    scrubbed = SyncRecord.objects.filter(contact_id=None, error_message="(erased)")
    assert scrubbed.count() == request.log_rows_scrubbed == 1 and scrubbed.get().payload is None
    assert not SyncRecord.objects.filter(identifier="user0@example.com").exists()
    assert (request.contacts_erased, request.outbox_rows_removed) == (2, 2)  # the delivered one and the waiting one

    (step,) = request.steps.all()
    assert step.identifiers == {"people": [{"email": "user0@example.com"}]}  # encrypted at rest
    assert queued == [(step.pk, 600)]  # after a sync slice that was sending them is surely over
    assert services.erasure_step_attempt(step.pk) == "pending"  # not due yet
    _due(step)
    assert services.erasure_step_attempt(step.pk) == "done"
    assert iterable.user("user0@example.com") is None and iterable.user("user1@example.com") is not None
    step.refresh_from_db()
    request.refresh_from_db()
    assert step.identifiers is None and request.completed_at is not None
    event = AuditEvent.objects.get(verb="contact.erased")
    assert "user0" not in json.dumps(event.data) + event.target
    assert "user0" not in json.dumps(list(ErasureRequest.objects.values()), default=str)


def test_a_log_row_a_sync_writes_after_the_erasure_is_scrubbed_too(integration, capture, workspace_a, alice, queued):
    (contact,) = capture(1)
    request = _erase(workspace_a, alice)
    # A slice that had claimed the row before writes its log row afterwards.
    run = SyncRun.objects.create(integration=integration, trigger="manual", status="running")
    SyncRecord.objects.create(
        run=run,
        contact_id=contact.pk,
        identifier="user0@example.com",
        status="delivered",
        payload={"email": "user0@example.com"},
    )
    (step,) = request.steps.all()
    _due(step)
    services.erasure_step_attempt(step.pk)
    assert not SyncRecord.objects.filter(identifier="user0@example.com").exists()


@pytest.mark.parametrize("missing_status", [200, 404])
def test_a_person_iterable_does_not_have_is_erased_whichever_answer_it_gives(
    integration, workspace_a, alice, iterable, queued, missing_status
):
    # The documents list 200, 400 and 401 for DELETE /api/users/{email}: the emulator answers either.
    iterable.configure(missing_user_delete_status=missing_status)
    request = _erase(workspace_a, alice, email="never@example.com")
    assert request.contacts_erased == 0
    (step,) = request.steps.all()
    _due(step)
    assert services.erasure_step_attempt(step.pk) == "done"


def test_forget_keeps_iterable_from_taking_them_back(integration, capture, iterable, workspace_a, alice, queued):
    capture(1)
    engine.sync_run_execute(sync_now(integration=integration).pk)
    request = _erase(workspace_a, alice, forget=True)
    (step,) = request.steps.all()
    _due(step)
    assert services.erasure_step_attempt(step.pk) == "done"
    assert iterable.user("user0@example.com") is None
    assert [r["body"] for r in iterable.requests("/api/users/forget")] == [{"email": "user0@example.com"}]
    capture(1)  # captured again later: Iterable refuses them, and the log says so
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    assert run.failed == 1


def test_a_destination_that_fails_is_tried_again_until_done(
    integration, workspace_a, alice, iterable, queued, settings, django_capture_on_commit_callbacks
):
    settings.DESTINATION_MAX_RETRIES = 0  # the client's own retries are the sync's business: one try here
    iterable.fault(
        "/api/users/never@example.com",
        status=503,
        times=1,
        body={"code": "GenericError", "msg": "never@example.com: try later"},
    )
    request = _erase(workspace_a, alice, email="never@example.com")
    (step,) = request.steps.all()
    _due(step)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.erasure_step_attempt(step.pk) == "pending"
    step.refresh_from_db()
    assert "trying again in" in step.last_error and step.attempts == 1
    assert "never@example.com" not in step.last_error  # neither the path nor the answer's words keep them
    assert queued[-1][0] == step.pk and queued[-1][1] > 0
    _due(step)
    assert services.erasure_step_attempt(step.pk) == "done"


def test_a_revoked_key_waits_and_an_admin_tries_again(integration, workspace_a, alice, iterable, queued, alice_client):
    iterable.reset()  # every key gone
    request = _erase(workspace_a, alice, email="never@example.com")
    (step,) = request.steps.all()
    _due(step)
    assert services.erasure_step_attempt(step.pk) == "pending"
    step.refresh_from_db()
    assert "refused the credentials" in step.last_error
    page = alice_client.get("/w/acme/settings/privacy/").content.decode()
    assert "refused the credentials" in page and "Try again" in page
    assert alice_client.post(f"/w/acme/settings/privacy/steps/{step.pk}/retry/").status_code == 302
    step.refresh_from_db()
    assert step.due_at <= timezone.now() + timedelta(seconds=1)


def test_customerio_deletes_or_suppresses(workspace_a, alice, flow, customerio, customerio_integration, queued):
    us, integration = customerio.us, customerio_integration
    contact_capture(flow=flow, raw={"email": "ada@example.com", "first_name": "Ada"}, source="api")
    engine.sync_run_execute(sync_now(integration=integration).pk)
    assert customerio.person(us.site_id, "ada@example.com") is not None

    request = _erase(workspace_a, alice, email="ada@example.com", forget=True)
    (step,) = request.steps.all()
    assert step.identifiers == {"people": [{"id": "ada@example.com"}]}
    _due(step)
    assert services.erasure_step_attempt(step.pk) == "done"
    assert customerio.person(us.site_id, "ada@example.com") is None
    contact_capture(flow=flow, raw={"email": "ada@example.com", "first_name": "Ada"}, source="api")
    engine.sync_run_execute(sync_now(integration=integration).pk)
    assert customerio.person(us.site_id, "ada@example.com") is None  # suppressed: not added back


def test_the_capture_api_erases(integration, capture, workspace_a, queued, client):
    from flows.services import capture_token_rotate

    capture(1)
    token = capture_token_rotate(workspace=workspace_a, actor=None)
    headers = {"Authorization": f"Bearer {token}"}
    response = client.delete("/api/v1/contacts?email=user0@example.com", headers=headers)
    assert response.status_code == 202
    body = response.json()["erasure"]
    assert "contacts_erased" not in body and body["destinations"] == [{"destination": "Iterable", "status": "pending"}]
    assert ErasureRequest.objects.get().via == "api"
    assert client.delete("/api/v1/contacts?email=nope", headers=headers).json()["error"]["code"] == "invalid"
    assert client.delete("/api/v1/contacts?email=a@b.co").status_code == 401


def test_the_app_erases_from_the_contact_page(integration, capture, alice_client, bob_client, queued):
    (contact,) = capture(1)
    page = alice_client.get(f"/w/acme/contacts/{contact.pk}/").content.decode()
    assert "Erase this person" in page and page.count('data-testid="erase"') == 1
    assert "<details" not in page.split("<title>")[1].split("</title>")[0]
    assert "Erase this person" not in bob_client.get(f"/w/acme/contacts/{contact.pk}/").content.decode()
    assert bob_client.post("/w/acme/settings/privacy/", {"email": contact.email, "confirm": "on"}).status_code == 403
    unconfirmed = alice_client.post("/w/acme/settings/privacy/", {"email": contact.email})
    assert unconfirmed.status_code == 400 and Contact.objects.filter(pk=contact.pk).exists()
    done = alice_client.post("/w/acme/settings/privacy/", {"email": contact.email, "confirm": "on"}, follow=True)
    assert "1 contact deleted" in done.content.decode() and not Contact.objects.filter(pk=contact.pk).exists()


def test_support_erases_from_the_django_admin(integration, capture, admin_client, queued):
    (contact,) = capture(1)
    response = admin_client.post(
        "/admin/flows/contact/", {"action": "erase_people", "_selected_action": [contact.pk]}, follow=True
    )
    assert response.status_code == 200 and not Contact.objects.filter(pk=contact.pk).exists()
    assert ErasureRequest.objects.get().via == "admin"
    assert (
        admin_client.get(f"/admin/erasure/erasurerequest/{ErasureRequest.objects.get().pk}/change/").status_code == 200
    )


def test_a_removed_integration_fails_its_step_for_good_and_forgets_the_person(integration, workspace_a, alice, queued):
    request = _erase(workspace_a, alice, email="never@example.com")
    (step,) = request.steps.all()
    integration.delete()
    _due(step)
    assert services.erasure_step_attempt(step.pk) == "failed"
    step.refresh_from_db()
    assert step.identifiers is None and "was removed from the workspace" in step.last_error


def test_try_again_leaves_a_step_a_worker_holds(integration, workspace_a, alice, queued):
    request = _erase(workspace_a, alice, email="never@example.com")
    (step,) = request.steps.all()
    lease = timezone.now() + timedelta(minutes=5)
    ErasureStep.objects.filter(pk=step.pk).update(status="sending", due_at=lease)
    services.erasure_step_retry(step=step, actor=alice)
    step.refresh_from_db()
    assert (step.status, step.due_at) == ("sending", lease)


def test_the_capture_api_has_an_erasure_budget(integration, workspace_a, queued, client, settings):
    from flows.services import capture_token_rotate

    settings.RATELIMIT_API_ERASURES_PER_HOUR = 1
    headers = {"Authorization": f"Bearer {capture_token_rotate(workspace=workspace_a, actor=None)}"}
    assert client.delete("/api/v1/contacts?email=a@example.com", headers=headers).status_code == 202
    refused = client.delete("/api/v1/contacts?email=b@example.com", headers=headers)
    assert refused.status_code == 429 and refused["Retry-After"]

"""Consent fields: a checkbox whose exact wording is kept with each answer and its time; and email double
opt-in, where a contact is queued only once the single-use, expiring link Flowsync mails is confirmed."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from flows.models import DEFAULT_CONSENT_WORDING, Contact, FieldType
from flows.services import contact_capture, flow_field_add, flow_field_update, flow_update
from integrations.models import Integration, OutboxItem
from integrations.outbox import outbox_backfill
from tests.factories import make_flow

pytestmark = pytest.mark.django_db

WORDING = "Yes, send me the Acme newsletter. I can unsubscribe at any time."


@pytest.fixture
def flow(workspace_a):
    flow = make_flow(workspace_a, name="Booth")
    flow_field_add(flow=flow, kind="custom", key="newsletter", label="Newsletter", field_type="consent",
                   wording=WORDING, actor=None)  # fmt: skip
    return flow


@pytest.fixture
def connected(workspace_a):
    """A connected integration, so that a queued contact has an outbox row to show for it."""
    return Integration.objects.create(workspace=workspace_a, kind="iterable", status=Integration.Status.CONNECTED)


@pytest.fixture
def submit(client, django_capture_on_commit_callbacks):
    """POST the public form as a browser does; what it queues after commit (the mail) runs as it returns."""

    def post(flow, data: dict):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                f"/f/{flow.public_id}/", urlencode(data), content_type="application/x-www-form-urlencoded"
            )

    return post


def _link(message) -> str:
    (path,) = re.findall(r"https?://[^/\s]+(/c/[^/\s]+/)", message.body)
    return path


# --- The consent field --------------------------------------------------------------------------------


def test_the_form_shows_the_wording_and_keeps_it_with_a_ticked_answer(submit, client, flow):
    page = client.get(f"/f/{flow.public_id}/").content.decode()
    assert WORDING in page and 'type="checkbox" name="newsletter"' in page
    before = timezone.now()
    assert submit(flow, {"email": "ada@example.com", "newsletter": "on"}).status_code == 302
    contact = Contact.objects.get()
    assert contact.data["newsletter"] is True
    answer = contact.consents["newsletter"]
    assert answer["given"] is True and answer["wording"] == WORDING
    assert before <= timezone.datetime.fromisoformat(answer["at"]) <= timezone.now()


def test_an_unticked_box_is_kept_as_a_no_with_its_wording(submit, client, flow):
    submit(flow, {"email": "ada@example.com"})
    contact = Contact.objects.get()
    assert contact.data["newsletter"] is False
    assert contact.consents["newsletter"]["given"] is False and contact.consents["newsletter"]["wording"] == WORDING


def test_the_capture_api_records_an_answer_only_when_it_sends_one(flow):
    silent = contact_capture(flow=flow, raw={"email": "a@example.com"}, source="api")
    said_no = contact_capture(flow=flow, raw={"email": "b@example.com", "newsletter": False}, source="api")
    assert silent.consents is None and "newsletter" not in silent.data
    assert said_no.consents["newsletter"]["given"] is False


def test_a_consent_answer_must_be_true_or_false_on_the_api(api, flow):
    response = api({"flow": flow.public_id, "fields": {"email": "a@example.com", "newsletter": "maybe"}})
    assert response.status_code == 422
    assert "Newsletter must be true or false" in response.content.decode()


def test_a_required_consent_box_must_be_ticked(submit, client, flow):
    field = flow.fields.get(key="newsletter")
    field.required = True
    field.save()
    response = submit(flow, {"email": "ada@example.com"})
    assert response.status_code == 400 and "Newsletter must be ticked" in response.content.decode()
    assert not Contact.objects.exists()


def test_rewording_the_box_leaves_earlier_answers_with_the_words_they_were_given_to(submit, client, flow, alice):
    submit(flow, {"email": "ada@example.com", "newsletter": "on"})
    field = flow.fields.get(key="newsletter")
    flow_field_update(field=field, label="Newsletter", required=False, choices=None, wording="Send me deals.",
                      actor=alice)  # fmt: skip
    submit(flow, {"email": "bob@example.com", "newsletter": "on"})
    first, second = Contact.objects.order_by("id")
    assert first.consents["newsletter"]["wording"] == WORDING
    assert second.consents["newsletter"]["wording"] == "Send me deals."


def test_the_standard_marketing_consent_field_gets_the_default_wording(workspace_a):
    flow = make_flow(workspace_a, name="Other")
    field = flow_field_add(flow=flow, kind="standard", key="marketing_consent", actor=None)
    assert field.field_type == FieldType.CONSENT and field.wording == DEFAULT_CONSENT_WORDING


def test_the_contact_page_shows_the_answer_and_its_wording(client, alice, flow):
    contact = contact_capture(flow=flow, raw={"email": "ada@example.com", "newsletter": True}, source="api")
    client.force_login(alice)
    page = client.get(f"/w/{flow.workspace.slug}/contacts/{contact.pk}/").content.decode()
    assert "Agreed" in page and WORDING in page


# --- Double opt-in ------------------------------------------------------------------------------------


@pytest.fixture
def double(flow, alice):
    flow_update(flow=flow, actor=alice, double_opt_in=True)
    return flow


def test_a_double_opt_in_contact_waits_unqueued_and_is_mailed_a_link(submit, client, double, connected):
    submit(double, {"email": "Ada@Example.com", "newsletter": "on"})
    contact = Contact.objects.get()
    assert contact.awaiting_confirmation and contact.confirm_sent_at is not None
    assert not OutboxItem.objects.exists()
    assert "we have sent you an email" in client.get(f"/f/{double.public_id}/thanks/").content.decode()
    (message,) = mail.outbox
    assert message.to == ["ada@example.com"] and "confirm" in message.subject.lower()
    assert contact.confirm_token_hash not in message.body  # the mail holds the token, the database its hash


def test_opening_the_link_only_asks_and_the_button_confirms_and_queues_once(submit, client, double, connected):
    submit(double, {"email": "ada@example.com"})
    link = _link(mail.outbox[0])
    page = client.get(link)
    assert page.status_code == 200 and "Confirm my email address" in page.content.decode()
    contact = Contact.objects.get()
    assert contact.confirmed_at is None and not OutboxItem.objects.exists()  # a mail scanner's GET confirms nothing

    done = client.post(link)
    assert "your email address is confirmed" in done.content.decode()
    contact.refresh_from_db()
    assert contact.confirmed_at is not None and not contact.awaiting_confirmation
    assert OutboxItem.objects.filter(contact=contact).count() == 1

    again = client.post(link)  # single use: nothing more happens
    assert "already confirmed" in again.content.decode()
    assert OutboxItem.objects.filter(contact=contact).count() == 1


def test_an_expired_or_wrong_link_confirms_nothing(submit, client, double, connected, settings):
    submit(double, {"email": "ada@example.com"})
    link = _link(mail.outbox[0])
    Contact.objects.update(created_at=timezone.now() - timedelta(hours=settings.DOUBLE_OPT_IN_LINK_HOURS, minutes=1))
    expired = client.post(link)
    assert expired.status_code == 404 and "expired" in expired.content.decode()
    wrong = client.post("/c/" + "x" * 43 + "/")
    assert wrong.status_code == 404 and "not valid" in wrong.content.decode()
    assert Contact.objects.get().confirmed_at is None and not OutboxItem.objects.exists()


def test_one_address_gets_a_bounded_number_of_confirmation_mails(submit, client, double, settings):
    settings.DOUBLE_OPT_IN_MAILS_PER_ADDRESS_PER_HOUR = 2
    for _ in range(3):
        submit(double, {"email": "victim@example.com"})
    assert len(mail.outbox) == 2
    unmailed = Contact.objects.order_by("id").last()
    assert unmailed.awaiting_confirmation and unmailed.confirm_sent_at is None
    client.force_login(double.workspace.memberships.first().user)
    page = client.get(f"/w/{double.workspace.slug}/contacts/{unmailed.pk}/").content.decode()
    assert "No link was mailed" in page


def test_a_backfill_leaves_waiting_contacts_out(submit, client, double, workspace_a):
    submit(double, {"email": "ada@example.com"})
    integration = Integration.objects.create(
        workspace=workspace_a, kind="iterable", status=Integration.Status.CONNECTED
    )
    assert outbox_backfill(integration=integration) == 0


def test_double_opt_in_needs_an_email(flow, alice):
    flow.fields.filter(key="email").delete()
    with pytest.raises(ValidationError, match="add an Email field first"):
        flow_update(flow=flow, actor=alice, double_opt_in=True)


def test_the_capture_api_says_a_contact_waits_for_its_confirmation(api, double, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api({"flow": double.public_id, "fields": {"email": "ada@example.com"}})
    item = response.json()
    assert item["status"] == "created" and item["confirmation"] == "pending"
    assert len(mail.outbox) == 1


def test_the_contacts_list_marks_a_contact_waiting_for_its_confirmation(submit, client, double, alice):
    submit(double, {"email": "ada@example.com"})
    client.force_login(alice)
    page = client.get(f"/w/{double.workspace.slug}/contacts/").content.decode()
    assert "Waiting for confirmation" in page


def test_the_mail_budget_is_the_inboxs_across_tags_and_workspaces(submit, double, settings, workspace_b, alice):
    settings.DOUBLE_OPT_IN_MAILS_PER_ADDRESS_PER_HOUR = 2
    other = make_flow(workspace_b, name="Elsewhere")
    flow_update(flow=other, actor=alice, double_opt_in=True)
    submit(double, {"email": "victim+1@example.com"})
    submit(other, {"email": "Victim+2@example.com"})
    submit(double, {"email": "victim+3@example.com"})
    assert len(mail.outbox) == 2  # one inbox, whatever the tag or the workspace


def test_a_workspace_sends_a_bounded_number_of_confirmation_mails(submit, double, settings):
    settings.DOUBLE_OPT_IN_MAILS_PER_WORKSPACE_PER_HOUR = 2
    for n in range(3):
        submit(double, {"email": f"person{n}@example.com"})
    assert len(mail.outbox) == 2
    assert Contact.objects.filter(confirm_sent_at=None).count() == 1


def test_the_email_field_of_a_double_opt_in_flow_cannot_be_removed(double, alice):
    from flows.services import flow_field_delete

    with pytest.raises(ValidationError, match="turn double opt-in off first"):
        flow_field_delete(field=double.fields.get(key="email"), actor=alice)


def test_contacts_that_never_confirm_are_deleted_some_days_after_their_link_expired(submit, client, double, settings):
    from flows.services import contact_confirm, contacts_unconfirmed_purge

    for email in ("waits@example.com", "confirmed@example.com", "recent@example.com"):
        submit(double, {"email": email})
    token = re.findall(r"/c/([^/\s]+)/", mail.outbox[1].body)[0]
    contact_confirm(raw=token)
    old = timezone.now() - timedelta(hours=settings.DOUBLE_OPT_IN_LINK_HOURS, days=31)
    Contact.objects.exclude(email="recent@example.com").update(created_at=old)
    assert contacts_unconfirmed_purge() == 1
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["confirmed@example.com", "recent@example.com"]
    settings.DOUBLE_OPT_IN_UNCONFIRMED_KEEP_DAYS = 0
    Contact.objects.update(created_at=old)
    assert contacts_unconfirmed_purge() == 0  # 0 keeps them

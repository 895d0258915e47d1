from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workspaces.models import AuditEvent, Invitation, Membership, Role

pytestmark = pytest.mark.django_db


def test_it_works(alice_client, workspace_a):
    response = alice_client.get("/w/acme/")
    assert response.status_code == 200
    assert b"Acme" in response.content


def test_it_checks_workspace(charlie_client, workspace_a):
    assert charlie_client.get("/w/acme/").status_code == 404


def test_it_requires_admin(bob_client, workspace_a):
    assert bob_client.post("/w/acme/settings/", {"name": "Renamed"}).status_code == 403


def test_create_workspace_makes_the_creator_owner(alice_client, alice):
    response = alice_client.post("/new/", {"name": "Acme"})  # "acme" is taken by the fixture
    assert response.status_code == 302
    membership = Membership.objects.filter(user=alice).exclude(workspace__slug="acme").get()
    assert membership.role == Role.OWNER and membership.workspace.slug == "acme-2"
    assert response["Location"] == "/w/acme-2/"
    assert AuditEvent.objects.filter(workspace=membership.workspace, verb="workspace.created").exists()


def test_home_goes_to_the_last_workspace(alice_client, alice):
    other = WorkspaceFactory(name="Zeta", slug="zeta")
    MembershipFactory(workspace=other, user=alice, role=Role.VIEWER)
    alice_client.get("/w/zeta/")
    assert alice_client.get("/")["Location"] == "/w/zeta/"
    alice_client.get("/w/acme/")
    assert alice_client.get("/")["Location"] == "/w/acme/"


def test_switcher_lists_every_workspace_of_the_user(alice_client, alice):
    MembershipFactory(workspace=WorkspaceFactory(name="Zeta", slug="zeta"), user=alice)
    html = alice_client.get("/w/acme/").content.decode()
    assert 'value="zeta"' in html and 'value="acme"' in html


def test_viewer_can_read_settings_but_not_rename(bob_client, workspace_a):
    assert bob_client.get("/w/acme/settings/").status_code == 200
    assert bob_client.post("/w/acme/settings/", {"name": "Hacked"}).status_code == 403
    workspace_a.refresh_from_db()
    assert workspace_a.name == "Acme"


def _invite(client, email="gina@example.com", role=Role.ADMIN):
    with TestCase.captureOnCommitCallbacks(execute=True):  # the mail is queued after commit
        return client.post("/w/acme/settings/members/invite/", {"email": email, "role": role})


def _link_path(message) -> str:
    return re.search(r"https?://[^/\s]+(/invitations/\S+/)", message.body).group(1)


def test_invite_by_email_and_accept(alice_client, alice, client):
    assert _invite(alice_client).status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["gina@example.com"]
    path = _link_path(mail.outbox[0])
    gina = UserFactory(email="gina@example.com")
    client.force_login(gina)
    assert client.get(path).status_code == 200
    assert client.post(path)["Location"] == "/w/acme/"
    assert Membership.objects.get(user=gina).role == Role.ADMIN
    assert client.post(path).status_code == 400  # single use
    verbs = list(AuditEvent.objects.filter(workspace__slug="acme").values_list("verb", flat=True))
    assert "member.invited" in verbs and "member.joined" in verbs


def test_invitation_for_someone_else_is_refused(alice_client, client):
    _invite(alice_client)
    path = _link_path(mail.outbox[0])
    client.force_login(UserFactory(email="mallory@example.com"))
    response = client.post(path)
    page = response.content.decode()
    assert response.status_code == 400 and "was sent to another address" in page
    assert "gina@example.com" not in page and "Acme" not in page  # nothing about the invitation leaks
    assert client.get(path).content.decode().count("gina") == 0
    assert not Membership.objects.filter(user__email="mallory@example.com").exists()


def test_expired_and_revoked_invitations_are_refused(alice_client, client):
    _invite(alice_client)
    path = _link_path(mail.outbox[0])
    client.force_login(UserFactory(email="gina@example.com"))
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert "expired" in client.post(path).content.decode()
    invitation = Invitation.objects.get()
    alice_client.post(f"/w/acme/settings/invitations/{invitation.pk}/revoke/")
    assert "not valid" in client.post(path).content.decode()


def test_anonymous_invitee_is_sent_to_login(alice_client, client):
    _invite(alice_client)
    response = client.get(_link_path(mail.outbox[0]))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=/invitations/")


def test_admin_cannot_make_owners(workspace_a, bob, client):
    admin = UserFactory(email="adam@example.com")
    MembershipFactory(workspace=workspace_a, user=admin, role=Role.ADMIN)
    client.force_login(admin)
    response = _invite(client, role=Role.OWNER)
    assert response.status_code == 200 and "Only an owner" in response.content.decode()
    bob_membership = Membership.objects.get(user=bob)
    client.post(f"/w/acme/settings/members/{bob_membership.pk}/role/", {"role": Role.OWNER})
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.VIEWER


def test_owner_changes_roles_and_it_is_audited(alice_client, bob):
    membership = Membership.objects.get(user=bob)
    response = alice_client.post(f"/w/acme/settings/members/{membership.pk}/role/", {"role": Role.ADMIN})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    event = AuditEvent.objects.get(verb="member.role_changed")
    assert event.data == {"from": "viewer", "to": "admin"} and event.actor_email == "alice@example.com"


def test_the_last_owner_stays(workspace_a, alice, client):
    second = UserFactory(email="owner2@example.com")
    membership = MembershipFactory(workspace=workspace_a, user=second, role=Role.OWNER)
    client.force_login(second)
    alice_membership = Membership.objects.get(user=alice)
    client.post(f"/w/acme/settings/members/{alice_membership.pk}/role/", {"role": Role.VIEWER})
    alice_membership.refresh_from_db()
    assert alice_membership.role == Role.VIEWER  # another owner remained: allowed

    demote = client.post(f"/w/acme/settings/members/{membership.pk}/role/", {"role": Role.ADMIN}, follow=True)
    assert "at least one owner" in demote.content.decode()
    leave = client.post(f"/w/acme/settings/members/{membership.pk}/remove/", follow=True)
    assert "at least one owner" in leave.content.decode()
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER


def test_remove_member(alice_client, bob):
    membership = Membership.objects.get(user=bob)
    assert alice_client.post(f"/w/acme/settings/members/{membership.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditEvent.objects.filter(verb="member.removed", target="bob@example.com").exists()


def test_a_viewer_can_leave_and_it_is_audited(bob_client, bob):
    response = bob_client.post("/w/acme/settings/members/leave/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Membership.objects.filter(user=bob).exists()
    event = AuditEvent.objects.get(verb="member.left")
    assert (event.actor_email, event.target, event.data) == ("bob@example.com", "bob@example.com", {"role": "viewer"})
    assert bob_client.get("/w/acme/").status_code == 404


def test_the_last_owner_cannot_leave(alice_client, alice):
    response = alice_client.post("/w/acme/settings/members/leave/", follow=True)
    assert "at least one owner" in response.content.decode()
    assert Membership.objects.filter(user=alice, role=Role.OWNER).exists()
    assert not AuditEvent.objects.filter(verb="member.left").exists()


def test_the_members_page_offers_leaving(bob_client, bob):
    html = bob_client.get("/w/acme/settings/members/").content.decode()
    assert 'action="/w/acme/settings/members/leave/"' in html


def test_audit_log_page_lists_membership_changes(alice_client, bob):
    membership = Membership.objects.get(user=bob)
    alice_client.post(f"/w/acme/settings/members/{membership.pk}/role/", {"role": Role.ADMIN})
    html = alice_client.get("/w/acme/settings/audit/").content.decode()
    assert "member.role_changed" in html and "bob@example.com" in html

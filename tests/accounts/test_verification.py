"""Email ownership: a new account proves its address before it reaches any workspace or invitation."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlencode

import pytest
from django.core import mail
from django.test import Client, TestCase

from accounts.models import User
from tests.accounts.conftest import link_in, without_csrf
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.test_tenant_isolation import WORKSPACE_ROUTES, _path, url_kwargs  # noqa: F401 - the walker's routes
from tests.workspaces.test_workspaces import _invite, _link_path
from workspaces.models import Invitation, Membership, Role

pytestmark = pytest.mark.django_db


def _invitation_link(alice_client, email="gina@example.com") -> str:
    _invite(alice_client, email)
    return _link_path(next(m for m in mail.outbox if m.to == [email]))


def test_holding_an_invitation_link_is_not_enough_to_join(alice_client, sign_up, client):
    """The reported attack: register the invited address from the link, and join with its role."""
    invitation = _invitation_link(alice_client)
    sign_up("gina@example.com", password="mallorys-own-passphrase", next_url=invitation)
    assert "_auth_user_id" not in client.session  # signing up logs nobody in
    assert client.login(email="gina@example.com", password="mallorys-own-passphrase")
    for response in (client.get(invitation), client.post(invitation)):
        assert response.status_code == 302
        assert unquote(response["Location"]).startswith("/accounts/verify/?next=/invitations/")
    assert not Membership.objects.filter(user__email="gina@example.com").exists()
    assert Invitation.objects.get(email="gina@example.com").accepted_at is None


def _confirm(client, link: str):
    """Press the button on the page the link opens (a POST to the link itself)."""
    page = client.get(link)
    assert page.status_code == 200 and "Confirm my address" in page.content.decode()
    return client.post(link, {"next": page.context["next"]})


def test_the_invitee_verifies_then_accepts(alice_client, sign_up, client, mails_to):
    invitation = _invitation_link(alice_client)
    sign_up("gina@example.com", next_url=invitation)
    [verify] = [m for m in mails_to("gina@example.com") if "Confirm" in m.subject]
    link = link_in(verify, "/accounts/verify/")
    assert "next=%2Finvitations%2F" in link  # the link leads back to the invitation

    response = client.get(link)  # from the inbox, not logged in: log in first, then back to the link
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?" + urlencode({"next": link})
    assert not User.objects.get(email="gina@example.com").email_verified
    logged_in = client.post(response["Location"], {"username": "gina@example.com", "password": PASSWORD})
    assert logged_in["Location"] == link
    assert _confirm(client, link)["Location"] == invitation
    assert User.objects.get(email="gina@example.com").email_verified
    assert client.post(invitation)["Location"] == "/w/acme/"
    assert Membership.objects.get(user__email="gina@example.com").role == Role.ADMIN


def test_the_link_opened_by_anyone_but_its_logged_in_owner_verifies_nothing(alice_client, sign_up, mails_to):
    """The attack the link used to allow: Mallory signs up as gina@ from an invitation link with her
    own password; Gina (or a scanner that fetches every link in a mail) opens "Confirm your email";
    Mallory logs in to a verified account and joins. Now the link verifies only for a browser logged
    in as the account (Mallory's password, which Gina does not have) that presses the button."""
    invitation = _invitation_link(alice_client)
    sign_up("gina@example.com", password="mallorys-own-passphrase", next_url=invitation)
    link = link_in(mails_to("gina@example.com")[-1], "/accounts/verify/")

    scanner = Client()
    for response in (scanner.get(link), scanner.head(link), scanner.post(link)):  # anonymous: log in first
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    other = Client()
    other.force_login(UserFactory(email="someone@example.com"))
    for response in (other.get(link), other.post(link)):  # another account: nothing, and no address shown
        assert response.status_code == 403 and "gina@example.com" not in response.content.decode()
    owner = Client()
    owner.force_login(User.objects.get(email="gina@example.com"))
    page = owner.get(link)  # the owner's GET only shows the button
    assert page.status_code == 200 and "Confirm my address" in page.content.decode()
    assert not User.objects.get(email="gina@example.com").email_verified

    mallory = Client()
    assert mallory.login(email="gina@example.com", password="mallorys-own-passphrase")
    assert mallory.post(invitation).status_code == 302
    assert not Membership.objects.filter(user__email="gina@example.com").exists()


def test_the_link_works_once_and_not_after_it_expires(sign_up, client, mails_to, settings):
    sign_up("hana@example.com")
    client.force_login(User.objects.get(email="hana@example.com"))
    link = link_in(mails_to("hana@example.com")[0], "/accounts/verify/")
    assert _confirm(client, link).status_code == 302
    assert User.objects.get(email="hana@example.com").email_verified
    for again in (client.get(link), client.post(link)):
        assert again.status_code == 400 and "does not work" in again.content.decode()

    client.logout()  # sign-up is for the logged-out
    sign_up("ivy@example.com")
    client.force_login(User.objects.get(email="ivy@example.com"))
    link = link_in(mails_to("ivy@example.com")[0], "/accounts/verify/")
    settings.EMAIL_VERIFICATION_MAX_AGE_SECONDS = -1  # every link is past its age
    assert client.post(link).status_code == 400
    assert not User.objects.get(email="ivy@example.com").email_verified
    tampered = re.sub(r"/verify/([^/]+)/", lambda m: f"/verify/{m.group(1)[:-2]}xx/", link)
    settings.EMAIL_VERIFICATION_MAX_AGE_SECONDS = 3600
    assert client.post(tampered).status_code == 400 and client.post(link).status_code == 302
    assert User.objects.get(email="ivy@example.com").email_verified


def test_an_unverified_account_reaches_no_workspace_page(url_kwargs, workspace_a):  # noqa: F811
    """Every URL under /w/ (the tenant walker's list), as a member whose address is not verified."""
    user = UserFactory(email_verified_at=None)
    MembershipFactory(workspace=workspace_a, user=user, role=Role.OWNER)
    client = Client()
    client.force_login(user)
    for route, _view in WORKSPACE_ROUTES:
        path = _path(route, url_kwargs)
        for response in (client.get(path), client.post(path, {"name": "x"})):
            assert response.status_code == 302, path
            assert response["Location"].startswith("/accounts/verify/?next="), path
    for path in ("/", "/new/"):
        assert client.get(path)["Location"].startswith("/accounts/verify/"), path
    assert client.post("/new/", {"name": "Mine"}).status_code == 302
    assert Membership.objects.filter(user=user).count() == 1  # /new/ made no workspace


def test_check_your_inbox_page_resends_a_throttled_link(client, mails_to):
    user = UserFactory(email="jo@example.com", email_verified_at=None)
    client.force_login(user)
    page = client.get("/accounts/verify/?next=/w/acme/")
    assert page.status_code == 200 and "jo@example.com" in page.content.decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        sent = client.post("/accounts/verify/", {"next": "/w/acme/"}, follow=True)
        again = client.post("/accounts/verify/", {"next": "/w/acme/"}, follow=True)
    assert "We sent a new link" in sent.content.decode()
    assert "ask for another in 2 minutes" in again.content.decode()
    [message] = mails_to("jo@example.com")
    link = link_in(message, "/accounts/verify/")
    assert _confirm(client, link)["Location"] == "/w/acme/"  # logged in as its owner: one press, then on
    assert client.get("/accounts/verify/")["Location"] == "/"


def test_signup_answers_the_same_for_a_new_and_a_taken_address(sign_up, mails_to):
    owner = UserFactory(email="kim@example.com")

    def page(response) -> str:
        assert response.status_code == 200
        return without_csrf(response.content.decode())

    taken = page(sign_up("Kim@Example.com", password="someone-elses-passphrase"))
    new = page(sign_up("lee@example.com", password="someone-elses-passphrase"))
    assert taken.replace("kim@example.com", "ADDRESS") == new.replace("lee@example.com", "ADDRESS")

    owner.refresh_from_db()
    assert owner.check_password(PASSWORD) and User.objects.filter(email__iexact="kim@example.com").count() == 1
    [note] = mails_to("kim@example.com")  # the owner hears of it, with a way in; no link that verifies
    assert note.subject == "Your Flowsync account" and "/accounts/verify/" not in note.body
    assert "/accounts/password-reset/" in note.body
    [link] = mails_to("lee@example.com")
    assert "/accounts/verify/" in link.body


def test_a_password_reset_from_the_inbox_also_proves_the_address(client):
    user = UserFactory(email="max@example.com", email_verified_at=None)
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post("/accounts/password-reset/", {"email": "max@example.com"})
    form = client.get(link_in(mail.outbox[0], "/accounts/reset/"), follow=True)
    client.post(
        form.redirect_chain[-1][0], {"new_password1": "brand-new-secret-9", "new_password2": "brand-new-secret-9"}
    )
    user.refresh_from_db()
    assert user.email_verified and user.check_password("brand-new-secret-9")


def test_accounts_from_before_verification_and_from_createsuperuser_count_as_verified():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("accounts.migrations.0003_user_email_verified_at")
    old = UserFactory(email_verified_at=None)
    migration.existing_users_are_verified(apps, None)
    old.refresh_from_db()
    assert old.email_verified_at == old.date_joined
    assert User.objects.create_superuser(email="root@example.com", password="x").email_verified
    assert not User.objects.create_user(email="new@example.com", password="x").email_verified


def test_an_address_has_one_form_on_every_path(alice_client, sign_up, client):
    """lib.emails.normalize_email: the lookup, sign-up, log-in and invitations agree on it."""
    from accounts.selectors import user_by_email

    kim = UserFactory(email="kim@example.com")
    assert user_by_email(" KIM@Example.com ") == kim and user_by_email("nobody@example.com") is None
    sign_up("Kim@Example.COM")
    assert list(User.objects.filter(email__iexact="kim@example.com")) == [kim]  # taken: no second account
    assert User.objects.get_by_natural_key(" Kim@EXAMPLE.com ") == kim
    assert User.objects.create_user(email=" Lee@Example.COM ", password="x").email == "lee@example.com"
    _invite(alice_client, "Gina@Example.COM")
    assert Invitation.objects.get().email == "gina@example.com"

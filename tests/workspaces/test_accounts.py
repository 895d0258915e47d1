from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.db.models.signals import pre_save
from django.test import Client

from accounts.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_signup_makes_an_unverified_account_logs_nobody_in_and_mails_the_link(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/signup/", {"name": "Dana", "email": "Dana@Example.com", "password": "a-long-passphrase"}
        )
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    assert "dana@example.com" in response.content.decode()
    user = User.objects.get()
    assert user.email == "dana@example.com" and user.check_password("a-long-passphrase")
    assert user.email_verified_at is None and "_auth_user_id" not in client.session
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dana@example.com"]
    assert "/accounts/verify/" in mail.outbox[0].body


def test_signup_refuses_a_weak_password(client):
    response = client.post("/accounts/signup/", {"email": "new@example.com", "password": "password"})
    assert response.status_code == 200
    assert response.context["form"].errors["password"]
    assert User.objects.count() == 0


def test_login_and_logout(client):
    UserFactory(email="erin@example.com")
    response = client.post("/accounts/login/", {"username": "erin@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 302  # logged in: "/" redirects to a workspace or /new/
    client.post("/accounts/logout/")
    assert client.get("/new/")["Location"].startswith("/accounts/login/")


def test_login_ignores_the_case_of_the_email(client):
    UserFactory(email="erin@example.com")  # stored lower-case, as sign-up stores every address
    response = client.post("/accounts/login/", {"username": " Erin@Example.COM", "password": PASSWORD})
    assert response.status_code == 302
    assert Client().login(email="ERIN@example.com", password=PASSWORD)


def test_a_double_submitted_signup_makes_one_account(client, django_capture_on_commit_callbacks):
    data = {"email": "dana@example.com", "password": "a-long-passphrase"}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/accounts/signup/", data)
        again = Client().post("/accounts/signup/", {**data, "email": "Dana@Example.com"})
    assert first.status_code == again.status_code == 200
    assert User.objects.count() == 1
    # The second finds the address taken: its owner (the same person here) gets a note, not a second account.
    assert [m.subject for m in mail.outbox] == ["Confirm your email address for Flowsync", "Your Flowsync account"]


def test_a_signup_that_loses_the_race_for_its_email_gets_the_same_page(client):
    """Two sign-ups for one address at once both find it free; the database's unique index refuses
    the second INSERT. Here the other request commits its user in that gap (just before this one's
    INSERT)."""

    def the_other_request_commits_first(sender, instance, **kwargs):
        pre_save.disconnect(the_other_request_commits_first, sender=User)
        UserFactory(email=instance.email)

    pre_save.connect(the_other_request_commits_first, sender=User, weak=False)
    try:
        response = client.post("/accounts/signup/", {"email": "dana@example.com", "password": "a-long-passphrase"})
    finally:
        pre_save.disconnect(the_other_request_commits_first, sender=User)
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # The stand-in for the other request wrote inside this one's savepoint, so it left with the
    # rollback; what matters is that the connection is still usable after the refused INSERT.
    assert User.objects.count() == 0


def test_login_with_a_wrong_password_says_so(client):
    UserFactory(email="erin@example.com")
    response = client.post("/accounts/login/", {"username": "erin@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "correct email address and password" in response.content.decode()


def test_password_reset_by_email(client, django_capture_on_commit_callbacks):
    UserFactory(email="frank@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/password-reset/", {"email": "frank@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://\S+", mail.outbox[0].body).group(0)
    path = link.split(settings.SITE_URL, 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "brand-new-secret-9", "new_password2": "brand-new-secret-9"}
    )
    assert done.status_code == 302
    assert User.objects.get(email="frank@example.com").check_password("brand-new-secret-9")

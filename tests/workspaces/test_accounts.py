from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db.models.signals import pre_save
from django.test import Client

from accounts.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_signup_logs_in_and_asks_for_a_workspace(client):
    response = client.post(
        "/accounts/signup/", {"name": "Dana", "email": "Dana@Example.com", "password": "a-long-passphrase"}
    )
    assert response.status_code == 302 and response["Location"] == "/new/"
    user = User.objects.get()
    assert user.email == "dana@example.com" and user.check_password("a-long-passphrase")
    assert client.get("/new/").status_code == 200


def test_signup_refuses_a_taken_email_and_a_weak_password(client):
    UserFactory(email="taken@example.com")
    response = client.post("/accounts/signup/", {"email": "TAKEN@example.com", "password": "password"})
    assert response.status_code == 200
    form = response.context["form"]
    assert "already exists" in str(form.errors["email"])
    assert form.errors["password"]
    assert User.objects.count() == 1


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


def test_a_double_submitted_signup_gets_the_form_error(client):
    data = {"email": "dana@example.com", "password": "a-long-passphrase"}
    assert client.post("/accounts/signup/", data).status_code == 302
    again = Client().post("/accounts/signup/", {**data, "email": "Dana@Example.com"})
    assert again.status_code == 200 and "already exists" in str(again.context["form"].errors["email"])
    assert User.objects.count() == 1


def test_a_signup_that_loses_the_race_for_its_email_gets_the_form_error(client):
    """Two sign-ups for one address at once both pass the form's "already exists" check; the
    database's unique index refuses the second INSERT. Here the other request commits its user
    in that gap (just before this one's INSERT)."""

    def the_other_request_commits_first(sender, instance, **kwargs):
        pre_save.disconnect(the_other_request_commits_first, sender=User)
        UserFactory(email=instance.email)

    pre_save.connect(the_other_request_commits_first, sender=User, weak=False)
    try:
        response = client.post("/accounts/signup/", {"email": "dana@example.com", "password": "a-long-passphrase"})
    finally:
        pre_save.disconnect(the_other_request_commits_first, sender=User)
    assert response.status_code == 200
    assert "already exists" in str(response.context["form"].errors["email"])
    assert "_auth_user_id" not in client.session
    # The stand-in for the other request wrote inside this one's savepoint, so it left with the
    # rollback; what matters is that the connection is still usable after the refused INSERT.
    assert User.objects.count() == 0


def test_login_with_a_wrong_password_says_so(client):
    UserFactory(email="erin@example.com")
    response = client.post("/accounts/login/", {"username": "erin@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "correct email address and password" in response.content.decode()


def test_password_reset_by_email(client):
    UserFactory(email="frank@example.com")
    response = client.post("/accounts/password-reset/", {"email": "frank@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://\S+", mail.outbox[0].body).group(0)
    path = link.split("testserver", 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "brand-new-secret-9", "new_password2": "brand-new-secret-9"}
    )
    assert done.status_code == 302
    assert User.objects.get(email="frank@example.com").check_password("brand-new-secret-9")

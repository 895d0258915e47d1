from __future__ import annotations

import re

import pytest
from django.core import mail

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

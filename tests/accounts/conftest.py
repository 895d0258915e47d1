from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import TestCase

from tests.factories import PASSWORD


def link_in(message, path: str) -> str:
    """The path (and query) of the first link under ``path`` in a mail, as the test client wants it."""
    url = re.search(rf"{re.escape(settings.SITE_URL)}({re.escape(path)}\S*)", message.body)
    assert url, f"no {path} link in: {message.body}"
    return url.group(1)


def without_csrf(html: str) -> str:
    """A page without its CSRF tokens (new on every response), to compare two answers."""
    return re.sub(r'(csrfmiddlewaretoken" value=|"X-CSRFToken": )"[^"]+"', "", html)


@pytest.fixture
def sign_up(client):
    """Sign up through the form as a stranger would; returns the response. Mail is sent (after commit)."""

    def go(email: str, password: str = PASSWORD, next_url: str = "", **extra):
        data = {"email": email, "password": password, "name": "Someone", **({"next": next_url} if next_url else {})}
        with TestCase.captureOnCommitCallbacks(execute=True):
            return client.post("/accounts/signup/", data, **extra)

    return go


@pytest.fixture
def mails_to():
    def find(address: str) -> list:
        return [m for m in mail.outbox if address in m.to]

    return find

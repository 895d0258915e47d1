"""No page carries inline script or style, and every response carries a strict Content-Security-Policy.

The walk reuses tests/test_tenant_isolation.py's: every URL of the app (the admin aside: it is Django's,
and tests/e2e/test_csp_browser.py opens it under the policy), as the owner and anonymously, by GET,
by htmx GET (the partials) and by POST (the forms rendered again with errors). A new page is covered
on its own; a new URL parameter must be added to ``page_kwargs`` below.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import get_resolver

from flows.models import ConversionFlow
from tests.factories import MembershipFactory, UserFactory
from tests.html import inline_code
from tests.test_tenant_isolation import _path, _walk, url_kwargs  # noqa: F401 - url_kwargs is a fixture
from workspaces.models import Role

pytestmark = pytest.mark.django_db

HOSTILE_EMAIL = "x'-alert`1`-'@attacker.example"
ROUTES = [
    (route, view) for route, view in _walk(get_resolver().url_patterns) if not route.startswith(settings.ADMIN_URL)
]


@pytest.fixture
def page_kwargs(url_kwargs, workspace_a):  # noqa: F811 - the fixture imported above
    """Objects for every URL parameter, and a member whose email is built to break out of inline script."""
    MembershipFactory(workspace=workspace_a, user=UserFactory(email=HOSTILE_EMAIL), role=Role.VIEWER)
    flow = ConversionFlow.objects.get(pk=url_kwargs["flow_id"])
    # Tokens nobody issued: the pages that say "this link is not valid" are pages too.
    return {**url_kwargs, "public_id": flow.public_id, "token": "t" * 43, "uidb64": "MQ"}


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"{response.request['PATH_INFO']} ({response.status_code}) has no Content-Security-Policy"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_strict(response) -> None:
    """The policy the issue asks for: script only from this origin, no plugins, never framed."""
    csp = policy(response)
    where = f"{response.request['PATH_INFO']} ({response.status_code})"
    assert csp["script-src"] == ["'self'"], where
    assert csp["style-src"] == ["'self'"], where
    assert csp["default-src"] == ["'self'"], where
    assert csp["object-src"] == ["'none'"], where
    assert csp["frame-ancestors"] == ["'none'"], where
    assert csp["base-uri"] == ["'none'"], where
    assert csp["form-action"][0] == "'self'", where
    assert not any("unsafe" in value or value == "*" for values in csp.values() for value in values), where


def _responses(client: Client, path: str):
    yield client.get(path)
    yield client.get(path, headers={"HX-Request": "true"})
    yield client.post(path, {})  # last: it may log out, remove a member, disconnect...


def test_there_are_routes_outside_workspaces():
    assert {"accounts/login/", "accounts/signup/", "f/<str:public_id>/", "new/"} <= {r for r, _ in ROUTES}


@pytest.mark.parametrize(("route", "view"), ROUTES, ids=[r or "/" for r, _ in ROUTES])
def test_no_page_carries_inline_code_and_every_response_the_policy(route, view, page_kwargs, alice_client, client):
    path = _path(route, page_kwargs)
    for who in (alice_client, client):
        for response in _responses(who, path):
            assert_strict(response)
            if response["Content-Type"].startswith("text/html"):
                assert inline_code(response.content.decode()) == [], f"{path} ({response.status_code})"


@pytest.mark.parametrize(
    "path",
    [
        "/static/css/app.css",
        "/static/js/app.js",
        "/static/favicon.svg",
        "/w/does-not-exist/",  # the 404 page
        "/" + settings.ADMIN_URL + "login/",
        "/" + settings.ADMIN_URL,  # a redirect to its login
    ],
)
def test_static_files_errors_and_the_admin_carry_the_policy_too(path, client):
    response = client.get(path)
    assert response.status_code in {200, 302, 404}
    assert_strict(response)
    if response["Content-Type"].startswith("text/html"):
        assert inline_code(response.content.decode()) == [], path


def test_the_admin_pages_carry_no_inline_code(client):
    staff = UserFactory(email="support@flowsync.test", is_staff=True, is_superuser=True)
    client.force_login(staff)
    admin = "/" + settings.ADMIN_URL
    for path in [admin, f"{admin}integrations/integration/", f"{admin}sync_logs/syncrecord/", f"{admin}accounts/user/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_strict(response)
        assert inline_code(response.content.decode()) == [], path


def test_the_hostile_email_is_only_ever_text(page_kwargs, alice_client):
    """On the members page the email stands in a data attribute, escaped, and in no script at all."""
    html = alice_client.get(f"/w/{page_kwargs['workspace_slug']}/settings/members/").content.decode()
    assert 'data-confirm="Remove x&#x27;-alert`1`-&#x27;@attacker.example from this workspace?"' in html
    assert "confirm(" not in html


# Templates the walk cannot reach (the 500 page, the admin's overrides) are read as they are written.
_INLINE_IN_TEMPLATE = re.compile(
    r"""\son[a-z]+\s*=|\shx-on|\sstyle\s*=|<style|javascript:|<script(?![^>]*\bsrc=)""", re.IGNORECASE
)


def _template_files() -> list[Path]:
    base = Path(settings.BASE_DIR)
    dirs = [base / "templates", *(p for p in base.glob("*/templates") if p.is_dir())]
    return sorted(f for d in dirs for f in d.rglob("*.html"))


def test_no_template_writes_inline_code():
    files = _template_files()
    assert len(files) > 30
    found = [
        f"{path.relative_to(settings.BASE_DIR)}: {match.group(0).strip()}"
        for path in files
        for match in _INLINE_IN_TEMPLATE.finditer(path.read_text())
    ]
    assert found == []


def test_the_oauth_connect_page_may_post_to_the_authorization_server(oauth_server, alice_client, workspace_a):
    """Its form posts here and is redirected there; browsers hold that redirect to form-action."""
    connect = alice_client.get("/w/acme/integrations/iterable/connect/")
    assert policy(connect)["form-action"] == ["'self'", oauth_server.server.url]
    assert_strict(connect)
    # Every other page allows its own origin only.
    assert policy(alice_client.get("/w/acme/integrations/"))["form-action"] == ["'self'"]

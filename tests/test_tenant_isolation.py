"""Walk every URL under /w/<workspace_slug>/ as each persona.

A new workspace view is covered automatically; a new URL parameter must be
added to ``url_kwargs`` below, or this test fails and says which.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from alert_channels.models import AlertChannel
from erasure.models import ErasureRequest, ErasureStep
from integrations.models import Integration
from sync_logs.models import SyncExchange, SyncRecord, SyncRun
from tests.factories import ContactFactory, MembershipFactory, make_flow
from workspaces.models import Invitation, Membership, Role

pytestmark = pytest.mark.django_db
PREFIX = "w/<slug:workspace_slug>/"


def _walk(patterns, prefix=""):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry.callback


WORKSPACE_ROUTES = [(route, view) for route, view in _walk(get_resolver().url_patterns) if route.startswith(PREFIX)]


def _workspace_objects(workspace, member: Membership) -> dict:
    """One object of every kind a workspace URL names, owned by ``workspace``: the URL kwargs."""
    from django.utils import timezone

    flow = make_flow(workspace)
    contact = ContactFactory(flow=flow)
    integration = Integration.objects.create(
        workspace=workspace, kind="iterable", status="connected", credentials={"api_key": "k" * 20}, key_last4="kkkk"
    )
    run = SyncRun.objects.create(integration=integration, trigger="manual", status="succeeded")
    record = SyncRecord.objects.create(run=run, contact=contact, identifier=contact.email or "x", status="failed")
    exchange = SyncExchange.objects.create(
        run=run,
        created_at=timezone.now(),
        destination="iterable",
        method="POST",
        endpoint="/x",
        duration_ms=1,
        attempt=1,
    )
    channel = AlertChannel.objects.create(
        workspace=workspace, kind="webhook", name="Ops", secrets={"url": "https://93.184.216.34/x"}, address_hint="x"
    )
    erasure = ErasureRequest.objects.create(workspace=workspace, via="app")
    step = ErasureStep.objects.create(request=erasure, destination_label="Iterable", due_at=timezone.now())
    invitation = Invitation.objects.create(
        workspace=workspace,
        email="new@example.com",
        token_hash=workspace.slug.ljust(64, "x"),
        expires_at=timezone.now(),
    )
    return {
        "workspace_slug": workspace.slug,
        "flow_id": flow.pk,
        "field_id": flow.fields.first().pk,
        "contact_id": contact.pk,
        "membership_id": member.pk,
        "invitation_id": invitation.pk,
        "kind": "iterable",
        "run_id": run.pk,
        "record_id": record.pk,
        "exchange_id": exchange.pk,
        "fmt": "png",
        "channel_id": channel.pk,
        "step_id": step.pk,
    }


@pytest.fixture
def url_kwargs(workspace_a, alice, bob, settings):
    # Pages that talk to the destination find nothing listening, at once (no network in tests).
    settings.ITERABLE_US_BASE_URL = "http://127.0.0.1:9/us"
    settings.DESTINATION_MAX_RETRIES = 0
    return _workspace_objects(workspace_a, Membership.objects.get(user=bob))


def _path(route: str, kwargs: dict) -> str:
    def fill(match: re.Match) -> str:
        name = match.group(2)
        assert name in kwargs, f"tests/test_tenant_isolation.py: add a value for URL parameter <{name}>"
        return str(kwargs[name])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


def test_there_are_workspace_routes():
    assert len(WORKSPACE_ROUTES) >= 15


@pytest.mark.parametrize(("route", "view"), WORKSPACE_ROUTES, ids=[r for r, _ in WORKSPACE_ROUTES])
def test_every_workspace_view_goes_through_the_scoping_helper(route, view):
    assert hasattr(view, "workspace_min_role"), f"{route} is not wrapped in @workspace_view"


@pytest.mark.parametrize(("route", "view"), WORKSPACE_ROUTES, ids=[r for r, _ in WORKSPACE_ROUTES])
def test_member_of_another_workspace_gets_404(route, view, url_kwargs, charlie_client):
    path = _path(route, url_kwargs)
    assert charlie_client.get(path).status_code == 404, path
    assert charlie_client.post(path, {"name": "x", "role": "viewer"}).status_code == 404, path


# The only writes open to viewers: on their own membership (tests/workspaces covers them).
VIEWER_WRITES = {PREFIX + "settings/members/leave/"}


@pytest.mark.parametrize(("route", "view"), WORKSPACE_ROUTES, ids=[r for r, _ in WORKSPACE_ROUTES])
def test_viewer_gets_403_on_every_write(route, view, url_kwargs, bob_client):
    if route in VIEWER_WRITES:
        assert view.workspace_write_role == Role.VIEWER
        return
    path = _path(route, url_kwargs)
    assert bob_client.post(path, {"name": "x", "role": "owner", "email": "z@example.com"}).status_code == 403, path
    expected_get = 403 if view.workspace_min_role == Role.ADMIN else 200
    assert bob_client.get(path).status_code in {expected_get, 405}, path


@pytest.mark.parametrize(("route", "view"), WORKSPACE_ROUTES, ids=[r for r, _ in WORKSPACE_ROUTES])
def test_owner_can_open_every_page(route, view, url_kwargs, alice_client):
    path = _path(route, url_kwargs)
    assert alice_client.get(path).status_code in {200, 405}, path


@pytest.mark.parametrize(("route", "view"), WORKSPACE_ROUTES, ids=[r for r, _ in WORKSPACE_ROUTES])
def test_anonymous_is_sent_to_login(route, view, url_kwargs, client):
    response = client.get(_path(route, url_kwargs))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_unknown_workspace_is_404_like_a_foreign_one(alice_client):
    assert alice_client.get("/w/does-not-exist/flows/").status_code == 404


# --- Own workspace, another workspace's object ids --------------------------------------------

_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
# Not object ids: the slug is the workspace's own, a kind names a destination and a fmt a file format, not a row.
_NOT_OBJECTS = {"workspace_slug", "kind", "fmt"}


def _object_params(route: str) -> list[str]:
    return [name for name in _PARAM.findall(route) if name not in _NOT_OBJECTS]


OBJECT_ROUTES = [(route, view) for route, view in WORKSPACE_ROUTES if _object_params(route)]


@pytest.fixture
def own_kwargs_b(workspace_b, charlie):
    """Workspace B with an object of every kind too, so that only the foreign id can make a page 404."""
    return _workspace_objects(workspace_b, MembershipFactory(workspace=workspace_b, role=Role.VIEWER))


def test_there_are_routes_with_object_ids():
    assert len(OBJECT_ROUTES) >= 10


@pytest.mark.parametrize(("route", "view"), OBJECT_ROUTES, ids=[r for r, _ in OBJECT_ROUTES])
def test_own_workspace_with_another_workspaces_object_ids_gets_404(
    route, view, url_kwargs, own_kwargs_b, charlie_client
):
    """An admin of B, in B's own URLs, names A's objects: every one is a 404.

    Twice: every object id from A, and only the innermost one from A under B's own parents
    (a view that checks the parent's workspace but takes the child by pk alone leaks there).
    """
    params = _object_params(route)
    own_path = _path(route, own_kwargs_b)
    own_get = charlie_client.get(own_path).status_code
    assert own_get != 404, f"{own_path}: B's own objects must resolve, or this test proves nothing"
    for foreign in {tuple(params), tuple(params[-1:])}:
        path = _path(route, {**own_kwargs_b, **{name: url_kwargs[name] for name in foreign}})
        # A view that refuses GET whatever the id (POST-only) answers 405 to B's own ids too.
        assert charlie_client.get(path).status_code == (405 if own_get == 405 else 404), path
        assert charlie_client.post(path, {"name": "x", "role": "viewer"}).status_code == 404, path
    if own_get == 405:  # POST-only: B's own ids must not 404 either, or the 404s above prove nothing
        assert charlie_client.post(own_path, {"name": "x", "role": "viewer"}).status_code != 404, own_path

"""Every app page fits a phone's screen (390 px) and a laptop's: a wide table scrolls in its own box.

The walk takes every GET page under /w/<workspace>/ from the URL configuration, as the tenant walk
does (a new page is covered without being listed here), over the demo workspace synced once: the
data an admin sees first, with real tables, long addresses and a run's log.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import Page

from accounts.models import User
from alert_channels.models import AlertChannel
from erasure.models import ErasureRequest, ErasureStep
from flows.models import Contact
from integrations import engine
from integrations.sync import sync_now
from sync_logs.models import SyncExchange, SyncRecord
from tests.browser import WIDER_THAN_SCREEN
from tests.factories import PASSWORD, UserFactory
from tests.test_tenant_isolation import WORKSPACE_ROUTES, _path
from workspaces.models import Invitation, Membership, Role, Workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(iterable) -> dict:
    """The demo workspace, synced once, and the URL parameters naming its objects."""
    from django.utils import timezone

    call_command("seed_demo", iterable_key=iterable.keys.server_side, password=PASSWORD, stdout=StringIO())
    workspace = Workspace.objects.get(slug="demo")
    integration = workspace.integrations.get()
    engine.sync_run_execute(sync_now(integration=integration).pk)
    run = integration.runs.order_by("-pk").first()
    record = SyncRecord.objects.filter(run=run).order_by("pk").first()
    exchange = SyncExchange.objects.filter(run=run).order_by("pk").first()  # a bulk request: its body is long
    flow = workspace.flows.order_by("pk").first()
    member = Membership.objects.create(workspace=workspace, user=UserFactory(), role=Role.VIEWER)
    invitation = Invitation.objects.create(
        workspace=workspace,
        email="a.rather.long.address.for.a.phone@example.com",
        token_hash="d" * 64,
        expires_at=timezone.now(),
    )
    channel = AlertChannel.objects.create(
        workspace=workspace,
        kind="slack",
        name="#marketing-alerts-for-the-whole-team",
        secrets={"url": "https://hooks.slack.com/services/T0/B0/x"},
        address_hint="hooks.slack.com/…abcd",
        last_error="Slack says this webhook no longer exists: add a new one (no_service); not tried again",
        last_attempt_at=timezone.now(),
    )
    erasure = ErasureRequest.objects.create(workspace=workspace, via="app", contacts_erased=2, log_rows_scrubbed=4)
    step = ErasureStep.objects.create(
        request=erasure,
        destination_label="Iterable",
        due_at=timezone.now(),
        last_error="Iterable refused the credentials (the key was revoked): fix the connection; trying again in 2 min",
    )
    return {
        "workspace_slug": "demo",
        "flow_id": flow.pk,
        "field_id": flow.fields.first().pk,
        "contact_id": Contact.objects.filter(workspace=workspace).order_by("pk").first().pk,
        "membership_id": member.pk,
        "invitation_id": invitation.pk,
        "kind": integration.kind,
        "run_id": run.pk,
        "record_id": record.pk,
        "exchange_id": exchange.pk,
        "fmt": "png",
        "channel_id": channel.pk,
        "step_id": step.pk,
    }


def _is_page(client, path: str) -> bool:
    """A page, not a file or a POST-only action (which answers a GET 405)."""
    response = client.get(path)
    return response.status_code == 200 and response["Content-Type"].startswith("text/html")


def test_every_page_fits_the_screen(page: Page, live_server, log_in, client, demo, screen):
    admin = User.objects.get(email="demo@flowsync.localhost")
    client.force_login(admin)
    log_in(admin)
    wide: dict[str, list[str]] = {}
    seen = 0
    for route, _view in WORKSPACE_ROUTES:
        path = _path(route, demo)
        if not _is_page(client, path):
            continue
        assert page.goto(live_server.url + path).ok, route
        seen += 1
        if page.evaluate("document.documentElement.scrollWidth") > screen:
            wide[route] = page.evaluate(WIDER_THAN_SCREEN, screen)
    assert seen >= 20
    assert wide == {}, "wider than the screen: " + "; ".join(f"{r}: {els}" for r, els in wide.items())

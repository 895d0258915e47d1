"""The demo that ./run loads: what README promises, and idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import User
from flows.models import Contact, ConversionFlow, FlowField
from integrations.destinations.iterable import base_url
from integrations.models import Integration, OutboxItem
from workspaces.models import Role, Workspace

pytestmark = pytest.mark.django_db
LOGIN = ("demo@flowsync.localhost", "flowsync-demo")


def test_seed_demo_twice_makes_one_demo_connected_to_the_emulator(client, iterable):
    out = StringIO()
    for _ in range(2):  # ./run calls it on every start
        call_command("seed_demo", iterable_key=iterable.keys.server_side, stdout=out)
    assert "demo@flowsync.localhost / flowsync-demo" in out.getvalue()

    workspace = Workspace.objects.get(name="Demo")
    assert workspace.slug == "demo"
    flows = ConversionFlow.objects.filter(workspace=workspace)
    assert flows.count() == 2
    for flow in flows:
        kinds = set(flow.fields.values_list("kind", flat=True))
        assert kinds == {FlowField.Kind.STANDARD, FlowField.Kind.CUSTOM}, flow.name
    assert Contact.objects.filter(workspace=workspace).count() == 300
    assert set(Contact.objects.values_list("flow__name", flat=True)) == set(flows.values_list("name", flat=True))

    user = User.objects.get(email=LOGIN[0])
    assert workspace.memberships.get(user=user).role == Role.OWNER
    assert client.login(email=LOGIN[0], password=LOGIN[1])
    assert client.get("/w/demo/contacts/").status_code == 200
    # Not staff: /admin/ needs an account from createsuperuser (README, "Support tooling").
    assert not user.is_staff

    integration = Integration.objects.get(workspace=workspace)
    assert (integration.kind, integration.status) == ("iterable", "connected")
    assert integration.credentials == {"api_key": iterable.keys.server_side}
    assert base_url(integration.config["region"]).startswith(iterable.server.url)  # the emulator, from the settings
    assert integration.mappings.exists()
    # Sync Now has work: every demo contact queued once, however often the command ran.
    assert OutboxItem.objects.filter(integration=integration).count() == 300

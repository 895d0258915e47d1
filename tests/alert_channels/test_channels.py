"""Adding, testing and removing alert channels (Workspace settings > Alerts): only https addresses on the
public internet, Slack's own shape, the webhook's secret shown once, the URL never shown again; admins only;
and an integration's alert reaching every channel under the email's hourly budget."""

from __future__ import annotations

import pytest
from django.db import connection

from alert_channels import services
from alert_channels.models import AlertChannel, AlertDelivery
from integrations import health
from workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db

PAGE = "/w/acme/settings/alerts/"


@pytest.mark.parametrize(
    ("kind", "url", "said"),
    [
        ("webhook", "http://93.184.216.34/hook", "Use an https:// URL"),
        ("webhook", "https://127.0.0.1/hook", "127.0.0.1 is a private or internal address"),
        ("webhook", "https://localhost/hook", "localhost is a private or internal address"),
        ("webhook", "https://10.1.2.3/hook", "10.1.2.3 is a private or internal address"),
        ("webhook", "https://192.168.0.10/hook", "is a private or internal address"),
        ("webhook", "https://169.254.169.254/latest/meta-data", "is a private or internal address"),  # cloud metadata
        ("webhook", "https://100.64.0.1/hook", "is a private or internal address"),  # carrier-grade NAT
        ("webhook", "https://[::1]/hook", "is a private or internal address"),
        ("webhook", "https://[::ffff:127.0.0.1]/hook", "is a private or internal address"),
        ("webhook", "https://[fd00::1]/hook", "is a private or internal address"),
        ("webhook", "https://0.0.0.0/hook", "is a private or internal address"),
        ("webhook", "https://[::127.0.0.1]/hook", "is a private or internal address"),  # IPv4-compatible
        ("webhook", "https://[::ffff:0:7f00:1]/hook", "is a private or internal address"),  # IPv4-translated
        ("webhook", "https://[fec0::1]/hook", "is a private or internal address"),  # site-local
        ("webhook", "https://[2002:7f00:1::1]/hook", "is a private or internal address"),  # 6to4 of 127.0.0.1
        ("webhook", "https://user:secret@93.184.216.34/hook", "Leave the user name and password out"),
        ("webhook", "https://no-such-host.invalid/hook", "no-such-host.invalid could not be found"),
        ("slack", "https://93.184.216.34/services/T/B/x", "This is not a Slack incoming-webhook URL"),
        ("slack", "https://hooks.slack.com/other", "This is not a Slack incoming-webhook URL"),
    ],
)
def test_refused_addresses(workspace_a, alice, kind, url, said):
    with pytest.raises(services.ChannelRefused, match=said.replace("(", r"\(").replace(".", r"\.")):
        services.channel_create(workspace=workspace_a, actor=alice, kind=kind, name="x", url=url)
    assert not AlertChannel.objects.exists()


def test_a_public_address_is_stored_encrypted_and_audited(workspace_a, alice):
    channel, secret = services.channel_create(
        workspace=workspace_a,
        actor=alice,
        kind="webhook",
        name="Ops",
        url=" https://93.184.216.34/flowsync/hooks/a1b2 ",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM alert_channels_alertchannel WHERE id = %s", [channel.pk])
        (raw,) = cursor.fetchone()
    assert "93.184.216.34" not in raw and secret not in raw
    assert channel.url == "https://93.184.216.34/flowsync/hooks/a1b2" and channel.address_hint == "93.184.216.34/…a1b2"
    event = AuditEvent.objects.get(verb="alert_channel.added")
    assert event.data == {"kind": "webhook", "address": "93.184.216.34/…a1b2"} and secret not in str(event.data)


def test_the_page_adds_a_webhook_and_shows_its_secret_once(alice_client):
    response = alice_client.post(PAGE, {"kind": "webhook", "name": "Ops", "url": "https://93.184.216.34/hook"})
    assert response.status_code == 200
    channel = AlertChannel.objects.get()
    html = response.content.decode()
    assert channel.signing_secret in html and "Flowsync-Signature" in html
    again = alice_client.get(PAGE).content.decode()
    assert channel.signing_secret not in again and "https://93.184.216.34/hook" not in again
    assert "93.184.216.34/…hook" in again and "Nothing sent yet" in again


def test_a_refused_address_is_said_under_the_field_and_not_echoed(alice_client):
    url = "https://10.0.0.7/services/secret-token"
    response = alice_client.post(PAGE, {"kind": "webhook", "name": "Ops", "url": url})
    assert response.status_code == 400
    html = response.content.decode()
    assert "10.0.0.7 is a private or internal address" in html and "secret-token" not in html
    assert not AlertChannel.objects.exists()


def test_send_a_test_and_remove(alice_client, saved_channel, queued):
    channel = saved_channel("slack", "https://hooks.slack.com/services/T/B/x", name="#alerts")
    response = alice_client.post(f"{PAGE}{channel.pk}/test/")
    assert response.status_code == 302
    again = alice_client.post(f"{PAGE}{channel.pk}/test/", follow=True)
    assert "a moment ago" in again.content.decode()  # one test at a time
    delivery = AlertDelivery.objects.get()
    assert delivery.event == "test" and delivery.status == "pending"
    page = alice_client.get(PAGE).content.decode()
    assert 'hx-trigger="every 2s"' in page  # follows the delivery until it is done
    status = alice_client.get(f"{PAGE}status/", headers={"HX-Request": "true"}).content.decode()
    assert status.lstrip().startswith('<div id="alert-channels"') and "Waiting" in status
    assert "<h1>Alerts</h1>" in alice_client.get(f"{PAGE}status/").content.decode()  # the page, to a browser
    assert alice_client.post(f"{PAGE}{channel.pk}/remove/").status_code == 302
    assert not AlertChannel.objects.exists() and not AlertDelivery.objects.exists()
    assert AuditEvent.objects.filter(verb="alert_channel.removed").exists()


def test_only_admins_and_only_their_workspace(alice_client, bob_client, workspace_b, charlie, queued):
    theirs, _ = services.channel_create(
        workspace=workspace_b, actor=charlie, kind="webhook", name="B", url="https://93.184.216.34/b"
    )
    assert alice_client.post(f"{PAGE}{theirs.pk}/test/").status_code == 404
    assert alice_client.post(f"{PAGE}{theirs.pk}/remove/").status_code == 404
    assert AlertChannel.objects.filter(pk=theirs.pk).exists() and not AlertDelivery.objects.exists()
    assert bob_client.get(PAGE).status_code == 403  # a viewer


def test_an_integration_alert_reaches_every_channel_once_an_hour(
    integration, saved_channel, queued, django_capture_on_commit_callbacks, mailoutbox
):
    saved_channel("slack", "https://hooks.slack.com/services/T/B/x", name="#a")
    saved_channel("webhook", "https://93.184.216.34/hook", name="Ops")
    with django_capture_on_commit_callbacks(execute=True):
        assert health.alert_raise(integration=integration, reason="Sync run #7 failed: Iterable is down.")
    deliveries = list(AlertDelivery.objects.order_by("channel__name"))
    assert [d.channel.name for d in deliveries] == ["#a", "Ops"] and len(queued) == 2
    assert {d.message for d in deliveries} == {"Sync run #7 failed: Iterable is down."}
    assert deliveries[0].subject == "Iterable sync for Acme needs your attention"
    assert deliveries[0].link.endswith("/w/acme/integrations/iterable/logs/")
    assert len(mailoutbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert not health.alert_raise(integration=integration, reason="again")
    assert AlertDelivery.objects.count() == 2

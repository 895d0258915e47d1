"""Each kind of alert channel, behind one registry (kind -> transport), as destinations are: what its
URL must look like, the request an alert becomes, and what its answers mean."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from alert_channels.addresses import UnsafeAddress, address_check
from alert_channels.models import AlertChannel, AlertDelivery

SIGNATURE_HEADER = "Flowsync-Signature"


@dataclass(frozen=True)
class Answer:
    """What an answer means: delivered, or why not and whether trying again may help."""

    delivered: bool
    reason: str = ""
    permanent: bool = False


class Transport:
    kind: str
    label: str
    url_help: str

    def url_check(self, url: str) -> None:
        """Raise UnsafeAddress (plain words) unless alerts of this kind may go to ``url``."""
        address_check(url)

    def request(self, channel: AlertChannel, delivery: AlertDelivery) -> tuple[dict[str, str], bytes]:
        raise NotImplementedError

    def answer(self, status: int, text: str) -> Answer:
        if 200 <= status < 300:
            return Answer(True)
        return Answer(False, f"the receiver answered HTTP {status}", permanent=status == 410)


class Slack(Transport):
    """A Slack incoming webhook (https://hooks.slack.com/services/…): a JSON ``text`` in Slack's markup;
    it answers 200 ``ok``, or an error name in the body (``no_service``: the webhook was removed,
    ``channel_is_archived``, ``action_prohibited``, ``invalid_payload``)."""

    kind, label = AlertChannel.Kind.SLACK, "Slack"
    url_help = "An incoming-webhook URL from Slack: https://hooks.slack.com/services/…"
    GONE = {
        "no_service": "Slack says this webhook no longer exists: add a new one",
        "no_team": "Slack says this webhook's workspace no longer exists",
        "team_disabled": "Slack says this webhook's workspace is disabled",
        "channel_not_found": "Slack says the webhook's channel no longer exists",
        "channel_is_archived": "Slack says the webhook's channel is archived",
        "action_prohibited": "Slack says an admin of its workspace restricted this webhook",
        "invalid_token": "Slack says the webhook's token is no longer valid",
        "invalid_payload": "Slack refused the message's format",
    }

    def url_check(self, url: str) -> None:
        parts = urlsplit(url)
        local = parts.hostname in ("127.0.0.1", "localhost")  # a local receiver, where loopback is allowed
        if not local and (parts.hostname != "hooks.slack.com" or not parts.path.startswith("/services/")):
            raise UnsafeAddress("This is not a Slack incoming-webhook URL (https://hooks.slack.com/services/…).")
        super().url_check(url)

    def request(self, channel, delivery):
        def escaped(text: str) -> str:  # Slack's markup: these three are control characters
            return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        text = f":warning: *{escaped(delivery.subject)}*\n{escaped(delivery.message)}"
        if delivery.link:
            text += f"\n<{delivery.link}|Open in Flowsync>"
        return {"Content-Type": "application/json"}, json.dumps({"text": text}).encode()

    def answer(self, status, text):
        if status == 200:
            return Answer(True)
        code = text.strip()[:60]
        if code in self.GONE:
            return Answer(False, f"{self.GONE[code]} ({code})", permanent=True)
        if status in (403, 404, 410):
            return Answer(False, f"Slack refused the webhook (HTTP {status} {code})".strip(), permanent=True)
        return Answer(False, f"Slack answered HTTP {status} {code}".strip())


class Webhook(Transport):
    """Any https endpoint: a JSON body signed with HMAC-SHA256 (the channel's own secret).

    ``Flowsync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``: the receiver
    recomputes it with the secret, compares in constant time, and refuses a ``t`` more than five
    minutes from its clock (a replayed request keeps its old ``t``, which the signature covers).
    ``id`` in the body is the same on every retry of a delivery. 2xx is delivered; 410 stops the
    retries; anything else is tried again."""

    kind, label = AlertChannel.Kind.WEBHOOK, "Webhook"
    url_help = "Your endpoint's https:// URL. Flowsync POSTs JSON, signed (see the header below)."

    def request(self, channel, delivery):
        body = json.dumps(
            {
                "id": str(delivery.public_id),
                "type": delivery.event,
                "created_at": delivery.created_at.isoformat(),
                "workspace": {"slug": channel.workspace.slug, "name": channel.workspace.name},
                "subject": delivery.subject,
                "message": delivery.message,
                "url": delivery.link,
            }
        ).encode()
        return {"Content-Type": "application/json", SIGNATURE_HEADER: signature(channel.signing_secret, body)}, body


def signature(secret: str, body: bytes, *, at: int | None = None) -> str:
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


TRANSPORTS: dict[str, Transport] = {t.kind: t for t in (Slack(), Webhook())}


def transport_for(channel: AlertChannel) -> Transport:
    return TRANSPORTS[channel.kind]

"""A local receiver for alert deliveries (a Slack incoming webhook or anyone's endpoint, as their
documents describe them), loopback allowed for it, and the delivery tasks held for the test to run."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alert_channels import services
from alert_channels.tasks import alert_delivery_send
from tests.sync.conftest import flow, integration  # noqa: F401 - a connected, mapped workspace


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next of ``answers`` (status, body[, delay s or "drip"]), then 200 "ok"."""

    port: int = 0
    answers: list[tuple] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append(Received(self.path, dict(self.headers), body))
            status, text, *delay = state.answers.pop(0) if state.answers else (200, "ok")
            if delay and delay[0] == "drip":  # an answer without end, a byte at a time
                self.send_response(status)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                for _ in range(200):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            if delay:
                time.sleep(delay[0])
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"http://127.0.0.1:{state.port}/elsewhere")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def loopback(settings):
    settings.ALERT_WEBHOOKS_ALLOW_LOOPBACK = True


@pytest.fixture
def queued(monkeypatch) -> list[tuple[int, float]]:
    """The delivery tasks queued, as (delivery id, countdown), instead of sent to the broker."""
    calls: list[tuple[int, float]] = []

    def record(args=None, kwargs=None, countdown=0, **options):
        calls.append((args[0], countdown))

    monkeypatch.setattr(alert_delivery_send, "apply_async", record)
    return calls


@pytest.fixture
def add_channel(workspace_a, alice, loopback):
    def add(kind: str, url: str, name: str = "Ops"):
        return services.channel_create(workspace=workspace_a, actor=alice, kind=kind, name=name, url=url)

    return add


@pytest.fixture
def saved_channel(workspace_a):
    """A channel as saved earlier (its address was checked then; no DNS lookup here)."""
    from alert_channels.models import AlertChannel

    def make(kind: str, url: str, name: str = "Ops", workspace=None):
        return AlertChannel.objects.create(
            workspace=workspace or workspace_a,
            kind=kind,
            name=name,
            secrets={"url": url, **({"signing_secret": "whsec_test"} if kind == "webhook" else {})},
            address_hint=services._hint(url),
        )

    return make

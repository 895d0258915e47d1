"""Shared fixtures: three personas in two workspaces, present in every test module.

- alice: owner of workspace A
- bob: viewer of workspace A
- charlie: admin of workspace B only (the "other tenant")
"""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory
from workspaces.models import Role

# Playwright's sync API keeps an event loop in the test thread; the ORM must not mind.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = settings.DATABASES["default"]
    engine = "PostgreSQL" if "postgresql" in db["ENGINE"] else "SQLite"
    broker = "Redis" if settings.CELERY_BROKER_URL.startswith("redis") else settings.CELERY_BROKER_URL
    return [f"flowsync: database {engine} ({db.get('HOST') or db['NAME']}), broker {broker}"]


@pytest.fixture(scope="session", autouse=True)
def _static_files(tmp_path_factory):
    """Pages name static files by their hashed names (lib/staticfiles.py), which exist once collected:
    collect them once per session, as a deployment does, into a directory of this run's own."""
    from django.core.management import call_command
    from django.test.utils import override_settings

    # WhiteNoise's max-age for names without a hash as with DEBUG on (the demo): a page naming one
    # would make every navigation revalidate it, and the browser test of caching would see it.
    with override_settings(STATIC_ROOT=str(tmp_path_factory.mktemp("static")), WHITENOISE_MAX_AGE=0):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield


@pytest.fixture(autouse=True)
def _test_settings(settings) -> None:
    # A fast hasher: the tests create many users and never need a strong hash.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests change flows and tokens between requests: no staleness (test_capture_cache.py covers it).
    settings.CAPTURE_CACHE_SECONDS = 0
    # Rate-limit counters live in the cache: each test gets an empty one of its own
    # (tests/flows/test_ratelimit.py checks the same counters on the real Redis).
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())}
    }


@pytest.fixture(autouse=True)
def _mail_task_in_process(request, monkeypatch) -> None:
    """Mail tasks run in the test's own process (Celery's ``apply``, retries included), so what they
    send lands in Django's locmem outbox (``mail.outbox``), from live-server requests too. They are
    still queued after commit: a test wraps the request in ``django_capture_on_commit_callbacks
    (execute=True)`` (a transactional test commits for real). Tests with a real worker (marked
    ``worker``) keep the broker; tests/mailer/test_mail_worker.py takes that route."""
    if request.node.get_closest_marker("worker"):
        return
    from mailer.tasks import mail_send_task

    def in_process(args=None, kwargs=None, **options):
        return mail_send_task.apply(args, kwargs)

    monkeypatch.setattr(mail_send_task, "apply_async", in_process)


@pytest.fixture
def workspace_a(db):
    return WorkspaceFactory(name="Acme", slug="acme")


@pytest.fixture
def workspace_b(db):
    return WorkspaceFactory(name="Bravo", slug="bravo")


@pytest.fixture
def alice(workspace_a):
    user = UserFactory(email="alice@example.com", name="Alice")
    MembershipFactory(workspace=workspace_a, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def bob(workspace_a):
    user = UserFactory(email="bob@example.com", name="Bob")
    MembershipFactory(workspace=workspace_a, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def charlie(workspace_b):
    user = UserFactory(email="charlie@example.com", name="Charlie")
    MembershipFactory(workspace=workspace_b, user=user, role=Role.ADMIN)
    return user


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice) -> Client:
    return _client_for(alice)


@pytest.fixture
def bob_client(bob) -> Client:
    return _client_for(bob)


@pytest.fixture
def charlie_client(charlie) -> Client:
    return _client_for(charlie)


# --- Browser tests: Debian's Chromium, launched by pytest-playwright ---------------------

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}: CI must install it (apt-get install chromium)")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(params=[(1280, 800), (390, 844)], ids=["desktop", "phone"])
def screen(request, page) -> int:
    """The page at a laptop's and at a phone's viewport (a test that asks for it runs at both); its width."""
    width, height = request.param
    page.set_viewport_size({"width": width, "height": height})
    return width


@pytest.fixture(scope="session")
def live_server(request, _static_files):
    """pytest-django's live server, serving static files as a deployment does: WhiteNoise from
    STATIC_ROOT under hashed names, not Django's finder handler (which knows only the plain names)."""
    from pytest_django.live_server_helper import LiveServer

    addr = request.config.getvalue("liveserver") or os.environ.get("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    server = LiveServer(addr, start=False)
    server.thread.static_handler = lambda handler: handler  # the app's own middleware serves /static/
    server.start()
    yield server
    server.stop()


@pytest.fixture
def log_in(page, live_server):
    """Log ``user`` in through the login form of the live server, as a person would."""

    def go(user) -> None:
        from playwright.sync_api import expect

        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()

    return go


# --- A real Celery worker process -----------------------------------------------------------


def _database_url_for_subprocess() -> str:
    """The URL of the database this test run uses (the test database, not the dev one)."""
    from django.db import connection

    db = connection.settings_dict
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class WorkerProcess:
    """``celery worker`` in a subprocess on a queue of its own, so no other worker on
    the machine (a developer's ./run, a helper's test run) can take its tasks."""

    def __init__(self, tmp_path, *, beat: bool = False, concurrency: int = 1, extra_env: dict | None = None):
        import subprocess
        import sys

        from django.conf import settings as dj_settings

        self.queue = f"test-{uuid.uuid4().hex[:12]}"
        self.log_path = tmp_path / f"{self.queue}.log"
        env = {
            **os.environ,
            "DATABASE_URL": _database_url_for_subprocess(),
            "CELERY_QUEUE": self.queue,
            "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp_path / f"{self.queue}-beat"),
            "DB_CONN_MAX_AGE": "0",
            **(extra_env or {}),
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            self.queue,
            "-n",
            f"{self.queue}@%h",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        if beat:
            command.append("-B")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        # A session of its own, so that kill() and stop() reach the whole group (main process and pool
        # children) and never the test runner's.
        self.process = subprocess.Popen(
            command,
            cwd=dj_settings.BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL the worker and its pool: a crash, nothing gets to clean up."""
        import signal

        os.killpg(os.getpgid(self.process.pid), signal.SIGKILL)
        self.process.wait(10)

    def resume(self) -> None:
        """SIGCONT the worker and its pool: wakes a process that a fault froze (lib/faults.py "stop")."""
        import signal

        os.killpg(os.getpgid(self.process.pid), signal.SIGCONT)

    def stop(self, timeout: float = 30) -> None:
        import signal
        import subprocess

        if self.process.poll() is None:
            os.killpg(os.getpgid(self.process.pid), signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


@pytest.fixture
def start_worker(tmp_path):
    """Start real Celery workers for a test; they are stopped when it ends."""
    started: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        worker = WorkerProcess(tmp_path, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def no_gc_pauses():
    """Keep the cyclic garbage collector out of a test that measures request spacing.

    The emulators serve from threads of the pytest process, so a full collection stalls client
    and emulator alike. Late in the suite the heap holds some 275,000 objects and one collection
    took up to 358 ms (measured with gc.callbacks over the whole suite): requests queued behind it
    reach the emulator back to back, which reads as a pacing fault that no real deployment has.
    """
    import gc

    gc.collect()
    gc.disable()
    yield
    gc.enable()


def free_port() -> int:
    """A TCP port free on loopback now (for a server a test starts: a worker's metrics port)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float = 30, interval: float = 0.2, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


# --- The Iterable emulator, over real HTTP on loopback ---------------------------------------


@pytest.fixture(scope="session")
def _iterable_server():
    from emulators.iterable.server import start_in_thread

    server = start_in_thread()
    assert server.spec is not None or not os.environ.get("CI"), "CI must check bodies against Iterable's Swagger"
    yield server
    server.shutdown()


@pytest.fixture
def iterable_swagger(_iterable_server):
    """For tests of what only Iterable's Swagger document catches: skipped when the document is absent."""
    from emulators.iterable.spec import DEFAULT_SPEC

    if _iterable_server.spec is None:
        where = os.environ.get("ITERABLE_EMULATOR_SPEC") or DEFAULT_SPEC
        pytest.skip(f"Iterable's Swagger document is absent ({where}): bodies are not checked against it")
    return _iterable_server.spec


class IterableKeys:
    """Fresh keys for one test (fresh keys also mean fresh rate buckets for clients built from a bare key;
    an integration's client spends its integration's bucket)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.server_side = f"srv{tag}us01"
        self.read_only = f"ro{tag}us02"
        self.mobile = f"mob{tag}us03"
        self.javascript = f"js{tag}us04"
        self.eu_server_side = f"srv{tag}eu05"


@pytest.fixture
def iterable(_iterable_server, settings):
    """The emulator, reset, with the app pointed at it and one project's keys of every type."""
    from emulators.iterable.control import EmulatorControl

    control = EmulatorControl(_iterable_server.url)
    control.reset()
    settings.ITERABLE_US_BASE_URL = f"{_iterable_server.url}/us"
    settings.ITERABLE_EU_BASE_URL = f"{_iterable_server.url}/eu"
    settings.DESTINATION_TIMEOUT_SECONDS = 2
    keys = IterableKeys()
    for key, kind in [
        (keys.server_side, "server_side"),
        (keys.read_only, "read_only"),
        (keys.mobile, "mobile"),
        (keys.javascript, "javascript"),
    ]:
        control.add_key(key, kind, project_id=1, region="us")
    control.add_key(keys.eu_server_side, "server_side", project_id=2, region="eu", project_type="userId")
    control.keys = keys
    control.server = _iterable_server
    return control


@pytest.fixture
def web(iterable, settings):
    """The emulator for calls made inside a web request: a worker's patience as by default (retries,
    minutes of 429 waits), the web's timeout shorter than the emulator's slow answers."""
    settings.DESTINATION_WEB_TIMEOUT_SECONDS = 0.5
    settings.DESTINATION_MAX_RETRIES = 3
    settings.DESTINATION_MAX_RATE_WAIT_SECONDS = 120
    return iterable


@pytest.fixture
def oauth_server(iterable, settings):
    """The emulator as the OAuth authorization server, Flowsync configured as its client.

    The client is registered for the test client's host and the US project;
    ``oauth_server.register_oauth_client(base_url, project_id=..., region=...)`` registers
    it again for another host (a live server's) or another project.
    """
    settings.ITERABLE_OAUTH_AUTHORIZE_URL = f"{iterable.server.url}/oauth/authorize"
    settings.ITERABLE_OAUTH_TOKEN_URL = f"{iterable.server.url}/oauth/token"
    settings.ITERABLE_OAUTH_CLIENT_ID = "flowsync-test"
    settings.ITERABLE_OAUTH_CLIENT_SECRET = "s3cret-for-tests-only"
    settings.ITERABLE_OAUTH_ENABLED = True

    def register(base_url: str = "http://testserver", **project) -> None:
        callback = f"{base_url}/integrations/oauth/iterable/callback/"
        iterable.add_oauth_client(
            settings.ITERABLE_OAUTH_CLIENT_ID, settings.ITERABLE_OAUTH_CLIENT_SECRET, [callback], **project
        )

    register()
    iterable.register_oauth_client = register
    return iterable


# --- Customer.io's emulator ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def _customerio_server():
    from emulators.customerio.server import start_in_thread as start_customerio

    server = start_customerio()
    assert server.spec is not None or not os.environ.get("CI"), "CI must check bodies against the Track OpenAPI"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def customerio(_customerio_server, settings):
    """The emulator, reset, the app pointed at it, and two workspaces with fresh credentials (fresh rate
    buckets too): ``us`` identifies people by id, ``eu`` by email; both have an App API key."""
    from types import SimpleNamespace

    from emulators.customerio.control import EmulatorControl

    control = EmulatorControl(_customerio_server.url)
    control.reset()
    url = _customerio_server.url
    settings.CUSTOMERIO_TRACK_US_BASE_URL = f"{url}/us"
    settings.CUSTOMERIO_TRACK_EU_BASE_URL = f"{url}/eu"
    settings.CUSTOMERIO_APP_US_BASE_URL = f"{url}/us-api"
    settings.CUSTOMERIO_APP_EU_BASE_URL = f"{url}/eu-api"
    settings.DESTINATION_TIMEOUT_SECONDS = 2
    tag = uuid.uuid4().hex[:10]
    control.us = SimpleNamespace(
        site_id=f"us{tag}", api_key=f"trk{tag}us01", app_key=f"app{tag}us02", region="us", identify_by="id"
    )
    control.eu = SimpleNamespace(
        site_id=f"eu{tag}", api_key=f"trk{tag}eu03", app_key=f"app{tag}eu04", region="eu", identify_by="email"
    )
    for workspace in (control.us, control.eu):
        added = control.add_workspace(
            workspace.site_id,
            workspace.api_key,
            region=workspace.region,
            identify_by=workspace.identify_by,
            app_key=workspace.app_key,
        )
        workspace.environment_id = added["environment_id"]
    control.url = url
    return control

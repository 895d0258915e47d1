"""The README's run command works as written: start, a staff login via `./run manage`, stop from another shell.

It runs on a copy of the tracked files, so its var/ (SQLite, pid file, logs) never touches the checkout's.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def project_copy(tmp_path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    dest = tmp_path / "flowsync"
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture
def run_env() -> dict[str, str]:
    # The embedded default: no database, broker, Iterable or Customer.io from the test's environment.
    dropped = (
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "ITERABLE_",
        "CUSTOMERIO_",
        "DJANGO_SETTINGS_MODULE",
        "SITE_URL",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    # The test's own virtualenv has every runtime package: reuse it instead of building another.
    env["FLOWSYNC_VENV"] = sys.prefix
    return env


def test_run_starts_prints_the_url_and_stops_with_run_stop(project_copy, run_env):
    port, emulator_port, customerio_port = _free_port(), _free_port(), _free_port()
    env = {
        **run_env,
        "PORT": str(port),
        "EMULATOR_PORT": str(emulator_port),
        "CUSTOMERIO_EMULATOR_PORT": str(customerio_port),
    }
    proc = subprocess.Popen(
        ["./run"], cwd=project_copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        printed = ""
        while "Press Ctrl-C" not in printed:
            line = proc.stdout.readline().decode()
            assert line or proc.poll() is None, f"./run exited early:\n{printed}"
            printed += line
            assert time.monotonic() < deadline, printed
        assert f"http://127.0.0.1:{port}/" in printed
        assert "demo@flowsync.localhost" in printed
        assert f"http://127.0.0.1:{customerio_port}" in printed
        for credential in ("Site ID demo-site", "Track API key demo-track-key", "App API key demo-app-key"):
            assert credential in printed

        # The printed pair is a workspace of Customer.io's emulator, in the US.
        pair = base64.b64encode(b"demo-site:demo-track-key").decode()
        region = urllib.request.Request(
            f"http://127.0.0.1:{customerio_port}/us/api/v1/accounts/region", headers={"Authorization": f"Basic {pair}"}
        )
        with urllib.request.urlopen(region, timeout=5) as answer:
            assert answer.status == 200
            assert json.load(answer)["region"] == "us"

        # The login page answers (the web server may need a moment after the banner).
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the web server never answered")

        again = subprocess.run(["./run"], cwd=project_copy, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 1 and "already running" in again.stderr

        su_env = {**env, "DJANGO_SUPERUSER_PASSWORD": "a-long-test-password-1"}
        created = subprocess.run(
            ["./run", "manage", "createsuperuser", "--noinput", "--email", "staff@example.com"],
            cwd=project_copy,
            env=su_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stdout + created.stderr

        stopped = subprocess.run(
            ["./run", "stop"], cwd=project_copy, env=env, capture_output=True, text=True, timeout=60
        )
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert proc.wait(timeout=30) is not None
        assert not (project_copy / "var" / "run.pid").exists()
        for stopped_port in (port, customerio_port):
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", stopped_port), timeout=1):
                pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()


def test_run_stop_when_nothing_runs(project_copy, run_env):
    stopped = subprocess.run(
        ["./run", "stop"], cwd=project_copy, env=run_env, capture_output=True, text=True, timeout=60
    )
    assert stopped.returncode == 0
    assert "not running" in stopped.stdout

"""docker-compose.yml cannot run here, so check what it sets is what the app reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PROVIDED = {
    "SECRET_KEY": "k" * 50,
    "POSTGRES_PASSWORD": "pw",
    "ALLOWED_HOSTS": "flowsync.example.com",
    "FLOWSYNC_ENCRYPTION_KEYS": "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleS0=,b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleS0=",
}


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} forms."""

    def sub(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose would refuse to start: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", sub, value)


def _service_env(service: str, env: dict[str, str]) -> dict[str, str]:
    raw = COMPOSE["services"][service]["environment"]
    return {key: _interpolate(str(value), env) for key, value in raw.items()}


def _settings_in_subprocess(env: dict[str, str]) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({'DEBUG': s.DEBUG, 'ENGINE': s.DATABASES['default']['ENGINE'],"
        "'DB_HOST': s.DATABASES['default']['HOST'], 'DB_NAME': s.DATABASES['default']['NAME'],"
        "'BROKER': s.CELERY_BROKER_URL, 'CACHE': s.CACHES['default']['BACKEND'], 'HOSTS': s.ALLOWED_HOSTS,"
        "'SECURE_COOKIES': s.SESSION_COOKIE_SECURE and s.CSRF_COOKIE_SECURE, 'HSTS': s.SECURE_HSTS_SECONDS,"
        "'SSL_REDIRECT': s.SECURE_SSL_REDIRECT, 'PROXY': s.SECURE_PROXY_SSL_HEADER, 'SECRET': s.SECRET_KEY,"
        "'STATIC': s.STORAGES['staticfiles']['BACKEND'], 'EMAIL': s.EMAIL_BACKEND,"
        "'KEYS': s.FLOWSYNC_ENCRYPTION_KEYS, 'REDIRECT_EXEMPT': s.SECURE_REDIRECT_EXEMPT}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "DEBUG"))}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("service", ["web", "worker", "beat", "migrate"])
def test_compose_settings_are_read_by_the_app(service):
    values = _settings_in_subprocess(_service_env(service, PROVIDED))
    assert values["DEBUG"] is False
    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert (values["DB_HOST"], values["DB_NAME"]) == ("postgres", "flowsync")
    assert values["BROKER"] == "redis://redis:6379/0"
    assert values["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    assert values["HOSTS"] == ["flowsync.example.com"]
    assert values["SECURE_COOKIES"] is True and values["HSTS"] >= 31536000 and values["SSL_REDIRECT"] is True
    assert values["PROXY"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECRET"] == PROVIDED["SECRET_KEY"]
    assert values["STATIC"].startswith("whitenoise.")
    assert values["EMAIL"] == "django.core.mail.backends.smtp.EmailBackend"
    assert values["KEYS"] == PROVIDED["FLOWSYNC_ENCRYPTION_KEYS"].split(",")


def test_compose_refuses_to_start_without_secrets():
    with pytest.raises(AssertionError, match="set SECRET_KEY"):
        _service_env("web", {"POSTGRES_PASSWORD": "pw"})
    with pytest.raises(AssertionError, match="set FLOWSYNC_ENCRYPTION_KEYS"):
        _service_env("web", {"POSTGRES_PASSWORD": "pw", "SECRET_KEY": "k" * 50})


def test_compose_has_the_production_shape():
    services = COMPOSE["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    assert "gunicorn" in (ROOT / "Dockerfile").read_text()
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "flowsync"


def test_development_defaults_need_no_server():
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    code = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps([s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.SESSION_COOKIE_SECURE]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == [False, "django.db.backends.sqlite3", "filesystem://", False]


def test_a_typo_in_a_boolean_is_refused():
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "ture"},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "DEBUG='ture' is not a boolean" in out.stderr


def test_the_filesystem_broker_keeps_its_files_under_its_folder(tmp_path):
    """Binding a queue to a fanout exchange (what every worker's pidbox does) writes an
    exchange table; it belongs under the broker's folder, not the current directory."""
    clean = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    broker_dir = tmp_path / "broker"
    code = (
        "from kombu import Exchange, Queue; from config.celery import app\n"
        "with app.connection_for_write() as conn:\n"
        "    Queue('q', Exchange('fan', type='fanout'))(conn.default_channel).declare()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "CELERY_FILESYSTEM_DIR": str(broker_dir),
            "PYTHONPATH": str(ROOT),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker"]
    assert list((broker_dir / "control").glob("*.exchange"))


@pytest.mark.django_db
def test_the_web_healthcheck_is_answered_200_under_the_compose_settings(settings):
    """The request the compose healthcheck makes, replayed through Django with the web service's settings:
    not a 400 for its Host, not a 301 to HTTPS (it speaks plain HTTP on loopback)."""
    from urllib.parse import urlsplit

    from django.test import Client

    from health.probe import health_request

    assert COMPOSE["services"]["web"]["healthcheck"]["test"] == ["CMD", "python", "-m", "health.probe"]
    env = _service_env("web", PROVIDED)
    values = _settings_in_subprocess(env)
    settings.DEBUG = values["DEBUG"]
    settings.ALLOWED_HOSTS = values["HOSTS"]
    settings.SECURE_SSL_REDIRECT = values["SSL_REDIRECT"]
    settings.SECURE_REDIRECT_EXEMPT = values["REDIRECT_EXEMPT"]
    settings.SECURE_PROXY_SSL_HEADER = tuple(values["PROXY"])
    probe = health_request(env)
    url = urlsplit(probe.full_url)
    assert (url.scheme, url.netloc) == ("http", "127.0.0.1:8000")  # gunicorn's bind in the Dockerfile
    client = Client()  # built after the settings change: its middleware reads them when first used
    response = client.get(url.path, headers=dict(probe.header_items()))
    assert response.status_code == 200, response.content
    assert response.json()["database"] == "ok"
    # Every other page still redirects to HTTPS, and an unknown Host is still refused.
    assert client.get("/accounts/login/", headers=dict(probe.header_items())).status_code == 301
    assert client.get(url.path, headers={"Host": "127.0.0.1:8000"}).status_code == 400


@pytest.mark.parametrize(
    ("allowed_hosts", "host"),
    [("flowsync.example.com", "flowsync.example.com"), (".example.com,x.org", "example.com"), ("*", "localhost")],
)
def test_the_healthcheck_sends_a_host_that_allowed_hosts_accepts(allowed_hosts, host):
    from django.http.request import validate_host

    from health.probe import health_host

    assert health_host(allowed_hosts) == host
    assert validate_host(host, allowed_hosts.split(","))


def test_every_beat_entry_names_a_task_the_worker_knows():
    from django.conf import settings

    from config.celery import app

    app.loader.import_default_modules()  # what a worker does at start: autodiscovery included
    missing = {name for name, entry in settings.CELERY_BEAT_SCHEDULE.items() if entry["task"] not in app.tasks}
    assert not missing

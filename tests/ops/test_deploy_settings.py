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
        "'KEYS': s.FLOWSYNC_ENCRYPTION_KEYS, 'REDIRECT_EXEMPT': s.SECURE_REDIRECT_EXEMPT,"
        "'PROXY_COUNT': s.FLOWSYNC_TRUSTED_PROXY_COUNT, 'BODY_CAP': s.REQUEST_MAX_BODY_BYTES,"
        "'PROXIES': [str(n) for n in s.FLOWSYNC_TRUSTED_PROXIES],"
        "'CAPTURE_CAP': s.CAPTURE_MAX_BODY_BYTES, 'ALERT_LOOPBACK': s.ALERT_WEBHOOKS_ALLOW_LOOPBACK,"
        "'SENTRY': __import__('sentry_sdk').get_client().is_active(),"
        "'SENTRY_SCRUB': getattr(__import__('sentry_sdk').get_client().options.get('before_send'), '__name__', '')}))"
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


@pytest.mark.parametrize("service", ["web", "worker"])
def test_error_reporting_is_off_without_a_dsn_and_scrubs_with_one(service):
    assert _settings_in_subprocess(_service_env(service, PROVIDED))["SENTRY"] is False
    env = {**PROVIDED, "SENTRY_DSN": "https://public@sentry.example.com/1"}
    values = _settings_in_subprocess(_service_env(service, env))
    assert values["SENTRY"] is True and values["SENTRY_SCRUB"] == "event_scrub"


@pytest.mark.parametrize("service", ["web", "worker", "beat", "migrate"])
def test_compose_settings_are_read_by_the_app(service):
    values = _settings_in_subprocess(_service_env(service, PROVIDED))
    assert values["DEBUG"] is False
    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert (values["DB_HOST"], values["DB_NAME"]) == ("postgres", "flowsync")
    assert values["BROKER"] == "redis://redis:6379/0"
    assert values["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    # web also answers to its service name, inside the network only (the Prometheus scraping /metrics)
    assert values["HOSTS"] == ["flowsync.example.com"] + (["web"] if service == "web" else [])
    assert values["SECURE_COOKIES"] is True and values["HSTS"] >= 31536000 and values["SSL_REDIRECT"] is True
    assert values["PROXY"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECRET"] == PROVIDED["SECRET_KEY"]
    assert values["STATIC"] == "lib.staticfiles.HashedStaticFilesStorage"  # hashed names, immutable
    assert values["EMAIL"] == "django.core.mail.backends.smtp.EmailBackend"
    assert values["KEYS"] == PROVIDED["FLOWSYNC_ENCRYPTION_KEYS"].split(",")


NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def _nginx_directives() -> list[tuple[str, str]]:
    """(name, arguments) of every simple directive in deploy/nginx.conf, comments dropped."""
    text = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())
    return [(m.group(1), " ".join(m.group(2).split())) for m in re.finditer(r"(?m)^\s*(\w+)\s+([^;{}]*);", text)]


def _nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def test_only_the_reverse_proxy_is_published_and_gunicorn_only_to_it():
    services = COMPOSE["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    # Prometheus (an optional profile) publishes its UI on the host's loopback only.
    assert published == {"proxy", "prometheus"}
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    assert sorted(services["proxy"]["ports"]) == ["443:443", "80:80"]
    assert services["proxy"]["image"].startswith("nginx:")
    assert [str(port) for port in services["web"]["expose"]] == ["8000"]  # gunicorn's bind in the Dockerfile
    assert '--bind", "0.0.0.0:8000' in (ROOT / "Dockerfile").read_text()
    volumes = [_interpolate(volume, PROVIDED).split(":") for volume in services["proxy"]["volumes"]]
    mounts = {inside: outside for outside, inside, *_ in volumes}
    assert mounts["/etc/nginx/conf.d/default.conf"] == "./deploy/nginx.conf" and NGINX_CONF.exists()
    assert mounts["/etc/nginx/certs"] == "./deploy/certs"  # TLS_CERT_DIR's default, kept out of git
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_web_trusts_the_header_only_from_the_proxys_network():
    """Every service is on the default network, whose fixed subnet is what web trusts."""
    subnets = [_interpolate(c["subnet"], PROVIDED) for c in COMPOSE["networks"]["default"]["ipam"]["config"]]
    assert subnets == ["10.213.0.0/24"]
    assert not any(service.get("networks") for service in COMPOSE["services"].values())  # all on the default one
    web = _settings_in_subprocess(_service_env("web", PROVIDED))
    assert web["PROXIES"] == subnets and web["PROXY_COUNT"] == 1
    assert _service_env("web", PROVIDED)["SECRET_KEY"] == PROVIDED["SECRET_KEY"]  # the shared env still merged in
    assert _settings_in_subprocess(_service_env("worker", PROVIDED))["PROXIES"] == []


def test_the_proxy_terminates_tls_and_forwards_what_the_app_reads():
    directives = _nginx_directives()
    values = dict(directives)
    listens = [args for name, args in directives if name == "listen"]
    assert "443 ssl default_server" in listens
    assert values["ssl_certificate"].startswith("/etc/nginx/certs/")
    assert values["ssl_certificate_key"].startswith("/etc/nginx/certs/")
    assert values["proxy_pass"] == "http://flowsync_web" and values["server"] == "web:8000"
    headers = {args.split(" ", 1)[0]: args.split(" ", 1)[1] for name, args in directives if name == "proxy_set_header"}
    # It appends the address it saw (the app reads one entry from the right) and sets the scheme.
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["Host"] == "$host"


def test_the_app_trusts_one_proxy_and_caps_bodies_as_the_proxy_does():
    values = _settings_in_subprocess(_service_env("web", PROVIDED))
    assert values["PROXY_COUNT"] == 1
    nginx_cap = _nginx_size(dict(_nginx_directives())["client_max_body_size"])
    # Equal: neither lets through what the other refuses. Above the capture limit, so a full
    # 5 MB batch reaches the capture API and a body just over it gets the API's own answer.
    assert values["BODY_CAP"] == nginx_cap
    assert values["BODY_CAP"] > values["CAPTURE_CAP"]


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


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def test_development_defaults_need_no_server():
    """What ./run starts with: DEBUG on, and nothing else set (no secrets, no servers)."""
    clean = _without("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "FLOWSYNC_ENCRYPTION_KEYS")
    code = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps([s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.SESSION_COOKIE_SECURE]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == [True, "django.db.backends.sqlite3", "filesystem://", False]


def _start(command: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = _without("DEBUG", "SECRET_KEY", "FLOWSYNC_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL")
    return subprocess.run(
        command,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


# What each process of the production shape loads first: gunicorn the WSGI module, the migrate
# service manage.py, the Celery worker and beat the app's configuration.
STARTS = {
    "gunicorn": [sys.executable, "-c", "import config.wsgi"],
    "manage.py": [sys.executable, "manage.py", "check"],
    "celery": [sys.executable, "-c", "from config.celery import app; app.loader.import_default_modules()"],
}
GOOD_KEYS = PROVIDED["FLOWSYNC_ENCRYPTION_KEYS"]


@pytest.mark.parametrize("process", STARTS)
def test_with_debug_off_nothing_starts_on_the_development_secret_key(process):
    out = _start(STARTS[process], FLOWSYNC_ENCRYPTION_KEYS=GOOD_KEYS)
    assert out.returncode != 0
    assert "Flowsync will not start: DEBUG is off, so this is a deployment; SECRET_KEY is not set" in out.stderr
    from config.settings import DEVELOPMENT_SECRET_KEY

    spelled_out = _start(STARTS[process], FLOWSYNC_ENCRYPTION_KEYS=GOOD_KEYS, SECRET_KEY=DEVELOPMENT_SECRET_KEY)
    assert spelled_out.returncode != 0 and "the development key is refused" in spelled_out.stderr


@pytest.mark.parametrize("process", STARTS)
def test_with_debug_off_nothing_starts_without_encryption_keys(process):
    out = _start(STARTS[process], SECRET_KEY="k" * 50)
    assert out.returncode != 0
    assert (
        "FLOWSYNC_ENCRYPTION_KEYS is not set" in out.stderr
        and "SECRET_KEY" not in out.stderr.split("Flowsync will")[-1]
    )


def test_with_both_secrets_a_deployment_starts_and_with_debug_on_it_needs_neither():
    assert _start(STARTS["manage.py"], SECRET_KEY="k" * 50, FLOWSYNC_ENCRYPTION_KEYS=GOOD_KEYS).returncode == 0
    assert _start(STARTS["manage.py"], DEBUG="1").returncode == 0


def test_alert_webhooks_reach_this_machine_only_in_development():
    # In a deployment an admin's webhook URL must never reach the hosts beside the worker.
    deployed = {"SECRET_KEY": "k" * 50, "FLOWSYNC_ENCRYPTION_KEYS": GOOD_KEYS, "ALERT_WEBHOOKS_ALLOW_LOOPBACK": "1"}
    assert _settings_in_subprocess(deployed)["ALERT_LOOPBACK"] is False
    assert _settings_in_subprocess({"DEBUG": "1", "ALERT_WEBHOOKS_ALLOW_LOOPBACK": "1"})["ALERT_LOOPBACK"] is True


def test_a_malformed_encryption_key_is_refused_even_in_development():
    out = _start(STARTS["manage.py"], DEBUG="1", FLOWSYNC_ENCRYPTION_KEYS=f"{GOOD_KEYS.split(',')[0]},not-a-key")
    assert out.returncode != 0 and "FLOWSYNC_ENCRYPTION_KEYS: key 2 is not a Fernet key" in out.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "ture", "DEBUG='ture' is not a boolean"),
        ("LOG_FORMAT", "jsno", "LOG_FORMAT='jsno' is not one of plain, json"),
    ],
)
def test_a_typo_in_a_setting_is_refused(name, value, message):
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", name: value},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and message in out.stderr


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


def _as_the_web_service(settings, env: dict[str, str]) -> None:
    """This process's settings as the web service's environment ``env`` makes them (read in a subprocess): the
    host, HTTPS and proxy settings a request meets first."""
    values = _settings_in_subprocess(env)
    settings.DEBUG = values["DEBUG"]
    settings.ALLOWED_HOSTS = values["HOSTS"]
    settings.SECURE_SSL_REDIRECT = values["SSL_REDIRECT"]
    settings.SECURE_REDIRECT_EXEMPT = values["REDIRECT_EXEMPT"]
    settings.SECURE_PROXY_SSL_HEADER = tuple(values["PROXY"])


@pytest.mark.django_db
def test_the_web_healthcheck_is_answered_200_under_the_compose_settings(settings):
    """The request the compose healthcheck makes, replayed through Django with the web service's settings:
    not a 400 for its Host, not a 301 to HTTPS (it speaks plain HTTP on loopback)."""
    from urllib.parse import urlsplit

    from django.test import Client

    from health.probe import health_request

    assert COMPOSE["services"]["web"]["healthcheck"]["test"] == ["CMD", "python", "-m", "health.probe"]
    env = _service_env("web", PROVIDED)
    _as_the_web_service(settings, env)
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


PROMETHEUS = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())


def test_prometheus_is_an_optional_profile_scraping_web_and_every_worker_with_the_token():
    services = COMPOSE["services"]
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["metrics"]  # off unless asked for
    assert all("profiles" not in service for name, service in services.items() if name != "prometheus")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus.yml"
    assert prometheus["secrets"] == ["metrics_token"]
    assert COMPOSE["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}

    jobs = {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}
    web = jobs["flowsync-web"]
    assert web["metrics_path"] == "/metrics" and web["static_configs"] == [{"targets": ["web:8000"]}]
    assert web["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    web_env = _service_env("web", {**PROVIDED, "METRICS_TOKEN": "t" * 32})
    assert web_env["METRICS_TOKEN"] == "t" * 32 and web_env["INTERNAL_HOSTS"] == "web"

    worker = jobs["flowsync-worker"]["dns_sd_configs"][0]
    worker_env = _service_env("worker", PROVIDED)
    assert worker["names"] == ["worker"] and str(worker["port"]) == worker_env["METRICS_PORT"]
    assert [str(p) for p in services["worker"]["expose"]] == [worker_env["METRICS_PORT"]]
    assert "ports" not in services["worker"]  # the network's only
    for service in ("web", "worker"):
        assert _service_env(service, PROVIDED)["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
        assert _service_env(service, PROVIDED)["LOG_FORMAT"] == "json"


@pytest.mark.django_db
def test_metrics_are_answered_to_prometheus_and_never_through_the_proxy(settings):
    """The scrape as Prometheus makes it (plain HTTP to web:8000, Host "web", the token), through Django with
    the web service's settings; the public proxy answers /metrics 404 whatever the token."""
    from django.test import Client

    env = _service_env("web", {**PROVIDED, "METRICS_TOKEN": "t" * 32})
    _as_the_web_service(settings, env)
    settings.METRICS_TOKEN = env["METRICS_TOKEN"]
    client = Client()
    answer = client.get("/metrics", headers={"Host": "web:8000", "Authorization": f"Bearer {'t' * 32}"})
    assert answer.status_code == 200 and b"flowsync_outbox_rows" in answer.content
    assert client.get("/metrics", headers={"Host": "web:8000"}).status_code == 401
    assert client.get("/accounts/login/", headers={"Host": "web:8000"}).status_code == 301  # the rest: HTTPS

    text = NGINX_CONF.read_text()
    block = re.search(r"location = /metrics \{([^}]*)\}", text)
    assert block and block.group(1).split() == ["return", "404;"]
    # The internal name is answered only inside the network: the public proxy refuses a request naming it.
    internal = re.search(r'if \(\$host = "(\w+)"\) \{([^}]*)\}', text)
    assert internal and internal.group(1) == env["INTERNAL_HOSTS"] and internal.group(2).split() == ["return", "421;"]


def test_gunicorn_starts_the_metrics_files_afresh_and_keeps_an_exited_workers_counts(tmp_path, monkeypatch):
    """The hooks as gunicorn calls them, on a multiprocess directory: the master's start removes a previous
    container's files; a worker's exit removes only its live gauges (prometheus-client's mark_process_dead)."""
    assert '"--config", "config/gunicorn.py"' in (ROOT / "Dockerfile").read_text()
    from types import SimpleNamespace

    from config import gunicorn

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "counter_1.db").write_bytes(b"")  # a previous container's worker
    gunicorn.on_starting(server=None)
    assert not list(tmp_path.iterdir())
    for name in ("counter_42.db", "gauge_livesum_42.db", "gauge_all_42.db"):
        (tmp_path / name).write_bytes(b"")
    gunicorn.child_exit(server=None, worker=SimpleNamespace(pid=42))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_42.db", "gauge_all_42.db"]

"""Flowsync settings: one module, every value from the environment.

Development defaults are safe and need no server: SQLite and a filesystem
Celery broker under ``var/``. Production changes values only through
environment variables (see docker-compose.yml and README "Configuration").
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from config.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_secret,
    env_str,
    require_deployment_secrets,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FLOWSYNC_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# The fallback key is only good for local development: with DEBUG off the app refuses to start
# on it (below, after FLOWSYNC_ENCRYPTION_KEYS), and docker-compose.yml without a real one.
DEVELOPMENT_SECRET_KEY = "dev-insecure-flowsync-key-change-me-0123456789abcdef"
SECRET_KEY = env_secret("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# Names the app answers to inside its own network only (docker-compose.yml: "web", which a Prometheus
# scraping /metrics sends as its Host): kept apart from ALLOWED_HOSTS, which a deployment sets to its domain.
ALLOWED_HOSTS += env_list("INTERNAL_HOSTS", [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "csp",
    "accounts",
    "mailer",
    "workspaces",
    "flows",
    "integrations",
    "field_mapping",
    "sync_logs",
    "alert_channels",
    "erasure",
    "health",
    "metrics",
]

MIDDLEWARE = [
    # First, so that every response carries the policy: redirects, static files and errors included.
    "csp.middleware.CSPMiddleware",
    "lib.middleware.request_body_limit",  # before anything reads the body (the policy header reads none)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "lib.middleware.session_idle_timeout",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "lib.middleware.destination_deadline",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "workspaces.context_processors.workspace_nav",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'flowsync.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        # Off, as in Django: the check is a "SELECT 1" round trip per request (~8% of the
        # capture API's throughput). Without it, after a database restart each stale
        # persistent connection fails one request and is then replaced.
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that a Celery worker started by a test sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache, Celery -----------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_FOLDER = Path(env_str("CELERY_FILESYSTEM_DIR", str(VAR_DIR / "celery")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: no server to run, good enough for one machine.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "store_processed": False,
        # Exchange tables (broadcast/pidbox): kombu's default is ./control, which
        # would litter whatever directory the worker was started from.
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
    }
    for _sub in ("queue", "processed", "control"):
        (CELERY_BROKER_FOLDER / _sub).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "flowsync")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is redelivered, not lost
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = env_str("CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule"))
CELERY_TIMEZONE = "UTC"
# Every periodic task, in one place. Each has an ``expires`` so that a tick nobody
# picks up in time is dropped rather than piling up behind a stopped worker.
HEARTBEAT_SECONDS = env_int("HEARTBEAT_SECONDS", 60)
CELERY_BEAT_SCHEDULE = {
    "health-heartbeat": {
        "task": "health.tasks.heartbeat_task",
        "schedule": float(HEARTBEAT_SECONDS),
        "options": {"expires": max(HEARTBEAT_SECONDS - 5, 1)},
    },
    "integrations-enqueue-due": {
        "task": "integrations.tasks.integrations_enqueue_due_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "sync-runs-reap": {
        "task": "integrations.tasks.sync_runs_reap_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "field-mapping-schemas-refresh": {
        "task": "field_mapping.tasks.schemas_refresh_stale_task",
        "schedule": 600.0,  # checks every 10 minutes for schemas older than an hour
        "options": {"expires": 550},
    },
    "sync-logs-purge": {
        "task": "sync_logs.tasks.sync_logs_purge_task",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # Contacts that never confirmed their address (double opt-in), some days after their link expired.
    "contacts-unconfirmed-purge": {
        "task": "flows.tasks.contacts_unconfirmed_purge_task",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # The database gauges of /metrics (metrics.gauges): a snapshot, so that a scrape counts nothing.
    "metrics-gauges-refresh": {
        "task": "metrics.tasks.metrics_gauges_refresh",
        "schedule": float(env_int("METRICS_GAUGES_SECONDS", 30)),
        "options": {"expires": 25},
    },
    # Alert deliveries whose task was lost (a broker restart) or whose worker died while sending.
    "alert-deliveries-resume": {
        "task": "alert_channels.tasks.alert_deliveries_resume",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Erasure steps whose task was lost or whose worker died while asking the destination.
    "erasure-steps-resume": {
        "task": "erasure.tasks.erasure_steps_resume",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The coming days' log partitions (PostgreSQL), hourly: a missed tick or two still leaves days ahead.
    "log-partitions-ensure": {
        "task": "sync_logs.tasks.log_partitions_ensure_task",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
}

# --- Auth -----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "workspaces:home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = env_list(
    "PASSWORD_HASHERS",
    [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ],
)

# --- Email ----------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds per SMTP operation: a stalled mail server fails the send (and the task retries) instead of
# holding a worker forever. Mail is sent by mailer.tasks.mail_send_task, never in a web request.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Flowsync <noreply@flowsync.localhost>")
MAIL_MAX_RETRIES = env_int("MAIL_MAX_RETRIES", 5)
MAIL_RETRY_SECONDS = env_int("MAIL_RETRY_SECONDS", 30)  # the first retry's delay; it doubles each time

# --- Alert channels (alert_channels/addresses.py) -------------------------------------------------
# Lets an alert webhook point at this machine (127.0.0.1, plain http) for a local receiver. Only with
# DEBUG on: in a deployment an admin's URL must never reach the hosts beside the worker.
ALERT_WEBHOOKS_ALLOW_LOOPBACK = DEBUG and env_bool("ALERT_WEBHOOKS_ALLOW_LOOPBACK", False)
# A failed delivery is tried again after this many seconds, doubling (±20%) up to the last attempt:
# 30 s and 6 attempts span about half an hour.
ALERT_DELIVERY_RETRY_SECONDS = env_int("ALERT_DELIVERY_RETRY_SECONDS", 30)
ALERT_DELIVERY_MAX_ATTEMPTS = env_int("ALERT_DELIVERY_MAX_ATTEMPTS", 6)

# --- Erasure requests (erasure/services.py) --------------------------------------------------------
# A destination is asked to delete an erased person this long after the request: longer than a batch
# claimed before may still take to push them (4 tries of 30 s, their backoff, at most 120 s of rate
# waits), so the delete comes after that push, never before.
ERASURE_DESTINATION_DELAY_SECONDS = env_int("ERASURE_DESTINATION_DELAY_SECONDS", 600)
# A destination step that failed is tried again after this, doubling (±20%), at most an hour apart, until done.
ERASURE_RETRY_SECONDS = env_int("ERASURE_RETRY_SECONDS", 60)

# --- Abuse limits (accounts/throttles.py, workspaces/services.py); 0 turns one off ----------------
# Failed log-ins (app and admin) per email address and per client address, counted over a sliding
# window of LOGIN_LOCKOUT_SECONDS: past the limit every attempt is refused until failures age out.
LOGIN_FAILURES_PER_ACCOUNT = env_int("LOGIN_FAILURES_PER_ACCOUNT", 10)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 50)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
PASSWORD_RESET_EVERY_SECONDS = env_int("PASSWORD_RESET_EVERY_SECONDS", 300)  # one reset mail per address
SIGNUPS_PER_IP_PER_HOUR = env_int("SIGNUPS_PER_IP_PER_HOUR", 10)
INVITATIONS_PER_USER_PER_DAY = env_int("INVITATIONS_PER_USER_PER_DAY", 20)
INVITATIONS_PER_WORKSPACE_PER_DAY = env_int("INVITATIONS_PER_WORKSPACE_PER_DAY", 50)
WORKSPACES_PER_USER_PER_DAY = env_int("WORKSPACES_PER_USER_PER_DAY", 10)
EMAIL_VERIFICATION_MAX_AGE_SECONDS = env_int("EMAIL_VERIFICATION_MAX_AGE_SECONDS", 3 * 24 * 3600)
EMAIL_VERIFICATION_RESEND_SECONDS = env_int("EMAIL_VERIFICATION_RESEND_SECONDS", 120)
EMAIL_VERIFICATION_RESENDS_PER_DAY = env_int("EMAIL_VERIFICATION_RESENDS_PER_DAY", 10)  # per address

# --- HTTP security ------------------------------------------------------------------
# FLOWSYNC_HTTPS is on in production (docker-compose.yml): secure cookies, HSTS, redirect.
HTTPS = env_bool("FLOWSYNC_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
# Health checks (Docker's, a load balancer's) speak plain HTTP to the app: a 301 would read as "down";
# so does a Prometheus scraping /metrics inside the app's network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
# BEHIND_PROXY: requests reach gunicorn only through our reverse proxy (docker-compose.yml), so its
# X-Forwarded-Proto and X-Forwarded-For can be believed; gunicorn must not be reachable otherwise.
BEHIND_PROXY = env_bool("BEHIND_PROXY", HTTPS)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
# Who the client is (lib/ratelimit.client_ip, for per-IP limits): X-Forwarded-For is read from the
# right past this many proxies of ours, each of which appended one entry, and past any hop inside
# FLOWSYNC_TRUSTED_PROXIES (CIDRs). 0 and no networks: REMOTE_ADDR, the header is ignored.
FLOWSYNC_TRUSTED_PROXY_COUNT = env_int("FLOWSYNC_TRUSTED_PROXY_COUNT", 1 if BEHIND_PROXY else 0)
FLOWSYNC_TRUSTED_PROXIES = env_networks("FLOWSYNC_TRUSTED_PROXIES")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# A session ends after this long without a request (lib.middleware.session_idle_timeout slides it).
SESSION_IDLE_TIMEOUT_SECONDS = env_int("SESSION_IDLE_TIMEOUT_SECONDS", 8 * 3600)
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT_SECONDS
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): the browser runs only the scripts and styles served from
# static/ (htmx, js/app.js, the admin's), never code or style written into a page, so data that
# reaches a page (a member's email, a flow's name) cannot run as script there. Templates use data
# attributes and classes; tests/test_page_security.py checks every page and every response.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        # The OAuth connect page adds the authorization server (integrations.views.integration_connect).
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Static files -------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Content-hashed names in every mode, DEBUG included (lib/staticfiles.py): WhiteNoise serves them
    # from STATIC_ROOT as immutable for a year. `collectstatic` fills STATIC_ROOT (the image's build,
    # ./run and the test suite run it).
    "staticfiles": {"BACKEND": "lib.staticfiles.HashedStaticFilesStorage"},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

ADMIN_URL = env_str("ADMIN_URL", "admin/")

# --- Secrets at rest (lib/crypto.py) -------------------------------------------------------
# Comma-separated Fernet keys, newest first. Empty in development: derived from SECRET_KEY.
FLOWSYNC_ENCRYPTION_KEYS = [k.strip() for k in env_secret("FLOWSYNC_ENCRYPTION_KEYS", "").split(",") if k.strip()]
# Fail closed: DEBUG off means a deployment, whose sessions must not be signed with a key printed
# above, nor its stored credentials encrypted with one derived from it.
require_deployment_secrets(
    debug=DEBUG,
    secret_key=SECRET_KEY,
    development_key=DEVELOPMENT_SECRET_KEY,
    encryption_keys=FLOWSYNC_ENCRYPTION_KEYS,
)

# --- Destinations --------------------------------------------------------------------------
# Base URLs are settings so the app, the tests and the benchmarks can point at the emulator.
ITERABLE_US_BASE_URL = env_str("ITERABLE_US_BASE_URL", "https://api.iterable.com").rstrip("/")
ITERABLE_EU_BASE_URL = env_str("ITERABLE_EU_BASE_URL", "https://api.eu.iterable.com").rstrip("/")
# Customer.io: the Track API (people, events) and the App API (looking people up), per region.
CUSTOMERIO_TRACK_US_BASE_URL = env_str("CUSTOMERIO_TRACK_US_BASE_URL", "https://track.customer.io").rstrip("/")
CUSTOMERIO_TRACK_EU_BASE_URL = env_str("CUSTOMERIO_TRACK_EU_BASE_URL", "https://track-eu.customer.io").rstrip("/")
CUSTOMERIO_APP_US_BASE_URL = env_str("CUSTOMERIO_APP_US_BASE_URL", "https://api.customer.io").rstrip("/")
CUSTOMERIO_APP_EU_BASE_URL = env_str("CUSTOMERIO_APP_EU_BASE_URL", "https://api-eu.customer.io").rstrip("/")
# Flowsync's own pace per Customer.io workspace, requests per second. The published Track figure went
# from 30 to 1000 over the years and is "not strictly enforced" (reference 4.1): 100, the lowest
# current one, keeps us clear of throttling and dropped data. The App API answers 429 over 10 (4.2).
CUSTOMERIO_RATE_PER_SECOND = env_int("CUSTOMERIO_RATE_PER_SECOND", 100)
CUSTOMERIO_APP_RATE_PER_SECOND = env_int("CUSTOMERIO_APP_RATE_PER_SECOND", 10)
# Requests of one batch in flight at once (a batch of 1,000 contacts is 10 requests of 100): the pace
# still spaces their sends; a slow answer no longer holds the next request back.
CUSTOMERIO_PUSH_CONCURRENCY = env_int("CUSTOMERIO_PUSH_CONCURRENCY", 4)
DESTINATION_TIMEOUT_SECONDS = env_int("DESTINATION_TIMEOUT_SECONDS", 30)
DESTINATION_MAX_RETRIES = env_int("DESTINATION_MAX_RETRIES", 3)
# How long one call may wait in total for rate-limit (429) backoff before giving up for now.
DESTINATION_MAX_RATE_WAIT_SECONDS = env_int("DESTINATION_MAX_RATE_WAIT_SECONDS", 120)
# Calls made inside a web request (connect, re-verify, refresh fields, the list picker): this
# timeout, no retries, no 429 waited out. Web threads serve every tenant's forms and capture API.
DESTINATION_WEB_TIMEOUT_SECONDS = env_int("DESTINATION_WEB_TIMEOUT_SECONDS", 5)
# All the calls of one web request together (auto-detect makes several): past it, no call is made.
DESTINATION_WEB_DEADLINE_SECONDS = env_int("DESTINATION_WEB_DEADLINE_SECONDS", 10)
# Pace Iterable calls under the documented per-project limits (reference 2.3). Off only for a
# project whose limits Iterable raised, or a benchmark of the engine itself: 429s are still honoured.
ITERABLE_CLIENT_PACING = env_bool("ITERABLE_CLIENT_PACING", True)
# The sync engine.
SYNC_BATCH_SIZE = env_int("SYNC_BATCH_SIZE", 1000)  # users per bulkUpdate, as the others do (split if over 4 MB)
# Pushes of one run in flight at once: a destination that takes its time to answer still gets every
# request its rate budget allows (the pacing spaces them; one person is never in two at once).
SYNC_PUSHES_IN_FLIGHT = env_int("SYNC_PUSHES_IN_FLIGHT", 4)
SYNC_MAX_ATTEMPTS = env_int("SYNC_MAX_ATTEMPTS", 5)  # for retryable failures, across runs
SYNC_RUN_TIMEOUT_SECONDS = env_int("SYNC_RUN_TIMEOUT_SECONDS", 600)  # no heartbeat for this long: abandoned
# A run is a slice of at most this long: it then claims no more, and a follow-up run takes the rest.
# Its lease (heartbeat) is not renewed past it either, so a run stuck for good is still reaped.
SYNC_RUN_MAX_SECONDS = env_int("SYNC_RUN_MAX_SECONDS", 3600)
# Slices: a run is carried by a chain of short tasks, each working at most this long and this many batches
# before it queues the next behind other work, so that workspaces share the workers (0: a run goes to
# its end in one task). A wait for the destination's rate budget longer than the last setting (a 429's
# Retry-After) gives the worker slot back, the next slice queued for when the budget has room.
SYNC_SLICE_SECONDS = env_float("SYNC_SLICE_SECONDS", 2.0)
SYNC_SLICE_BATCHES = env_int("SYNC_SLICE_BATCHES", 20)
SYNC_SLICE_YIELD_SECONDS = env_float("SYNC_SLICE_YIELD_SECONDS", 2.0)
SYNC_LOG_RETENTION_DAYS = env_int("SYNC_LOG_RETENTION_DAYS", 90)  # log rows go; run summaries stay
# The runs' HTTP exchanges (sync_logs.exchanges): the log retention unless shorter; their bodies make them the
# bulkier table of the two for runs of a few contacts.
EXCHANGE_LOG_RETENTION_DAYS = env_int("EXCHANGE_LOG_RETENTION_DAYS", SYNC_LOG_RETENTION_DAYS)
# The exchange log (sync_logs/exchanges.py): every HTTP try a run makes, kept as long as its log rows.
EXCHANGE_LOG_BODY_CHARS = env_int("EXCHANGE_LOG_BODY_CHARS", 4000)  # each body's text kept, masked, then cut
EXCHANGE_LOG_MAX_PER_RUN = env_int("EXCHANGE_LOG_MAX_PER_RUN", 2000)  # then only failed ones, as many again
EXCHANGE_LOG_SLOW_MS = env_int("EXCHANGE_LOG_SLOW_MS", 1000)  # the run page's "Slow" filter
# Tests only (lib/faults.py): crash or freeze a worker at a named point. Empty in every deployment.
FAULT_INJECTION = env_str("FLOWSYNC_FAULT_INJECTION", "")
# OAuth for Iterable: off unless a deployment has an authorization server (a broker or partner access).
ITERABLE_OAUTH_AUTHORIZE_URL = env_str("ITERABLE_OAUTH_AUTHORIZE_URL", "")
ITERABLE_OAUTH_TOKEN_URL = env_str("ITERABLE_OAUTH_TOKEN_URL", "")
ITERABLE_OAUTH_CLIENT_ID = env_str("ITERABLE_OAUTH_CLIENT_ID", "")
ITERABLE_OAUTH_CLIENT_SECRET = env_secret("ITERABLE_OAUTH_CLIENT_SECRET", "")
ITERABLE_OAUTH_SCOPES = env_str("ITERABLE_OAUTH_SCOPES", "users:write users:read")
ITERABLE_OAUTH_REGION = env_str("ITERABLE_OAUTH_REGION", "us")
ITERABLE_OAUTH_ENABLED = bool(
    ITERABLE_OAUTH_AUTHORIZE_URL
    and ITERABLE_OAUTH_TOKEN_URL
    and ITERABLE_OAUTH_CLIENT_ID
    and ITERABLE_OAUTH_CLIENT_SECRET
)

# --- Capture limits (public form page and capture API) ---------------------------------
CAPTURE_MAX_BATCH = env_int("CAPTURE_MAX_BATCH", 1000)
CAPTURE_MAX_BODY_BYTES = env_int("CAPTURE_MAX_BODY_BYTES", 5 * 1024 * 1024)
CAPTURE_MAX_VALUE_LENGTH = env_int("CAPTURE_MAX_VALUE_LENGTH", 2000)
# How stale the capture API may see a token or a flow definition (0 = always read the database).
CAPTURE_CACHE_SECONDS = env_int("CAPTURE_CACHE_SECONDS", 5)
# Requests per minute; 0 disables a limit (the capture benchmark does that).
RATELIMIT_FORM_PER_IP = env_int("RATELIMIT_FORM_PER_IP", 30)
RATELIMIT_FORM_PER_FLOW = env_int("RATELIMIT_FORM_PER_FLOW", 600)
# Email double opt-in (flows.services): how long a confirmation link works, and how many confirmation
# mails one inbox gets an hour (from every workspace) and one workspace sends an hour (no flooding, no bulk
# mail to strangers through Flowsync).
DOUBLE_OPT_IN_LINK_HOURS = env_int("DOUBLE_OPT_IN_LINK_HOURS", 72)
DOUBLE_OPT_IN_MAILS_PER_ADDRESS_PER_HOUR = env_int("DOUBLE_OPT_IN_MAILS_PER_ADDRESS_PER_HOUR", 3)  # all workspaces
DOUBLE_OPT_IN_MAILS_PER_WORKSPACE_PER_HOUR = env_int("DOUBLE_OPT_IN_MAILS_PER_WORKSPACE_PER_HOUR", 1000)
DOUBLE_OPT_IN_UNCONFIRMED_KEEP_DAYS = env_int("DOUBLE_OPT_IN_UNCONFIRMED_KEEP_DAYS", 30)  # after the link expired
RATELIMIT_API_PER_IP = env_int("RATELIMIT_API_PER_IP", 600)
# Erasures through the capture API (DELETE /api/v1/contacts) per workspace per hour.
RATELIMIT_API_ERASURES_PER_HOUR = env_int("RATELIMIT_API_ERASURES_PER_HOUR", 100)
RATELIMIT_API_PER_FLOW = env_int("RATELIMIT_API_PER_FLOW", 6000)
DATA_UPLOAD_MAX_MEMORY_SIZE = CAPTURE_MAX_BODY_BYTES + 1024
# Any request body, multipart file parts included, is refused over this before it is read
# (lib.middleware.request_body_limit). Room above the capture limit, so that the capture API and
# the public form still answer a body just over theirs in their own words. deploy/nginx.conf's
# client_max_body_size is the same number.
REQUEST_MAX_BODY_BYTES = env_int("REQUEST_MAX_BODY_BYTES", CAPTURE_MAX_BODY_BYTES + 1024 * 1024)
CONTACTS_PAGE_SIZE = env_int("CONTACTS_PAGE_SIZE", 50)
INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7)

# LOG_FORMAT=json: one JSON object per line (lib.logcontext), with the run, integration and workspace ids of
# the work in progress; plain appends them as key=value. Secrets are masked on every handler either way.
LOG_FORMAT = env_choice("LOG_FORMAT", ("plain", "json"), "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "lib.logcontext.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "lib.logcontext.JsonLineFormatter"},
    },
    "filters": {
        "redact_secrets": {"()": "lib.logredact.RedactSecretsFilter"},
        "log_context": {"()": "lib.logcontext.LogContextFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_secrets", "log_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# Metrics (lib.metrics, metrics/): /metrics answers a scraper holding METRICS_TOKEN (404 without one set);
# a Celery worker serves its pool's counters on METRICS_PORT (0: off), which must never be published.
METRICS_TOKEN = env_secret("METRICS_TOKEN", "")
METRICS_PORT = env_int("METRICS_PORT", 0)
METRICS_ADDR = env_str("METRICS_ADDR", "0.0.0.0")  # noqa: S104 - the worker container's own network
METRICS_GAUGES_SECONDS = env_int("METRICS_GAUGES_SECONDS", 30)

# Error reporting (lib.error_reporting): Sentry when SENTRY_DSN is set, personal data and secrets scrubbed
# from every event; tracing off unless SENTRY_TRACES_SAMPLE_RATE says otherwise.
SENTRY_DSN = env_str("SENTRY_DSN", "")
if SENTRY_DSN:
    from lib.error_reporting import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        environment=env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production"),
        release=env_str("SENTRY_RELEASE", ""),
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0),
    )

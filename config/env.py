"""Strict readers for settings that come from the environment.

Every setting is read through one of these so that a typo such as
``DEBUG=ture`` fails loudly at start-up instead of silently meaning False.
Secrets may also be given as ``<NAME>_FILE`` (a path), the Docker/Kubernetes
convention, so they never have to sit in the process environment.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from exc


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = env_str(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated CIDRs (``10.0.0.0/8, fd00::/8``); a bare address is a network of one."""
    try:
        return [ipaddress.ip_network(item) for item in env_list(name)]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from exc


def env_secret(name: str, default: str = "") -> str:
    """Read ``NAME``, or the contents of the file named by ``NAME_FILE``."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def require_deployment_secrets(
    *, debug: bool, secret_key: str, development_key: str, encryption_keys: list[str]
) -> None:
    """Refuse to start a deployment (DEBUG off) on the development SECRET_KEY or without Fernet keys.

    Every process reads settings first (gunicorn, the Celery worker and beat, manage.py), so each
    of them stops here with one message that says what to set. Malformed keys are refused whatever
    DEBUG says: they would fail only later, at the first credential stored.
    """
    from cryptography.fernet import Fernet

    problems = []
    for position, key in enumerate(encryption_keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            problems.append(f"FLOWSYNC_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe base64 bytes)")
    if not debug:
        if secret_key in {"", development_key}:
            problems.append(
                "SECRET_KEY is not set (the development key is refused): set a long random value, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )
        if not encryption_keys:
            problems.append(
                "FLOWSYNC_ENCRYPTION_KEYS is not set: Fernet keys for stored credentials, newest first, e.g. "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )
    if problems:
        scope = "" if debug else "DEBUG is off, so this is a deployment; "
        raise ImproperlyConfigured(f"Flowsync will not start: {scope}" + "; ".join(problems) + ".")

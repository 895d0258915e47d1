"""Secrets at rest: Fernet encryption with key rotation (MultiFernet).

``FLOWSYNC_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys, newest
first: the first encrypts, all of them decrypt. To rotate, put a new key in
front, deploy, run ``manage.py rotate_encryption_keys``, then drop the old key.
Without the setting (development) a key is derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """The ciphertext was made with a key we no longer have, or was tampered with."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"FLOWSYNC_ENCRYPTION_KEYS holds a key that is not a Fernet key: {exc}") from exc


def _keys() -> tuple[str, ...]:
    keys = tuple(settings.FLOWSYNC_ENCRYPTION_KEYS)
    if keys:
        return keys
    derived = base64.urlsafe_b64encode(hashlib.sha256(f"flowsync-secrets:{settings.SECRET_KEY}".encode()).digest())
    return (derived.decode(),)


def encrypt(value: dict[str, Any]) -> str:
    return _fernet(_keys()).encrypt(json.dumps(value).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    try:
        return json.loads(_fernet(_keys()).decrypt(token.encode()))
    except InvalidToken:
        raise DecryptionError(
            "cannot decrypt: the key it was encrypted with is not in FLOWSYNC_ENCRYPTION_KEYS"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt ``token`` with the newest key."""
    return _fernet(_keys()).rotate(token.encode()).decode()


class EncryptedJSONField(models.TextField):
    """A dict stored as Fernet ciphertext. Never searchable, never shown: read it in code only."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> dict | None:
        return None if value in (None, "") else decrypt(value)

    def to_python(self, value: Any) -> dict | None:
        if value is None or isinstance(value, dict):
            return value
        return decrypt(value)

    def value_to_string(self, obj: models.Model) -> str:
        # Serializers (dumpdata, fixtures) get ciphertext: a dump never holds a secret in clear.
        value = self.value_from_object(obj)
        return "" if value is None else encrypt(value)

    def get_prep_value(self, value: Any) -> str | None:
        if value is None or value == {}:
            return None if value is None else ""
        return encrypt(value)

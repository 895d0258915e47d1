"""A logging filter that masks credentials before any handler sees them.

It rewrites the formatted message of every record: ``Api-Key`` headers, bearer
tokens, and JSON/form fields named like a secret keep only their last 4
characters. Installed on the console handler in settings.LOGGING, and on the
handlers a Celery worker sets up in their place (config/celery.py).
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    # Api-Key: abc... / 'Api-Key': 'abc...' / "api_key": "abc..."
    re.compile(r"(?i)(['\"]?(?:api[-_]?key|x-api-key)['\"]?\s*[:=]\s*['\"]?)([A-Za-z0-9_\-\.]{6,})"),
    # Authorization: Bearer xyz
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9_\-\.~\+/=]{6,})"),
    # access_token / refresh_token / client_secret / password in JSON, dict reprs or form bodies
    re.compile(
        r"(?i)(['\"]?(?:access_token|refresh_token|id_token|client_secret|code_verifier|password|secret)['\"]?"
        r"\s*[:=]\s*['\"]?)([^\s'\"&,}]{4,})"
    ),
]


def mask(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) > 8 else "…"


# Every pattern above needs one of these words: a text holding none (most log lines, nearly every request body
# an exchange log keeps) is returned after one pass of plain substring searches, not three regex scans.
_HINTS = ("key", "bearer", "token", "secret", "password", "verifier")


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + mask(m.group(2)), text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logged as it is
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True

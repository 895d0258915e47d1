"""Fields every log line carries while a piece of work runs: the run, the integration, the workspace, the task.

``log_context(run_id=..., ...)`` sets them for the code it wraps (a contextvar: threads started inside
do not inherit them, and nested contexts add to the outer one); :class:`LogContextFilter`, on every
handler (settings.LOGGING, config/celery.py), copies them onto each record. The JSON format
(``LOG_FORMAT=json``) writes them as keys of the line; the plain format appends them as ``key=value``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from lib.logredact import redact

_fields: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_fields", default={})  # noqa: B039 - never mutated


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


def log_fields() -> dict[str, Any]:
    return dict(_fields.get())


class LogContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _fields.get()
        for key, value in context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        record.context = " ".join(f"{k}={v}" for k, v in context.items())
        return True


class PlainFormatter(logging.Formatter):
    """``time level logger: message`` and the context's ``key=value`` pairs, when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = getattr(record, "context", "")
        return f"{line} [{context}]" if context else line


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line (python-json-logger): time, level, logger, message, the context's fields and
    whatever ``extra`` a call gave. ``context`` itself is left out: its fields are keys already."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("context", None)
        # SECURITY: an ``extra`` string is not the message the redaction filter rewrote; masked here too.
        for key, value in log_data.items():
            if isinstance(value, str):
                log_data[key] = redact(value)

    def formatException(self, ei: Any) -> str:
        # SECURITY: python-json-logger formats the traceback afresh from the exception, not from the masked
        # ``exc_text`` the redaction filter left on the record: it is masked again here.
        return redact(super().formatException(ei))

"""What every destination offers the rest of Flowsync, and the errors it raises.

The sync engine and the views know destinations only through this module: the
four verbs of :class:`Destination` and the :class:`DestinationError` hierarchy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol


class DestinationError(Exception):
    """A call to a destination failed. ``retryable`` says whether trying again later may work;
    ``retry_after`` is how many seconds the destination asked us to wait first, when it said."""

    retryable = False
    default_code = "destination_error"

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        params: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status
        self.params = params
        self.retry_after = retry_after


class AuthError(DestinationError):
    """The key or token is not (or no longer) accepted: revoked key, expired token, wrong data center."""

    default_code = "auth_failed"


class ForbiddenError(DestinationError):
    """The key is valid but may not call this endpoint (a read-only or client-side key)."""

    default_code = "forbidden"


class NotFoundError(DestinationError):
    default_code = "not_found"


class ConflictError(DestinationError):
    default_code = "conflict"


class ValidationError(DestinationError):
    """The destination refused the request's content. ``field_errors`` maps a field to what is wrong."""

    default_code = "invalid"

    def __init__(self, message: str, *, field_errors: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field_errors = field_errors or {}


class TypeMismatchError(ValidationError):
    """A batch was refused whole because one value does not fit a field's type (split it to find which)."""

    default_code = "type_mismatch"


class PayloadTooLargeError(ValidationError):
    """A batch was refused whole for its size (split it)."""

    default_code = "payload_too_large"


class RateLimitedError(DestinationError):
    retryable = True
    default_code = "rate_limited"


class BusyError(RateLimitedError):
    """A call someone waits for in a web request found no room in the rate budget (ours, or the
    destination's 429) and was not waited for. ``try_again_in`` is whole seconds, at least 1."""

    default_code = "busy"

    def __init__(self, destination: str, retry_after: float | None, **kwargs: Any) -> None:
        self.try_again_in = max(1, math.ceil(retry_after or 1))
        kwargs.setdefault("code", self.default_code)
        super().__init__(
            f"{destination} is busy, try again in {self.try_again_in} s.", retry_after=retry_after, **kwargs
        )


class ServerError(DestinationError):
    retryable = True
    default_code = "server_error"


class TransportError(DestinationError):
    """Timeout, refused or dropped connection: the request may or may not have arrived."""

    retryable = True
    default_code = "transport_error"


class DeadlineError(TransportError):
    """A web request's time for destination calls (DESTINATION_WEB_DEADLINE_SECONDS) ran out: this
    call was not made."""

    default_code = "web_deadline"

    def __init__(self, destination: str, seconds: float, **kwargs: Any) -> None:
        super().__init__(
            f"{destination} is slow to answer: this page stopped waiting after {seconds:g} s. Try again in a minute.",
            **kwargs,
        )


class UnexpectedAnswerError(DestinationError):
    """A 2xx whose body is not the documented answer (a proxy's page, an empty or cut-off body, counts
    that do not add up). Nothing proves the request took effect, so it is tried again later; a
    resend is harmless (upserts, idempotent subscriptions)."""

    retryable = True
    default_code = "unexpected_answer"


@dataclass(frozen=True)
class DestinationField:
    name: str
    type: str  # the destination's own type name, lower-cased


@dataclass
class RecordResult:
    """The outcome of one record of a push."""

    identifier: str
    delivered: bool
    code: str = ""
    message: str = ""
    retryable: bool = False


@dataclass
class VerifyResult:
    region: str
    key_type: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Destination(Protocol):
    kind: str

    def verify(self) -> VerifyResult:
        """Check the credentials work and may write; raise a :class:`DestinationError` saying why not."""

    def fetch_fields(self) -> list[DestinationField]:
        """The destination's user fields and their types."""

    def push(self, records: list[dict[str, Any]], *, create_new_fields: bool = False) -> list[RecordResult]:
        """Send one batch of mapped records; one result per record, in order. A delivered result may carry
        a code and message: delivered with a warning (e.g. fields the destination dropped)."""

    def find_existing(self, records: list[dict[str, Any]]) -> list[bool]:
        """Whether each mapped record's user already exists in the destination, in order. Records, not
        bare identifiers: the destination looks a user up by what the record carries (email or userId)."""

    def subscribe(self, list_id: int, records: list[dict[str, Any]]) -> list[RecordResult]:
        """Add the records' users to a list; one result per record, in order (delivered = subscribed)."""

    def track(self, event_name: str, record: dict[str, Any], data_fields: dict[str, Any]) -> None:
        """One event for the record's user; raises a :class:`DestinationError` when it is not confirmed."""

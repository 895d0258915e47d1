"""What every destination offers the rest of Flowsync, and the errors it raises.

The sync engine, the mapping, the views and the logs know destinations only
through this module and the registry (integrations.destinations): the class
attributes and verbs of :class:`Destination`, the neutral :class:`MappedRecord`
that a mapping produces, and the :class:`DestinationError` hierarchy. Each
destination is one package that subclasses :class:`Destination`; nothing
outside it names the destination or its data model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar


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


class BudgetWait(Exception):
    """A sync run's request would wait longer than its slice sleeps out for the rate budget (a 429's
    Retry-After): it was not sent, and the run hands its worker slot back (integrations.engine)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the rate budget has room in {seconds:.1f}s")
        self.seconds = seconds


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


class ConnectError(Exception):
    """Connecting failed; ``message`` tells the admin what is wrong and what to do. Nothing was stored.
    ``field`` names the connect form's field it is about, when it is about one."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message, self.field, self.code = message, field, code


class CoercionError(ValueError):
    """A value a destination field cannot take; its message is for the sync log ("age → age: ...")."""


@dataclass(frozen=True)
class DestinationField:
    name: str
    type: str  # the destination's own type name, lower-cased


@dataclass
class RecordResult:
    """The outcome of one record of a push. ``code`` is Flowsync's (one of STABLE_CODES, or a code the
    destination's ``stable_codes`` maps to one); ``destination_code`` is what the destination itself
    called it, when it named it (kept beside it in the log for support)."""

    identifier: str
    delivered: bool
    code: str = ""
    message: str = ""
    retryable: bool = False
    destination_code: str = ""


# Flowsync's own error codes, the same for every destination: what a log row's error_code holds
# (sync_logs.explain words each; the admin filters by them). A destination's own code for the
# cause goes beside it (SyncRecord.destination_code).
STABLE_CODES = frozenset(
    {
        # the mapping and the engine
        "mapping_error",
        "no_identifier",
        "superseded",
        "existing_user",
        # the destination's answer about one record
        "invalid",
        "invalid_data",
        "invalid_identifier",
        "type_mismatch",
        "over_limit",
        "payload_too_large",
        "conflict",
        "forgotten",
        "not_found",
        "fields_filtered_out",
        "unexpected_answer",
        # the destination as a whole
        "rate_limited",
        "busy",
        "server_error",
        "transport_error",
        "web_deadline",
        "auth_failed",
        "forbidden",
        "not_connected",
        "lookup_unavailable",
        "destination_error",
    }
)
# The shared transport's fallbacks when an answer names no code of its own.
_HTTP_CODES = {
    "http_400": "invalid",
    "http_401": "auth_failed",
    "http_403": "forbidden",
    "http_404": "not_found",
    "http_409": "conflict",
    "http_413": "payload_too_large",
    "http_429": "rate_limited",
}


def shared_stable_code(code: str) -> str | None:
    """Flowsync's code for a code that means the same whatever the destination: a stable code itself,
    or the shared transport's ``http_<status>`` fallback; None for a code only a destination knows.
    One mapping for the engine (through Destination.stable_code) and for the log viewer's words."""
    if code in STABLE_CODES:
        return code
    if code.startswith("http_5"):
        return "server_error"
    return _HTTP_CODES.get(code)


@dataclass
class VerifyResult:
    region: str = ""
    key_type: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Connection:
    """What a destination's connect step hands back once the credentials are verified: stored as they
    are (credentials encrypted), nothing of it checked again by the caller."""

    credentials: dict[str, Any]
    config: dict[str, Any]
    key_last4: str = ""
    auth_method: str = "api_key"
    # For the audit log and the success message: no secret in it.
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class MappedRecord:
    """One contact as a mapping makes it, before any destination's shape: what identifies the person
    (identifier name -> value, the one it is keyed by first) and the attributes, by dotted path, as
    the destination's coercion made them (None: erase the attribute)."""

    identifiers: dict[str, str]
    attributes: dict[str, Any]

    @property
    def key(self) -> str:
        return next(iter(self.identifiers.values()), "")


@dataclass(frozen=True)
class CatalogueField:
    """A destination field a form field may be mapped to."""

    name: str
    type: str
    identifier: bool = False


class Capability:
    SCHEMA = "schema"  # fetches its field names and types (else: reserved attributes plus free names)
    LISTS = "lists"  # synced people can join one of its lists
    EVENTS = "events"  # an event per contact
    LOOKUP = "lookup"  # finds out whether a person exists ("leave existing people unchanged")
    OAUTH = "oauth"  # connects by OAuth too
    DEVICES = "devices"  # registers a mobile device (push token) for a person
    SUBSCRIPTIONS = "subscriptions"  # a consent field's answer subscribes (or unsubscribes) the person


class Destination:
    """One destination: what it declares (class attributes and class methods: no credentials needed)
    and the verbs of a client for one connected integration (instance methods).

    The declarations cover everything the shared code needs to know about a destination without
    naming it: its tile, its connect form and checks, its configuration, its field catalogue and
    rules, how a neutral record becomes its request body, its capabilities and the plain words for
    its errors. A destination overrides what it has; the defaults describe a destination with none.
    """

    do_not_call_in_templates = True  # templates read a destination class's attributes; never instantiate it
    kind: ClassVar[str]
    label: ClassVar[str]
    blurb: ClassVar[str] = ""
    logo: ClassVar[str] = ""  # a static path
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # The connect page: its form class (credentials in) and the template of what differs on it.
    connect_form: ClassVar[type | None] = None  # a django.forms.Form
    connect_template: ClassVar[str] = ""
    # The names a form field may map to that identify a person (not attributes).
    identifier_names: ClassVar[tuple[str, ...]] = ()
    # The destination type a new attribute gets, by the form field's type (flows.models.FieldType).
    new_field_types: ClassVar[dict[str, str]] = {}
    push_endpoint: ClassVar[str] = ""  # the request a push makes ("POST /path"), as the mapping preview names it
    # Standard form fields and where they usually go.
    suggested_targets: ClassVar[dict[str, str]] = {}
    oauth: ClassVar[OAuthFlow | None] = None
    # Its own codes (of answers and of its client) -> Flowsync's (STABLE_CODES).
    stable_codes: ClassVar[dict[str, str]] = {}

    # --- declarations --------------------------------------------------------------------------

    @classmethod
    def connect(cls, data: dict[str, Any], *, bucket_id: str) -> Connection:
        """Verify the connect form's cleaned ``data`` (interactive calls); raise ConnectError saying why not."""
        raise NotImplementedError

    @classmethod
    def stable_code(cls, code: str) -> str:
        """Flowsync's code for ``code``: one of STABLE_CODES ("destination_error" for one nobody knows)."""
        if code in STABLE_CODES:
            return code
        if code in cls.stable_codes:
            return cls.stable_codes[code]
        return shared_stable_code(code) or "destination_error"

    @classmethod
    def supports(cls, capability: str, config: dict[str, Any]) -> bool:
        """Whether an integration with ``config`` can do ``capability`` (some need an optional key)."""
        return capability in cls.capabilities

    @classmethod
    def unsupported_reason(cls, capability: str, config: dict[str, Any]) -> str:
        """Why it cannot, in words for the admin ("" when it can, or says nothing)."""
        return ""

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The stored configuration, checked and completed with defaults; raises ValueError."""
        return dict(config)

    @classmethod
    def describe_config(cls, config: dict[str, Any]) -> str:
        """One line for the integration's page: where it sends (region, project type, workspace)."""
        return ""

    @classmethod
    def accepted_identifiers(cls, config: dict[str, Any]) -> tuple[str, ...]:
        """The identifiers a record may be keyed by under ``config``, the preferred first."""
        return cls.identifier_names

    # A destination package's data-model module and words module. The declarations below that a
    # package does not override read them: rules.catalogue(schema_fields),
    # rules.new_field_problem(name, schema_fields=...), rules.coerce(value, type, field),
    # rules.identifier_value(name, value), rules.payload(record), rules.sent_values(payload, key),
    # words.explain(code, message, retryable).
    rules: ClassVar[Any] = None
    words: ClassVar[Any] = None

    @classmethod
    def catalogue(cls, config: dict[str, Any], schema_fields: dict[str, str]) -> list[CatalogueField]:
        """The fields a form field may be mapped to: from the fetched schema, or the reserved ones."""
        if cls.rules is not None:
            return cls.rules.catalogue(schema_fields)
        return [CatalogueField(name, kind, name in cls.identifier_names) for name, kind in schema_fields.items()]

    @classmethod
    def new_field_problem(cls, name: str, *, config: dict[str, Any], schema_fields: dict[str, str]) -> str:
        """Why ``name`` cannot be a new attribute, or ""."""
        return cls.rules.new_field_problem(name, schema_fields=schema_fields) if cls.rules is not None else ""

    @classmethod
    def identifier_problem(cls, name: str, source_type: str) -> str:
        """Why a form field of ``source_type`` cannot go to identifier ``name``, or ""."""
        if name == "email" and source_type != "email":
            return f"Only an email field can be mapped to {cls.label}'s email."
        return ""

    @classmethod
    def coerce(cls, value: Any, destination_type: str, field: str) -> Any:
        """The value for an attribute of ``destination_type``; raises CoercionError."""
        return cls.rules.coerce(value, destination_type, field)

    @classmethod
    def identifier_value(cls, name: str, value: Any) -> str:
        """The identifier as the destination wants it; raises CoercionError when it would refuse it."""
        return cls.rules.identifier_value(name, value)

    @classmethod
    def payload(cls, record: MappedRecord, config: dict[str, Any]) -> dict[str, Any]:
        """The destination's body for one record (what the sync log shows as sent)."""
        return cls.rules.payload(record)

    @classmethod
    def sent_values(cls, payload: dict[str, Any], key: str) -> dict[str, Any]:
        """The values a payload sets, by neutral path (attributes by their dotted path; an identifier
        other than ``key`` by its name): the inverse of :meth:`payload`, for logged payloads."""
        return cls.rules.sent_values(payload, key)

    @classmethod
    def request_preview(cls, payloads: list[dict[str, Any]], *, create_new_fields: bool) -> dict[str, Any]:
        """The exact request body a push of ``payloads`` sends (the mapping preview)."""
        raise NotImplementedError

    @classmethod
    def explain(cls, code: str, message: str, retryable: bool) -> tuple[str, str] | None:
        """A sync-log error of its own in plain words: (what happened, what to do), or None when the
        code is not one of its own (the shared words of sync_logs.explain then apply)."""
        return cls.words.explain(code, message, retryable) if cls.words is not None else None

    @classmethod
    def for_integration(cls, integration: Any, *, interactive: bool = False) -> Destination:
        """A client for a connected integration (its credentials decrypted). ``interactive``: for a call
        made inside a web request (short timeout, no retries, no waiting for the rate budget)."""
        raise NotImplementedError

    # --- verbs of a connected client -------------------------------------------------------------

    # The endpoint a push spends the budget of ("METHOD /path" of its client's rates): budget_wait's.
    push_endpoint: ClassVar[str] = ""

    def budget_wait(self) -> float:
        """Seconds until the push endpoint's rate budget has room, taking nothing (0 when it has room, or
        is not paced). A sync run facing a long wait hands its worker slot back (integrations.engine)."""
        client = getattr(self, "client", None)  # an HTTP destination's client (destinations.http)
        return client.budget_wait(self.push_endpoint) if client is not None and self.push_endpoint else 0.0

    def http_clients(self) -> list[Any]:
        """The HTTP clients (destinations.http) this destination calls through: an HTTP destination's
        ``client``, and whatever else it has (an override)."""
        client = getattr(self, "client", None)
        return [client] if client is not None else []

    def hand_back_waits(self, over: float | None) -> None:
        """Raise BudgetWait instead of waiting for the rate budget longer than ``over`` seconds (None:
        wait, as runs in one go and web requests do)."""
        client = getattr(self, "client", None)  # the push's client: other calls wait as they always did
        if client is not None:
            client.yield_after = over

    def record_exchanges(self, run_id: int | None, recorder: Any = None) -> None:
        """Name ``run_id`` on every request's exchanges from now on and show each to ``recorder`` (a run's
        exchange log, sync_logs.exchanges); None stops both."""
        for client in self.http_clients():
            client.run_id, client.recorder = run_id, recorder

    def identifier_of(self, payload: dict[str, Any]) -> str:
        """What a log row names this payload's person by."""
        raise NotImplementedError

    def verify(self) -> VerifyResult:
        """Check the credentials work and may write; raise a :class:`DestinationError` saying why not."""
        raise NotImplementedError

    def fetch_fields(self) -> list[DestinationField]:
        """The destination's fields and their types (Capability.SCHEMA)."""
        raise NotImplementedError

    def push(self, records: list[dict[str, Any]], *, create_new_fields: bool = False) -> list[RecordResult]:
        """Send one batch of payloads; one result per record, in order. A delivered result may carry a
        code and message: delivered with a warning (e.g. fields the destination dropped). Raises
        TypeMismatchError or PayloadTooLargeError when the batch was refused whole for a record it
        cannot name (the engine splits it)."""
        raise NotImplementedError

    def find_existing(self, records: list[dict[str, Any]]) -> list[bool]:
        """Whether each payload's person exists already, in order (Capability.LOOKUP)."""
        raise NotImplementedError

    def lists(self) -> list[dict[str, Any]]:
        """The lists synced people may join, as {"id", "name"} (Capability.LISTS)."""
        raise NotImplementedError

    def subscribe(self, list_id: int, records: list[dict[str, Any]]) -> list[RecordResult]:
        """Add the payloads' people to a list; one result per record, in order (delivered = subscribed)."""
        raise NotImplementedError

    def subscription_targets(self) -> list[dict[str, str]]:
        """What a consent field can subscribe people to, as {"id", "name"}: ids are the destination's own
        opaque strings, names say what kind of subscription each is (Capability.SUBSCRIPTIONS)."""
        raise NotImplementedError

    def subscriptions_apply(self, target: str, subscribe: bool, records: list[dict[str, Any]]) -> list[RecordResult]:
        """Subscribe the payloads' people to ``target`` (one of :meth:`subscription_targets`), or unsubscribe
        them, touching no other subscription they have; one result per record, in order."""
        raise NotImplementedError

    def track(self, event_name: str, record: dict[str, Any], data: dict[str, Any], *, event_id: str = "") -> None:
        """One event for the payload's person, with a stable ``event_id`` so that a resend does not
        add a second; raises a :class:`DestinationError` when it is not confirmed (Capability.EVENTS)."""
        raise NotImplementedError

    def device_register(self, record: dict[str, Any], device: dict[str, Any]) -> None:
        """Register ``device`` (flows.devices: token, platform APNS|APNS_SANDBOX|GCM, app_name, attributes)
        for the payload's person, who exists already; raises a :class:`DestinationError` when it
        is not confirmed (Capability.DEVICES)."""
        raise NotImplementedError

    def device_disable(self, token: str, identifiers: dict[str, str]) -> None:
        """Stop pushes to the device ``token``: of the person ``identifiers`` name (the destination's identifier
        names as a mapping made them, or ``email`` / ``user_id`` as the capture API was given them), or, with
        none, of whoever has it where the destination can do that. Raises a
        :class:`DestinationError` when it is not confirmed (Capability.DEVICES)."""
        raise NotImplementedError

    def erase(self, people: list[dict[str, str]], *, forget: bool = False) -> list[RecordResult]:
        """Delete each person, named by their identifiers as a mapping made them (MappedRecord.identifiers),
        one result per person in order (delivered = erased). With ``forget`` the destination is also kept
        from collecting data about them again, where it offers that. A person it does not know is erased.
        Raises a :class:`DestinationError` for what stops them all (a refused key, an outage)."""
        raise NotImplementedError


class OAuthFlow:
    """A destination's OAuth sign-in (Capability.OAUTH), as the shared connect views drive it."""

    start_form: ClassVar[type | None] = None  # what the admin picks before signing in (a django.forms.Form)

    def enabled(self) -> bool:
        return False

    def disabled_reason(self) -> str:
        return ""

    def authorization_origin(self) -> str:
        """The authorization server's origin (the connect page's CSP allows a form post to it)."""
        raise NotImplementedError

    def check_start(self, choices: dict[str, Any]) -> None:
        """Refuse (ConnectError) a sign-in bound to fail, before the admin is sent away."""

    def authorization_request(self, redirect_uri: str) -> tuple[str, str, str]:
        """(URL to send the browser to, state, PKCE code verifier)."""
        raise NotImplementedError

    def connect(
        self, *, code: str, code_verifier: str, redirect_uri: str, choices: dict[str, Any], bucket_id: str
    ) -> Connection:
        """Exchange the code and verify the tokens; raise ConnectError saying why not."""
        raise NotImplementedError

"""What the Iterable emulator remembers: projects, keys, users, fields, lists,
events, OAuth grants, and the knobs tests turn (latency, faults, rate limits)."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from emulators.common import fault_take

# Key types and what each may call (reference 1.2). Read-only keys may call GETs.
SERVER_SIDE, READ_ONLY, MOBILE, JAVASCRIPT = "server_side", "read_only", "mobile", "javascript"
KEY_TYPES = (SERVER_SIDE, READ_ONLY, MOBILE, JAVASCRIPT)
MOBILE_ENDPOINTS = {
    ("POST", "/api/users/update"),
    ("POST", "/api/users/updateEmail"),
    ("POST", "/api/users/updateSubscriptions"),
    ("POST", "/api/users/registerDeviceToken"),
    ("POST", "/api/users/disableDevice"),
    ("POST", "/api/events/track"),
    ("POST", "/api/events/trackPushOpen"),
    ("POST", "/api/events/trackInAppOpen"),
    ("POST", "/api/events/trackInAppClick"),
    ("POST", "/api/events/trackInAppClose"),
    ("POST", "/api/events/trackInAppDelivery"),
    ("POST", "/api/events/inAppConsume"),
    ("POST", "/api/commerce/trackPurchase"),
    ("POST", "/api/commerce/updateCart"),
    ("GET", "/api/inApp/getMessages"),
}
JAVASCRIPT_ENDPOINTS = {("POST", "/api/users/registerBrowserToken"), ("POST", "/api/events/trackWebPushClick")}

EMAIL_BASED, USERID_BASED, HYBRID = "email", "userId", "hybrid"

# Requests per second per project (reference 2.3), by the emulator's route name.
RATE_LIMITS = {
    "users.update": 500,
    "users.bulkUpdate": 5,
    "users.getFields": 3,
    # The four lookups: 100 rps each, not one budget between them.
    "users.getByEmail": 100,
    "users.byEmailPath": 100,
    "users.byUserId": 100,
    "users.byUserIdPath": 100,
    "events.track": 2000,
    "lists.get": 100,
    "users.delete": 100,
    "users.deleteByUserId": 100,
    "users.forget": 3,
    "users.registerDeviceToken": 500,
    "users.disableDevice": 500,
    # Swagger GET /api/channels and GET /api/messageTypes: "100 requests/second, per project". The
    # subscription endpoints (PUT/PATCH/DELETE /api/subscriptions/..., updateSubscriptions) state none.
    "channels.get": 100,
    "messageTypes.get": 100,
}
FORGET_DAILY_CAP = 1000  # forget calls per project per 24 h (reference 2.3): past it, 429
# reference 2.2: "Max body size: 4 MB" per bulkUpdate, read as 4,000,000 bytes; the client splits
# its batches under the same number (integrations/destinations/iterable.py MAX_BULK_BYTES).
MAX_BULK_BODY = 4_000_000

_DATE_FORMATS = [
    re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"),
    re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{2}:\d{2}$"),
    re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}([+-]\d{2}:\d{2}|Z)$"),
]


def infer_type(value: Any) -> str:
    """The type Iterable gives a new field from its first value (reference 3)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "date" if any(p.match(value) for p in _DATE_FORMATS) else "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return infer_type(value[0]) if value else "string"
    return "string"


def incoming_types(value: Any) -> list[str]:
    kind = infer_type(value)
    return ["string", "keyword"] if kind == "string" else [kind]


def fits(expected: str, value: Any) -> bool:
    """Whether ``value`` may be stored in a field of type ``expected``."""
    if value is None:
        return True
    if isinstance(value, list):
        return all(fits(expected, item) for item in value)
    expected = expected.lower()
    kind = infer_type(value)
    if expected == "double":
        return kind in ("double", "long")
    if expected == "string":
        return kind in ("string", "date")  # a date-looking string is still a string
    return kind == expected


@dataclass
class Project:
    project_id: int
    project_type: str = HYBRID
    region: str = "us"
    allow_new_fields: bool = True
    fields: dict[str, str] = field(default_factory=dict)
    users: dict[int, dict] = field(default_factory=dict)
    by_email: dict[str, int] = field(default_factory=dict)
    by_user_id: dict[str, int] = field(default_factory=dict)
    lists: dict[int, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    event_positions: dict[str, int] = field(default_factory=dict)  # event id -> its index in events
    next_user: int = 1
    # People who asked to be forgotten (GDPR): Iterable keeps refusing them (failedUpdates.forgottenEmails).
    forgotten: set[str] = field(default_factory=set)
    forgotten_user_ids: set[str] = field(default_factory=set)
    forget_calls: list[float] = field(default_factory=list)  # times of the last day's forget calls (the cap)
    # Successful writes of a user, and those that found the user already there: with one write per
    # person expected (a benchmark's unique emails), a rewrite is a duplicate delivery.
    writes: int = 0
    rewrites: int = 0
    # Channels and message types (Swagger ChannelDetails, MessageTypeDetails), by id: the same few in
    # every project (see seed_subscription_groups), so that tests and the demo can name them.
    channels: dict[int, dict] = field(default_factory=dict)
    message_types: dict[int, dict] = field(default_factory=dict)
    # The Subscriptions API (PUT/PATCH/DELETE /api/subscriptions/...) is a feature "your customer success
    # manager" enables (Swagger; peers-consent-erasure 2.1): when off, its endpoints answer 404 "Endpoint
    # not found". On by default here, so that a test of the off case says so.
    subscriptions_api: bool = True
    # Its success answer: Swagger lists both 200 (IterableApiResponse) and 202 ("Accepted a request ...",
    # no body) for the bulk PUT and for each single-user PATCH/DELETE; this one setting picks for all three.
    subscriptions_bulk_status: int = 200

    def __post_init__(self) -> None:
        for name, kind in {
            "email": "string",
            "userId": "string",
            "phoneNumber": "string",
            "firstName": "string",
            "lastName": "string",
            "signupDate": "date",
            "profileUpdatedAt": "date",
            "emailListIds": "long",
        }.items():
            self.fields.setdefault(name, kind)
        seed_subscription_groups(self)


# What every project starts with (the ids are the emulator's; a real project's are its own).
SEEDED_CHANNELS = (
    {"id": 1, "name": "Marketing email", "channelType": "Marketing", "messageMedium": "Email"},
    {"id": 2, "name": "Transactional email", "channelType": "Transactional", "messageMedium": "Email"},
)
SEEDED_MESSAGE_TYPES = (
    {"id": 11, "name": "Newsletter", "channelId": 1, "subscriptionPolicy": "OptIn"},
    {"id": 12, "name": "Product updates", "channelId": 1, "subscriptionPolicy": "OptOut"},
)
SEEDED_AT_MS = 1_700_000_000_000  # createdAt/updatedAt of the seeded message types: fixed, so answers compare


def seed_subscription_groups(project: Project) -> None:
    for channel in SEEDED_CHANNELS:
        project.channels.setdefault(channel["id"], dict(channel))
    for message_type in SEEDED_MESSAGE_TYPES:
        project.message_types.setdefault(
            message_type["id"], {**message_type, "createdAt": SEEDED_AT_MS, "updatedAt": SEEDED_AT_MS}
        )


@dataclass
class Key:
    key: str
    key_type: str
    project_id: int
    region: str = "us"
    # The status a call this key type may not make is refused with: None follows the emulator's
    # refusal_status. Iterable's Swagger lists only 401 "Invalid API key" on getFields, bulkUpdate
    # and users/update, and 403 on users/merge for "a specific API key type": either may come.
    refusal_status: int | None = None
    # A client-side key set to require JWT (reference 1.2): refused 401 without a JWT, as any unknown key.
    jwt_required: bool = False


@dataclass
class Fault:
    path: str  # an API path, or "*"
    kind: str  # "status" | "timeout" | "drop"
    status: int = 500
    seconds: float = 0.0
    times: int = 1
    body: dict | None = None
    headers: dict[str, str] | None = None  # e.g. a Retry-After on a 503
    after: int = 0  # matching requests let through before the fault starts (fail the 2nd request of a batch)
    # kind "status" with ``raw``: that text as the body, not JSON (a proxy's HTML page, an empty body).
    raw: str | None = None
    content_type: str = "text/html"
    # kind "truncate": the request is carried out, then its JSON answer is cut to ``cut`` bytes (half by default).
    cut: int | None = None


class Bucket:
    """A token bucket: ``rate`` per second, ``burst`` requests of burst (default: one second's worth).

    Iterable says its limits are a leaky bucket and documents no burst (reference 2.3): a burst of 1
    is the strictest reading, where two requests closer than 1/rate are a 429."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = rate if burst is None else max(1.0, burst)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class EmulatorState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.RLock()):
            self.projects: dict[int, Project] = {}
            self.keys: dict[str, Key] = {}
            self.latency_ms = 0
            # Each API request waits a random 0..arrival_jitter_ms before the rate limit sees it, as if it
            # had spent that long on the network: requests sent evenly arrive unevenly.
            self.arrival_jitter_ms = 0
            self.refusal_status = 403  # see Key.refusal_status
            # Whether a JavaScript key may call users/update: the reference's list of its endpoints is cut
            # off, and Iterable's JS SDK calls it (updateUser). Either way may be true.
            self.javascript_may_update_users = False
            self.rate_burst: float | None = None  # see Bucket
            self.rate_limits_on = True
            self.rate_limit_overrides: dict[str, float] = {}
            self.retry_after: int | None = None
            # RequestFieldsTypesMismatched's params.validationErrors: "every" field a request gets wrong (each
            # with the first value refused for it), or only the "first" one. The reference's example has one field.
            self.mismatch_report = "every"
            # What DELETE /api/users/... answers for a user the project does not have: the documents
            # list only 200, 400 and 401, so a 200 (asynchronous: accepted) or a 404 (NotFound) may both be it.
            self.missing_user_delete_status = 200
            self.buckets: dict[tuple[int, str], Bucket] = {}
            self.faults: list[Fault] = []
            self.requests: list[dict] = []
            self.counts: dict[str, int] = {}
            self.arrived: dict[str, int] = {}  # every API request by path, whatever it was answered
            # API requests by path being handled right now, and the most there ever were at once: what a
            # test of a client that keeps several requests in flight checks.
            self.in_flight: dict[str, int] = {}
            self.most_in_flight: dict[str, int] = {}
            # API requests by path whose connection the server is done with (answered, dropped, or failed),
            # and exceptions that got out of a handler: a test waits for the one and expects none of the other.
            self.finished: dict[str, int] = {}
            self.unhandled_errors = 0
            self.rate_limited: dict[str, int] = {}
            # The closest two rate-limited requests of one project and route came to each other, in ms:
            # what a test of pacing checks when a limiter with no burst makes every few ms count.
            self.closest_gap_ms: dict[str, float] = {}
            self.last_rate_check: dict[tuple[int, str], float] = {}
            # OAuth 2 authorization server
            self.oauth_clients: dict[str, dict] = {}
            self.oauth_codes: dict[str, dict] = {}
            self.access_tokens: dict[str, dict] = {}
            self.refresh_tokens: dict[str, dict] = {}
            self.oauth_deny_next = False
            self.oauth_token_ttl = 3600
            self.oauth_fail_token_endpoint = False

    def project(self, project_id: int, **options: Any) -> Project:
        with self.lock:
            if project_id not in self.projects:
                self.projects[project_id] = Project(project_id=project_id, **options)
            else:
                for name, value in options.items():
                    setattr(self.projects[project_id], name, value)
            return self.projects[project_id]

    def add_key(
        self,
        key: str,
        key_type: str,
        project_id: int,
        region: str = "us",
        refusal_status: int | None = None,
        jwt_required: bool = False,
        **project_options: Any,
    ) -> Key:
        if key_type not in KEY_TYPES:
            raise ValueError(f"key type must be one of {KEY_TYPES}")
        if refusal_status not in (None, 401, 403):
            raise ValueError("refusal_status must be 401 or 403")
        with self.lock:
            self.project(project_id, region=region, **project_options)
            self.keys[key] = Key(key, key_type, project_id, region, refusal_status, jwt_required)
            return self.keys[key]

    def rate_ok(self, project_id: int, route: str) -> bool:
        if not self.rate_limits_on or route not in RATE_LIMITS:
            return True
        rate = self.rate_limit_overrides.get(route, RATE_LIMITS[route])
        with self.lock:
            bucket = self.buckets.get((project_id, route))
            if bucket is None or bucket.rate != rate:
                bucket = self.buckets[(project_id, route)] = Bucket(rate, self.rate_burst)
            allowed = bucket.take()
            now, last = bucket.stamp, self.last_rate_check.get((project_id, route))
            self.last_rate_check[(project_id, route)] = now
            if last is not None:
                gap = round((now - last) * 1000, 1)
                self.closest_gap_ms[route] = min(gap, self.closest_gap_ms.get(route, gap))
            if not allowed:
                self.rate_limited[route] = self.rate_limited.get(route, 0) + 1
            return allowed

    def next_fault(self, path: str) -> Fault | None:
        with self.lock:
            return fault_take(self.faults, lambda fault: fault.path in (path, "*"))

    def log_arrival(self, path: str) -> None:
        with self.lock:
            self.arrived[path] = self.arrived.get(path, 0) + 1
            self.in_flight[path] = now = self.in_flight.get(path, 0) + 1
            self.most_in_flight[path] = max(now, self.most_in_flight.get(path, 0))

    def log_handled(self, path: str) -> None:
        with self.lock:
            self.in_flight[path] -= 1

    def log_request(self, method: str, path: str, body: Any, auth: str) -> None:
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1
            self.requests.append({"method": method, "path": path, "body": body, "auth": auth, "at": time.time()})
            del self.requests[:-500]  # the last 500 are plenty for a test to inspect

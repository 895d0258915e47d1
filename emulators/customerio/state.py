"""What the Customer.io emulator remembers: workspaces and their credentials, people, events,
and the knobs tests turn (latency, faults, rate limits, limits)."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from emulators.common import fault_take

REGIONS = ("us", "eu")
IDENTIFY_BY = ("id", "email", "both")

# reference 3.2: "must be smaller than 500kb" per batch, "32kb or smaller" per item. Read as 500,000 and
# 32,000 bytes, the strictest readings that implementations use (rudder, airbyte), so that a client kept
# under them passes whichever reading Customer.io applies.
MAX_BATCH_BYTES = 500_000
MAX_ITEM_BYTES = 32_000
# reference 2.4 ("Customer limits", "Track API Event limits")
MAX_ID_BYTES = 150
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
MAX_EVENT_NAME_BYTES = 100
MAX_EVENT_DATA_BYTES = 100_000
# reference 5: getPeopleById takes 1 to 100 ids
MAX_APP_IDS = 100
# reference 4.2: "Your request is over the 10-per-second limit"
APP_RATE_LIMIT_RPS = 10
MAX_LOGGED_BYTES = 50_000_000

# What every workspace starts with: the subscription center's topics (App API getTopics, reference 5), in
# the shape Customer.io's getTopics page shows ({name, description, subscribed_by_default, id, identifier}).
# People carry their choices as cio_subscription_preferences.topics.topic_<id> (reference 2.3).
SEEDED_TOPICS = (
    {"id": 1, "name": "Newsletter", "description": "Our newsletter, for people who ask for it.", "default": False},
    {"id": 2, "name": "Product updates", "description": "News of product releases.", "default": True},
)


def topic(id: int, name: str, description: str = "", subscribed_by_default: bool = False) -> dict:
    """A topic as getTopics answers it: ``identifier`` is the name people's preferences use for it."""
    return {
        "id": id,
        "name": name,
        "description": description,
        "subscribed_by_default": subscribed_by_default,
        "identifier": f"topic_{id}",
    }


def seeded_topics() -> list[dict]:
    return [topic(t["id"], t["name"], t["description"], t["default"]) for t in SEEDED_TOPICS]


@dataclass
class Workspace:
    site_id: str
    api_key: str
    region: str = "us"
    environment_id: int = 1
    identify_by: str = "id"  # which identifiers the workspace accepts: "id", "email" or "both"
    app_key: str | None = None
    people: dict[str, dict] = field(default_factory=dict)  # cio_id -> person
    by_id: dict[str, str] = field(default_factory=dict)  # id -> cio_id
    by_email: dict[str, str] = field(default_factory=dict)  # lower-cased email -> cio_id
    events: list[dict] = field(default_factory=list)
    # Suppressed identifiers ("id:42", "email:ada@example.com"): deleted, and never added back.
    suppressed: set[str] = field(default_factory=set)
    event_ids: set[str] = field(default_factory=set)  # dedupe ids already received
    # What Customer.io's activity log would show for a change it accepted but could not make
    # (an ``_update`` for nobody): a 200 is not proof the change applied (reference 2.1, 10).
    activities: list[dict] = field(default_factory=list)
    # Valid operations the emulator accepts but does not model (objects, devices, deliveries...).
    operations: list[dict] = field(default_factory=list)
    # The subscription center's topics (GET /v1/subscription_topics); the control API may replace them.
    # Preferences for a topic not listed here are still kept: the Track OpenAPI refuses none.
    topics: list[dict] = field(default_factory=seeded_topics)
    next_person: int = 1

    def public(self) -> dict:
        return {
            "site_id": self.site_id,
            "api_key": self.api_key,
            "region": self.region,
            "environment_id": self.environment_id,
            "identify_by": self.identify_by,
            "app_key": self.app_key,
        }


@dataclass
class Fault:
    path: str  # an API path with or without its region prefix ("/api/v2/batch", "/eu/api/v2/batch"), or "*"
    kind: str = "status"  # "status" | "timeout" | "drop" | "truncate"
    status: int = 500
    seconds: float = 0.0
    times: int = 1
    body: Any = None  # JSON answered with a "status" fault; None: Customer.io-looking error
    headers: dict[str, str] | None = None
    after: int = 0  # matching requests let through before the fault starts
    raw: str | None = None  # a "status" fault's body as text, not JSON (a proxy's HTML page, an empty body)
    content_type: str = "text/html"
    cut: int | None = None  # "truncate": the answer cut to this many bytes (half by default)
    # Carry the request out first, then answer with the fault: the write happened but the client cannot
    # tell (a 2xx with an unexpected body, a connection dropped after the commit).
    apply: bool = False

    def matches(self, full_path: str, path: str) -> bool:
        return self.path in ("*", path, full_path)


class RateWindow:
    """At most ``rate`` requests in any sliding second: the plainest reading of "N-per-second"."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.stamps: collections.deque[float] = collections.deque()

    def take(self) -> bool:
        now = time.monotonic()
        while self.stamps and now - self.stamps[0] >= 1.0:
            self.stamps.popleft()
        if len(self.stamps) >= self.rate:
            return False
        self.stamps.append(now)
        return True


# The options ``configure`` may set, with their defaults.
DEFAULT_OPTIONS: dict[str, Any] = {
    "latency_ms": 0,
    "region_latency_ms": {},  # e.g. {"eu": 120}: added to latency_ms for that region's requests
    # Track API: no 429 is documented (reference 4.1), so none unless a test asks for one.
    "rate_limit_rps": None,
    "retry_after": None,  # seconds, sent as Retry-After on 429s when set
    # reference 1.3: an EU pair on the US host is "redirected accordingly"; a third party saw a 401.
    "us_redirects_eu": False,
    "app_rate_limits_on": True,
    "app_rate_limit_rps": APP_RATE_LIMIT_RPS,
    "max_batch_bytes": MAX_BATCH_BYTES,
    "max_item_bytes": MAX_ITEM_BYTES,
    # The documents give only 400 for "the entire request was malformed or invalid" (reference 3.3).
    "batch_too_large_status": 400,
    # A 207 lists "all" of an item's problems, or the "first" one only.
    "error_report": "all",
    # v1 400 bodies: {"meta":{"error":"..."}} as the invalid-requests doc shows, or {"meta":{"errors":[...]}}
    # as the OpenAPI document's shared 400 says (reference 2.5: parse both).
    "v1_error_shape": "error",
}


class EmulatorState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.workspaces: dict[str, Workspace] = {}  # by site id
            self.options: dict[str, Any] = {
                name: (dict(value) if isinstance(value, dict) else value) for name, value in DEFAULT_OPTIONS.items()
            }
            self.windows: dict[tuple[str, str], RateWindow] = {}
            self.faults: list[Fault] = []
            self.requests: list[dict] = []
            self.logged_bytes = 0
            # Every counter is keyed by the full path, region prefix included ("/eu/api/v2/batch").
            self.counts: dict[str, int] = {}  # requests that reached their handler
            self.arrived: dict[str, int] = {}  # every API request, whatever it was answered
            # API requests whose connection the server is done with (answered, dropped, failed), and
            # exceptions that got out of a handler: a test waits for the one and expects none of the other.
            self.finished: dict[str, int] = {}
            self.unhandled_errors = 0
            # API requests being served right now, and the most there were at once: how many a client
            # keeps in flight (a count, so that a test of concurrency needs no clock).
            self.in_flight = 0
            self.most_in_flight = 0
            self.rate_limited: dict[str, int] = {}
            self.unauthorized: dict[str, int] = {}
            self.redirected: dict[str, int] = {}
            self.faulted: dict[str, int] = {}
            self.deduplicated_events = 0
            self.next_environment_id = 1

    def configure(self, **options: Any) -> None:
        unknown = set(options) - set(DEFAULT_OPTIONS)
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
        with self.lock:
            self.options.update(options)
            self.windows.clear()

    def option(self, name: str) -> Any:
        return self.options[name]

    def add_workspace(
        self,
        site_id: str,
        api_key: str,
        *,
        region: str = "us",
        environment_id: int | None = None,
        identify_by: str = "id",
        app_key: str | None = None,
    ) -> Workspace:
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}")
        if identify_by not in IDENTIFY_BY:
            raise ValueError(f"identify_by must be one of {IDENTIFY_BY}")
        with self.lock:
            workspace = self.workspaces.get(site_id)
            if environment_id is None:
                environment_id = workspace.environment_id if workspace else self.next_environment_id
            self.next_environment_id = max(self.next_environment_id, environment_id + 1)
            if workspace is None:
                workspace = self.workspaces[site_id] = Workspace(site_id, api_key)
            # Added again: new credentials or settings, the same people.
            workspace.api_key, workspace.region, workspace.environment_id = api_key, region, environment_id
            workspace.identify_by, workspace.app_key = identify_by, app_key
            return workspace

    def by_app_key(self, app_key: str) -> Workspace | None:
        with self.lock:
            return next((w for w in self.workspaces.values() if w.app_key and w.app_key == app_key), None)

    def rate_ok(self, site_id: str, api: str) -> bool:
        """Whether a request of this workspace to this API ("track" or "app") is under its limit."""
        if api == "app":
            rate = self.options["app_rate_limit_rps"] if self.options["app_rate_limits_on"] else None
        else:
            rate = self.options["rate_limit_rps"]
        if not rate:
            return True
        with self.lock:
            window = self.windows.get((site_id, api))
            if window is None:
                window = self.windows[(site_id, api)] = RateWindow(rate)
            return window.take()

    def next_fault(self, full_path: str, path: str) -> Fault | None:
        with self.lock:
            return fault_take(self.faults, lambda fault: fault.matches(full_path, path))

    def bump(self, counter: dict[str, int], full_path: str) -> None:
        with self.lock:
            counter[full_path] = counter.get(full_path, 0) + 1

    def log_request(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)
            self.logged_bytes += len(entry["body"])
            # The last 500 are plenty for a test to inspect; a benchmark's 500 kB batches are capped
            # by size too, so that a long run does not keep them all.
            while len(self.requests) > 500 or (self.logged_bytes > MAX_LOGGED_BYTES and len(self.requests) > 1):
                self.logged_bytes -= len(self.requests.pop(0)["body"])

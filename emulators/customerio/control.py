"""The emulator's control API (``/_emulator/...``, no auth) and a small client for it.

Tests, the demo seed and the benchmarks use :class:`EmulatorControl` over HTTP, so the same
calls work whether the emulator runs in a thread or in its own process.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import fields
from typing import Any

from emulators.common import ControlClient
from emulators.customerio.people import find_person, identify, public_person
from emulators.customerio.state import EmulatorState, Fault, Workspace, topic

_FAULT_FIELDS = {item.name for item in fields(Fault)}


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _workspace(state: EmulatorState, site_id: str | None) -> Workspace:
    workspace = state.workspaces.get(site_id or "")
    if workspace is None:
        raise ControlError(404, f"no workspace with site id {site_id!r}")
    return workspace


def _logged(entry: dict) -> dict:
    entry = dict(entry)
    with contextlib.suppress(ValueError):  # not JSON: the text as it came
        entry["body"] = json.loads(entry["body"]) if entry["body"] else None
    return entry


def _find(workspace: Workspace, identifier: str) -> dict | None:
    return (
        find_person(workspace, "id", identifier)
        or find_person(workspace, "email", identifier)
        or find_person(workspace, "cio_id", identifier.removeprefix("cio_"))
    )


def handle_control(state: EmulatorState, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
    try:
        body = json.loads(raw) if raw else {}
        with state.lock:
            return _control(state, method, path.removeprefix("/_emulator/"), query, body)
    except ControlError as exc:
        return exc.status, {"error": str(exc)}
    except (ValueError, TypeError, KeyError) as exc:
        return 400, {"error": f"bad control request: {exc!r}"}


def _control(state: EmulatorState, method: str, action: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
    if (method, action) == ("POST", "reset"):
        state.reset()
        return 200, {"ok": True}
    if (method, action) == ("POST", "workspaces"):
        options = {k: body[k] for k in ("region", "environment_id", "identify_by", "app_key") if k in body}
        return 200, state.add_workspace(body["site_id"], body["api_key"], **options).public()
    if (method, action) == ("GET", "workspaces"):
        return 200, {"workspaces": [w.public() for w in state.workspaces.values()]}
    if (method, action) == ("GET", "people"):
        workspace = _workspace(state, query.get("site_id"))
        return 200, {"people": [public_person(p) for p in workspace.people.values()]}
    if (method, action) == ("POST", "people"):
        workspace = _workspace(state, body.get("site_id"))
        attributes = dict(body.get("attributes") or {})
        kind = "id" if body.get("id") else "email"
        if not isinstance(body.get(kind), str) or not body[kind]:
            raise ControlError(400, "a person needs an id or an email")
        if kind == "id" and body.get("email"):
            attributes["email"] = body["email"]
        person = identify(workspace, kind, body.get(kind), attributes)
        return 200, {"person": public_person(person) if person else None}
    if (method, action) == ("GET", "person"):
        person = _find(_workspace(state, query.get("site_id")), query["identifier"])
        return 200, {"person": public_person(person) if person else None}
    if (method, action) == ("POST", "topics"):
        workspace = _workspace(state, body.get("site_id"))
        topics = body["topics"]
        if not isinstance(topics, list) or not all(
            isinstance(t, dict) and isinstance(t.get("id"), int) and isinstance(t.get("name"), str) for t in topics
        ):
            raise ControlError(400, "topics must be a list of objects with an integer id and a name")
        workspace.topics = [
            topic(t["id"], t["name"], t.get("description", ""), bool(t.get("subscribed_by_default", False)))
            for t in topics
        ]
        return 200, {"topics": workspace.topics}
    if (method, action) == ("GET", "topics"):
        return 200, {"topics": json.loads(json.dumps(_workspace(state, query.get("site_id")).topics))}
    if method == "GET" and action in ("events", "activities", "operations"):
        return 200, {action: json.loads(json.dumps(getattr(_workspace(state, query.get("site_id")), action)))}
    if (method, action) == ("POST", "faults"):
        state.faults.append(Fault(**{k: v for k, v in body.items() if k in _FAULT_FIELDS}))
        return 200, {"faults": len(state.faults)}
    if (method, action) == ("DELETE", "faults"):
        state.faults.clear()
        return 200, {"faults": 0}
    if (method, action) == ("POST", "config"):
        state.configure(**body)
        return 200, dict(state.options)
    if (method, action) == ("GET", "config"):
        return 200, dict(state.options)
    if (method, action) == ("GET", "requests"):
        wanted, region = query.get("path"), query.get("region")
        return 200, {
            "requests": [
                _logged(entry)
                for entry in state.requests
                if (not wanted or wanted in (entry["path"], entry["full_path"]))
                and (not region or entry["region"] == region)
            ]
        }
    if (method, action) == ("GET", "stats"):
        return 200, {
            "counts": dict(state.counts),
            "arrived": dict(state.arrived),
            "finished": dict(state.finished),
            "rate_limited": dict(state.rate_limited),
            "unauthorized": dict(state.unauthorized),
            "redirected": dict(state.redirected),
            "faulted": dict(state.faulted),
            "deduplicated_events": state.deduplicated_events,
            "unhandled_errors": state.unhandled_errors,
            "most_in_flight": state.most_in_flight,
        }
    raise ControlError(404, f"unknown control action {method} {action}")


class EmulatorControl(ControlClient):
    """Drive an emulator at ``base_url`` (its root, without /us, /eu, /us-api or /eu-api).

    Counters in :meth:`stats` are keyed by the full path, region prefix included (``/eu/api/v2/batch``).
    """

    def add_workspace(
        self,
        site_id: str,
        api_key: str,
        *,
        region: str = "us",
        environment_id: int | None = None,
        identify_by: str = "id",
        app_key: str | None = None,
    ) -> dict:
        """Add (or re-set, keeping its people) a workspace; its settings as a dict, ``environment_id`` filled in."""
        body = {"site_id": site_id, "api_key": api_key, "region": region, "identify_by": identify_by}
        if environment_id is not None:
            body["environment_id"] = environment_id
        if app_key is not None:
            body["app_key"] = app_key
        return self._call("POST", "workspaces", json=body)

    def add_person(
        self, site_id: str, *, id: str | None = None, email: str | None = None, attributes: dict | None = None
    ) -> dict | None:
        """Seed a person as an identify would make them (None when the workspace refuses it)."""
        body = {"site_id": site_id, "id": id, "email": email, "attributes": attributes or {}}
        return self._call("POST", "people", json=body)["person"]

    def people(self, site_id: str) -> list[dict]:
        """Each person: ``cio_id``, ``id``, ``email``, ``attributes`` (as sent), ``timestamps`` (per attribute)."""
        return self._call("GET", "people", params={"site_id": site_id})["people"]

    def person(self, site_id: str, identifier: str) -> dict | None:
        """The person whose id, email (any case) or cio_id is ``identifier``."""
        return self._call("GET", "person", params={"site_id": site_id, "identifier": identifier})["person"]

    def topics(self, site_id: str) -> list[dict]:
        """The workspace's subscription topics, as GET /v1/subscription_topics answers them."""
        return self._call("GET", "topics", params={"site_id": site_id})["topics"]

    def set_topics(self, site_id: str, topics: list[dict]) -> list[dict]:
        """Replace the workspace's topics: each ``{"id": int, "name": str}``, optionally ``description`` and
        ``subscribed_by_default`` (``identifier`` is always ``topic_<id>``); [] leaves none. Returns them."""
        return self._call("POST", "topics", json={"site_id": site_id, "topics": topics})["topics"]

    def attributes(self, site_id: str, identifier: str) -> dict | None:
        """The attributes of the person whose id, email or cio_id is ``identifier``, as sent (not as strings):
        ``cio_subscription_preferences`` is the object, e.g. ``{"topics": {"topic_1": True}}``."""
        person = self.person(site_id, identifier)
        return person["attributes"] if person else None

    def events(self, site_id: str) -> list[dict]:
        return self._call("GET", "events", params={"site_id": site_id})["events"]

    def activities(self, site_id: str) -> list[dict]:
        """Changes accepted but not made (``failed_attribute_change``), as Customer.io's activity log shows."""
        return self._call("GET", "activities", params={"site_id": site_id})["activities"]

    def operations(self, site_id: str) -> list[dict]:
        """Valid v2 operations accepted but not modelled (objects, devices, deliveries, merges...)."""
        return self._call("GET", "operations", params={"site_id": site_id})["operations"]

    def fault(
        self,
        path: str = "*",
        status: int = 500,
        *,
        times: int = 1,
        body: Any = None,
        kind: str = "status",
        seconds: float = 0,
        headers: dict[str, str] | None = None,
        after: int = 0,
        raw: str | None = None,
        content_type: str = "text/html",
        cut: int | None = None,
        apply: bool = False,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` badly (``path`` with or without its region prefix, or
        "*"). Kinds: "status" (``status`` with JSON ``body``, or ``raw`` text such as an HTML page), "timeout"
        (wait ``seconds``, then a 504 page), "drop" (close the connection), "truncate" (carried out, its JSON
        answer cut to ``cut`` bytes). ``apply``: carry the request out first, then answer with the fault."""
        self._call(
            "POST",
            "faults",
            json={
                "path": path,
                "kind": kind,
                "status": status,
                "seconds": seconds,
                "times": times,
                "body": body,
                "headers": headers,
                "after": after,
                "raw": raw,
                "content_type": content_type,
                "cut": cut,
                "apply": apply,
            },
        )

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def configure(self, **options: Any) -> dict:
        """Set options (see ``emulators.customerio.state.DEFAULT_OPTIONS``): ``latency_ms``, ``region_latency_ms``,
        ``rate_limit_rps``, ``retry_after``, ``us_redirects_eu``, ``app_rate_limits_on``, ``app_rate_limit_rps``,
        ``max_batch_bytes``, ``max_item_bytes``, ``batch_too_large_status``, ``error_report``, ``v1_error_shape``.
        Returns all options."""
        return self._call("POST", "config", json=options)

    def requests(self, path: str | None = None, *, region: str | None = None) -> list[dict]:
        params = {k: v for k, v in {"path": path, "region": region}.items() if v}
        return self._call("GET", "requests", params=params)["requests"]

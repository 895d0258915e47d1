"""The emulator's control API (``/_emulator/...``) and a small client for it.

Tests, the demo seed and the benchmarks use :class:`EmulatorControl` over HTTP,
so the same calls work whether the emulator runs in a thread or its own process.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from emulators.common import ControlClient
from emulators.iterable.state import EmulatorState, Fault

# Per-project settings of the Subscriptions API (see emulators.iterable.state.Project).
PROJECT_SETTINGS = ("subscriptions_api", "subscriptions_bulk_status")


def _bad_project_setting(settings: dict[str, Any]) -> str | None:
    if "subscriptions_api" in settings and not isinstance(settings["subscriptions_api"], bool):
        return "subscriptions_api must be true or false"
    if settings.get("subscriptions_bulk_status", 200) not in (200, 202):
        return "subscriptions_bulk_status must be 200 or 202"
    return None


def handle_control(state: EmulatorState, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
    body = json.loads(raw) if raw else {}
    action = path.removeprefix("/_emulator/")
    with state.lock:
        if action == "reset" and method == "POST":
            state.reset()
            return 200, {"ok": True}
        if action == "keys" and method == "POST":
            names = ("project_type", "allow_new_fields", "refusal_status", "jwt_required", *PROJECT_SETTINGS)
            options = {k: body[k] for k in names if k in body}
            problem = _bad_project_setting(options)
            if problem:
                return 400, {"error": problem}
            key = state.add_key(
                body["key"], body["type"], int(body.get("project_id", 1)), body.get("region", "us"), **options
            )
            return 200, asdict(key)
        if action == "users" and method == "GET":
            project = state.projects.get(int(query.get("project_id", 1)))
            return 200, {"users": list(project.users.values()) if project else []}
        if action == "projects" and method == "POST":
            settings = {k: body[k] for k in PROJECT_SETTINGS if k in body}
            problem = _bad_project_setting(settings)
            if problem:
                return 400, {"error": problem}
            project = state.project(int(body.get("project_id", 1)), **settings)
            return 200, {"project_id": project.project_id, **{k: getattr(project, k) for k in PROJECT_SETTINGS}}
        if action == "fields" and method == "GET":
            project = state.projects.get(int(query.get("project_id", 1)))
            return 200, {"fields": dict(project.fields) if project else {}}
        if action == "fields" and method == "POST":
            project = state.project(int(body.get("project_id", 1)))
            for name, kind in body["fields"].items():
                if kind is None:
                    project.fields.pop(name, None)
                else:
                    project.fields[name] = kind
            return 200, {"fields": project.fields}
        if action == "lists" and method == "POST":
            project = state.project(int(body.get("project_id", 1)))
            list_id = 1000 + len(project.lists) + 1
            project.lists[list_id] = {"id": list_id, "name": body["name"], "createdAt": 0, "listType": "Standard"}
            return 200, {"listId": list_id}
        if action == "events" and method == "GET":
            project = state.projects.get(int(query.get("project_id", 1)))
            return 200, {"events": project.events if project else []}
        if action == "forget" and method == "POST":
            state.project(int(body.get("project_id", 1))).forgotten.add(body["email"].lower())
            return 200, {"ok": True}
        if action == "faults" and method == "POST":
            state.faults.append(Fault(**body))
            return 200, {"faults": len(state.faults)}
        if action == "config" and method == "POST":
            if body.get("refusal_status", 403) not in (401, 403):
                return 400, {"error": "refusal_status must be 401 or 403"}
            for name in (
                "latency_ms",
                "arrival_jitter_ms",
                "refusal_status",
                "javascript_may_update_users",
                "rate_burst",
                "rate_limits_on",
                "rate_limit_overrides",
                "retry_after",
                "mismatch_report",
                "missing_user_delete_status",
                "oauth_deny_next",
                "oauth_token_ttl",
                "oauth_fail_token_endpoint",
            ):
                if name in body:
                    setattr(state, name, body[name])
            state.buckets.clear()
            state.last_rate_check.clear()
            return 200, {"ok": True}
        if action == "requests" and method == "GET":
            wanted = query.get("path")
            return 200, {"requests": [r for r in state.requests if not wanted or r["path"] == wanted]}
        if action == "stats" and method == "GET":
            return 200, {
                "counts": state.counts,
                "rate_limited": state.rate_limited,
                "closest_gap_ms": state.closest_gap_ms,
                "arrived": state.arrived,
                "most_in_flight": state.most_in_flight,
                "finished": state.finished,
                "unhandled_errors": state.unhandled_errors,
                "projects": {
                    pid: {"users": len(p.users), "writes": p.writes, "rewrites": p.rewrites}
                    for pid, p in state.projects.items()
                },
            }
        if action == "oauth/clients" and method == "POST":
            state.project(int(body.get("project_id", 1)), region=body.get("region", "us"))
            state.oauth_clients[body["client_id"]] = {
                "client_id": body["client_id"],
                "secret": body["secret"],
                "redirect_uris": body["redirect_uris"],
                "project_id": int(body.get("project_id", 1)),
                "region": body.get("region", "us"),
            }
            return 200, {"ok": True}
        if action == "oauth/revoke" and method == "POST":
            state.access_tokens.clear()
            state.refresh_tokens.clear()
            return 200, {"ok": True}
        if action == "oauth/expire" and method == "POST":
            for token in state.access_tokens.values():
                token["expires_at"] = 0
            return 200, {"expired": len(state.access_tokens)}
    return 404, {"error": f"unknown control action {method} {action}"}


class EmulatorControl(ControlClient):
    """Drive Iterable's emulator (see emulators.common.ControlClient)."""

    def add_key(
        self, key: str, key_type: str = "server_side", *, project_id: int = 1, region: str = "us", **options: Any
    ) -> None:
        self._call(
            "POST", "keys", json={"key": key, "type": key_type, "project_id": project_id, "region": region, **options}
        )

    def users(self, project_id: int = 1) -> list[dict]:
        return self._call("GET", "users", params={"project_id": project_id})["users"]

    def user(self, email: str, project_id: int = 1) -> dict | None:
        return next((u for u in self.users(project_id) if (u.get("email") or "").lower() == email.lower()), None)

    def user_by_user_id(self, user_id: str, project_id: int = 1) -> dict | None:
        return next((u for u in self.users(project_id) if u.get("userId") == user_id), None)

    def subscriptions(
        self, email: str | None = None, *, user_id: str | None = None, project_id: int = 1
    ) -> dict[str, list[int]] | None:
        """A user's subscription state as their profile holds it (None when there is no such user): the list
        field lists/subscribe writes (``emailListIds`` in email-based projects, else ``userListIds``),
        ``subscribedMessageTypeIds``, ``unsubscribedMessageTypeIds`` and ``unsubscribedChannelIds``; a field
        the profile does not have is left out."""
        user = self.user_by_user_id(user_id, project_id) if user_id is not None else self.user(email or "", project_id)
        if user is None:
            return None
        names = (
            "emailListIds",
            "userListIds",
            "subscribedMessageTypeIds",
            "unsubscribedMessageTypeIds",
            "unsubscribedChannelIds",
        )
        return {name: user["dataFields"][name] for name in names if name in user["dataFields"]}

    def configure_project(
        self,
        project_id: int = 1,
        *,
        subscriptions_api: bool | None = None,
        subscriptions_bulk_status: int | None = None,
    ) -> dict:
        """Per-project settings: whether the Subscriptions API is enabled (else its endpoints answer 404), and
        whether its successes answer 200 with the envelope or 202 with no body. Returns the project's settings."""
        body: dict[str, Any] = {"project_id": project_id}
        if subscriptions_api is not None:
            body["subscriptions_api"] = subscriptions_api
        if subscriptions_bulk_status is not None:
            body["subscriptions_bulk_status"] = subscriptions_bulk_status
        return self._call("POST", "projects", json=body)

    def fields(self, project_id: int = 1) -> dict[str, str]:
        return self._call("GET", "fields", params={"project_id": project_id})["fields"]

    def set_fields(self, fields: dict[str, str | None], project_id: int = 1) -> None:
        self._call("POST", "fields", json={"project_id": project_id, "fields": fields})

    def add_list(self, name: str, project_id: int = 1) -> int:
        return self._call("POST", "lists", json={"project_id": project_id, "name": name})["listId"]

    def events(self, project_id: int = 1) -> list[dict]:
        return self._call("GET", "events", params={"project_id": project_id})["events"]

    def fault(
        self,
        path: str = "*",
        kind: str = "status",
        *,
        status: int = 500,
        seconds: float = 0,
        times: int = 1,
        body: dict | None = None,
        headers: dict[str, str] | None = None,
        after: int = 0,
        raw: str | None = None,
        content_type: str = "text/html",
        cut: int | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` badly. Kinds: "status" (``status`` with ``body``, or
        ``raw`` text), "timeout", "drop", and "truncate" (carried out, its answer cut to ``cut`` bytes)."""
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
            },
        )

    def forget(self, email: str, project_id: int = 1) -> None:
        """The person asked Iterable to forget them: every later write of them is refused."""
        self._call("POST", "forget", json={"email": email, "project_id": project_id})

    def configure(self, **options: Any) -> None:
        self._call("POST", "config", json=options)

    def requests(self, path: str | None = None) -> list[dict]:
        return self._call("GET", "requests", params={"path": path} if path else {})["requests"]

    def add_oauth_client(
        self, client_id: str, secret: str, redirect_uris: list[str], *, project_id: int = 1, region: str = "us"
    ) -> None:
        self._call(
            "POST",
            "oauth/clients",
            json={
                "client_id": client_id,
                "secret": secret,
                "redirect_uris": redirect_uris,
                "project_id": project_id,
                "region": region,
            },
        )

    def revoke_oauth_grants(self) -> None:
        self._call("POST", "oauth/revoke")

    def expire_access_tokens(self) -> None:
        self._call("POST", "oauth/expire")

"""The Iterable emulator: a small HTTP server that answers as Iterable's API does
(``../shared/reference/iterable.md``), for the tests, the demo and the benchmarks.

    python -m emulators.iterable --port 9100

Regions are path prefixes: ``http://host:port/us`` and ``http://host:port/eu`` (no
prefix is US); a key or OAuth token works only in its own region. ``/_emulator/...`` is the
control API tests use (see :mod:`emulators.iterable.control`), ``/oauth/...`` an
OAuth 2 authorization server (code + PKCE, refresh-token rotation).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import random
import secrets
import socket
import time
import traceback
import urllib.parse
from typing import Any

from emulators.common import EmulatorHandler, EmulatorServer, served
from emulators.iterable.spec import HANDLER_SHAPES, SwaggerSpec
from emulators.iterable.state import (
    EMAIL_BASED,
    FORGET_DAILY_CAP,
    JAVASCRIPT,
    JAVASCRIPT_ENDPOINTS,
    MAX_BULK_BODY,
    MOBILE,
    MOBILE_ENDPOINTS,
    READ_ONLY,
    SERVER_SIDE,
    USERID_BASED,
    EmulatorState,
    Fault,
    Key,
    Project,
)
from emulators.iterable.subscriptions import GROUPS, conflicting, group_exists, list_field, overwrite, toggle
from emulators.iterable.users import (
    TypeMismatch,
    WriteResult,
    check_types,
    delete_user,
    find_user,
    identify,
    public_user,
    type_mismatch_envelope,
    valid_email,
    valid_user_id,
    write_user,
)

FAILED_LISTS = (
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
    "conflictEmails",
    "conflictUserIds",
    "forgottenEmails",
    "forgottenUserIds",
)


class Reply(Exception):
    """Raised by a route to answer at once."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def envelope(code: str, msg: str, params: Any = None) -> dict:
    return {"msg": msg, "code": code, "params": params}


class Handler(EmulatorHandler):
    server: EmulatorHTTPServer

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = dict(headers or {})
        self.send_response(status)
        default_type = "application/json" if not isinstance(body, bytes) else "text/html"
        self.send_header("Content-Type", headers.pop("Content-Type", default_type))
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path, region = url.path, "us"
        for prefix in ("/us", "/eu"):
            if path.startswith(prefix + "/"):
                path, region = path[len(prefix) :], prefix[1:]
        query = dict(urllib.parse.parse_qsl(url.query))
        # Read the whole body first, whatever the answer will be: a body left unread would be
        # taken for the next request on this keep-alive connection.
        self.body = self._read_body()
        if path.startswith("/api/"):
            served.paths.append(path)
        try:
            if path.startswith("/_emulator/"):
                from emulators.iterable.control import handle_control

                status, body = handle_control(self.server.state, method, path, query, self.body)
                self._send(status, body)
            elif path.startswith("/oauth/"):
                self._oauth(method, path, query)
            elif path.startswith("/api/"):
                self._api(method, path, query, region)
            else:
                self._send(404, envelope("NotFound", "Endpoint not found"))
        except Reply as reply:
            try:
                self._send(reply.status, reply.body, reply.headers)
            except OSError:
                # The client left first (it gave up on a "timeout" fault's late answer): nothing to answer.
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the catch-all is the point: see below
            # A bug here (or in a control call) answers as Iterable's own 5xx does (reference 5), with the
            # envelope: a dropped connection would look like a network fault and hide the bug.
            traceback.print_exc()
            self.close_connection = True  # the state of this connection is unknown after a failure
            with contextlib.suppress(OSError):  # the client may have gone already
                self._send(500, envelope("GenericError", "Emulator error; please try again later"))

    # --- the API ---------------------------------------------------------------------------

    def _authenticate(self, region: str, path: str) -> Key:
        state = self.server.state
        api_key = self.headers.get("Api-Key")
        bearer = self.headers.get("Authorization", "")
        if api_key is None and bearer.lower().startswith("bearer "):
            token = state.access_tokens.get(bearer[7:].strip())
            # Like a key, a token works only in its project's data center.
            if token is None or token["expires_at"] < time.time() or token["region"] != region:
                raise Reply(401, envelope("Unauthorized", "Invalid or expired access token", {"endpoint": path}))
            # A grant without users:write can read the project but not write users: a read-only key.
            key_type = SERVER_SIDE if "users:write" in token["scope"].split() else READ_ONLY
            return Key(key="oauth", key_type=key_type, project_id=token["project_id"], region=token["region"])
        if api_key is None:
            raise Reply(401, envelope("BadAuthorizationHeader", "Api-Key header is missing", {"endpoint": path}))
        key = state.keys.get(api_key)
        if key is None or key.region != region:
            raise self._invalid_key(path)
        if key.jwt_required:  # a client-side key set to require JWT: the emulator takes no JWT, so none passes
            raise Reply(401, envelope("InvalidJwtPayload", "JWT authorization required", {"endpoint": path}))
        return key

    def _invalid_key(self, path: str) -> Reply:
        return Reply(401, envelope("BadApiKey", "Invalid API key", {"ip": self.client_address[0], "endpoint": path}))

    def _check_rights(self, key: Key, method: str, path: str) -> None:
        allowed = {
            READ_ONLY: method == "GET",
            MOBILE: (method, path) in MOBILE_ENDPOINTS,
            JAVASCRIPT: (method, path) in JAVASCRIPT_ENDPOINTS
            or (self.server.state.javascript_may_update_users and (method, path) == ("POST", "/api/users/update")),
        }.get(key.key_type, True)
        if allowed:
            return
        if (key.refusal_status or self.server.state.refusal_status) == 401:
            # What Iterable's Swagger document lists for these endpoints: the answer to an unknown key.
            raise self._invalid_key(path)
        message = f"{method} {path} is forbidden with this API key type ({key.key_type}). Please use a server-side key."
        raise Reply(403, envelope("Forbidden", message))

    def _api(self, method: str, path: str, query: dict[str, str], region: str) -> None:
        state = self.server.state
        state.log_arrival(path)
        try:
            self._api_call(state, method, path, query, region)
        finally:
            state.log_handled(path)

    def _api_call(self, state, method: str, path: str, query: dict[str, str], region: str) -> None:
        if state.arrival_jitter_ms:
            time.sleep(random.uniform(0, state.arrival_jitter_ms) / 1000)
        if state.latency_ms:  # every answer takes the trip, a refusal of the key or a 429 as much as a success
            time.sleep(state.latency_ms / 1000)
        route, handler, spec_path = self._route(method, path)
        if handler is None:
            raise Reply(404, envelope("NotFound", f"Endpoint not found: {method} {path}"))
        key = self._authenticate(region, path)
        self._check_rights(key, method, path)
        if route.startswith("subscriptions."):
            with state.lock:
                enabled = state.projects[key.project_id].subscriptions_api
            if not enabled:
                # Swagger: "To enable this API, contact your customer success manager"; until then its
                # endpoints answer 404 "Endpoint not found" (reference 5), whatever the request holds.
                raise Reply(404, envelope("NotFound", "Endpoint not found"))
        if not state.rate_ok(key.project_id, route):
            headers = {"Retry-After": str(state.retry_after)} if state.retry_after else {}
            raise Reply(429, envelope("RateLimitExceeded", "Exceeded rate limit."), headers)
        fault = state.next_fault(path)
        self._apply_fault(fault)
        body: Any = None
        if method in ("POST", "PUT"):  # the bulk subscription action is a PUT with a body
            raw = self.body
            if route == "users.bulkUpdate" and len(raw) > MAX_BULK_BODY:
                raise Reply(
                    413,
                    envelope(
                        "BatchTooLarge", f"Request body of {len(raw)} bytes is over the {MAX_BULK_BODY}-byte limit"
                    ),
                )
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                raise Reply(400, envelope("BadJsonBody", f"[{path}] Invalid JSON body: {exc}")) from None
            spec = self.server.spec
            # Iterable's own document when it is there; what the handlers rely on in any case, so that
            # a malformed body is a 400 as Iterable answers it, never a crash.
            problems = (spec.validate(method, spec_path, body) if spec else {}) or HANDLER_SHAPES.validate(
                method, spec_path, body
            )
            if problems:
                raise Reply(400, envelope("BadJsonBody", f"[{path}] Invalid JSON body", problems))
        state.log_request(method, path, body, key.key_type)
        with state.lock:
            project = state.projects[key.project_id]
            status, payload = handler(self, project, body, query, path)
        if fault is not None and fault.kind == "truncate":
            # Carried out, but the answer arrives cut (a proxy's buffer, a dropped tail): valid HTTP, broken JSON.
            encoded = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            payload = encoded[: len(encoded) // 2 if fault.cut is None else fault.cut]
            self._send(status, payload, {"Content-Type": "application/json"})
            return
        self._send(status, payload)

    def _apply_fault(self, fault: Fault | None) -> None:
        if fault is None or fault.kind == "truncate":
            return
        if fault.kind == "timeout":
            time.sleep(fault.seconds)
            raise Reply(504, envelope("GenericError", "Gateway timeout"))
        if fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError
        if fault.raw is not None:  # not JSON: a proxy's page, an empty body
            headers = {**(fault.headers or {}), "Content-Type": fault.content_type}
            raise Reply(fault.status, fault.raw.encode(), headers)
        raise Reply(fault.status, fault.body or envelope("GenericError", "Please try again later"), fault.headers)

    @property
    def _report_first(self) -> bool:
        return self.server.state.mismatch_report == "first"

    def _route(self, method: str, path: str):
        table = {
            ("POST", "/api/users/update"): ("users.update", Handler.r_update),
            ("POST", "/api/users/bulkUpdate"): ("users.bulkUpdate", Handler.r_bulk_update),
            ("GET", "/api/users/getFields"): ("users.getFields", Handler.r_get_fields),
            ("GET", "/api/users/getByEmail"): ("users.getByEmail", Handler.r_lookup),
            ("GET", "/api/users/byUserId"): ("users.byUserId", Handler.r_lookup),
            ("GET", "/api/lists"): ("lists.get", Handler.r_lists),
            ("POST", "/api/lists"): ("lists.create", Handler.r_list_create),
            ("POST", "/api/lists/subscribe"): ("lists.subscribe", Handler.r_subscribe),
            ("POST", "/api/lists/unsubscribe"): ("lists.unsubscribe", Handler.r_unsubscribe),
            ("GET", "/api/channels"): ("channels.get", Handler.r_channels),
            ("GET", "/api/messageTypes"): ("messageTypes.get", Handler.r_message_types),
            ("POST", "/api/users/updateSubscriptions"): ("users.updateSubscriptions", Handler.r_update_subscriptions),
            ("POST", "/api/users/bulkUpdateSubscriptions"): (
                "users.bulkUpdateSubscriptions",
                Handler.r_bulk_update_subscriptions,
            ),
            ("POST", "/api/events/track"): ("events.track", Handler.r_track),
            ("POST", "/api/users/forget"): ("users.forget", Handler.r_forget),
            ("POST", "/api/users/registerDeviceToken"): ("users.registerDeviceToken", Handler.r_register_device),
            ("POST", "/api/users/disableDevice"): ("users.disableDevice", Handler.r_disable_device),
        }
        if (method, path) in table:
            return (*table[(method, path)], path)
        parts = path.split("/")  # ["", "api", "subscriptions", group, id, ...]
        if parts[2:3] == ["subscriptions"] and len(parts) == 5 and method == "PUT":
            group_path = "/api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}"
            return "subscriptions.bulk", Handler.r_subscription_bulk, group_path
        if parts[2:3] == ["subscriptions"] and len(parts) == 7 and method in ("PATCH", "DELETE"):
            if parts[5] == "user":
                user_path = "/api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}/user/{userEmail}"
                return "subscriptions.user", Handler.r_subscription_user, user_path
            if parts[5] == "byUserId":
                user_path = "/api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}/byUserId/{userId}"
                return "subscriptions.byUserId", Handler.r_subscription_user, user_path
        if method == "DELETE" and path.startswith("/api/users/byUserId/") and path.count("/") == 4:
            return "users.deleteByUserId", Handler.r_delete, "/api/users/byUserId/{userId}"
        if method == "DELETE" and path.startswith("/api/users/") and path.count("/") == 3:
            return "users.delete", Handler.r_delete, "/api/users/{email}"
        if method == "GET" and path.startswith("/api/users/byUserId/"):
            return "users.byUserIdPath", Handler.r_lookup, "/api/users/byUserId/{userId}"
        if method == "GET" and path.startswith("/api/users/") and path.count("/") == 3:
            return "users.byEmailPath", Handler.r_lookup, "/api/users/{email}"
        if (method, path) in MOBILE_ENDPOINTS | JAVASCRIPT_ENDPOINTS:
            return "other", Handler.r_accept, path  # allowed for client-side keys; accepted, not modelled
        return "", None, path

    # --- routes: each returns (status, body); the state lock is held ------------------------

    def r_update(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        if not body.get("email") and not body.get("userId"):
            return 400, envelope("BadParams", "email or userId is required")
        mismatch = _type_mismatch(project, [body], body.get("createNewFields"), report_first=self._report_first)
        if mismatch:
            return 400, mismatch
        result = write_user(project, body, create_new_fields=body.get("createNewFields"))
        if not result.ok:
            code = "InvalidEmailAddressError" if result.failure == "invalidEmails" else "InvalidUserIdError"
            return 400, envelope(code, result.message)
        return 200, envelope("Success", "", None)

    def r_bulk_update(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        users = body["users"]
        mismatch = _type_mismatch(project, users, body.get("createNewFields"), report_first=self._report_first)
        if mismatch:
            return 400, mismatch
        failed: dict[str, list[str]] = {name: [] for name in FAILED_LISTS}
        created: list[str] = []
        filtered: list[str] = []
        success = 0
        for record in users:
            result = write_user(project, record, create_new_fields=body.get("createNewFields"))
            if result.ok:
                success += 1
                created += [f for f in result.created_fields if f not in created]
                filtered += [f for f in result.filtered_fields if f not in filtered]
            else:
                failed[result.failure].append(result.identifier)
        return 200, {
            "successCount": success,
            "failCount": len(users) - success,
            "createdFields": created,
            "filteredOutFields": filtered,
            "invalidEmails": failed["invalidEmails"],
            "invalidUserIds": failed["invalidUserIds"],
            "failedUpdates": failed,
        }

    def r_get_fields(self, project: Project, body: Any, query: dict, path: str) -> tuple[int, dict]:
        return 200, {"fields": dict(project.fields)}

    def r_lookup(self, project: Project, body: Any, query: dict, path: str) -> tuple[int, dict]:
        if path.startswith("/api/users/byUserId"):
            user_id = query.get("userId") or urllib.parse.unquote(path.rsplit("/", 1)[-1])
            if not user_id or user_id == "byUserId":
                return 400, envelope("BadParams", "userId is required")
            user = find_user(project, user_id=user_id)
        else:
            email = (
                query.get("email") if path == "/api/users/getByEmail" else urllib.parse.unquote(path.split("/", 3)[3])
            )
            if not valid_email(email):
                return 400, envelope("InvalidEmailAddressError", f"Invalid email: {email}")
            if project.project_type == USERID_BASED:
                user = next(
                    (u for u in project.users.values() if (u.get("email") or "").lower() == email.lower()), None
                )
            else:
                user = find_user(project, email=email)
        return 200, ({"user": public_user(user)} if user else {})

    def r_delete(self, project: Project, body: Any, query: dict, path: str) -> tuple[int, dict]:
        """DELETE /api/users/{email} (not in userID-based projects) and /api/users/byUserId/{userId}:
        asynchronous at Iterable, so accepted at once; a user it does not have is missing_user_delete_status."""
        ident = urllib.parse.unquote(path.rsplit("/", 1)[-1])
        if path.startswith("/api/users/byUserId/"):
            user = find_user(project, user_id=ident)
        else:
            if project.project_type == USERID_BASED:
                return 400, envelope("BadParams", "This project identifies users by userId: delete by userId")
            if not valid_email(ident):
                return 400, envelope("InvalidEmailAddressError", f"Invalid email: {ident}")
            user = find_user(project, email=ident)
        if user is None:
            if self.server.state.missing_user_delete_status == 404:
                return 404, envelope("NotFound", f"No user found for {ident}")
            return 200, envelope("Success", f"User {ident} scheduled for deletion")
        delete_user(project, user)
        return 200, envelope("Success", f"User {ident} scheduled for deletion")

    def r_forget(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        """POST /api/users/forget: email in email-based projects, userId in userID-based ones, either in
        hybrid ones; the user is deleted and refused from then on. 1,000 calls a day per project."""
        email, user_id = body.get("email"), body.get("userId")
        if bool(email) == bool(user_id):
            return 400, envelope("BadParams", "Provide an email or a userId (but not both)")
        if (email and project.project_type == USERID_BASED) or (user_id and project.project_type == EMAIL_BASED):
            return 400, envelope("BadParams", f"Forget by {'userId' if email else 'email'} in this project")
        now = time.time()
        project.forget_calls = [t for t in project.forget_calls if t > now - 86400]
        if len(project.forget_calls) >= FORGET_DAILY_CAP:
            return 429, envelope("RateLimitExceeded", f"Daily cap of {FORGET_DAILY_CAP} forget requests reached")
        project.forget_calls.append(now)
        user = find_user(project, email=email) if email else find_user(project, user_id=user_id)
        if user is not None:
            delete_user(project, user)
        if email:
            project.forgotten.add(email.lower())
        else:
            project.forgotten_user_ids.add(user_id)
        return 200, envelope("Success", "User forgotten")

    def r_lists(self, project: Project, body: Any, query: dict, path: str) -> tuple[int, dict]:
        return 200, {"lists": [dict(item) for item in project.lists.values()]}

    def r_list_create(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        list_id = 1000 + len(project.lists) + 1
        project.lists[list_id] = {
            "id": list_id,
            "name": body["name"],
            "createdAt": int(time.time() * 1000),
            "listType": "Standard",
            "members": [],
        }
        return 200, {"listId": list_id}

    def r_subscribe(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        target = project.lists.get(body["listId"])
        if target is None:
            return 400, _invalid_list(project, body["listId"])
        mismatch = _type_mismatch(project, body["subscribers"], None, report_first=self._report_first)
        if mismatch:
            return 400, mismatch
        failed: dict[str, list[str]] = {name: [] for name in FAILED_LISTS}
        success = 0
        field = list_field(project)
        for record in body["subscribers"]:
            existing = find_user(project, email=record.get("email"), user_id=record.get("userId"))
            if existing is None and body.get("updateExistingUsersOnly") and project.project_type != "email":
                failed["notFoundEmails" if record.get("email") else "notFoundUserIds"].append(
                    record.get("email") or record.get("userId") or ""
                )
                continue
            result = write_user(project, record, create_new_fields=None)
            if not result.ok:
                failed[result.failure].append(result.identifier)
                continue
            user = find_user(project, email=record.get("email"), user_id=record.get("userId"))
            ids = user["dataFields"].setdefault(field, [])
            if body["listId"] not in ids:
                ids.append(body["listId"])
            success += 1
        return 200, _list_answer(success, len(body["subscribers"]), failed)

    def r_unsubscribe(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        """POST /api/lists/unsubscribe (reference 6.3): each subscriber taken off the list, nobody created.
        A user the project does not have is a ``failedUpdates.notFound*`` entry ("for subscribe/unsubscribe
        only", reference 2.2), which RudderStack reads as a no-op success. ``channelUnsubscribe`` ("essentially
        a global unsubscribe") is kept in the request log only: the emulator's lists have no channel."""
        if body["listId"] not in project.lists:
            return 400, _invalid_list(project, body["listId"])
        failed: dict[str, list[str]] = {name: [] for name in FAILED_LISTS}
        success = 0
        for record in body["subscribers"]:
            email, user_id = record.get("email"), record.get("userId")
            if email is not None and not valid_email(email):
                failed["invalidEmails"].append(str(email))
                continue
            if user_id is not None and not valid_user_id(user_id):
                failed["invalidUserIds"].append(str(user_id))
                continue
            if email is None and user_id is None:
                failed["invalidEmails"].append("")
                continue
            user = find_user(project, email=email, user_id=user_id)
            if user is None:
                failed["notFoundEmails" if email else "notFoundUserIds"].append(email or user_id)
                continue
            data = user["dataFields"]
            field = list_field(project)
            if isinstance(data.get(field), list):
                data[field] = [item for item in data[field] if item != body["listId"]]
            success += 1
        return 200, _list_answer(success, len(body["subscribers"]), failed)

    def r_channels(self, project: Project, body: Any, query: dict, path: str) -> tuple[int, dict]:
        return 200, {"channels": [dict(item) for item in project.channels.values()]}

    def r_message_types(self, project: Project, body: Any, query: dict, path: str) -> tuple[int, dict]:
        return 200, {"messageTypes": [dict(item) for item in project.message_types.values()]}

    # The Subscriptions API (peers-consent-erasure 2.1): additive, one group id for many users or for one.

    def r_subscription_bulk(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, Any]:
        """PUT /api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}?action=subscribe|unsubscribe with
        ``{"users": [emails], "usersByUserId": [userIds]}`` (either may be left out)."""
        group, group_id = _subscription_group(project, path)
        action = query.get("action")
        if action not in ("subscribe", "unsubscribe"):
            # Swagger: the action query parameter is required, "subscribe or unsubscribe".
            return 400, envelope("BadParams", f"action must be subscribe or unsubscribe, not {action!r}")
        return _subscription_change(
            project, group, group_id, body.get("users") or [], body.get("usersByUserId") or [], action == "subscribe"
        )

    def r_subscription_user(self, project: Project, body: Any, query: dict, path: str) -> tuple[int, Any]:
        """PATCH (subscribe) or DELETE (unsubscribe) /api/subscriptions/{group}/{id}/user/{userEmail} and
        .../byUserId/{userId}: the bulk action's rules and answers for one user."""
        group, group_id = _subscription_group(project, path)
        parts = path.split("/")
        who, ident = parts[5], urllib.parse.unquote(parts[6])
        emails, user_ids = ([ident], []) if who == "user" else ([], [ident])
        return _subscription_change(project, group, group_id, emails, user_ids, self.command == "PATCH")

    # users/updateSubscriptions and bulkUpdateSubscriptions: overwrite (see emulators.iterable.subscriptions).

    def r_update_subscriptions(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        failure = _overwrite_subscriptions(project, body)
        if failure is None:
            return 200, envelope("Success", "User subscriptions updated")
        status, code, message = failure
        return status, envelope(code, message)

    def r_bulk_update_subscriptions(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        """Swagger BulkUpdateSubscriptionsResponse: a malformed identifier is an invalid*, any other failure of
        a valid one (a conflict, a forgotten user) a valid*Failure."""
        answer: dict[str, Any] = {
            "successCount": 0,
            "failCount": 0,
            "invalidEmails": [],
            "invalidUserIds": [],
            "validEmailFailures": [],
            "validUserIdFailures": [],
        }
        for update in body["updateSubscriptionsRequests"]:
            failure = _overwrite_subscriptions(project, update)
            if failure is None:
                answer["successCount"] += 1
                continue
            answer["failCount"] += 1
            by_email = update.get("email") is not None
            ident = str(update["email"] if by_email else update.get("userId") or "")
            if failure[0] == 400:  # the identifier itself was refused
                answer["invalidEmails" if by_email else "invalidUserIds"].append(ident)
            else:
                answer["validEmailFailures" if by_email else "validUserIdFailures"].append(ident)
        return 200, answer

    def r_track(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        if not body.get("email") and not body.get("userId"):
            return 400, envelope("BadParams", "email or userId is required")
        event = copy.deepcopy(body)
        # Swagger's TrackRequest.id: "If an event exists with that id, the event will be updated. If none
        # is specified, a new id will automatically be generated and returned."
        event["id"] = str(event.get("id") or secrets.token_hex(12))
        same = project.event_positions.get(event["id"])
        if same is None:
            project.event_positions[event["id"]] = len(project.events)
            project.events.append(event)
        else:
            project.events[same] = event
        return 200, envelope("Success", "Event tracked", {"id": event["id"]})

    def r_register_device(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        """POST /api/users/registerDeviceToken (reference 6.2): the user by email or userId, never both; the
        device updated by its token (its dataFields merged), at most 500 per user; a forgotten user is a 409."""
        email, user_id = body.get("email"), body.get("userId")
        if bool(email) == bool(user_id):
            return 400, envelope("BadParams", "Provide an email or a userId (but not both)")
        device = body.get("device")
        if not isinstance(device, dict) or not all(
            isinstance(device.get(k), str) and device.get(k) for k in ("token", "platform", "applicationName")
        ):
            return 400, envelope("BadParams", "device.token, device.platform and device.applicationName are required")
        if device["platform"] not in ("APNS", "APNS_SANDBOX", "GCM"):
            return 400, envelope("BadParams", f"Invalid platform: {device['platform']}")
        if (email and email.lower() in project.forgotten) or (user_id and user_id in project.forgotten_user_ids):
            return 409, envelope("ForgottenUserError", "Contact is GDPR forgotten")
        user = find_user(project, email=email) if email else find_user(project, user_id=user_id)
        if user is None:
            result = write_user(project, {"email": email} if email else {"userId": user_id}, create_new_fields=None)
            if not result.ok:
                return 400, envelope("BadParams", result.message)
            user = find_user(project, email=email) if email else find_user(project, user_id=user_id)
        devices = user.setdefault("devices", [])
        known = next((d for d in devices if d["token"] == device["token"]), None)
        if known is None and len(devices) >= 500:
            return 400, envelope("BadParams", "A user may have at most 500 devices")
        if known is None:
            devices.append({**device, "dataFields": dict(device.get("dataFields") or {}), "endpointEnabled": True})
        else:
            known.update({k: v for k, v in device.items() if k != "dataFields"}, endpointEnabled=True)
            known["dataFields"].update(device.get("dataFields") or {})
        return 200, envelope("Success", "Device registered")

    def r_disable_device(self, project: Project, body: dict, query: dict, path: str) -> tuple[int, dict]:
        """POST /api/users/disableDevice (reference 6.2): the token under the user named, or, with no email or
        userId, "under all users with this device". A token nobody has is no error."""
        token = body.get("token")
        if not isinstance(token, str) or not token:
            return 400, envelope("BadParams", "token is required")
        email, user_id = body.get("email"), body.get("userId")
        if email or user_id:
            user = find_user(project, email=email) if email else find_user(project, user_id=user_id)
            users = [user] if user else []
        else:
            users = list(project.users.values())
        for user in users:
            for device in user.get("devices", []):
                if device["token"] == token:
                    device["endpointEnabled"] = False
        return 200, envelope("Success", "Device disabled")

    def r_accept(self, project: Project, body: Any, query: dict, path: str) -> tuple[int, dict]:
        return 200, envelope("Success", "")

    # --- OAuth 2 authorization server ---------------------------------------------------------

    def _oauth(self, method: str, path: str, query: dict[str, str]) -> None:
        state = self.server.state
        if method == "GET" and path == "/oauth/authorize":
            self._send(*_authorize(state, query))
        elif method == "POST" and path == "/oauth/token":
            form = dict(urllib.parse.parse_qsl(self.body.decode()))
            basic = self.headers.get("Authorization", "")
            if basic.lower().startswith("basic "):
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                form.setdefault("client_id", urllib.parse.unquote(client_id))
                form.setdefault("client_secret", urllib.parse.unquote(secret))
            self._send(*_token(state, form))
        else:
            self._send(404, envelope("NotFound", "Endpoint not found"))


def _list_answer(success: int, sent: int, failed: dict[str, list[str]]) -> dict:
    """lists/subscribe's and lists/unsubscribe's answer: the bulk one (reference 6.3, 2.2)."""
    return {
        "successCount": success,
        "failCount": sent - success,
        "invalidEmails": failed["invalidEmails"],
        "invalidUserIds": failed["invalidUserIds"],
        "failedUpdates": failed,
    }


def _invalid_list(project: Project, list_id: Any) -> dict:
    # As recorded from Iterable on lists/subscribe (reference 5): a 400 whose code says "Success"; msg names
    # the error. lists/unsubscribe is answered the same way.
    params = {"projectId": project.project_id, "listId": list_id}
    return envelope("Success", f"error.lists.invalidListId({list_id})", params)


def _subscription_group(project: Project, path: str) -> tuple[str, int]:
    """The path's group (case-insensitive) and numeric id, which the project must have: else a 400 Reply."""
    _, _, _, raw_group, raw_id, *_ = path.split("/")
    raw_group, raw_id = urllib.parse.unquote(raw_group), urllib.parse.unquote(raw_id)
    group = GROUPS.get(raw_group.lower())
    if group is None:
        message = f"Invalid subscription group {raw_group!r}: emailList, messageType or messageChannel"
        raise Reply(400, envelope("BadParams", message))
    if not (raw_id.isascii() and raw_id.isdigit()):
        raise Reply(400, envelope("BadParams", f"Invalid subscription group id {raw_id!r}: it must be numeric"))
    if not group_exists(project, group, int(raw_id)):
        raise Reply(400, envelope("BadParams", f"No {group} with id {int(raw_id)} in this project"))
    return group, int(raw_id)


_FAILURE_CODES = {"invalidEmails": "InvalidEmailAddressError", "invalidUserIds": "InvalidUserIdError"}


def _refusal(project: Project, record: dict) -> tuple[int, str, str] | None:
    """Why a write of ``record`` (an email or a userId) would fail, as write_user decides it, without writing:
    (status, code, message), or None when it would go through (creating the user if need be)."""
    who = identify(project, record)
    if isinstance(who, WriteResult):
        return 400, _FAILURE_CODES.get(who.failure, "BadParams"), who.message
    email, user_id = record.get("email"), record.get("userId")
    if (email and email.lower() in project.forgotten) or (user_id and user_id in project.forgotten_user_ids):
        # As registerDeviceToken answers it (reference 5: 409 "Contact is GDPR forgotten").
        return 409, "ForgottenUserError", "Contact is GDPR forgotten"
    return None


def _user_for(project: Project, record: dict) -> dict:
    """The user of a record _refusal let through; created when unknown, as Iterable does on writes (reference 6.1)."""
    user = find_user(project, email=record.get("email"), user_id=record.get("userId"))
    if user is None:
        write_user(project, record, create_new_fields=None)
        user = find_user(project, email=record.get("email"), user_id=record.get("userId"))
    assert user is not None, record  # _refusal said the write goes through
    return user


def _subscription_change(
    project: Project, group: str, group_id: int, emails: list[str], user_ids: list[str], subscribe: bool
) -> tuple[int, Any]:
    """Subscribe or unsubscribe every user named, all or none: each one is checked before any is changed."""
    records = [{"email": e} for e in dict.fromkeys(emails)] + [{"userId": u} for u in dict.fromkeys(user_ids)]
    for record in records:
        refusal = _refusal(project, record)
        if refusal is not None:
            return refusal[0], envelope(refusal[1], refusal[2])
    # A value in both lists whose email is one user's and userId another's: Swagger's 409 "Email/userId conflict".
    clashing = [value for value in dict.fromkeys(emails) if value in user_ids and conflicting(project, value, value)]
    if clashing:
        return 409, envelope("ExternalKeyConflict", "Email/userId conflict", {"conflicts": clashing})
    for record in records:
        toggle(project, _user_for(project, record), group, group_id, subscribe=subscribe)
    if project.subscriptions_bulk_status == 202:
        return 202, b""  # Swagger: "Accepted a request for bulk subscription actions", no body documented
    verb = "Subscribed" if subscribe else "Unsubscribed"
    return 200, envelope("Success", f"{verb} {len(records)} user(s) {'to' if subscribe else 'from'} {group} {group_id}")


def _overwrite_subscriptions(project: Project, request: dict) -> tuple[int, str, str] | None:
    """One UpdateSubscriptionsRequest applied (None), or why it was not: (status, code, message)."""
    record = {k: request[k] for k in ("email", "userId") if request.get(k) is not None}
    if not record:
        return 400, "BadParams", "email or userId is required"
    refusal = _refusal(project, record)
    if refusal is not None:
        return refusal
    if conflicting(project, record.get("email"), record.get("userId")):
        return 409, "ExternalKeyConflict", "Email/userId conflict"
    overwrite(project, _user_for(project, record), request)
    return None


def _type_mismatch(
    project: Project, records: list[dict], create_new_fields: bool | None, *, report_first: bool = False
) -> dict | None:
    """The 400 envelope when a value of any record does not fit its field's type, else None.

    Checked for all records before anything is written: a mismatch anywhere fails the whole request.
    ``params.validationErrors`` names every field refused (or only the first, ``report_first``), each with
    the first value refused for it: one value per field, as the reference's shape allows.
    """
    allow_new = project.allow_new_fields if create_new_fields is None else create_new_fields
    fields = dict(project.fields)  # a working copy: new fields typed by an earlier record count for later ones
    found: dict[str, TypeMismatch] = {}  # per field, the first value refused for it
    for record in records:
        check_types(fields, record.get("dataFields") or {}, allow_new=allow_new, mismatches=found)
        if found and report_first:
            break
    if not found:
        return None
    mismatches = list(found.values())
    return type_mismatch_envelope(project.project_id, mismatches[:1] if report_first else mismatches)


def _redirect(url: str, params: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    sep = "&" if "?" in url else "?"
    return 302, b"", {"Location": url + sep + urllib.parse.urlencode(params)}


def _authorize(state: EmulatorState, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    """Auto-approves (or denies, when told to) and redirects back with a code."""
    client = state.oauth_clients.get(query.get("client_id", ""))
    redirect_uri = query.get("redirect_uri", "")
    if client is None or redirect_uri not in client["redirect_uris"]:
        return 400, {"error": "invalid_request", "error_description": "unknown client or redirect_uri"}, {}
    back = {"state": query.get("state", "")}
    if query.get("response_type") != "code":
        return _redirect(redirect_uri, {**back, "error": "unsupported_response_type"})
    if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
        return _redirect(redirect_uri, {**back, "error": "invalid_request", "error_description": "PKCE S256 required"})
    with state.lock:
        if state.oauth_deny_next:
            state.oauth_deny_next = False
            return _redirect(redirect_uri, {**back, "error": "access_denied", "error_description": "The user denied"})
        code = secrets.token_urlsafe(24)
        state.oauth_codes[code] = {
            "client_id": query["client_id"],
            "redirect_uri": redirect_uri,
            "challenge": query["code_challenge"],
            "scope": query.get("scope", ""),
            "expires_at": time.time() + 60,
        }
    return _redirect(redirect_uri, {**back, "code": code})


def _issue_tokens(state: EmulatorState, client: dict, scope: str) -> dict:
    access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    state.access_tokens[access] = {
        "project_id": client["project_id"],
        "region": client["region"],
        "scope": scope,
        "expires_at": time.time() + state.oauth_token_ttl,
    }
    state.refresh_tokens[refresh] = {"client_id": client["client_id"], "scope": scope}
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": state.oauth_token_ttl,
        "refresh_token": refresh,
        "scope": scope,
    }


def _token(state: EmulatorState, form: dict[str, str]) -> tuple[int, dict]:
    if state.oauth_fail_token_endpoint:
        return 500, {"error": "server_error", "error_description": "token endpoint unavailable"}
    client = state.oauth_clients.get(form.get("client_id", ""))
    if client is None or not secrets.compare_digest(client["secret"], form.get("client_secret", "")):
        return 401, {"error": "invalid_client"}
    with state.lock:
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = state.oauth_codes.pop(form.get("code", ""), None)  # single use
            if code is None or code["expires_at"] < time.time() or code["client_id"] != client["client_id"]:
                return 400, {"error": "invalid_grant", "error_description": "unknown, used or expired code"}
            if code["redirect_uri"] != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not verifier or digest != code["challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
            return 200, _issue_tokens(state, client, code["scope"])
        if grant == "refresh_token":
            old = state.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotated: single use
            if old is None or old["client_id"] != client["client_id"]:
                return 400, {"error": "invalid_grant", "error_description": "unknown or used refresh token"}
            return 200, _issue_tokens(state, client, old["scope"])
    return 400, {"error": "unsupported_grant_type"}


class EmulatorHTTPServer(EmulatorServer):
    handler = Handler
    state_class = EmulatorState


def start_in_thread(port: int = 0, *, spec_path: str | None = None) -> EmulatorHTTPServer:
    """Serve on 127.0.0.1 in a daemon thread (tests). ``server.shutdown()`` stops it."""
    return EmulatorHTTPServer(("127.0.0.1", port), spec=SwaggerSpec.load(spec_path)).serve_in_thread(
        "iterable-emulator"
    )

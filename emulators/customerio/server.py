"""The Customer.io emulator: a small HTTP server that answers as Customer.io's Track API and a
sliver of its App API do (``../shared/reference/customerio.md``), for tests, the demo and benchmarks.

    python -m emulators.customerio --port 9200 --workspace SITE:KEY

Regions are path prefixes, one per real host:

- ``/us`` is ``https://track.customer.io``, ``/eu`` is ``https://track-eu.customer.io`` (Track API,
  Basic ``site_id:api_key``); a path without a prefix is the US host;
- ``/us-api`` is ``https://api.customer.io``, ``/eu-api`` is ``https://api-eu.customer.io`` (App API,
  Bearer App key).

A workspace lives in one region. A pair used on the other region's Track host is a 401, with one
exception and one option: ``GET /api/v1/accounts/region`` answers from either host (its documented
purpose), and ``us_redirects_eu`` makes the US host answer an EU pair with a 307 to the same path on
the EU host (reference 1.3 says Customer.io "will redirect it accordingly"; a third party saw a 401,
which is the default here). ``/_emulator/...`` is the control API (:mod:`emulators.customerio.control`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
import socket
import time
import traceback
import urllib.parse
from typing import Any

from emulators.common import EmulatorHandler, EmulatorServer, served
from emulators.customerio.people import (
    app_customer,
    apply_operation,
    byte_len,
    check_attributes,
    check_event,
    check_identifier,
    check_operation,
    delete_person,
    find_person,
    identify,
    path_identifier,
    record_event,
)
from emulators.customerio.spec import OpenAPISpec, Problem
from emulators.customerio.state import MAX_APP_IDS, EmulatorState, Fault, Workspace

UNAUTHORIZED = {"meta": {"error": "Unauthorized request"}}
# path prefix -> (is the App API, region)
PREFIXES = {"/us-api": (True, "us"), "/eu-api": (True, "eu"), "/us": (False, "us"), "/eu": (False, "eu")}


class Reply(Exception):
    """Raised anywhere in a request's handling to answer at once."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def v2_errors(*problems: Problem) -> dict:
    return {"errors": [problem.as_error() for problem in problems]}


class Handler(EmulatorHandler):
    server: EmulatorHTTPServer

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = dict(headers or {})
        if self.entry is not None:
            self.entry["status"] = status
        self.send_response(status)
        default_type = "text/html" if isinstance(body, bytes) else "application/json"
        self.send_header("Content-Type", headers.pop("Content-Type", default_type))
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    @property
    def base_url(self) -> str:
        """This server as the client reached it: the Track URL answers and redirects point at."""
        return f"http://{self.headers.get('Host') or self.server.url.removeprefix('http://')}"

    def _dispatch(self, method: str) -> None:
        self.entry: dict | None = None
        url = urllib.parse.urlsplit(self.path)
        full_path, path, api, region = url.path, url.path, "track", "us"
        for prefix, (is_app, prefix_region) in PREFIXES.items():
            if full_path.startswith(prefix + "/"):
                path, region, api = full_path[len(prefix) :], prefix_region, "app" if is_app else "track"
                break
        query = dict(urllib.parse.parse_qsl(url.query))
        # Read the whole body first, whatever the answer will be: a body left unread would be
        # taken for the next request on this keep-alive connection.
        self.body = self._read_body()
        is_api = path != full_path or path.startswith("/api/")
        if is_api:
            served.paths.append(full_path)
        try:
            if full_path.startswith("/_emulator/"):
                from emulators.customerio.control import handle_control

                status, body = handle_control(self.server.state, method, full_path, query, self.body)
                self._send(status, body)
            elif is_api:
                with self.server.state.lock:
                    self.server.state.in_flight += 1
                    self.server.state.most_in_flight = max(
                        self.server.state.most_in_flight, self.server.state.in_flight
                    )
                try:
                    self._api(method, full_path, path, url.query, query, api, region)
                finally:
                    with self.server.state.lock:
                        self.server.state.in_flight -= 1
            else:
                self._send(404, {"meta": {"error": "Not found"}})
        except Reply as reply:
            try:
                self._send(reply.status, reply.body, reply.headers)
            except OSError:
                # The client left first (it gave up on a "timeout" fault's late answer): nothing to answer.
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            if self.entry is not None:
                self.entry["status"] = "dropped"
        except Exception:  # noqa: BLE001 - the catch-all is the point: see below
            # A bug here answers as a 5xx does, not as a dropped connection that would look like a
            # network fault and hide the bug.
            traceback.print_exc()
            self.close_connection = True  # the state of this connection is unknown after a failure
            with contextlib.suppress(OSError):  # the client may have gone already
                self._send(500, {"meta": {"error": "Emulator error; please try again later"}})

    # --- the APIs -------------------------------------------------------------------------

    def _api(self, method: str, full_path: str, path: str, raw_query: str, query: dict, api: str, region: str) -> None:
        state = self.server.state
        state.bump(state.arrived, full_path)
        self.entry = {
            "method": method,
            "api": api,
            "region": region,
            "path": path,
            "full_path": full_path,
            "query": query,
            "body": self.body.decode(errors="replace"),
            "site_id": None,
            "status": None,
            "at": time.time(),
        }
        state.log_request(self.entry)
        latency = state.option("latency_ms") + (state.option("region_latency_ms") or {}).get(region, 0)
        if latency:
            time.sleep(latency / 1000)
        name, handler, params = self._route(method, path, api)
        if handler is None:
            raise Reply(404, {"meta": {"error": f"Not found: {method} {path}"}})
        workspace = self._authenticate(api, region, path, raw_query, any_region=name == "region")
        self.entry["site_id"] = workspace.site_id
        if not state.rate_ok(workspace.site_id, api):
            state.bump(state.rate_limited, full_path)
            retry_after = state.option("retry_after")
            headers = {"Retry-After": str(retry_after)} if retry_after else {}
            message = (
                f"Your request is over the {state.option('app_rate_limit_rps')}-per-second limit"
                if api == "app"
                else "Too many requests"
            )
            raise Reply(429, {"meta": {"error": message}}, headers)
        fault = state.next_fault(full_path, path)
        carried_out = fault is not None and (fault.apply or fault.kind == "truncate")
        if fault is not None:
            state.bump(state.faulted, full_path)
            if not carried_out:
                self._fault_answer(fault, None)
        state.bump(state.counts, full_path)
        status, payload = handler(self, workspace, params, query, region)
        if carried_out:
            self._fault_answer(fault, (status, payload))
        self._send(status, payload)

    def _authenticate(self, api: str, region: str, path: str, raw_query: str, *, any_region: bool) -> Workspace:
        state = self.server.state
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        workspace: Workspace | None = None
        if api == "app":
            if scheme.lower() == "bearer" and credentials.strip():
                workspace = state.by_app_key(credentials.strip())
        elif scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                site_id, _, api_key = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
                candidate = state.workspaces.get(site_id)
                if candidate is not None and secrets.compare_digest(candidate.api_key, api_key):
                    workspace = candidate
        if workspace is not None and workspace.region != region and not any_region:
            if api == "track" and region == "us" and state.option("us_redirects_eu"):
                state.bump(state.redirected, self.entry["full_path"])
                location = f"{self.base_url}/eu{path}" + (f"?{raw_query}" if raw_query else "")
                raise Reply(307, b"", {"Location": location})
            workspace = None
        if workspace is None:
            state.bump(state.unauthorized, self.entry["full_path"])
            raise Reply(401, UNAUTHORIZED)
        return workspace

    def _fault_answer(self, fault: Fault, result: tuple[int, Any] | None) -> None:
        if fault.kind == "timeout":
            time.sleep(fault.seconds)
            raise Reply(504, b"<html><body><h1>504 Gateway Time-out</h1></body></html>")
        if fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError
        if fault.kind == "truncate" and result is not None:
            # Carried out, but the answer arrives cut (a proxy's buffer, a dropped tail): valid HTTP, broken JSON.
            encoded = json.dumps(result[1]).encode()
            cut = len(encoded) // 2 if fault.cut is None else fault.cut
            raise Reply(result[0], encoded[:cut], {"Content-Type": "application/json"})
        if fault.raw is not None:  # not JSON: a proxy's page, an empty body
            raise Reply(fault.status, fault.raw.encode(), {**(fault.headers or {}), "Content-Type": fault.content_type})
        body = fault.body if fault.body is not None else {"meta": {"error": "Internal Server Error"}}
        raise Reply(fault.status, body, fault.headers)

    def _route(self, method: str, path: str, api: str):
        parts = [urllib.parse.unquote(part) for part in path.split("/")[1:]]
        if api == "app":
            if (method, path) == ("POST", "/v1/customers/attributes"):
                return "app.people", Handler.r_app_people, {}
            if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "customers"] and parts[3] == "attributes":
                return "app.person", Handler.r_app_person, {"identifier": parts[2]}
            if (method, path) == ("GET", "/v1/subscription_topics"):
                return "app.topics", Handler.r_app_topics, {}
            return "", None, {}
        if (method, path) == ("GET", "/api/v1/accounts/region"):
            return "region", Handler.r_region, {}
        if (method, path) == ("POST", "/api/v2/batch"):
            return "batch", Handler.r_batch, {}
        if (method, path) == ("POST", "/api/v2/entity"):
            return "entity", Handler.r_entity, {}
        if len(parts) >= 4 and parts[:3] == ["api", "v1", "customers"] and parts[3]:
            if len(parts) == 4 and method == "PUT":
                return "v1.identify", Handler.r_v1_identify, {"identifier": parts[3]}
            if len(parts) == 4 and method == "DELETE":
                return "v1.delete", Handler.r_v1_delete, {"identifier": parts[3]}
            if len(parts) == 5 and parts[4] == "events" and method == "POST":
                return "v1.event", Handler.r_v1_event, {"identifier": parts[3]}
        return "", None, {}

    def _json(self, on_error) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise Reply(400, on_error(f"invalid JSON: {exc}")) from None

    def _v1_error(self, *messages: str) -> Reply:
        if self.server.state.option("v1_error_shape") == "errors":
            return Reply(400, {"meta": {"errors": list(messages)}})
        return Reply(400, {"meta": {"error": messages[0]}})

    def _v1_body(self, spec_path: str, method: str) -> dict:
        body = self._json(lambda message: self._v1_error(message).body)
        if not isinstance(body, dict):
            raise self._v1_error("request body must be a JSON object")
        spec = self.server.spec
        schema = spec.body_schema(method, spec_path) if spec else None
        problems = spec.validate(schema, body) if schema else []
        if problems:
            raise self._v1_error(*(problem.message for problem in problems))
        return body

    # --- Track routes: each returns (status, body) --------------------------------------------

    def r_region(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        return 200, {
            "url": f"{self.base_url}/{workspace.region}",
            "region": workspace.region,
            "environment_id": workspace.environment_id,
        }

    def _op_problems(self, op: Any, workspace: Workspace) -> list[Problem]:
        state = self.server.state
        size = byte_len(op)
        if size > state.option("max_item_bytes"):
            message = f"each request in a batch must be 32kb or smaller; this one is {size} bytes"
            return [Problem("", "invalid", message)]
        # The emulator's own checks name the field and the rule precisely, document or no document;
        # the OpenAPI document catches the rest (types, enums, required keys of other actions).
        problems = check_operation(op, workspace)
        spec = self.server.spec
        if not problems and spec is not None and (schema := spec.batch_item_schema()) is not None:
            problems = spec.validate(schema, op)
        return problems[:1] if state.option("error_report") == "first" else problems

    def r_batch(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        state = self.server.state
        limit = state.option("max_batch_bytes")
        if len(self.body) > limit:
            message = f"batch request must be smaller than 500kb; this one is {len(self.body)} bytes (limit {limit})"
            return state.option("batch_too_large_status"), v2_errors(Problem("batch", "invalid", message))
        body = self._json(lambda message: v2_errors(Problem("body", "invalid", message)))
        if not isinstance(body, dict):
            return 400, v2_errors(Problem("body", "invalid", "request body must be a JSON object"))
        if "batch" not in body:
            return 400, v2_errors(Problem("batch", "required", "batch is required"))
        if not isinstance(body["batch"], list):
            return 400, v2_errors(Problem("batch", "invalid", "batch must be an array"))
        errors, valid = [], []
        for index, op in enumerate(body["batch"]):
            problems = self._op_problems(op, workspace)
            errors += [{"batch_index": index, **problem.as_error()} for problem in problems]
            if not problems:
                valid.append(op)
        with state.lock:
            for op in valid:
                if not apply_operation(workspace, op):
                    state.deduplicated_events += 1
        # 207: "At least one object in the batch was invalid; all other requests are accepted."
        return (207, {"errors": errors}) if errors else (200, {})

    def r_entity(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        state = self.server.state
        if len(self.body) > state.option("max_item_bytes"):
            message = f"request must be smaller than 32kb; this one is {len(self.body)} bytes"
            return 400, v2_errors(Problem("body", "invalid", message))
        op = self._json(lambda message: v2_errors(Problem("body", "invalid", message)))
        problems = self._op_problems(op, workspace)
        if problems:
            return 400, v2_errors(*problems)
        with state.lock:
            if not apply_operation(workspace, op):
                state.deduplicated_events += 1
        return 200, {}

    def _path_person(self, workspace: Workspace, identifier: str) -> tuple[str, str]:
        kind, value = path_identifier(workspace, identifier)
        problems = check_identifier(kind, value, workspace, "identifier")
        if problems:
            raise self._v1_error(problems[0].message)
        return kind, value

    def r_v1_identify(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        body = self._v1_body("/api/v1/customers/{identifier}", "PUT")
        kind, value = self._path_person(workspace, params["identifier"])
        attributes = {name: item for name, item in body.items() if name != "cio_relationships"}
        problems = check_attributes(attributes, where="")
        if problems:
            raise self._v1_error(*(problem.message for problem in problems))
        with self.server.state.lock:
            identify(
                workspace,
                kind,
                value,
                attributes,
                timestamp=body.get("_timestamp"),
                update_only=body.get("_update") is True,
            )
        return 200, {}

    def r_v1_delete(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        kind, value = self._path_person(workspace, params["identifier"])
        with self.server.state.lock:
            delete_person(workspace, kind, value)
        return 200, {}

    def r_v1_event(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        body = self._v1_body("/api/v1/customers/{identifier}/events", "POST")
        kind, value = self._path_person(workspace, params["identifier"])
        problems = check_event(body.get("name"), body.get("data"), data_field="data")
        if problems:
            raise self._v1_error(*(problem.message for problem in problems))
        state = self.server.state
        with state.lock:
            stored = record_event(
                workspace,
                kind,
                value,
                name=body["name"],
                dedupe_id=body.get("id"),
                data=body.get("data"),
                timestamp=body.get("timestamp"),
                event_type=body.get("type") or "event",
                via="v1",
            )
            if not stored:
                state.deduplicated_events += 1
        return 200, {}

    # --- App API routes -----------------------------------------------------------------------

    def _id_type(self, query: dict) -> str:
        id_type = query.get("id_type", "id")
        if id_type not in ("id", "email", "cio_id"):
            raise Reply(400, {"meta": {"error": "id_type must be one of id, email, cio_id"}})
        return id_type

    def r_app_people(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        id_type = self._id_type(query)
        body = self._json(lambda message: {"meta": {"error": message}})
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            return 400, {"meta": {"error": "ids must be a non-empty array"}}
        if len(ids) > MAX_APP_IDS:
            return 400, {"meta": {"error": f"ids may hold at most {MAX_APP_IDS} ids, not {len(ids)}"}}
        with self.server.state.lock:
            found = [find_person(workspace, id_type, str(item)) for item in ids]
            # getPeopleById: unknown ids are left out of the answer
            return 200, {"customers": [{"customer": app_customer(person)} for person in found if person]}

    def r_app_person(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        id_type = self._id_type(query)
        with self.server.state.lock:
            person = find_person(workspace, id_type, params["identifier"])
            if person is None:
                return 404, {"meta": {"error": "Customer not found"}}
            return 200, {"customer": app_customer(person)}

    def r_app_topics(self, workspace: Workspace, params: dict, query: dict, region: str) -> tuple[int, dict]:
        """getTopics (reference 5): the workspace's subscription topics, "an empty array" when it has none."""
        with self.server.state.lock:
            return 200, {"topics": [dict(item) for item in workspace.topics]}


class EmulatorHTTPServer(EmulatorServer):
    handler = Handler
    state_class = EmulatorState


def start_in_thread(port: int = 0, *, spec_path: str | None = None) -> EmulatorHTTPServer:
    """Serve on 127.0.0.1 in a daemon thread (tests). ``server.shutdown()`` stops it."""
    return EmulatorHTTPServer(("127.0.0.1", port), spec=OpenAPISpec.load(spec_path)).serve_in_thread(
        "customerio-emulator"
    )

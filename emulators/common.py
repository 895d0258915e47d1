"""What every emulator's HTTP server does the same way: threads, bookkeeping, its URL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import requests

# The API paths a handler thread served (EmulatorServer.process_request_thread counts them as finished).
served = threading.local()


class EmulatorHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1, quiet unless the server is verbose; every method goes to ``_dispatch``."""

    protocol_version = "HTTP/1.1"
    # An answer goes out as two writes (headers, then body). With Nagle's algorithm on, the body
    # can wait for the client's delayed ACK of the headers: ~40 ms added to a call, now and then.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:  # pragma: no cover - each emulator has its own
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:  # Iterable's single-user subscribe (PATCH /api/subscriptions/...)
        self._dispatch("PATCH")


class EmulatorServer(ThreadingHTTPServer):
    """A threaded server with one state object: each request's paths are counted as finished once the
    server is done with the connection, and an exception that got out of a handler is counted too."""

    daemon_threads = True
    allow_reuse_address = True
    handler: ClassVar[type]
    state_class: ClassVar[type]

    def __init__(self, address: tuple[str, int], *, spec: Any, verbose: bool = False) -> None:
        super().__init__(address, self.handler)
        self.state = self.state_class()
        self.spec = spec
        self.verbose = verbose

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        served.paths = []
        super().process_request_thread(request, client_address)  # handle_error (if any) has run
        with self.state.lock:
            for path in served.paths:
                self.state.finished[path] = self.state.finished.get(path, 0) + 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        # An exception that got out of a handler (a bug): counted, so that tests can see there was none.
        with self.state.lock:
            self.state.unhandled_errors += 1
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve_in_thread(self, name: str) -> EmulatorServer:
        """Serve in a daemon thread (tests). ``shutdown()`` stops it."""
        threading.Thread(target=self.serve_forever, name=name, daemon=True).start()
        return self


def fault_take(faults: list, matches: Callable[[Any], bool]) -> Any | None:
    """The first fault of ``faults`` that ``matches`` this request and is due (each ``after`` lets one
    request by first), spent by one of its ``times`` (gone when none is left); None when none applies."""
    for fault in faults:
        if matches(fault) and fault.times > 0:
            if fault.after > 0:
                fault.after -= 1
                continue
            fault.times -= 1
            if fault.times == 0:
                faults.remove(fault)
            return fault
    return None


class ControlClient:
    """Drive an emulator's control API at ``base_url`` (its root, without a region prefix), over HTTP:
    the same calls work whether it runs in a thread or in its own process."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def _call(self, method: str, action: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}/_emulator/{action}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._call("POST", "reset")

    def stats(self) -> dict:
        return self._call("GET", "stats")

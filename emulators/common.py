"""What every emulator's HTTP server does the same way: threads, bookkeeping, its URL."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar

# The API paths a handler thread served (EmulatorServer.process_request_thread counts them as finished).
served = threading.local()


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

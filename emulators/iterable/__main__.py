"""python -m emulators.iterable [--port 9100] [--spec PATH] [--demo-key KEY]"""

from __future__ import annotations

import argparse
import contextlib

from emulators.iterable.server import EmulatorHTTPServer
from emulators.iterable.spec import SwaggerSpec


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.iterable", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--spec", help="Iterable's Swagger document (default: ../shared/specs/iterable-api-docs.json)")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay every API answer")
    parser.add_argument("--no-rate-limits", action="store_true", help="do not answer 429 above the documented limits")
    parser.add_argument(
        "--refusal-status",
        type=int,
        choices=(401, 403),
        default=403,
        help="how a key type is refused an endpoint it may not call (Iterable's Swagger lists 401)",
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY[:TYPE[:PROJECT[:REGION]]]",
        help="add an API key (type server_side, read_only, mobile or javascript); repeatable",
    )
    parser.add_argument(
        "--oauth-client",
        action="append",
        default=[],
        metavar="ID:SECRET:REDIRECT_URI",
        help="register an OAuth client of project 1 (US); repeatable",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    spec = SwaggerSpec.load(args.spec)
    server = EmulatorHTTPServer((args.host, args.port), spec=spec, verbose=args.verbose)
    server.state.latency_ms = args.latency_ms
    server.state.rate_limits_on = not args.no_rate_limits
    server.state.refusal_status = args.refusal_status
    for item in args.key:
        parts = item.split(":")
        key, key_type, project, region = parts + ["", "server_side", "1", "us"][len(parts) :]
        server.state.add_key(key, key_type or "server_side", int(project or 1), region or "us")
    for item in args.oauth_client:
        client_id, secret, redirect_uri = item.split(":", 2)
        server.state.project(1)
        server.state.oauth_clients[client_id] = {
            "client_id": client_id,
            "secret": secret,
            "redirect_uris": [redirect_uri],
            "project_id": 1,
            "region": "us",
        }
    checking = "checking bodies against Iterable's Swagger document" if spec else "no Swagger document found"
    print(f"Iterable emulator on {server.url} (US {server.url}/us, EU {server.url}/eu), {checking}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()

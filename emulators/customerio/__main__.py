"""python -m emulators.customerio [--port 9200] [--workspace SITE:KEY[:REGION[:APPKEY]]] [--latency-ms N]"""

from __future__ import annotations

import argparse
import contextlib

from emulators.customerio.server import EmulatorHTTPServer
from emulators.customerio.spec import OpenAPISpec


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.customerio", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument(
        "--spec", help="the Track API OpenAPI document (default: ../shared/specs/customerio-track-api-openapi.json)"
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="delay every API answer")
    parser.add_argument(
        "--workspace",
        action="append",
        default=[],
        metavar="SITE:KEY[:REGION[:APPKEY]]",
        help="add a workspace (region us or eu, default us; APPKEY for the App API); repeatable",
    )
    parser.add_argument("--identify-by", choices=("id", "email", "both"), default="id", help="for --workspace")
    parser.add_argument("--us-redirects-eu", action="store_true", help="answer an EU pair on the US host with a 307")
    parser.add_argument("--rate-limit-rps", type=float, help="Track API requests/s per workspace before a 429")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    spec = OpenAPISpec.load(args.spec)
    server = EmulatorHTTPServer((args.host, args.port), spec=spec, verbose=args.verbose)
    server.state.configure(
        latency_ms=args.latency_ms, us_redirects_eu=args.us_redirects_eu, rate_limit_rps=args.rate_limit_rps
    )
    for item in args.workspace:
        parts = item.split(":")
        if len(parts) < 2:
            parser.error(f"--workspace {item!r}: SITE:KEY[:REGION[:APPKEY]]")
        site_id, api_key, region, app_key = (parts + ["us", ""][len(parts) - 2 :])[:4]
        server.state.add_workspace(
            site_id, api_key, region=region or "us", identify_by=args.identify_by, app_key=app_key or None
        )
    checking = "checking bodies against the Track API OpenAPI document" if spec else "no OpenAPI document found"
    print(
        f"Customer.io emulator on {server.url}: Track {server.url}/us and {server.url}/eu, "
        f"App API {server.url}/us-api and {server.url}/eu-api; {checking}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()

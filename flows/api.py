"""The capture API: ``POST /api/v1/contacts`` with a workspace's bearer token.

Body, one contact::

    {"flow": "<flow public id>", "fields": {"email": "ada@example.com", "shoe_size": 42}}

or a batch of up to ``CAPTURE_MAX_BATCH``::

    {"contacts": [{"flow": "...", "fields": {...}}, ...]}

Every problem is a 4xx JSON answer ``{"error": {"code", "message", "fields"?}}``;
a batch answers per item. See README "Capture API".
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from erasure.models import ErasureRequest
from erasure.services import ErasureRefused, erasure_request
from flows.services import (
    ItemResult,
    capture_flows,
    capture_token_authenticate,
    contacts_capture_batch,
    contacts_per_flow,
)
from integrations.devices import device_disable_queue
from lib import ratelimit


def _error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="flowsync"'
    return response


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _item_json(result: ItemResult) -> dict[str, Any]:
    if result.contact is not None:
        item = {"index": result.index, "status": "created", "id": result.contact.pk}
        if result.contact.awaiting_confirmation:
            item["confirmation"] = "pending"  # a double opt-in flow: synced once the mailed link is confirmed
        return item
    return {"index": result.index, "status": "rejected", "code": result.code, "errors": result.errors}


@csrf_exempt
def contacts_endpoint(request: HttpRequest) -> JsonResponse:
    token = _guard(request, ("POST", "DELETE"), "Use POST to submit contacts, DELETE to erase a person.")
    if isinstance(token, JsonResponse):
        return token
    if request.method == "DELETE":
        return _erase(request, token)
    body = _json_body(request)
    if isinstance(body, JsonResponse):
        return body

    if isinstance(body, dict) and "contacts" in body:
        unknown = sorted(set(body) - {"contacts"})
        items = body["contacts"]
        if unknown:
            return _error(400, "invalid", f"Unknown top-level key(s): {', '.join(map(str, unknown))[:200]}.")
        if not isinstance(items, list) or not items:
            return _error(400, "invalid", "'contacts' must be a non-empty list.", fields={"contacts": "must be a list"})
        if len(items) > settings.CAPTURE_MAX_BATCH:
            return _error(
                413,
                "batch_too_large",
                f"{len(items)} contacts in one request; send at most {settings.CAPTURE_MAX_BATCH}.",
            )
        single = False
    elif isinstance(body, dict):
        items, single = [body], True
    else:
        return _error(400, "invalid", 'The body must be a JSON object: one contact, or {"contacts": [...]}.')

    # Only the token's own flows are charged, keyed by pk: public ids are printed on public
    # pages, and another workspace naming one must not spend that flow's budget.
    flows = capture_flows(workspace=token.workspace, items=items)
    for flow_pk, count in contacts_per_flow(items=items, flows=flows).items():
        verdict = ratelimit.hit("api-flow", str(flow_pk), limit=settings.RATELIMIT_API_PER_FLOW, cost=count)
        if not verdict.allowed:
            return _rate_limited(verdict.retry_after)

    results = contacts_capture_batch(items=items, flows=flows)
    if single:
        result = results[0]
        if result.contact is not None:
            return JsonResponse(_item_json(result), status=201)
        status = {"flow_not_found": 404, "flow_disabled": 409}.get(result.code, 422)
        return _error(
            status,
            result.code,
            "The contact was not stored: " + "; ".join(result.errors.values())[:500],
            fields=result.errors,
        )
    created = sum(1 for r in results if r.contact is not None)
    return JsonResponse(
        {"created": created, "rejected": len(results) - created, "results": [_item_json(r) for r in results]},
        status=200,
    )


def _guard(request: HttpRequest, methods: tuple[str, ...], hint: str):
    """The request's capture token, or the answer that refuses it: a method not served, the per-IP limit,
    no or a bad token.

    The per-IP limit counts requests, not contacts: it is a flood guard, checked before the token is
    looked up or the body read (so it cannot know the contact count), and many customers send through
    shared egress IPs (integration platforms, cloud NAT) where a per-contact IP budget would let one
    tenant's batches throttle the others. Volume is metered per flow, per contact, once the flows are
    known to be the token's."""
    if request.method not in methods:
        response = _error(405, "method_not_allowed", hint)
        response["Allow"] = ", ".join(methods)
        return response
    ip_verdict = ratelimit.hit("api-ip", ratelimit.client_ip(request), limit=settings.RATELIMIT_API_PER_IP)
    if not ip_verdict.allowed:
        return _rate_limited(ip_verdict.retry_after)
    return _token(request)


def _json_body(request: HttpRequest):
    """The request's JSON body, or the answer that refuses it (too large, not JSON)."""
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    if length > settings.CAPTURE_MAX_BODY_BYTES:
        return _error(
            413, "body_too_large", f"The body is {length} bytes; the limit is {settings.CAPTURE_MAX_BODY_BYTES}."
        )
    if (request.content_type or "") != "application/json":
        return _error(415, "unsupported_media_type", "Send the body as JSON with 'Content-Type: application/json'.")
    try:
        return json.loads(request.body, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        return _error(400, "invalid_json", f"The body is not valid JSON: {str(exc)[:200]}")


def _rate_limited(retry_after: int) -> JsonResponse:
    response = _error(429, "rate_limited", f"Too many requests. Try again in {retry_after} seconds.")
    response["Retry-After"] = str(retry_after)
    return response


def _erase(request: HttpRequest, token) -> JsonResponse:
    """DELETE /api/v1/contacts?email=…[&forget=true]: erase the person from the token's workspace now (202:
    their destinations are asked next, erasure.services). A person not found is no error: erasing is
    idempotent, the destinations are asked all the same (they may hold the person from before), and the
    answer is the same either way: a capture token writes contacts, it does not read who was captured."""
    # Erasing cannot be undone and a forget spends a destination's daily cap: a budget of its own per
    # workspace, far below the capture budget, so that a leaked token cannot empty a workspace quickly.
    verdict = ratelimit.hit(
        "api-erase", str(token.workspace_id), limit=settings.RATELIMIT_API_ERASURES_PER_HOUR, window=3600
    )
    if not verdict.allowed:
        return _rate_limited(verdict.retry_after)
    email = (request.GET.get("email") or "").strip()
    forget = (request.GET.get("forget") or "").lower()
    if forget not in ("", "true", "false"):
        return _error(400, "invalid", "forget is true or false.")
    try:
        done = erasure_request(
            workspace=token.workspace, email=email, via=ErasureRequest.Via.API, forget=forget == "true"
        )
    except ErasureRefused as exc:
        return _error(400, "invalid", str(exc))
    return JsonResponse(
        {
            "erasure": {
                "id": done.pk,
                "mode": done.mode,
                "destinations": [
                    {"destination": step.destination_label, "status": step.status} for step in done.steps.all()
                ],
            }
        },
        status=202,
    )


def _token(request: HttpRequest):
    """The request's capture token, or the 401 to answer."""
    auth = request.headers.get("Authorization", "")
    scheme, _, raw_token = auth.partition(" ")
    if scheme.lower() != "bearer" or not raw_token.strip():
        return _error(401, "unauthorized", "Send your workspace's capture token as 'Authorization: Bearer <token>'.")
    token = capture_token_authenticate(raw_token.strip())
    if token is None:
        return _error(
            401,
            "unauthorized",
            "This capture token is not valid or was rotated. Get the current one in Settings > API.",
        )
    return token


@csrf_exempt
def devices_disable_endpoint(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/devices/disable ``{"token", "email"?, "user_id"?}``: stop pushes to a device at each
    destination (202; queued like a contact, carried out by the next sync, logged per destination)."""
    token = _guard(request, ("POST",), "Use POST to disable a device.")
    if isinstance(token, JsonResponse):
        return token
    body = _json_body(request)
    if isinstance(body, JsonResponse):
        return body
    if not isinstance(body, dict):
        return _error(400, "invalid", 'The body must be a JSON object: {"token": ..., "email": ...}.')
    errors = {}
    if unknown := sorted(set(body) - {"token", "email", "user_id"}):
        errors.update({str(k)[:40]: "unknown key; send token, and email or user_id" for k in unknown})
    device_token = body.get("token")
    if not isinstance(device_token, str) or not device_token.strip() or len(device_token) > 4096:
        errors["token"] = "required: the device's push token"
    identifiers = {}
    for key in ("email", "user_id"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > 254:
            errors[key] = "must be a non-empty string"
        else:
            identifiers[key] = value.strip().lower() if key == "email" else value.strip()
    if errors:
        return _error(
            422, "invalid", "Nothing was queued: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors
        )
    queued = device_disable_queue(
        workspace=token.workspace,
        token=device_token.strip(),
        email=identifiers.get("email", ""),
        user_id=identifiers.get("user_id", ""),
    )
    return JsonResponse({"status": "queued", "destinations": queued}, status=202)

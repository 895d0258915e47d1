"""The sync-log viewer: runs, a run's records and HTTP exchanges, one record, one exchange, retry, CSV export, and the
integration's alert settings (stored by integrations.health), which its run list shows."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations import health
from integrations.destinations import destination_class
from integrations.models import Integration
from integrations.selectors import integration_by_kind
from integrations.sync import Requeued, retry_failed
from sync_logs import selectors, services
from sync_logs.exchanges import exchange_body_pretty
from sync_logs.explain import Explanation, explain
from sync_logs.models import SyncRecord, SyncRun
from workspaces.models import Role
from workspaces.scoping import get_object_in_workspace, workspace_view


class AlertSettingsForm(forms.Form):
    failure_rate_threshold = forms.IntegerField(
        min_value=0, max_value=100, label="Email the admins when more than this % of a run's records fail (0: off)"
    )


def _integration(request: HttpRequest, kind: str) -> Integration:
    integration = integration_by_kind(workspace=request.workspace, kind=kind)
    if integration is None:
        raise Http404("No such integration")
    return integration


def _run(request: HttpRequest, kind: str, run_id: int) -> SyncRun:
    return get_object_in_workspace(
        SyncRun.objects.select_related("integration"), request.workspace, pk=run_id, integration__kind=kind
    )


def _id_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdecimal() and value.isascii() and len(value) < 19 else None


def _bar(run: SyncRun) -> list[tuple[str, float, float]]:
    """(name, start, width) in percent of the delivered / skipped / failed segments of a run's little bar.

    Drawn as SVG rectangles: their geometry is markup, so the page needs no inline style (the CSP allows none)."""
    if not run.total:
        return []
    segments, start = [], 0.0
    for name in ("delivered", "skipped", "failed"):
        width = 100 * getattr(run, name) / run.total
        if width:
            segments.append((name, start, width))
        start += width
    return segments


@workspace_view()
def run_list(request: HttpRequest, kind: str) -> HttpResponse:
    integration = _integration(request, kind)
    page = selectors.runs_page(
        integration=integration, after=_id_param(request, "after"), before=_id_param(request, "before")
    )
    state = health.alert_state(integration)
    context = {
        "integration": integration,
        "kind": kind,
        "page": page,
        "runs": [(run, _bar(run)) for run in page.items],
        "chart": selectors.runs_chart(integration=integration),
        "alert": state,
        "alert_shown_in_page": integration.pk,  # the page has the alert with its Dismiss: no banner on top
        "alert_form": AlertSettingsForm(initial={"failure_rate_threshold": state.failure_rate_threshold}),
    }
    return render(request, "sync_logs/run_list.html", context)


@workspace_view()
def run_detail(request: HttpRequest, kind: str, run_id: int) -> HttpResponse:
    run = _run(request, kind, run_id)
    page = selectors.records_page(
        run=run,
        status=request.GET.get("status", ""),
        q=request.GET.get("q", ""),
        after=_id_param(request, "after"),
        before=_id_param(request, "before"),
    )
    destination = destination_class(run.integration.kind)
    context = {
        "run": run,
        "kind": kind,
        "integration": run.integration,
        "page": page,
        "records": [(r, _explained(r, destination)) for r in page.items],
        "statuses": SyncRecord.Status.choices,
        "bar": _bar(run),
        "taken_by": _taken_by(request, run.integration),
        **_exchanges_context(request, run),
    }
    template = "sync_logs/run_detail.html"
    if request.htmx and request.htmx.target == "records":
        template = "sync_logs/_records.html"
    elif request.htmx and request.htmx.target == "requests":
        template = "sync_logs/_exchanges.html"
    return render(request, template, context)


def _exchanges_context(request: HttpRequest, run: SyncRun) -> dict:
    """The run page's requests section: its page, its filters, and the records' query its links keep."""
    show = request.GET.get("requests", "")
    page = selectors.exchanges_page(
        run=run,
        show=show if show in selectors.EXCHANGE_FILTERS else "",
        after=_id_param(request, "requests_after"),
        before=_id_param(request, "requests_before"),
    )
    kept = {k: v for k, v in request.GET.items() if k in ("status", "q", "after", "before") and v}
    return {
        "exchanges": page,
        "exchange_filters": selectors.EXCHANGE_FILTERS.items(),
        "records_query": urlencode(kept) + "&" if kept else "",
        "exchange_log_max": settings.EXCHANGE_LOG_MAX_PER_RUN,
    }


def _taken_by(request: HttpRequest, integration) -> SyncRun | None:
    """The run a retry just handed the record to (?taken_by=), shown live on the page it came back to."""
    run_id = _id_param(request, "taken_by")
    return integration.runs.filter(pk=run_id).first() if run_id else None


def _explained(record: SyncRecord, destination) -> Explanation | None:
    if not record.error_code:
        return None
    return explain(
        record.error_code,
        record.error_message,
        record.retryable,
        destination=destination,
        destination_code=record.destination_code,
    )


@workspace_view()
def record_detail(request: HttpRequest, kind: str, run_id: int, record_id: int) -> HttpResponse:
    run = _run(request, kind, run_id)
    record = selectors.record_in_run(run=run, record_id=record_id)
    if record is None:
        raise Http404("No such record")
    context = {
        "run": run,
        "kind": kind,
        "record": record,
        "integration": run.integration,
        "payload_json": json.dumps(record.payload, indent=2, ensure_ascii=False) if record.payload else "",
        "explanation": _explained(record, destination_class(run.integration.kind)),
        "taken_by": _taken_by(request, run.integration),
        "sent_in": selectors.exchanges_of_record(run=run, record=record),
    }
    return render(request, "sync_logs/record_detail.html", context)


@workspace_view()
def exchange_detail(request: HttpRequest, kind: str, run_id: int, exchange_id: int) -> HttpResponse:
    run = _run(request, kind, run_id)
    exchange = selectors.exchange_in_run(run=run, exchange_id=exchange_id)
    if exchange is None:
        raise Http404("No such request")
    context = {
        "run": run,
        "kind": kind,
        "integration": run.integration,
        "exchange": exchange,
        "request_body": exchange_body_pretty(exchange.request_body),
        "response_body": exchange_body_pretty(exchange.response_body),
        "body_chars": settings.EXCHANGE_LOG_BODY_CHARS,
    }
    return render(request, "sync_logs/exchange_detail.html", context)


@workspace_view()
def run_export(request: HttpRequest, kind: str, run_id: int) -> StreamingHttpResponse:
    run = _run(request, kind, run_id)
    response = StreamingHttpResponse(services.records_csv(run), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="flowsync-{kind}-run-{run.pk}.csv"'
    return response


def _report(request: HttpRequest, result: Requeued) -> None:
    (messages.success if result.run else messages.info)(request, result.message)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def run_retry(request: HttpRequest, kind: str, run_id: int) -> HttpResponse:
    run = _run(request, kind, run_id)
    result = retry_failed(integration=run.integration, actor=request.user, run=run)
    _report(request, result)
    if result.run:
        return redirect("sync_logs:run", request.workspace.slug, kind, result.run.pk)
    return redirect("sync_logs:run", request.workspace.slug, kind, run.pk)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def record_retry(request: HttpRequest, kind: str, run_id: int, record_id: int) -> HttpResponse:
    run = _run(request, kind, run_id)
    record = selectors.record_in_run(run=run, record_id=record_id)
    if record is None:
        raise Http404("No such record")
    if record.status != SyncRecord.Status.FAILED:
        messages.info(request, "Only failed records can be retried.")
        return redirect("sync_logs:record", request.workspace.slug, kind, run.pk, record.pk)
    result = retry_failed(integration=run.integration, actor=request.user, record=record)
    _report(request, result)
    back = request.POST.get("next", "")
    if not back.startswith(reverse("sync_logs:runs", args=[request.workspace.slug, kind])):
        back = reverse("sync_logs:record", args=[request.workspace.slug, kind, run.pk, record.pk])
    # Only back into this integration's logs, never elsewhere; the page then follows the run that took it.
    if result.run is not None:
        back += ("&" if "?" in back else "?") + f"taken_by={result.run.pk}"
    return redirect(back)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def alert_settings(request: HttpRequest, kind: str) -> HttpResponse:
    integration = _integration(request, kind)
    if request.POST.get("action") == "dismiss":
        health.alert_clear(integration=integration, actor=request.user)
        messages.success(request, "Alert dismissed. A new problem raises it again.")
    else:
        form = AlertSettingsForm(request.POST)
        if form.is_valid():
            threshold = form.cleaned_data["failure_rate_threshold"]
            health.alert_threshold_save(integration=integration, actor=request.user, threshold=threshold)
            messages.success(
                request, f"Alert threshold saved: {threshold}%." if threshold else "Failure-rate alerts are off."
            )
        else:
            messages.error(request, "The threshold is a whole percentage from 0 to 100.")
    return redirect("sync_logs:runs", request.workspace.slug, kind)

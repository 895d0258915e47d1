from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from flows import selectors
from flows.forms import (
    ContactSearchForm,
    CustomFieldForm,
    FieldEditForm,
    FlowCreateForm,
    FlowSettingsForm,
    StandardFieldForm,
)
from flows.models import Contact, ConversionFlow, FieldType, FlowField
from flows.qrcodes import FORMATS, PRINT_SIZES, flow_public_url, flow_qr_code, print_size
from flows.services import (
    CaptureRejected,
    ConfirmationInvalid,
    capture_token_revoke,
    capture_token_rotate,
    contact_capture,
    contact_confirm,
    contact_for_confirmation,
    flow_create,
    flow_field_add,
    flow_field_delete,
    flow_field_move,
    flow_field_update,
    flow_update,
    is_public_id,
)
from lib import ratelimit
from sync_logs.selectors import contact_history
from workspaces.models import Role
from workspaces.scoping import get_object_in_workspace, workspace_view


def _form_errors(form: object, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for key, errors in exc.message_dict.items():
            form.add_error(key if key in form.fields else None, errors)  # type: ignore[attr-defined]
    else:
        form.add_error(None, exc.messages)  # type: ignore[attr-defined]


# --- Flow builder (workspace admins) ------------------------------------------------------


@workspace_view()
def flow_list(request: HttpRequest) -> HttpResponse:
    flows = selectors.flows_for(workspace=request.workspace)
    return render(request, "flows/flow_list.html", {"flows": flows, "create_form": FlowCreateForm()})


@workspace_view(min_role=Role.ADMIN)
def flow_create_view(request: HttpRequest) -> HttpResponse:
    form = FlowCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        flow = flow_create(workspace=request.workspace, name=form.cleaned_data["name"], actor=request.user)
        messages.success(request, f"Flow “{flow.name}” created. Add the fields your form needs.")
        return redirect("flows:detail", request.workspace.slug, flow.pk)
    return render(request, "flows/flow_create.html", {"form": form})


def _flow_context(request: HttpRequest, flow: ConversionFlow, **extra: object) -> dict[str, object]:
    return {
        "flow": flow,
        "fields": list(flow.fields.all()),
        "standard_form": StandardFieldForm(flow=flow),
        "custom_form": CustomFieldForm(),
        "public_url": flow_public_url(flow),
        "print_sizes": PRINT_SIZES,
        **extra,
    }


@workspace_view()
def flow_detail(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = get_object_in_workspace(ConversionFlow, request.workspace, pk=flow_id)
    form = FlowSettingsForm.for_flow(flow, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            flow_update(flow=flow, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Flow saved.")
            return redirect("flows:detail", request.workspace.slug, flow.pk)
    status = 400 if form.errors else 200
    return render(request, "flows/flow_detail.html", _flow_context(request, flow, settings_form=form), status=status)


@workspace_view()
def flow_qr(request: HttpRequest, flow_id: int, fmt: str) -> HttpResponse:
    """The flow's QR code as SVG or PNG at a print size (?size=s|m|l); ?download=1 saves it as a file."""
    flow = get_object_in_workspace(ConversionFlow, request.workspace, pk=flow_id)
    if fmt not in FORMATS:
        raise Http404("No such format")
    size = print_size(request.GET.get("size"))
    response = HttpResponse(flow_qr_code(flow, fmt=fmt, size=size), content_type=FORMATS[fmt])
    if request.GET.get("download"):
        name = f"{slugify(flow.name) or 'flow'}-qr-{size.millimetres // 10}cm.{fmt}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    # The code changes only with SITE_URL; an hour spares a reload its redraw.
    response["Cache-Control"] = "private, max-age=3600"
    return response


@workspace_view()
def flow_qr_print(request: HttpRequest, flow_id: int) -> HttpResponse:
    """A page to print: the code, the flow's name and a call to action the admin may reword."""
    flow = get_object_in_workspace(ConversionFlow, request.workspace, pk=flow_id)
    cta = request.GET.get("cta", "").strip()[:120] or "Scan with your phone's camera to sign up"
    context = {"flow": flow, "cta": cta, "public_url": flow_public_url(flow), "size": print_size("l")}
    return render(request, "flows/flow_qr_print.html", context)


def _fields_response(request: HttpRequest, flow: ConversionFlow, **extra: object) -> HttpResponse:
    """After a field change: the fields panel for htmx, the whole page otherwise."""
    if request.htmx:
        return render(request, "flows/flow_detail.html#fields-panel", _flow_context(request, flow, **extra))
    if extra.get("field_error"):
        messages.error(request, str(extra["field_error"]))
    return redirect("flows:detail", request.workspace.slug, flow.pk)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def field_add(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = get_object_in_workspace(ConversionFlow, request.workspace, pk=flow_id)
    kind = request.POST.get("kind")
    form = (
        StandardFieldForm(request.POST, flow=flow) if kind == FlowField.Kind.STANDARD else CustomFieldForm(request.POST)
    )
    error = None
    if form.is_valid():
        try:
            flow_field_add(flow=flow, kind=kind or FlowField.Kind.CUSTOM, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = " ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    return _fields_response(request, flow, field_error=error)


@workspace_view(min_role=Role.ADMIN)
def field_edit(request: HttpRequest, flow_id: int, field_id: int) -> HttpResponse:
    field = get_object_in_workspace(
        FlowField.objects.select_related("flow"), request.workspace, pk=field_id, flow_id=flow_id
    )
    form = FieldEditForm.for_field(field, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            flow_field_update(
                field=field,
                label=form.cleaned_data["label"],
                required=form.cleaned_data["required"],
                choices=form.cleaned_data.get("choices"),
                wording=form.cleaned_data.get("wording"),
                actor=request.user,
            )
            messages.success(request, f"Field “{field.label}” saved.")
            return redirect("flows:detail", request.workspace.slug, flow_id)
        except ValidationError as exc:
            _form_errors(form, exc)
    return render(request, "flows/field_edit.html", {"field": field, "form": form, "flow": field.flow})


@workspace_view(min_role=Role.ADMIN)
@require_POST
def field_delete(request: HttpRequest, flow_id: int, field_id: int) -> HttpResponse:
    field = get_object_in_workspace(
        FlowField.objects.select_related("flow"), request.workspace, pk=field_id, flow_id=flow_id
    )
    try:
        flow_field_delete(field=field, actor=request.user)
    except ValidationError as exc:
        return _fields_response(request, field.flow, field_error=" ".join(exc.messages))
    return _fields_response(request, field.flow)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def field_move(request: HttpRequest, flow_id: int, field_id: int) -> HttpResponse:
    field = get_object_in_workspace(
        FlowField.objects.select_related("flow"), request.workspace, pk=field_id, flow_id=flow_id
    )
    flow_field_move(field=field, up=request.POST.get("direction") == "up")
    return _fields_response(request, field.flow)


# --- Contacts --------------------------------------------------------------------------------


@workspace_view()
def contact_list(request: HttpRequest) -> HttpResponse:
    form = ContactSearchForm(request.GET)
    if form.is_valid():
        params = form.cleaned_data
        page = selectors.contacts_page(
            workspace=request.workspace,
            q=params["q"],
            flow_public_id=params["flow"],
            cursor=params["cursor"],
            size=settings.CONTACTS_PAGE_SIZE,
        )
        search_error = ""
    else:
        # Say why and list nothing: every contact under a search box would read as its result.
        # Still 200, or htmx would not swap the message in.
        params = {
            name: request.GET.get(name, "").replace("\x00", "")[: form.fields[name].max_length]
            for name in ("q", "flow", "cursor")
        }
        page = selectors.ContactPage(contacts=[], next_cursor=None)
        search_error = " ".join(
            f"{form.fields[name].label}: {message}" for name, messages in form.errors.items() for message in messages
        )
    context = {
        "page": page,
        "q": params["q"],
        "flow_filter": params["flow"],
        "search_error": search_error,
        "flows": selectors.flows_for(workspace=request.workspace),
        "is_first_page": not params["cursor"],
    }
    template = (
        "flows/contact_list.html#contact-rows"
        if request.htmx and not request.htmx.boosted
        else "flows/contact_list.html"
    )
    return render(request, template, context)


@workspace_view()
def contact_detail(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = get_object_in_workspace(Contact.objects.select_related("flow"), request.workspace, pk=contact_id)
    labels = {f.key: f.label for f in contact.flow.fields.all()}
    values = [(labels.get(key, key), key, value) for key, value in contact.data.items()]
    history = contact_history(workspace=request.workspace, contact=contact)
    return render(request, "flows/contact_detail.html", {"contact": contact, "values": values, "history": history})


# --- Capture API token (Settings > API) ---------------------------------------------------------


@workspace_view(min_role=Role.ADMIN)
def api_settings(request: HttpRequest) -> HttpResponse:
    raw_token = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            capture_token_revoke(workspace=request.workspace, actor=request.user)
            messages.success(request, "The capture token was revoked. API calls with it now get 401.")
            return redirect("flows:api-settings", request.workspace.slug)
        raw_token = capture_token_rotate(workspace=request.workspace, actor=request.user)
    context = {
        "token": selectors.active_capture_token(workspace=request.workspace),
        "raw_token": raw_token,
        "flows": selectors.flows_for(workspace=request.workspace),
        "api_url": request.build_absolute_uri(reverse("api-contacts")),
    }
    return render(request, "flows/api_settings.html", context)


# --- Public form page (no login) ------------------------------------------------------------------


def _public_flow(public_id: str) -> ConversionFlow:
    if not is_public_id(public_id):
        raise Http404("No such form")
    return get_object_or_404(ConversionFlow.objects.prefetch_related("fields"), public_id=public_id)


def _form_page(
    request: HttpRequest,
    flow: ConversionFlow,
    *,
    values: dict[str, object] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    values, errors = values or {}, errors or {}
    fields = list(flow.fields.all())
    rows = [{"field": f, "value": values.get(f.key, ""), "error": errors.get(f.key)} for f in fields]
    stray = {k: v for k, v in errors.items() if k not in {f.key for f in fields}}
    return render(
        request,
        "flows/public_form.html",
        {"flow": flow, "rows": rows, "stray_errors": stray, "FieldType": FieldType},
        status=status,
    )


def _unreadable_body(request: HttpRequest) -> tuple[int, str] | None:
    """Parse the POST body; over Django's limits, the status and the words for the submitter."""
    try:
        request.POST  # noqa: B018 - parsing is the point
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024
        return 413, f"This submission is too large (over {limit} KB). Shorten the longest answers and send it again."
    except TooManyFieldsSent:
        return 400, "This submission has too many fields. Reload the form and send it again."
    return None


def _multipart(request: HttpRequest) -> tuple[int, str] | None:
    """The form has no file fields and the browser sends it urlencoded: a multipart body is someone
    else's upload (Django would spool its file parts to disk, outside its memory limit)."""
    if request.content_type == "multipart/form-data":
        return 415, "This form takes no files. Fill it in on this page and send it again."
    return None


# CSRF is checked, just not by the middleware: it reads the body before any view runs, and a
# body over Django's limits would end there in its bare 400 page. public_form reads the body
# itself first and answers with the form and a message; the CSRF check follows, on every POST.
@csrf_exempt
def public_form(request: HttpRequest, public_id: str) -> HttpResponse:
    flow = _public_flow(public_id)
    if not flow.is_enabled:
        return render(request, "flows/public_closed.html", {"flow": flow}, status=410)
    if request.method == "POST" and (problem := _multipart(request) or _unreadable_body(request)):
        status, message = problem
        return _form_page(request, flow, errors={"form": message}, status=status)
    return _public_form_checked(request, flow)


@csrf_protect
def _public_form_checked(request: HttpRequest, flow: ConversionFlow) -> HttpResponse:
    if request.method != "POST":
        return _form_page(request, flow)
    verdicts = [
        ratelimit.hit("form-ip", ratelimit.client_ip(request), limit=settings.RATELIMIT_FORM_PER_IP),
        ratelimit.hit("form-flow", flow.public_id, limit=settings.RATELIMIT_FORM_PER_FLOW),
    ]
    blocked = next((v for v in verdicts if not v.allowed), None)
    if blocked:
        response = render(
            request, "flows/public_rate_limited.html", {"flow": flow, "retry": blocked.retry_after}, status=429
        )
        response["Retry-After"] = str(blocked.retry_after)
        return response
    values = {key: request.POST.get(key) for key in request.POST if key != "csrfmiddlewaretoken"}
    try:
        contact_capture(flow=flow, raw=values, source=Contact.Source.FORM, from_form=True)
    except CaptureRejected as exc:
        return _form_page(request, flow, values=values, errors=exc.errors, status=400)
    return redirect("public-form-thanks", flow.public_id)


def public_form_thanks(request: HttpRequest, public_id: str) -> HttpResponse:
    if not is_public_id(public_id):
        raise Http404("No such form")
    flow = get_object_or_404(ConversionFlow, public_id=public_id)
    return render(request, "flows/public_thanks.html", {"flow": flow})


# A mail scanner opens every link it sees (to check it): the link's page only asks, and the POST of its
# button confirms. The token in the URL is the proof (SECURE_REFERRER_POLICY "same-origin" keeps it from
# other sites), and the POST carries it, not a cookie: a CSRF check would gain nothing, since a forged POST
# can only confirm what its sender already holds.
@csrf_exempt
def contact_confirm_view(request: HttpRequest, token: str) -> HttpResponse:
    try:
        contact = contact_for_confirmation(token)
        if request.method == "POST":
            contact, now = contact_confirm(raw=token)
            return render(request, "flows/confirm_done.html", {"flow": contact.flow, "first_time": now})
    except ConfirmationInvalid as exc:
        return render(request, "flows/confirm_invalid.html", {"message": exc.message}, status=404)
    if contact.confirmed_at is not None:
        return render(request, "flows/confirm_done.html", {"flow": contact.flow, "first_time": False})
    return render(request, "flows/confirm.html", {"flow": contact.flow, "email": contact.email})

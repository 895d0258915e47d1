"""Writes for conversion flows, their fields, captured contacts and capture tokens."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from flows.devices import device_clean
from flows.models import (
    CUSTOM_FIELD_TYPES,
    DEFAULT_CONSENT_WORDING,
    STANDARD_FIELDS,
    CaptureToken,
    Contact,
    ConversionFlow,
    FieldType,
    FlowField,
)
from flows.validation import FieldSpec, clean_submission
from lib import metrics, ratelimit
from lib.emails import normalize_email
from lib.names import clean_name
from lib.tokens import hash_token, new_token
from lib.ttlcache import TTLCache
from mailer.services import mail_queue
from workspaces.models import Workspace
from workspaces.scoping import scoped
from workspaces.services import audit_record

_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_PUBLIC_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def is_public_id(value: object) -> bool:
    """Whether ``value`` can be a flow's public id (checked before it reaches a query)."""
    return isinstance(value, str) and bool(_PUBLIC_ID_RE.match(value))


# --- Flows and fields ---------------------------------------------------------------


@transaction.atomic
def flow_create(*, workspace: Workspace, name: str, actor: User) -> ConversionFlow:
    flow = ConversionFlow.objects.create(workspace=workspace, name=clean_name(name))
    # Every flow starts with the field that identifies a contact almost everywhere.
    flow_field_add(flow=flow, kind=FlowField.Kind.STANDARD, key="email", required=True, actor=None)
    audit_record(workspace=workspace, actor=actor, verb="flow.created", target=flow.name)
    return flow


def flow_update(*, flow: ConversionFlow, actor: User, **changes: Any) -> ConversionFlow:
    allowed = {"name", "is_enabled", "headline", "thank_you_message", "double_opt_in"}
    if "name" in changes:
        changes["name"] = clean_name(changes["name"])
    if changes.get("double_opt_in") and not flow.double_opt_in and not _has_email_field(flow):
        raise ValidationError(
            {"double_opt_in": "Double opt-in mails a link to each contact: add an Email field first."}
        )
    changed = {k: v for k, v in changes.items() if k in allowed and getattr(flow, k) != v}
    for key, value in changed.items():
        setattr(flow, key, value)
    if changed:
        flow.save()
        # This process serves the change at once; others within CAPTURE_CACHE_SECONDS (a flow turned to double
        # opt-in may queue a few API contacts unconfirmed meanwhile: README, Capture API).
        _capture_cache.clear()
        audit_record(
            workspace=flow.workspace,
            actor=actor,
            verb="flow.updated",
            target=flow.name,
            data={"changed": sorted(changed)},
        )
    return flow


def _has_email_field(flow: ConversionFlow) -> bool:
    return flow.fields.filter(field_type=FieldType.EMAIL).exists()


def _clean_wording(wording: str | None) -> str:
    """A consent box's text: what the person agrees to, kept word for word with each answer."""
    wording = " ".join((wording or "").split())
    if len(wording) > 1000:
        raise ValidationError({"wording": "Keep the checkbox's wording under 1,000 characters."})
    return wording


def _clean_choices(choices: Sequence[str] | str | None) -> list[str]:
    if isinstance(choices, str):
        choices = choices.replace("\n", ",").split(",")
    cleaned: list[str] = []
    for choice in choices or []:
        choice = choice.strip()
        if choice and choice not in cleaned:
            cleaned.append(choice[:120])
    return cleaned


@transaction.atomic
def flow_field_add(
    *,
    flow: ConversionFlow,
    kind: str,
    key: str,
    label: str = "",
    field_type: str = "",
    choices: Sequence[str] | str | None = None,
    required: bool = False,
    wording: str = "",
    actor: User | None,
) -> FlowField:
    """Add a field. Standard fields take their label and type from the catalogue; a consent field
    keeps the exact wording of its box (the default one when none is given)."""
    key = (key or "").strip().lower()
    label = clean_name(label, field="label")
    if kind == FlowField.Kind.STANDARD:
        if key not in STANDARD_FIELDS:
            raise ValidationError({"key": f"'{key}' is not a standard field."})
        default_label, field_type = STANDARD_FIELDS[key]
        label = label.strip() or default_label
        choices_list: list[str] = []
    else:
        if not _KEY_RE.match(key):
            raise ValidationError(
                {"key": "Use lower-case letters, digits and underscores, starting with a letter (e.g. shoe_size)."}
            )
        if key in STANDARD_FIELDS:
            raise ValidationError({"key": f"'{key}' is a standard field: add it from the standard list."})
        if field_type not in CUSTOM_FIELD_TYPES:
            raise ValidationError({"field_type": "Pick a type: text, number, date, yes/no or choice."})
        label = label.strip() or key.replace("_", " ").capitalize()
        choices_list = _clean_choices(choices)
        if field_type == FieldType.CHOICE and len(choices_list) < 2:
            raise ValidationError({"choices": "A choice field needs at least two options, separated by commas."})
    wording = (_clean_wording(wording) or DEFAULT_CONSENT_WORDING) if field_type == FieldType.CONSENT else ""
    if flow.fields.filter(key=key).exists():
        raise ValidationError({"key": f"This flow already has a field '{key}'."})
    position = (flow.fields.aggregate(m=Max("position"))["m"] or 0) + 1
    created = FlowField.objects.create(
        flow=flow,
        kind=kind,
        key=key,
        label=label[:120],
        field_type=field_type,
        choices=choices_list,
        wording=wording,
        required=required,
        position=position,
    )
    if actor is not None:
        audit_record(workspace=flow.workspace, actor=actor, verb="flow.field_added", target=f"{flow.name}: {key}")
    return created


def flow_field_update(
    *,
    field: FlowField,
    label: str,
    required: bool,
    choices: Sequence[str] | str | None,
    actor: User,
    wording: str | None = None,
) -> FlowField:
    field.label = clean_name(label, field="label")[:120] or field.label
    field.required = required
    if field.field_type == FieldType.CONSENT and wording is not None:
        # Answers already given keep the wording they were given to (Contact.consents).
        field.wording = _clean_wording(wording) or field.wording
    if field.field_type == FieldType.CHOICE:
        cleaned = _clean_choices(choices)
        if len(cleaned) < 2:
            raise ValidationError({"choices": "A choice field needs at least two options, separated by commas."})
        field.choices = cleaned
    field.save()
    audit_record(
        workspace=field.flow.workspace, actor=actor, verb="flow.field_updated", target=f"{field.flow.name}: {field.key}"
    )
    return field


def flow_field_delete(*, field: FlowField, actor: User) -> None:
    # Captured contacts keep their values for this key: only the form changes.
    if (
        field.flow.double_opt_in
        and field.field_type == FieldType.EMAIL
        and not (field.flow.fields.filter(field_type=FieldType.EMAIL).exclude(pk=field.pk).exists())
    ):
        raise ValidationError("This flow asks contacts to confirm their email address: turn double opt-in off first.")
    audit_record(
        workspace=field.flow.workspace, actor=actor, verb="flow.field_removed", target=f"{field.flow.name}: {field.key}"
    )
    field.delete()


@transaction.atomic
def flow_field_move(*, field: FlowField, up: bool) -> None:
    siblings = list(FlowField.objects.select_for_update().filter(flow_id=field.flow_id).order_by("position", "id"))
    index = next(i for i, f in enumerate(siblings) if f.pk == field.pk)
    other = index - 1 if up else index + 1
    if 0 <= other < len(siblings):
        siblings[index], siblings[other] = siblings[other], siblings[index]
    for position, sibling in enumerate(siblings, start=1):
        if sibling.position != position:
            sibling.position = position
            sibling.save(update_fields=["position"])


# --- Capture ------------------------------------------------------------------------------


def field_specs(flow: ConversionFlow) -> list[FieldSpec]:
    return [
        FieldSpec(
            key=f.key,
            label=f.label,
            field_type=f.field_type,
            required=f.required,
            choices=tuple(f.choices),
            wording=f.wording,
        )
        for f in flow.fields.all()
    ]


class CaptureRejected(Exception):
    def __init__(self, errors: dict[str, str], code: str = "invalid") -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
        self.code = code


def _build_contact(flow: ConversionFlow, specs: list[FieldSpec], raw: Any, source: str, from_form: bool) -> Contact:
    if not flow.is_enabled:
        raise CaptureRejected(
            {"flow": f"the flow '{flow.name}' is disabled and accepts no submissions"}, "flow_disabled"
        )
    if not isinstance(raw, Mapping):
        raise CaptureRejected({"fields": "must be an object of field key to value"}, "invalid")
    data, errors = clean_submission(specs, raw, from_form=from_form)
    if errors:
        raise CaptureRejected(errors)
    email = next((data[s.key] for s in specs if s.field_type == FieldType.EMAIL and s.key in data), "")
    if flow.double_opt_in and not email:
        raise CaptureRejected({"email": "is required: this flow mails a link to confirm the address"})
    return Contact(
        workspace_id=flow.workspace_id,
        flow=flow,
        data=data,
        email=normalize_email(email),
        source=source,
        consents=_consents(specs, data),
    )


def _consents(specs: list[FieldSpec], data: dict[str, Any]) -> dict[str, Any] | None:
    """Each consent box's answer with the words the person saw and when they answered. A box the
    capture API did not send was not answered: no record (an unticked box on the form is False)."""
    at = timezone.now().isoformat()
    answers = {
        s.key: {"given": data[s.key], "wording": s.wording or s.label, "at": at}
        for s in specs
        if s.field_type == FieldType.CONSENT and s.key in data
    }
    return answers or None


def _store(contacts: list[Contact]) -> list[Contact]:
    """Insert the contacts and queue them for the workspace's integrations, atomically:
    a contact is never stored without its outbox rows (nothing captured is lost). A contact of a
    double opt-in flow is stored waiting for its confirmation instead: queued when it comes."""
    from integrations.outbox import contact_insert_queued, outbox_enqueue

    links = {id(c): _confirmation_start(c) for c in contacts if c.flow.double_opt_in}
    if len(contacts) == 1 and not links and connection.vendor == "postgresql":
        stored = [contact_insert_queued(contacts[0])]  # one statement: the capture hot path
        _captured_count(stored)
        return stored
    with transaction.atomic():
        stored = Contact.objects.bulk_create(contacts)
        by_workspace: dict[int, list[int]] = {}
        for contact in stored:
            if id(contact) in links:
                _confirmation_mail(contact, links[id(contact)])
            else:
                by_workspace.setdefault(contact.workspace_id, []).append(contact.pk)
        for workspace_id, ids in by_workspace.items():
            outbox_enqueue(workspace_id=workspace_id, contact_ids=ids)
    _captured_count(stored)
    return stored


def _captured_count(stored: list[Contact]) -> None:
    """Count what was stored. A caller's transaction rolled back after this leaves the count high by its
    contacts, which a rate read over minutes absorbs (an on-commit hook per capture would not be free)."""
    for source, count in Counter(c.source for c in stored).items():
        metrics.contacts_captured(source, count)


# --- Double opt-in ------------------------------------------------------------------------------


def _confirmation_start(contact: Contact) -> str:
    """Give a double opt-in contact its link's token (only the hash is stored); the raw token."""
    raw = new_token("", 32)
    contact.confirm_token_hash = hash_token(raw)
    return raw


def _mailbox(email: str) -> str:
    """The inbox an address reaches: "ada+x@example.com" is ada@example.com's (a budget per address must not
    be escaped by tagging it)."""
    local, _, domain = email.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _confirmation_mail(contact: Contact, raw: str) -> None:
    """Mail the confirmation link, after commit. An inbox gets at most DOUBLE_OPT_IN_MAILS_PER_ADDRESS_PER_HOUR
    of them from all of Flowsync (whichever workspace's forms are used), and a workspace sends at most
    DOUBLE_OPT_IN_MAILS_PER_WORKSPACE_PER_HOUR: nobody can make Flowsync flood an inbox or mail strangers in
    bulk. Past either the contact waits unmailed (its page says so); a later submission may mail them."""
    address = ratelimit.hit(
        "confirm-mail", _mailbox(contact.email), limit=settings.DOUBLE_OPT_IN_MAILS_PER_ADDRESS_PER_HOUR, window=3600
    )
    if not address.allowed:
        return
    workspace = ratelimit.hit(
        "confirm-mail-ws",
        str(contact.workspace_id),
        limit=settings.DOUBLE_OPT_IN_MAILS_PER_WORKSPACE_PER_HOUR,
        window=3600,
    )
    if not workspace.allowed:
        ratelimit.refund(address)
        return
    contact.confirm_sent_at = timezone.now()
    Contact.objects.filter(pk=contact.pk).update(confirm_sent_at=contact.confirm_sent_at)
    flow = contact.flow
    sender = flow.headline or flow.workspace.name
    hours = settings.DOUBLE_OPT_IN_LINK_HOURS
    mail_queue(
        to=[contact.email],
        subject=f"Please confirm your email address for {sender}",
        body=(
            f"Hello,\n\nYou (or someone using this address) signed up through “{flow.name}” of {flow.workspace.name}.\n"
            f"Please confirm your email address by opening this link within {hours} hours:\n\n"
            f"{settings.SITE_URL}/c/{raw}/\n\n"
            "If you did not sign up, ignore this mail: nothing more will be sent and your address will not be used.\n"
        ),
    )


class ConfirmationInvalid(Exception):
    """A confirmation link that confirms nothing; ``message`` is for the person who opened it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def contact_for_confirmation(raw: str) -> Contact:
    """The contact a confirmation link names, or :class:`ConfirmationInvalid` saying why it does nothing."""
    if not isinstance(raw, str) or not 20 <= len(raw) <= 100:
        raise ConfirmationInvalid("This confirmation link is not valid. Check that it was copied whole.")
    contact = Contact.objects.select_related("flow", "workspace").filter(confirm_token_hash=hash_token(raw)).first()
    if contact is None:
        raise ConfirmationInvalid("This confirmation link is not valid. Check that it was copied whole.")
    if contact.confirmed_at is None and _link_expired(contact):
        raise ConfirmationInvalid("This confirmation link has expired. Fill in the form again to get a new one.")
    return contact


def _link_expired(contact: Contact) -> bool:
    return contact.created_at < timezone.now() - timedelta(hours=settings.DOUBLE_OPT_IN_LINK_HOURS)


def contact_confirm(*, raw: str) -> tuple[Contact, bool]:
    """Confirm the contact of a confirmation link and queue it for every integration of its workspace,
    in one transaction. Single use: a second click confirms nothing more (False), whoever clicks.
    Raises :class:`ConfirmationInvalid` for a link that is wrong or expired."""
    from integrations.outbox import outbox_enqueue

    contact = contact_for_confirmation(raw)
    with transaction.atomic():
        now = timezone.now()
        claimed = Contact.objects.filter(pk=contact.pk, confirmed_at=None).update(confirmed_at=now)
        if not claimed:
            contact.refresh_from_db(fields=["confirmed_at"])
            return contact, False
        contact.confirmed_at = now
        outbox_enqueue(workspace_id=contact.workspace_id, contact_ids=[contact.pk], late=True)
    return contact, True


def contact_capture(
    *, flow: ConversionFlow, raw: Any, source: str = Contact.Source.FORM, from_form: bool = False
) -> Contact:
    """Validate and store one submission; raises :class:`CaptureRejected` and stores nothing."""
    contact = _build_contact(flow, field_specs(flow), raw, source, from_form)
    return _store([contact])[0]


# The capture API's hot path reads the same token and flows on every request; a few
# seconds of staleness (a field edit or a disabled flow reaching the API up to
# CAPTURE_CACHE_SECONDS late) buys several times the throughput. See README.
_capture_cache: TTLCache = TTLCache()


def _capture_flows_load(
    workspace: Workspace, public_ids: list[str]
) -> dict[str, tuple[ConversionFlow, list[FieldSpec]]]:
    """The flows of ``workspace`` among ``public_ids``, with their field specs: two queries however many."""
    flows = scoped(ConversionFlow, workspace).filter(public_id__in=public_ids).prefetch_related("fields")
    return {flow.public_id: (flow, field_specs(flow)) for flow in flows}


@dataclass
class ItemResult:
    index: int
    contact: Contact | None = None
    errors: dict[str, str] = field(default_factory=dict)
    code: str = ""


CaptureFlows = dict[str, tuple[ConversionFlow, list[FieldSpec]]]


def _item_public_id(item: Any) -> str | None:
    public_id = item.get("flow") if isinstance(item, Mapping) else None
    return public_id if is_public_id(public_id) else None


def capture_flows(*, workspace: Workspace, items: Sequence[Any]) -> CaptureFlows:
    """The flows of ``workspace`` that ``items`` name, with their field specs, by public id.
    A public id of another workspace's flow (they are printed on public pages) is simply absent."""
    public_ids = {public_id for item in items if (public_id := _item_public_id(item))}
    cached = _capture_cache.get_many_or_set(
        [("flow", workspace.pk, public_id) for public_id in public_ids],
        settings.CAPTURE_CACHE_SECONDS,
        lambda keys: {
            ("flow", workspace.pk, public_id): entry
            for public_id, entry in _capture_flows_load(workspace, [key[2] for key in keys]).items()
        },
    )
    return {key[2]: entry for key, entry in cached.items()}


def contacts_per_flow(*, items: Sequence[Any], flows: CaptureFlows) -> Counter[int]:
    """How many items name each of ``flows``, by flow pk: what a request costs each flow's rate budget.
    Items naming no flow of the workspace cost no flow anything (they are refused per item)."""
    return Counter(flows[public_id][0].pk for item in items if (public_id := _item_public_id(item)) in flows)


def contacts_capture_batch(*, items: Sequence[Any], flows: CaptureFlows) -> list[ItemResult]:
    """Capture many API items, each ``{"flow": <public id>, "fields": {...}}``, into ``flows``
    (:func:`capture_flows` of the same items: the workspace's flows they name).

    Each item stands alone: a bad one is reported and skipped, the good ones are
    stored together in one INSERT.
    """
    results: list[ItemResult] = []
    pending: list[tuple[ItemResult, Contact]] = []
    for index, item in enumerate(items):
        result = ItemResult(index=index)
        results.append(result)
        if not isinstance(item, Mapping):
            result.errors, result.code = {"item": "must be an object with 'flow' and 'fields'"}, "invalid"
            continue
        unknown = sorted(set(item) - {"flow", "fields", "device"})
        if unknown:
            result.errors = {
                str(k)[:60]: "unknown key; an item has only 'flow', 'fields' and 'device'" for k in unknown
            }
            result.code = "invalid"
            continue
        public_id = item.get("flow")
        entry = flows.get(public_id) if isinstance(public_id, str) else None
        if entry is None:
            result.errors = {"flow": "required: the public id of a flow in this workspace (see Flows > Share)"}
            result.code = "flow_not_found" if public_id else "invalid"
            continue
        device, device_errors = device_clean(item.get("device"))
        try:
            contact = _build_contact(*entry, item.get("fields"), Contact.Source.API, False)
        except CaptureRejected as exc:
            result.errors, result.code = {**exc.errors, **device_errors}, exc.code
            continue
        if device_errors:
            result.errors, result.code = device_errors, "invalid"
            continue
        contact.device = device
        pending.append((result, contact))
    if pending:
        stored = _store([contact for _, contact in pending])
        for (result, _), contact in zip(pending, stored, strict=True):
            result.contact = contact
    return results


def contacts_unconfirmed_purge(*, chunk: int = 1000) -> int:
    """Delete the contacts that never confirmed their address, DOUBLE_OPT_IN_UNCONFIRMED_KEEP_DAYS after their
    link expired (0 keeps them): an address a stranger may have typed is not kept for ever. Across every
    workspace (a periodic task), in chunks. Returns how many were deleted."""
    days = settings.DOUBLE_OPT_IN_UNCONFIRMED_KEEP_DAYS
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(hours=settings.DOUBLE_OPT_IN_LINK_HOURS) - timedelta(days=days)
    # The partial index on the token hash holds exactly the contacts that ever waited.
    waiting = Contact.objects.filter(confirm_token_hash__isnull=False, confirmed_at=None, created_at__lt=cutoff)
    deleted = 0
    while ids := list(waiting.order_by("pk").values_list("pk", flat=True)[:chunk]):
        # delete() counts the rows its cascade took too; only the contacts are reported.
        deleted += Contact.objects.filter(pk__in=ids, confirmed_at=None).delete()[1].get(Contact._meta.label, 0)
    return deleted


# --- Capture API tokens ----------------------------------------------------------------------

TOKEN_PREFIX = "fs_"
_TOKEN_TOUCH_EVERY = timedelta(minutes=1)


@transaction.atomic
def capture_token_rotate(*, workspace: Workspace, actor: User) -> str:
    """Revoke the workspace's current token and create a new one. Returns the raw token once."""
    now = timezone.now()
    revoked = CaptureToken.objects.filter(workspace=workspace, revoked_at=None).update(revoked_at=now)
    _capture_cache.clear()
    raw = new_token(TOKEN_PREFIX, 30)
    CaptureToken.objects.create(workspace=workspace, token_hash=hash_token(raw), prefix=raw[:10], created_by=actor)
    audit_record(
        workspace=workspace, actor=actor, verb="api_token.rotated" if revoked else "api_token.created", target=raw[:10]
    )
    return raw


def capture_token_revoke(*, workspace: Workspace, actor: User) -> None:
    if CaptureToken.objects.filter(workspace=workspace, revoked_at=None).update(revoked_at=timezone.now()):
        _capture_cache.clear()
        audit_record(workspace=workspace, actor=actor, verb="api_token.revoked")


def capture_token_authenticate(raw: str) -> CaptureToken | None:
    """The active token for ``raw``, or None. Rotation and revocation reach every web
    process within CAPTURE_CACHE_SECONDS (immediately in the process that did it)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    digest = hash_token(raw)

    def load() -> CaptureToken | None:
        token = CaptureToken.objects.select_related("workspace").filter(token_hash=digest, revoked_at=None).first()
        if token is not None:
            now = timezone.now()
            # Write "last used" at most once a minute: not one UPDATE per API call.
            if token.last_used_at is None or now - token.last_used_at > _TOKEN_TOUCH_EVERY:
                CaptureToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token

    return _capture_cache.get_or_set(("token", digest), settings.CAPTURE_CACHE_SECONDS, load)

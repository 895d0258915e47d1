"""The destination schema, the mapping of form fields to it, and the one function
that turns a contact into the record a sync sends (and the preview shows)."""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from field_mapping.coercion import is_empty
from field_mapping.models import DestinationSchema, FieldMapping
from flows.models import FlowField
from integrations.destinations import destination_class, destination_for
from integrations.destinations.base import (
    BusyError,
    Capability,
    CoercionError,
    Destination,
    DestinationError,
    MappedRecord,
)
from integrations.models import Integration
from workspaces.models import AuditEvent
from workspaces.scoping import scoped
from workspaces.services import audit_record

logger = logging.getLogger(__name__)
SCHEMA_MAX_AGE = timedelta(minutes=10)
SCHEMA_RETRY_AFTER = timedelta(minutes=1)
SCHEMA_REFRESH_DEBOUNCE = timedelta(seconds=10)  # one fetch per integration in this long, from any page
SCHEMA_CHECK_EVERY = timedelta(hours=1)  # how stale a schema may get before the beat task checks for drift


def _destination(integration: Integration) -> type[Destination]:
    return destination_class(integration.kind)


# --- Schema -------------------------------------------------------------------------------------


def schema_refresh(*, integration: Integration, interactive: bool = False) -> DestinationSchema:
    """Fetch the destination's fields now. On failure keep the last good copy and say why.

    ``interactive``: inside a web request (one short call, no retries, no waiting for the rate
    budget). No room in the budget is said on the schema too, but is not a failure of the
    destination: the automatic fetch does not wait SCHEMA_RETRY_AFTER for it."""
    schema, _ = DestinationSchema.objects.get_or_create(integration=integration)
    try:
        fields = destination_for(integration, interactive=interactive).fetch_fields()
    except DestinationError as exc:
        schema.last_error = exc.message
        if not isinstance(exc, BusyError):
            schema.last_error_at = timezone.now()
        schema.save(update_fields=["last_error", "last_error_at"])
        return schema
    fetched = {f.name: f.type for f in fields}
    if not _destination(integration).supports(Capability.SCHEMA, integration.config or {}):
        # No schema to fetch: its fixed attributes, plus those this integration created before.
        fetched = {**schema.fields, **fetched}
    schema.fields = fetched
    schema.fetched_at = timezone.now()
    schema.last_error = ""
    schema.last_error_at = None
    schema.save()
    return schema


def _refresh_claimed(integration: Integration, why: str) -> bool:
    """Whether this request may fetch the integration's fields now: one fetch per integration per
    SCHEMA_REFRESH_DEBOUNCE and ``why`` ("button", "stale"), claimed in the shared cache (an atomic
    add), so that many pages asking at once (20 admins pressing "Refresh fields") make one call and
    the others show the cached copy. A press right after a page's own fetch still fetches."""
    key = f"schema-refresh:{why}:{integration.pk}"
    return cache.add(key, True, timeout=int(SCHEMA_REFRESH_DEBOUNCE.total_seconds()))


def schema_refresh_requested(*, integration: Integration) -> tuple[DestinationSchema, bool]:
    """The "Refresh fields" button: fetch now, unless the fields were fetched (or are being fetched) for this
    integration moments ago. Returns the schema and whether this request fetched it."""
    if not _refresh_claimed(integration, "button"):
        schema, _ = DestinationSchema.objects.get_or_create(integration=integration)
        return schema, False
    return schema_refresh(integration=integration, interactive=True), True


def schema_for(
    *, integration: Integration, max_age: timedelta | None = SCHEMA_MAX_AGE, interactive: bool = False
) -> DestinationSchema:
    """The cached schema, fetched first when it is missing or older than ``max_age`` (None: any
    copy will do). After a failed fetch the next automatic one waits SCHEMA_RETRY_AFTER, so a
    page that keeps loading while the destination is down does not hammer it ("Refresh fields" still can);
    pages loading at once fetch once (debounced like "Refresh fields")."""
    schema = DestinationSchema.objects.filter(integration=integration).first()
    now = timezone.now()
    stale = schema is None or (max_age is not None and (schema.fetched_at is None or now - schema.fetched_at > max_age))
    failed_lately = (
        schema is not None and schema.last_error_at is not None and now - schema.last_error_at < SCHEMA_RETRY_AFTER
    )
    if stale and not failed_lately and _refresh_claimed(integration, "stale"):
        return schema_refresh(integration=integration, interactive=interactive)
    if schema is None:
        schema, _ = DestinationSchema.objects.get_or_create(integration=integration)
    return schema


def schemas_refresh_stale(*, max_age: timedelta = SCHEMA_CHECK_EVERY) -> int:
    """Fetch the schema of every connected, mapped integration whose copy is older than ``max_age``.

    Drift is found by comparing the mapping with the schema; a sync refetches it, but an
    integration synced by hand only would show drift only once someone opens its mapping. The
    hourly beat task calls this so the tile says so first. Returns how many were fetched.
    """
    cutoff = timezone.now() - max_age
    due = (
        Integration.objects.filter(status=Integration.Status.CONNECTED, mappings__isnull=False)
        .filter(Q(schema__isnull=True) | Q(schema__fetched_at__isnull=True) | Q(schema__fetched_at__lt=cutoff))
        .distinct()
    )
    count = 0
    for integration in due.iterator():
        try:
            schema_refresh(integration=integration)  # a refusal is kept on the schema, with the last copy
        except Exception:  # one integration's bug must not stop the sweep for every other workspace
            logger.exception("Schema refresh failed for integration %s", integration.pk)
            continue
        count += 1
    return count


def mappable_fields(schema: DestinationSchema) -> list[tuple[str, str]]:
    """(name, type) of the fields a form field may be mapped to, identifiers first."""
    integration = schema.integration
    return [(f.name, f.type) for f in _destination(integration).catalogue(integration.config or {}, schema.fields)]


# --- Sources and suggestions --------------------------------------------------------------------


@dataclass
class SourceField:
    key: str
    label: str
    field_type: str
    kind: str
    flows: list[str] = field(default_factory=list)


def source_fields(*, integration: Integration) -> list[SourceField]:
    """Every field of every flow of the workspace, once per key, with the flows that use it."""
    rows: dict[str, SourceField] = {}
    fields = scoped(FlowField, integration.workspace).select_related("flow").order_by("flow__name", "position", "id")
    for flow_field in fields:
        row = rows.setdefault(
            flow_field.key,
            SourceField(flow_field.key, flow_field.label, flow_field.field_type, flow_field.kind),
        )
        if flow_field.flow.name not in row.flows:
            row.flows.append(flow_field.flow.name)
    return sorted(rows.values(), key=lambda r: (r.kind != "standard", r.key != "email", r.key))


def accepted_identifiers(integration: Integration) -> tuple[str, ...]:
    """The identifiers a record of ``integration`` may be keyed by, the preferred first."""
    return _destination(integration).accepted_identifiers(integration.config or {})


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name).lower()


def suggest_target(source: SourceField, available: dict[str, str], suggested: dict[str, str]) -> str:
    """A likely destination field for ``source`` (``suggested``: the destination's usual places for
    standard form fields), or "" (don't sync)."""
    wanted = suggested.get(source.key)
    if wanted and wanted in available:
        return wanted
    for candidate in (source.key, source.label):
        if candidate in available:
            return candidate
    squashed = {_squash(name): name for name in available}
    for candidate in (source.key, source.label):
        if _squash(candidate) in squashed:
            return squashed[_squash(candidate)]
    return ""


# --- The mapping --------------------------------------------------------------------------------


@dataclass
class RowChoice:
    """One row of the mapping form: what the admin picked for a source field."""

    source_key: str
    target: str = ""  # a destination field name, or "" for don't sync
    create_new: bool = False
    send_empty: bool = False


class MappingInvalid(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors  # keyed by source key, or "__all__"


def validate_choices(
    *,
    integration: Integration,
    choices: list[RowChoice],
    available: dict[str, str],
    sources: list[SourceField],
    confirm_shared: bool,
    schema_fields: dict[str, str],
) -> None:
    """Raise MappingInvalid naming each problem: identifier missing, bad new names, shared targets.

    ``schema_fields`` is every field the destination has, system ones included (``available``
    is only those a form may write); new names are checked against all of them.
    """
    destination = _destination(integration)
    config = integration.config or {}
    label = destination.label
    errors: dict[str, str] = {}
    by_key = {s.key: s for s in sources}
    for choice in choices:
        if choice.create_new:
            problem = destination.new_field_problem(choice.target, config=config, schema_fields=schema_fields)
            if problem:
                errors[choice.source_key] = problem
        elif choice.target and choice.target not in available:
            errors[choice.source_key] = f"{label} has no field '{choice.target}' (refresh the fields?)."
        source = by_key.get(choice.source_key)
        problem = (
            destination.identifier_problem(choice.target, source.field_type)
            if source and choice.target in destination.identifier_names
            else ""
        )
        if problem:
            errors[choice.source_key] = problem
    accepted = accepted_identifiers(integration)
    if not any(c.target in accepted for c in choices):
        wanted = " or ".join(f"'{name}'" for name in accepted)
        errors["__all__"] = (
            f"Map a form field to {wanted}: {label} identifies people by it ({destination.describe_config(config)}), "
            "so without it nothing can be synced."
        )
    targets: dict[str, list[str]] = {}
    for choice in choices:
        if choice.target:
            targets.setdefault(choice.target, []).append(choice.source_key)
    shared = {t: keys for t, keys in targets.items() if len(keys) > 1}
    if shared and not confirm_shared:
        described = "; ".join(f"'{t}' from {', '.join(keys)}" for t, keys in shared.items())
        errors["__shared__"] = (
            f"Several form fields go to the same {label} field ({described}). Pick which one wins when both "
            "have a value and confirm, or map them apart."
        )
    if errors:
        raise MappingInvalid(errors)


def mappings_from_choices(
    *, integration: Integration, choices: list[RowChoice], available: dict[str, str], sources: list[SourceField]
) -> list[FieldMapping]:
    """Unsaved FieldMapping rows for ``choices`` (the preview uses them as they are; saving stores them)."""
    source_types = {s.key: s.field_type for s in sources}
    new_field_types = _destination(integration).new_field_types
    return [
        FieldMapping(
            integration=integration,
            source_key=c.source_key,
            target=c.target,
            target_type=(
                new_field_types.get(source_types.get(c.source_key, ""), "string")
                if c.create_new
                else available.get(c.target, "")
            ),
            create_new=c.create_new,
            send_empty=c.send_empty,
            position=index,
        )
        for index, c in enumerate(choices)
    ]


def order_by_precedence(choices: list[RowChoice], winners: dict[str, str]) -> list[RowChoice]:
    """``choices`` with each shared target's chosen winner (``{target: source key}``) moved ahead
    of the other sources of that target; everything else keeps its order. The order is the
    precedence: the first source listed with a value wins (see ``build_record``)."""
    ordered = list(choices)
    for target, winner in winners.items():
        sharing = [i for i, c in enumerate(ordered) if c.target == target]
        picked = next((i for i in sharing if ordered[i].source_key == winner), None)
        if picked is not None and len(sharing) > 1 and picked != sharing[0]:
            ordered.insert(sharing[0], ordered.pop(picked))
    return ordered


def shared_targets(choices: list[RowChoice]) -> dict[str, list[str]]:
    """Targets that several sources go to, each with its sources in precedence order."""
    groups: dict[str, list[str]] = {}
    for choice in choices:
        if choice.target:
            groups.setdefault(choice.target, []).append(choice.source_key)
    return {target: keys for target, keys in groups.items() if len(keys) > 1}


def _describe(mapping: FieldMapping) -> dict[str, Any]:
    """One mapping row as the audit log keeps it: enough to rebuild the mapping of any version."""
    return {
        "target": mapping.target,
        "type": mapping.target_type,
        "create_new": mapping.create_new,
        "send_empty": mapping.send_empty,
        "position": mapping.position,
    }


def mapping_save(
    *, integration: Integration, actor: User, choices: list[RowChoice], confirm_shared: bool = False
) -> list[FieldMapping]:
    """Validate and store the mapping (``choices`` in precedence order).

    Audited as a numbered version: the whole mapping, plus what changed since the last one.
    """
    schema = schema_for(integration=integration, interactive=True)  # before the transaction: it may call out
    available = dict(mappable_fields(schema))
    sources = source_fields(integration=integration)
    validate_choices(
        integration=integration,
        choices=choices,
        available=available,
        sources=sources,
        confirm_shared=confirm_shared,
        schema_fields=schema.fields,
    )
    with transaction.atomic():
        # One save at a time per integration, so versions are numbered without gaps or twins.
        Integration.objects.select_for_update().filter(pk=integration.pk).first()
        before = {m.source_key: _describe(m) for m in integration.mappings.all()}
        integration.mappings.all().delete()
        saved = FieldMapping.objects.bulk_create(
            mappings_from_choices(integration=integration, choices=choices, available=available, sources=sources)
        )
        _remember_created(integration, schema, saved)
        after = {m.source_key: _describe(m) for m in saved}
        changes = {
            key: {"from": before.get(key), "to": after.get(key)}
            for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)
        }
        version = (
            scoped(AuditEvent, integration.workspace)
            .filter(verb="mapping.saved", target=integration.get_kind_display())
            .count()
            + 1
        )
        audit_record(
            workspace=integration.workspace,
            actor=actor,
            verb="mapping.saved",
            target=integration.get_kind_display(),
            data={"version": version, "changes": changes, "mapping": after},
        )
    return saved


def _remember_created(integration: Integration, schema: DestinationSchema, saved: list[FieldMapping]) -> None:
    """A destination without a schema lists no attribute names: the ones this mapping creates are
    kept with its fixed ones, so that they are choices next time (and a remap is no drift)."""
    if _destination(integration).supports(Capability.SCHEMA, integration.config or {}):
        return
    created = {m.target: m.target_type for m in saved if m.create_new and m.target not in schema.fields}
    if created:
        schema.fields = {**schema.fields, **created}
        schema.save(update_fields=["fields"])


def mapping_problems(*, mappings: list[FieldMapping], schema: DestinationSchema | None) -> dict[str, str]:
    """Drift: mapped fields that disappeared from the destination or changed type, by source key."""
    if schema is None or schema.fetched_at is None:
        return {}
    destination = _destination(schema.integration)
    label = destination.label
    problems = {}
    for mapping in mappings:
        if not mapping.target:
            continue
        current = schema.fields.get(mapping.target)
        if current is None:
            if not mapping.create_new and mapping.target not in destination.identifier_names:
                problems[mapping.source_key] = (
                    f"{label} no longer has the field '{mapping.target}'. Map {mapping.source_key} again."
                )
        elif mapping.target_type and current.lower() != mapping.target_type.lower():
            problems[mapping.source_key] = (
                f"{label}'s field '{mapping.target}' is now {current.lower()} (it was {mapping.target_type} when "
                f"mapped): values would be refused. Fix the mapping."
            )
    return problems


def integration_mapping_problems(*, integration: Integration) -> dict[str, str]:
    schema = DestinationSchema.objects.filter(integration=integration).first()
    return mapping_problems(mappings=list(integration.mappings.all()), schema=schema)


# --- Building the record a sync sends ------------------------------------------------------------


@dataclass
class PlannedField:
    source_key: str
    target: str
    target_type: str
    send_empty: bool
    problem: str = ""


@dataclass
class MappingPlan:
    destination: type[Destination]
    config: dict[str, Any]
    fields: list[PlannedField]
    create_new_fields: bool

    @functools.cached_property
    def accepted(self) -> tuple[str, ...]:
        # Cached: read once per record of a sync, and the plan's configuration does not change under it.
        return self.destination.accepted_identifiers(self.config)


def mapping_plan(
    *, integration: Integration, mappings: list[FieldMapping] | None = None, schema: DestinationSchema | None = None
) -> MappingPlan:
    """What a sync (or the preview, with unsaved ``mappings``) needs to build records, drift included."""
    mappings = [m for m in (integration.mappings.all() if mappings is None else mappings) if m.target]
    if schema is None:
        schema = DestinationSchema.objects.filter(integration=integration).first()
    problems = mapping_problems(mappings=mappings, schema=schema)
    return MappingPlan(
        destination=_destination(integration),
        config=integration.config or {},
        fields=[
            PlannedField(
                m.source_key, m.target, m.target_type or "string", m.send_empty, problems.get(m.source_key, "")
            )
            for m in mappings
        ],
        create_new_fields=any(m.create_new for m in mappings),
    )


@dataclass
class BuiltRecord:
    """The destination record for one contact. ``status``: "ok", "skip" (no identifier) or "error".
    ``record`` is the neutral record, ``payload`` the destination's body for it."""

    status: str
    record: MappedRecord | None = None
    payload: dict[str, Any] | None = None
    identifier: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # fields not sent: (source key, why)
    errors: list[str] = field(default_factory=list)
    skip_reason: str = ""

    @property
    def reason(self) -> str:
        """Why the record fails or is skipped, for the sync log; "" when it is sent."""
        return "; ".join(self.errors) if self.errors else self.skip_reason


def build_record(data: dict[str, Any], plan: MappingPlan) -> BuiltRecord:
    """Map and coerce one contact's data into a neutral record and the destination's payload for it.
    Never raises: problems are in the result."""
    destination = plan.destination
    identifier_names = destination.identifier_names
    identifiers: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    set_targets: set[str] = set()
    skipped: list[tuple[str, str]] = []
    errors: list[str] = []
    for planned in plan.fields:
        value = data.get(planned.source_key)
        if planned.target in set_targets:
            if not is_empty(value):
                skipped.append((planned.source_key, f"'{planned.target}' already set by a field listed before"))
            continue
        if is_empty(value):
            if planned.send_empty and planned.target not in identifier_names:
                attributes[planned.target] = None  # erases it in the destination
                set_targets.add(planned.target)
            elif planned.send_empty:
                skipped.append((planned.source_key, "empty: an identifier is never sent empty"))
            else:
                skipped.append((planned.source_key, "empty: not sent, so it cannot erase data"))
            continue
        if planned.problem:
            errors.append(planned.problem)
            continue
        try:
            if planned.target in identifier_names:
                identifiers[planned.target] = destination.identifier_value(planned.target, value)
            else:
                # Named as the mapping page shows the row: "country → teamSize: 'ten' is not a number".
                where = f"{planned.source_key} → {planned.target}"
                attributes[planned.target] = destination.coerce(value, planned.target_type, where)
        except CoercionError as exc:
            errors.append(str(exc))
            continue
        set_targets.add(planned.target)
    accepted = plan.accepted
    key_name = next((name for name in accepted if identifiers.get(name)), "")
    identifier = identifiers.get(key_name, "")
    if errors:
        return BuiltRecord("error", identifier=identifier, skipped=skipped, errors=errors)
    if not identifier:
        wanted = " or ".join(accepted)
        return BuiltRecord(
            "skip",
            skipped=skipped,
            skip_reason=f"no {wanted}: nothing identifies this contact in {destination.label}",
        )
    # The key first: MappedRecord.key is the identifier the record is keyed by.
    ordered = {key_name: identifier, **{k: v for k, v in identifiers.items() if k != key_name}}
    record = MappedRecord(identifiers=ordered, attributes=attributes)
    return BuiltRecord(
        "ok", record=record, payload=destination.payload(record, plan.config), identifier=identifier, skipped=skipped
    )


def record_preview(
    *, integration: Integration, mappings: list[FieldMapping], data: dict[str, Any]
) -> tuple[BuiltRecord, dict[str, Any] | None]:
    """The record for ``data`` and the exact request body a sync would send with it."""
    plan = mapping_plan(integration=integration, mappings=mappings)
    built = build_record(data, plan)
    body = (
        plan.destination.request_preview([built.payload], create_new_fields=plan.create_new_fields)
        if built.payload is not None
        else None
    )
    return built, body


# A typical value of each form field type: what a row's choice is tried with before any contact is.
_SAMPLES: dict[str, Any] = {
    "text": "Acme",
    "email": "ada@example.com",
    "phone": "+1 202 555 0100",
    "number": 12,
    "date": "2024-01-31",
    "boolean": True,
    "choice": "Gold",
    "consent": True,
}


def mapping_type_warnings(
    *, integration: Integration, choices: list[RowChoice], available: dict[str, str], sources: list[SourceField]
) -> dict[str, str]:
    """Rows whose form field's type does not fit the destination field picked for it (text into a number
    field), by source key: a typical value of the form field's type is coerced as a sync would, so the
    destination's own rules decide, and the admin hears it in the row, before a contact fails."""
    destination = destination_class(integration.kind)
    types = {s.key: s.field_type for s in sources}
    warnings = {}
    for choice in choices:
        target_type = available.get(choice.target) if choice.target and not choice.create_new else None
        sample = _SAMPLES.get(types.get(choice.source_key, ""))
        if target_type is None or sample is None or choice.target in destination.identifier_names:
            continue
        try:
            destination.coerce(sample, target_type, f"{choice.source_key} → {choice.target}")
        except CoercionError as exc:
            kind = types[choice.source_key]
            warnings[choice.source_key] = (
                f"A {kind} field into a {target_type} field: a value like {sample!r} fails ({exc})."
            )
    return warnings

"""The destination schema, the mapping of form fields to it, and the one function
that turns a contact into the record a sync sends (and the preview shows)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from field_mapping.coercion import CoercionError, coerce, is_empty, set_path
from field_mapping.models import DestinationSchema, FieldMapping
from flows.models import FieldType, FlowField
from integrations.destinations import destination_for
from integrations.destinations.base import DestinationError
from integrations.models import Integration
from workspaces.scoping import scoped
from workspaces.services import audit_record

SCHEMA_MAX_AGE = timedelta(minutes=10)
# Profile fields Iterable manages itself, or that a form has no business writing (reference 3).
SYSTEM_FIELDS = {
    "signupDate",
    "profileUpdatedAt",
    "emailListIds",
    "userListIds",
    "unsubscribedChannelIds",
    "unsubscribedMessageTypeIds",
    "subscribedMessageTypeIds",
    "phoneNumberDetails",
}
SYSTEM_PREFIXES = ("itblInternal.", "devices.", "phoneNumberDetails.", "browserTokens")
# The destination type a new field gets from the form field's type.
NEW_FIELD_TYPE = {
    FieldType.TEXT: "string",
    FieldType.EMAIL: "string",
    FieldType.PHONE: "string",
    FieldType.CHOICE: "string",
    FieldType.NUMBER: "double",
    FieldType.DATE: "date",
    FieldType.BOOLEAN: "boolean",
}
# Standard form fields and where they usually go in Iterable.
SUGGESTED_TARGETS = {"email": "email", "first_name": "firstName", "last_name": "lastName", "phone": "phoneNumber"}
NEW_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\- ]{0,99}(\.[A-Za-z][A-Za-z0-9_\- ]{0,99}){0,3}$")
IDENTIFIERS = {"email", "userId"}


# --- Schema -------------------------------------------------------------------------------------


def schema_refresh(*, integration: Integration) -> DestinationSchema:
    """Fetch the destination's fields now. On failure keep the last good copy and say why."""
    schema, _ = DestinationSchema.objects.get_or_create(integration=integration)
    try:
        fields = destination_for(integration).fetch_fields()
    except DestinationError as exc:
        schema.last_error = exc.message
        schema.last_error_at = timezone.now()
        schema.save(update_fields=["last_error", "last_error_at"])
        return schema
    schema.fields = {f.name: f.type for f in fields}
    schema.fetched_at = timezone.now()
    schema.last_error = ""
    schema.last_error_at = None
    schema.save()
    return schema


def schema_for(*, integration: Integration, max_age: timedelta = SCHEMA_MAX_AGE) -> DestinationSchema:
    """The cached schema, fetched first when it is missing or older than ``max_age``."""
    schema = DestinationSchema.objects.filter(integration=integration).first()
    if schema is None or schema.fetched_at is None or timezone.now() - schema.fetched_at > max_age:
        schema = schema_refresh(integration=integration)
    return schema


def mappable_fields(schema: DestinationSchema) -> list[tuple[str, str]]:
    """(name, type) of the fields a form field may be mapped to, identifiers first."""
    names = [
        (name, kind)
        for name, kind in schema.fields.items()
        if name not in SYSTEM_FIELDS and not name.startswith(SYSTEM_PREFIXES) and kind.lower() != "object"
    ]
    return sorted(names, key=lambda item: (item[0] not in IDENTIFIERS, item[0].lower()))


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


def identifier_target(integration: Integration) -> str:
    return "userId" if integration.project_type == Integration.ProjectType.USER_ID else "email"


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name).lower()


def suggest_target(source: SourceField, available: dict[str, str]) -> str:
    """A likely destination field for ``source``, or "" (don't sync)."""
    wanted = SUGGESTED_TARGETS.get(source.key)
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
) -> None:
    """Raise MappingInvalid naming each problem: identifier missing, bad new names, shared targets."""
    errors: dict[str, str] = {}
    by_key = {s.key: s for s in sources}
    ident = identifier_target(integration)
    for choice in choices:
        if choice.create_new:
            name = choice.target
            if not NEW_FIELD_NAME.match(name or ""):
                errors[choice.source_key] = (
                    f"'{name}' is not a valid Iterable field name: start with a letter; use letters, digits, spaces, "
                    "_ or -; a dot makes a nested field (address.city)."
                )
            elif name in available:
                errors[choice.source_key] = f"Iterable already has a field '{name}': pick it from the list instead."
            elif name in IDENTIFIERS:
                errors[choice.source_key] = f"'{name}' is an identifier: pick it from the list."
        elif choice.target and choice.target not in available:
            errors[choice.source_key] = f"Iterable has no field '{choice.target}' (refresh the fields?)."
        source = by_key.get(choice.source_key)
        if choice.target == "email" and source and source.field_type != FieldType.EMAIL:
            errors[choice.source_key] = "Only an email field can be mapped to Iterable's email."
    if not any(c.target == ident for c in choices) and not (
        integration.project_type == Integration.ProjectType.HYBRID and any(c.target in IDENTIFIERS for c in choices)
    ):
        errors["__all__"] = (
            f"Map a form field to '{ident}': Iterable identifies users by it in a "
            f"{integration.get_project_type_display().lower()} project, so without it nothing can be synced."
        )
    targets: dict[str, list[str]] = {}
    for choice in choices:
        if choice.target:
            targets.setdefault(choice.target, []).append(choice.source_key)
    shared = {t: keys for t, keys in targets.items() if len(keys) > 1}
    if shared and not confirm_shared:
        described = "; ".join(f"'{t}' from {', '.join(keys)}" for t, keys in shared.items())
        errors["__shared__"] = (
            f"Several form fields go to the same Iterable field ({described}). Confirm that the first one in the "
            "list with a value wins, or map them apart."
        )
    if errors:
        raise MappingInvalid(errors)


def mappings_from_choices(
    *, integration: Integration, choices: list[RowChoice], available: dict[str, str], sources: list[SourceField]
) -> list[FieldMapping]:
    """Unsaved FieldMapping rows for ``choices`` (the preview uses them as they are; saving stores them)."""
    source_types = {s.key: s.field_type for s in sources}
    return [
        FieldMapping(
            integration=integration,
            source_key=c.source_key,
            target=c.target,
            target_type=(
                NEW_FIELD_TYPE.get(source_types.get(c.source_key, ""), "string")
                if c.create_new
                else available.get(c.target, "")
            ),
            create_new=c.create_new,
            send_empty=c.send_empty,
            position=index,
        )
        for index, c in enumerate(choices)
    ]


@transaction.atomic
def mapping_save(
    *, integration: Integration, actor: User, choices: list[RowChoice], confirm_shared: bool = False
) -> list[FieldMapping]:
    """Validate and store the mapping; audited with what changed."""
    schema = schema_for(integration=integration)
    available = dict(mappable_fields(schema))
    sources = source_fields(integration=integration)
    validate_choices(
        integration=integration, choices=choices, available=available, sources=sources, confirm_shared=confirm_shared
    )
    before = {m.source_key: m.target for m in integration.mappings.all()}
    integration.mappings.all().delete()
    saved = FieldMapping.objects.bulk_create(
        mappings_from_choices(integration=integration, choices=choices, available=available, sources=sources)
    )
    after = {m.source_key: m.target for m in saved}
    changes = {
        k: {"from": before.get(k, ""), "to": after.get(k, "")}
        for k in sorted(set(before) | set(after))
        if before.get(k, "") != after.get(k, "")
    }
    audit_record(
        workspace=integration.workspace,
        actor=actor,
        verb="mapping.saved",
        target=integration.get_kind_display(),
        data={"changes": changes},
    )
    return saved


def mapping_problems(*, mappings: list[FieldMapping], schema: DestinationSchema | None) -> dict[str, str]:
    """Drift: mapped fields that disappeared from the destination or changed type, by source key."""
    if schema is None or schema.fetched_at is None:
        return {}
    problems = {}
    for mapping in mappings:
        if not mapping.target:
            continue
        current = schema.fields.get(mapping.target)
        if current is None:
            if not mapping.create_new and mapping.target not in IDENTIFIERS:
                problems[mapping.source_key] = (
                    f"Iterable no longer has the field '{mapping.target}'. Map {mapping.source_key} again."
                )
        elif mapping.target_type and current.lower() != mapping.target_type.lower():
            problems[mapping.source_key] = (
                f"Iterable's field '{mapping.target}' is now {current.lower()} (it was {mapping.target_type} when "
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
    project_type: str
    fields: list[PlannedField]
    create_new_fields: bool


def mapping_plan(
    *, integration: Integration, mappings: list[FieldMapping] | None = None, schema: DestinationSchema | None = None
) -> MappingPlan:
    """What a sync (or the preview, with unsaved ``mappings``) needs to build records, drift included."""
    mappings = [m for m in (integration.mappings.all() if mappings is None else mappings) if m.target]
    if schema is None:
        schema = DestinationSchema.objects.filter(integration=integration).first()
    problems = mapping_problems(mappings=mappings, schema=schema)
    return MappingPlan(
        project_type=integration.project_type,
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
    """The destination record for one contact. ``status``: "ok", "skip" (no identifier) or "error"."""

    status: str
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
    """Map and coerce one contact's data. Never raises: problems are in the result."""
    top: dict[str, Any] = {}
    data_fields: dict[str, Any] = {}
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
            if planned.send_empty:
                (top if planned.target in IDENTIFIERS else data_fields)[planned.target] = None
                set_targets.add(planned.target)
            else:
                skipped.append((planned.source_key, "empty: not sent, so it cannot erase data"))
            continue
        if planned.problem:
            errors.append(planned.problem)
            continue
        try:
            if planned.target in IDENTIFIERS:
                text = coerce(value, "string", planned.target).strip()
                top[planned.target] = text.lower() if planned.target == "email" else text
            else:
                set_path(data_fields, planned.target, coerce(value, planned.target_type, planned.source_key))
        except CoercionError as exc:
            errors.append(str(exc))
            continue
        set_targets.add(planned.target)
    ident_name = "userId" if plan.project_type == Integration.ProjectType.USER_ID else "email"
    identifier = top.get(ident_name) or top.get("userId") or top.get("email") or ""
    if errors:
        return BuiltRecord("error", identifier=str(identifier), skipped=skipped, errors=errors)
    if not identifier:
        return BuiltRecord(
            "skip", skipped=skipped, skip_reason=f"no {ident_name}: nothing identifies this contact in Iterable"
        )
    payload: dict[str, Any] = {**top, "dataFields": data_fields}
    if any(isinstance(v, dict) for v in data_fields.values()):
        payload["mergeNestedObjects"] = True  # nested fields add to an object, never replace it whole
    return BuiltRecord("ok", payload=payload, identifier=str(identifier), skipped=skipped)


def record_preview(
    *, integration: Integration, mappings: list[FieldMapping], data: dict[str, Any]
) -> tuple[BuiltRecord, dict[str, Any] | None]:
    """The record for ``data`` and the exact request body a sync would send with it."""
    from integrations.destinations.iterable import IterableDestination

    plan = mapping_plan(integration=integration, mappings=mappings)
    built = build_record(data, plan)
    body = (
        IterableDestination.bulk_body([built.payload], create_new_fields=plan.create_new_fields)
        if built.payload is not None
        else None
    )
    return built, body

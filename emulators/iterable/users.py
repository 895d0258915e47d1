"""User profile writes as Iterable does them: identify by project type, type-check
data fields against the project's schema (inferring new fields from the first
value), merge, and report per-user failures."""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from typing import Any

from emulators.iterable.state import EMAIL_BASED, USERID_BASED, Project, fits, incoming_types, infer_type

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class TypeMismatch(Exception):
    def __init__(self, field_name: str, expected: str, value: Any) -> None:
        super().__init__(field_name)
        self.field_name, self.expected, self.value = field_name, expected, value

    def detail(self) -> dict:
        return {
            "incomingTypes": incoming_types(self.value),
            "expectedType": self.expected,
            "_type": "UnexpectedType",
            "offendingValue": self.value if not isinstance(self.value, dict | list) else str(self.value),
            "category": "user",
        }


def type_mismatch_envelope(project_id: int, mismatches: list[TypeMismatch]) -> dict:
    """Iterable's 400 for values that do not fit their fields' types (reference 3): the message names the
    first field, ``params.validationErrors`` each field with its refused value."""
    first = mismatches[0]
    return {
        "msg": (
            f"Project {project_id}: The request does not have the same data types as the data previously "
            f"submitted. Field '{first.field_name}' already exists for type 'user' and has a data type of "
            f"'{first.expected}' but possible types '{', '.join(incoming_types(first.value))}' in the request."
        ),
        "code": "RequestFieldsTypesMismatched",
        "params": {"validationErrors": {m.field_name: m.detail() for m in mismatches}},
    }


def valid_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and bool(_EMAIL.match(value))


def valid_user_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 52
        and value == value.rstrip()
        and all(32 < ord(ch) < 127 or ch == " " for ch in value)
    )


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        out.append((path, value))
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{path}."))
    return out


def check_types(
    fields: dict[str, str], data: dict, *, allow_new: bool, mismatches: dict[str, TypeMismatch] | None = None
) -> tuple[list[str], list[str]]:
    """Type-check ``data`` against ``fields``, adding new fields to ``fields`` (a working copy).

    Returns (created, filtered_out); raises :class:`TypeMismatch`, or with ``mismatches`` collects the
    first one per field there and goes on.
    """
    created: list[str] = []
    filtered: list[str] = []
    for path, value in _flatten(data):
        if any(path.startswith(f"{f}.") for f in filtered):
            continue
        if path in fields:
            if not fits(fields[path], value):
                if mismatches is None:
                    raise TypeMismatch(path, fields[path], value)
                mismatches.setdefault(path, TypeMismatch(path, fields[path], value))
        elif allow_new:
            fields[path] = infer_type(value)
            created.append(path)
        else:
            filtered.append(path)
    return created, filtered


def _drop(data: dict, paths: list[str]) -> dict:
    data = copy.deepcopy(data)
    for path in paths:
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return data


@dataclass
class WriteResult:
    ok: bool
    failure: str = ""  # a key of FailedUserUpdates: invalidEmails, invalidUserIds, ...
    identifier: str = ""
    created_fields: list[str] = field(default_factory=list)
    filtered_fields: list[str] = field(default_factory=list)
    message: str = ""


def find_user(project: Project, *, email: str | None = None, user_id: str | None = None) -> dict | None:
    if user_id is not None and user_id in project.by_user_id:
        return project.users[project.by_user_id[user_id]]
    if email is not None and project.project_type != USERID_BASED and email.lower() in project.by_email:
        return project.users[project.by_email[email.lower()]]
    return None


def identify(project: Project, record: dict) -> tuple[str, str] | WriteResult:
    """('email'|'userId', value) for the record, or the failure to report."""
    email, user_id = record.get("email"), record.get("userId")
    if email is not None and not valid_email(email):
        return WriteResult(False, "invalidEmails", str(email), message=f"Invalid email: {email}")
    if user_id is not None and not valid_user_id(user_id):
        return WriteResult(False, "invalidUserIds", str(user_id), message=f"Invalid userId: {user_id}")
    if project.project_type == USERID_BASED:
        if user_id is None:
            return WriteResult(
                False,
                "invalidEmails" if email else "invalidUserIds",
                str(email or ""),
                message="userId is required in a userID-based project",
            )
        return ("userId", user_id)
    if email is None and user_id is None:
        return WriteResult(False, "invalidEmails", "", message="email or userId is required")
    if (
        project.project_type == EMAIL_BASED
        and email is None
        and user_id not in project.by_user_id
        and not record.get("preferUserId")
    ):
        return WriteResult(
            False,
            "invalidUserIds",
            user_id,
            message=f"No user with userId {user_id}; set preferUserId to create one",
        )
    return ("email", email) if email is not None else ("userId", user_id)


def write_user(
    project: Project, record: dict, *, create_new_fields: bool | None, merge_default: bool = False
) -> WriteResult:
    """Apply one (already type-checked) user record to ``project``."""
    who = identify(project, record)
    if isinstance(who, WriteResult):
        return who
    if str(record.get("email") or "").lower() in project.forgotten:
        email = str(record["email"])
        return WriteResult(False, "forgottenEmails", email, message=f"User {email} was forgotten and cannot be stored")
    if str(record.get("userId") or "") in project.forgotten_user_ids:
        user_id = str(record["userId"])
        return WriteResult(
            False, "forgottenUserIds", user_id, message=f"User {user_id} was forgotten and cannot be stored"
        )
    kind, ident = who
    allow_new = project.allow_new_fields if create_new_fields is None else create_new_fields
    data = record.get("dataFields") or {}
    created, filtered = check_types(project.fields, data, allow_new=allow_new)
    data = _drop(data, filtered)
    email, user_id = record.get("email"), record.get("userId")
    user = find_user(project, email=email, user_id=user_id)
    project.writes += 1
    project.rewrites += user is not None
    now = time.strftime("%Y-%m-%d %H:%M:%S +00:00", time.gmtime())
    if user is None:
        if kind == "userId" and project.project_type == EMAIL_BASED and email is None:
            email = f"{user_id}@placeholder.email"
        user = {"id": project.next_user, "email": email, "userId": user_id, "dataFields": {}, "signupDate": now}
        project.users[project.next_user] = user
        project.next_user += 1
    else:
        if email and project.project_type != EMAIL_BASED:
            user["email"] = email
        if user_id:
            user["userId"] = user_id
    merge = record.get("mergeNestedObjects", merge_default)
    for key, value in data.items():
        current = user["dataFields"].get(key)
        if merge and isinstance(value, dict) and isinstance(current, dict):
            _deep_merge(current, value)
        else:
            user["dataFields"][key] = copy.deepcopy(value)
    user["profileUpdatedAt"] = now
    if user.get("email") and project.project_type != USERID_BASED:
        project.by_email[user["email"].lower()] = user["id"]
    if user.get("userId"):
        project.by_user_id[user["userId"]] = user["id"]
    return WriteResult(True, identifier=str(ident), created_fields=created, filtered_fields=filtered)


def _deep_merge(target: dict, incoming: dict) -> None:
    for key, value in incoming.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def public_user(user: dict) -> dict:
    """The ``user`` object of a lookup response."""
    data = {**user["dataFields"]}
    if user.get("email"):
        data.setdefault("email", user["email"])
    data["signupDate"] = user["signupDate"]
    data["profileUpdatedAt"] = user["profileUpdatedAt"]
    if user.get("devices"):
        data["devices"] = [dict(d) for d in user["devices"]]
    out = {"email": user.get("email") or "", "dataFields": data}
    if user.get("userId"):
        out["userId"] = user["userId"]
    return out


def delete_user(project: Project, user: dict) -> None:
    """Remove a user and its indexes (DELETE /api/users/..., forget)."""
    project.users.pop(user["id"], None)
    if user.get("email"):
        project.by_email.pop(user["email"].lower(), None)
    if user.get("userId"):
        project.by_user_id.pop(user["userId"], None)

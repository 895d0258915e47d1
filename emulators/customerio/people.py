"""People and events in a workspace: the checks Customer.io makes on an operation before it
accepts it (reference 2.4, 3.1), and what an accepted operation does to the workspace.

Customer.io answers a v2 batch before it processes it, so only the checks below can fail an item
in a 207. A change accepted but impossible (``_update`` for nobody, an id already taken) does
nothing and leaves a ``failed_attribute_change`` activity, as the reference says the real one does.

Attribute ordering follows ``timestamp`` (v2) or ``_timestamp`` (v1): an attribute last set at a
later time than an update's own timestamp keeps its value. Without one, an update happens "now".
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

from emulators.customerio.spec import Problem
from emulators.customerio.state import (
    MAX_ATTRIBUTE_NAME_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_EVENT_DATA_BYTES,
    MAX_EVENT_NAME_BYTES,
    MAX_ID_BYTES,
    Workspace,
)

IDENTIFIER_KINDS = ("id", "email", "phone", "cio_id")
# reference 3: the actions each entity type takes in a v2 operation
ACTIONS = {
    "person": (
        "identify",
        "delete",
        "event",
        "screen",
        "page",
        "add_relationships",
        "delete_relationships",
        "add_device",
        "delete_device",
        "merge",
        "suppress",
        "unsuppress",
    ),
    "object": ("identify", "identify_anonymous", "delete", "add_relationships", "delete_relationships"),
    "delivery": ("event",),
}
RESERVED_ONLY = ("_update", "_timestamp")  # steer the update; not attributes of the person
# Track OpenAPI cio_subscription_preferences: the object ({"topics": {"topic_<id>": bool}}) replaces the
# person's, and "JSON dot notation, such as cio_subscription_preferences.topics.topic_<id>, [updates] one
# topic without replacing others" (reference 2.3).
PREFERENCES = "cio_subscription_preferences"
TOPIC_PREFIX = f"{PREFERENCES}.topics."
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def byte_len(value: Any) -> int:
    """A value's size as Customer.io counts it: a string's UTF-8 bytes, anything else its compact JSON."""
    if isinstance(value, str):
        return len(value.encode())
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def identifies(workspace: Workspace, kind: str) -> bool:
    """Whether ``kind`` is one of the workspace's people identifiers (workspace settings)."""
    if kind == "email":
        return workspace.identify_by in ("email", "both")
    return kind in ("id", "cio_id")


# --- checks ---------------------------------------------------------------------------------


def check_identifiers(identifiers: Any, workspace: Workspace, where: str = "identifiers") -> list[Problem]:
    if identifiers is None:
        return [Problem(where, "required", f"{where} is required")]
    if not isinstance(identifiers, dict):
        return [Problem(where, "invalid", f"{where} must be an object")]
    known = [kind for kind in IDENTIFIER_KINDS if kind in identifiers]
    if len(known) != 1 or len(identifiers) != 1:
        # Person identifiers: "one of id, email, phone, or cio_id. You cannot pass multiple identifiers."
        return [Problem(where, "invalid", f"{where} must hold exactly one of id, email, phone or cio_id")]
    kind = known[0]
    return check_identifier(kind, identifiers[kind], workspace, f"{where}.{kind}")


def check_identifier(kind: str, value: Any, workspace: Workspace, where: str) -> list[Problem]:
    # Wording from the invalid-requests doc where it has one (reference 2.4).
    if not isinstance(value, str):
        return [Problem(where, "invalid", f"{kind} attribute must be a string value")]
    if value == "":
        return [Problem(where, "invalid", f"{kind} attribute cannot be an empty string")]
    if kind == "id" and byte_len(value) > MAX_ID_BYTES:
        return [Problem(where, "invalid", f"id cannot be longer than {MAX_ID_BYTES} bytes")]
    if kind == "email" and not EMAIL.match(value):
        return [Problem(where, "invalid", "email is not a valid email address")]
    if kind == "phone" and not E164.match(value):
        return [Problem(where, "invalid", "phone must be in E.164 format")]
    if kind in ("email", "phone") and not identifies(workspace, kind):
        return [Problem(where, "invalid", f"{kind} is not enabled as an identifier in this workspace")]
    return []


def check_attributes(attributes: Any, where: str = "attributes") -> list[Problem]:
    if attributes is None:
        return []
    if not isinstance(attributes, dict):
        return [Problem(where, "invalid", f"{where} must be an object")]
    problems = []
    names = [name for name in attributes if name not in RESERVED_ONLY]
    if len(names) > MAX_ATTRIBUTES:
        problems.append(
            Problem(where, "invalid", f"cannot identify more than {MAX_ATTRIBUTES} attributes in one request")
        )
    for name in names:
        value, field = attributes[name], f"{where}.{name}" if where else name
        if byte_len(name) > MAX_ATTRIBUTE_NAME_BYTES:
            problems.append(
                Problem(field, "invalid", f"attribute name cannot be longer than {MAX_ATTRIBUTE_NAME_BYTES} bytes")
            )
        elif name == "id" and value is not None:
            problems += check_identifier("id", value, _ANY_WORKSPACE, field)
        elif (name == PREFERENCES or topic_name(name) is not None) and check_preferences(name, value, field):
            problems += check_preferences(name, value, field)
        elif value is not None and byte_len(value) > MAX_ATTRIBUTE_VALUE_BYTES:
            problems.append(
                Problem(
                    field,
                    "invalid",
                    f"value for attribute '{name}' cannot be longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes",
                )
            )
    return problems


def topic_name(attribute: str) -> str | None:
    """``topic_1`` for the attribute ``cio_subscription_preferences.topics.topic_1``; None for any other."""
    rest = attribute[len(TOPIC_PREFIX) :] if attribute.startswith(TOPIC_PREFIX) else ""
    return rest if rest and "." not in rest else None


def check_preferences(name: str, value: Any, field: str) -> list[Problem]:
    """The Track OpenAPI types each topic's preference as a boolean ("true subscribes, false unsubscribes")
    and says "empty or missing values use the topic default": a boolean or null, nothing else. Checked here
    as well as by the document, so that a checkout without it refuses the same bodies."""
    if value is None:
        return []
    if name != PREFERENCES:
        if isinstance(value, bool):
            return []
        return [Problem(field, "invalid", f"{name} must be a boolean: true subscribes, false unsubscribes")]
    if not isinstance(value, dict):
        return [Problem(field, "invalid", f'{PREFERENCES} must be an object such as {{"topics": {{"topic_1": true}}}}')]
    topics = value.get("topics", {})
    if not isinstance(topics, dict):
        return [Problem(f"{field}.topics", "invalid", f"{PREFERENCES}.topics must be an object")]
    return [
        Problem(f"{field}.topics.{key}", "invalid", f"{PREFERENCES}.topics.{key} must be a boolean")
        for key, item in topics.items()
        if not isinstance(item, bool)
    ]


def check_event(name: Any, data: Any, *, name_field: str = "name", data_field: str = "attributes") -> list[Problem]:
    problems = []
    if name is None:
        problems.append(Problem(name_field, "required", "event name must not be blank"))
    elif not isinstance(name, str) or not name.strip():
        problems.append(Problem(name_field, "invalid", "event name must not be blank"))
    elif byte_len(name) > MAX_EVENT_NAME_BYTES:
        message = f"event name cannot be longer than {MAX_EVENT_NAME_BYTES} bytes"
        problems.append(Problem(name_field, "invalid", message))
    if data is not None and not isinstance(data, dict):
        problems.append(Problem(data_field, "invalid", "event data must be a hash"))
    elif data is not None and byte_len(data) > MAX_EVENT_DATA_BYTES:
        problems.append(
            Problem(data_field, "invalid", f"event data cannot be longer than {MAX_EVENT_DATA_BYTES} bytes")
        )
    return problems


def check_operation(op: Any, workspace: Workspace) -> list[Problem]:
    """What Customer.io refuses in one v2 operation, checked whether the OpenAPI document is there or not."""
    if not isinstance(op, dict):
        return [Problem("", "invalid", "each operation must be an object")]
    problems = []
    kind, action = op.get("type"), op.get("action")
    if kind is None:
        problems.append(Problem("type", "required", "type is required"))
    elif kind not in ACTIONS:
        problems.append(Problem("type", "invalid", f"type must be one of {', '.join(ACTIONS)}"))
    if action is None:
        problems.append(Problem("action", "required", "action is required"))
    elif kind in ACTIONS and action not in ACTIONS[kind]:
        problems.append(Problem("action", "invalid", f"action must be one of {', '.join(ACTIONS[kind])}"))
    if kind != "person" or problems:
        return problems
    problems += check_identifiers(op.get("identifiers"), workspace)
    if action == "identify":
        problems += check_attributes(op.get("attributes"))
    elif action in ("event", "page", "screen"):
        problems += check_event(op.get("name"), op.get("attributes"))
        dedupe = op.get("id")
        if dedupe is not None and (not isinstance(dedupe, str) or not dedupe):
            problems.append(Problem("id", "invalid", "id must be a non-empty string"))
    elif action == "delete_device":
        device = op.get("device")
        if not isinstance(device, dict) or not isinstance(device.get("token"), str) or not device.get("token"):
            problems.append(Problem("device.token", "required", "device.token is required"))
    elif action == "add_device":
        device = op.get("device")
        if not isinstance(device, dict) or not isinstance(device.get("token"), str) or not device.get("token"):
            problems.append(Problem("device.token", "required", "device.token is required"))
        elif device.get("platform") not in ("ios", "android"):
            problems.append(Problem("device.platform", "invalid", "device.platform must be ios or android"))
    if "timestamp" in op and (not isinstance(op["timestamp"], int) or isinstance(op["timestamp"], bool)):
        problems.append(Problem("timestamp", "invalid", "timestamp must be an integer"))
    return problems


# --- the workspace's people -------------------------------------------------------------------


def find_person(workspace: Workspace, kind: str, value: Any) -> dict | None:
    if not isinstance(value, str):
        return None
    if kind == "id":
        return workspace.people.get(workspace.by_id.get(value, ""))
    if kind == "email":
        return workspace.people.get(workspace.by_email.get(value.lower(), ""))
    if kind == "cio_id":
        return workspace.people.get(value)
    return None


def path_identifier(workspace: Workspace, value: str) -> tuple[str, str]:
    """How a v1 path's ``{identifier}`` reads: its shape decides (reference 2.2)."""
    if value.startswith("cio_"):
        return "cio_id", value[4:]
    if identifies(workspace, "email") and EMAIL.match(value):
        return "email", value
    return "id", value


def _activity(workspace: Workspace, kind: str, value: Any, reason: str) -> None:
    workspace.activities.append(
        {"type": "failed_attribute_change", "identifiers": {kind: value}, "reason": reason, "at": int(time.time())}
    )


def _new_person(workspace: Workspace) -> dict:
    cio_id = f"{workspace.environment_id:x}{workspace.next_person:06x}"
    workspace.next_person += 1
    now = int(time.time())
    person = {
        "cio_id": cio_id,
        "id": None,
        "email": None,
        "attributes": {},
        "timestamps": {},
        "created": now,
        "updated": now,
    }
    workspace.people[cio_id] = person
    return person


def _set_identifier(workspace: Workspace, person: dict, kind: str, value: str) -> None:
    index = workspace.by_id if kind == "id" else workspace.by_email
    old = person[kind]
    if old is not None and index.get(old if kind == "id" else old.lower()) == person["cio_id"]:
        del index[old if kind == "id" else old.lower()]
    person[kind] = value
    index[value if kind == "id" else value.lower()] = person["cio_id"]


def identify(
    workspace: Workspace,
    kind: str,
    value: str,
    attributes: dict | None,
    *,
    timestamp: int | None = None,
    update_only: bool = False,
) -> dict | None:
    """Add or update the person ``kind=value`` (reference 2.1, 3.1); the person, or None when nothing changed."""
    attributes = {name: item for name, item in (attributes or {}).items() if name not in RESERVED_ONLY}
    if _suppressed(workspace, kind, value):
        _activity(workspace, kind, value, "the identifier is suppressed: ignored")
        return None
    person = find_person(workspace, kind, value)
    if person is None:
        # "if an identifier in the body belongs to someone, that person is updated and gets the path identifier"
        for other in ("id", "email"):
            if other != kind and isinstance(attributes.get(other), str) and identifies(workspace, other):
                person = find_person(workspace, other, attributes[other])
                if person is not None:
                    _set_identifier(workspace, person, kind, value)
                    break
    if person is None:
        if update_only:
            _activity(workspace, kind, value, "_update is true and no person matches")
            return None
        if kind == "cio_id":
            _activity(workspace, kind, value, "no person has this cio_id")
            return None
        if workspace.identify_by == "email" and kind != "email" and not isinstance(attributes.get("email"), str):
            _activity(workspace, kind, value, "a new person in an email-identified workspace needs an email")
            return None
        person = _new_person(workspace)
        _set_identifier(workspace, person, kind, value)
    for other in ("id", "email"):
        new = attributes.pop(other, None)
        if not isinstance(new, str) or new == person[other]:
            continue
        holder = find_person(workspace, other, new)
        unique = other == "id" or identifies(workspace, "email")
        if unique and holder is not None and holder is not person:
            _activity(workspace, kind, value, f"{other} {new!r} belongs to another person")
        elif person[other] is not None and kind != "cio_id" and identifies(workspace, other):
            # reference 2.1: an identifier once set changes only when the person is addressed by cio_id
            _activity(workspace, kind, value, f"{other} is set; address the person by cio_id to change it")
        else:
            _set_identifier(workspace, person, other, new)
    # One topic each, applied after the rest (a whole preferences object beside them is replaced first).
    topic_updates = {topic_name(name): attributes.pop(name) for name in list(attributes) if topic_name(name)}
    stored = person["attributes"]
    after = set(stored) | {name for name, item in attributes.items() if item is not None}
    after -= {name for name, item in attributes.items() if item is None}
    if topic_updates:
        after.add(PREFERENCES)
    if len(after) > MAX_ATTRIBUTES:  # "300 per person or Identify call"
        _activity(workspace, kind, value, f"a person may have at most {MAX_ATTRIBUTES} attributes")
        return person
    now = int(time.time())
    for name, item in attributes.items():
        if name == PREFERENCES:
            _set_preferences(person, None, item, now if timestamp is None else timestamp, ordered=timestamp is not None)
            continue
        if timestamp is not None and person["timestamps"].get(name, 0) > timestamp:
            continue  # a later update already set it
        if item is None:
            stored.pop(name, None)
        else:
            stored[name] = item
        person["timestamps"][name] = now if timestamp is None else timestamp
    for name, item in topic_updates.items():
        _set_preferences(person, name, item, now if timestamp is None else timestamp, ordered=timestamp is not None)
    person["updated"] = now
    return person


def _set_preferences(person: dict, topic: str | None, value: Any, at: int, *, ordered: bool) -> None:
    """Replace the person's preferences (``topic`` None) or set one topic (null: back to the topic's default).

    Ordered as every attribute is (module docstring), but per topic: an update of topic_2 stamped before
    the last update of topic_1 still applies, since it changes nothing topic_1's update set. A whole
    object stamped before any of its topics' last updates is dropped. ``preference_timestamps`` keeps the
    stamps ("" for the last whole object); ``timestamps[cio_subscription_preferences]`` is the latest of
    them, what the App API shows as "when a person's subscription preferences were last updated"."""
    stored, stamps = person["attributes"], person.setdefault("preference_timestamps", {})
    if ordered:
        latest = max(stamps.values(), default=0) if topic is None else max(stamps.get("", 0), stamps.get(topic, 0))
        if latest > at:
            return
    if topic is None:
        if value is None:
            stored.pop(PREFERENCES, None)
        else:
            stored[PREFERENCES] = copy.deepcopy(value)
        stamps.clear()
        stamps[""] = at
    else:
        current = stored.get(PREFERENCES) if isinstance(stored.get(PREFERENCES), dict) else {}
        topics = dict(current.get("topics") or {})
        if value is None:
            topics.pop(topic, None)
        else:
            topics[topic] = value
        stored[PREFERENCES] = {**current, "topics": topics}
        stamps[topic] = at
    person["timestamps"][PREFERENCES] = max(stamps.values())


def _suppressed(workspace: Workspace, kind: str, value: str) -> bool:
    return f"{kind}:{value.lower() if kind == 'email' else value}" in workspace.suppressed


def delete_person(workspace: Workspace, kind: str, value: str) -> None:
    person = find_person(workspace, kind, value)
    if person is None:
        return
    del workspace.people[person["cio_id"]]
    if person["id"] is not None:
        workspace.by_id.pop(person["id"], None)
    if person["email"] is not None and workspace.by_email.get(person["email"].lower()) == person["cio_id"]:
        del workspace.by_email[person["email"].lower()]


def record_event(
    workspace: Workspace,
    kind: str,
    value: str,
    *,
    name: str,
    dedupe_id: str | None,
    data: dict | None,
    timestamp: int | None,
    event_type: str = "event",
    via: str = "v2",
) -> bool:
    """Store an event; False when its ``id`` repeats one already received ("we ignore the duplicate")."""
    if dedupe_id is not None:
        if dedupe_id in workspace.event_ids:
            return False
        workspace.event_ids.add(dedupe_id)
    person = find_person(workspace, kind, value)
    workspace.events.append(
        {
            "name": name,
            "id": dedupe_id,
            "type": event_type,
            "identifiers": {kind: value},
            "cio_id": person["cio_id"] if person else None,
            "timestamp": timestamp,
            "attributes": data or {},
            "via": via,
            "received_at": time.time(),
        }
    )
    return True


def apply_operation(workspace: Workspace, op: dict) -> bool:
    """Carry out a checked v2 operation. False when it was an event ignored as a duplicate."""
    if op["type"] != "person":
        workspace.operations.append(op)
        return True
    ((kind, value),) = op["identifiers"].items()
    action = op["action"]
    if action == "identify":
        attributes = op.get("attributes") or {}
        update_only = attributes.get("_update") is True
        identify(workspace, kind, value, attributes, timestamp=op.get("timestamp"), update_only=update_only)
    elif action == "delete":
        delete_person(workspace, kind, value)
    elif action == "add_device":
        person = find_person(workspace, kind, value)
        if person is None:
            _activity(workspace, kind, value, "add_device for nobody: not added")
            return True
        devices = person.setdefault("devices", [])
        device = op["device"]
        devices[:] = [d for d in devices if d["token"] != device["token"]]
        devices.append(
            {"token": device["token"], "platform": device["platform"], "attributes": device.get("attributes") or {}}
        )
    elif action == "delete_device":
        person = find_person(workspace, kind, value)
        if person is not None:
            person["devices"] = [d for d in person.get("devices", []) if d["token"] != op["device"]["token"]]
    elif action == "suppress":
        # Track OpenAPI person_suppress: the person goes, and every identifier it had is refused from now on.
        person = find_person(workspace, kind, value)
        workspace.suppressed.add(f"{kind}:{value.lower() if kind == 'email' else value}")
        if person is not None:
            for other in ("id", "email"):
                if person.get(other):
                    workspace.suppressed.add(f"{other}:{person[other].lower() if other == 'email' else person[other]}")
            delete_person(workspace, kind, value)
    elif action in ("event", "page", "screen"):
        return record_event(
            workspace,
            kind,
            value,
            name=op["name"],
            dedupe_id=op.get("id"),
            data=op.get("attributes"),
            timestamp=op.get("timestamp"),
            event_type=action,
        )
    else:
        workspace.operations.append(op)
    return True


# --- views ------------------------------------------------------------------------------------


def public_person(person: dict) -> dict:
    return json.loads(json.dumps(person))  # a copy that the caller may keep while the server goes on


def _as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def app_customer(person: dict) -> dict:
    """A person as the App API answers it: ``customerAttributesObject.customer`` ("Attributes are all stored
    as strings", identifiers null when unset)."""
    attributes = {name: _as_string(item) for name, item in person["attributes"].items()}
    attributes["cio_id"] = person["cio_id"]
    for kind in ("id", "email"):
        if person[kind] is not None:
            attributes[kind] = person[kind]
    unsubscribed = str(person["attributes"].get("unsubscribed", "")).lower() in ("true", "1")
    return {
        "id": person["id"],
        "identifiers": {"email": person["email"], "id": person["id"], "cio_id": person["cio_id"]},
        "attributes": attributes,
        "timestamps": {name: int(stamp) for name, stamp in person["timestamps"].items()},
        "unsubscribed": unsubscribed,
        "devices": [],
    }


class _AnyWorkspace:
    identify_by = "both"


# An attribute named ``id`` is checked as an id whatever the workspace identifies people by.
_ANY_WORKSPACE: Any = _AnyWorkspace()

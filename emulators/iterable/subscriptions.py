"""Subscriptions as Iterable keeps them on a profile (peers-consent-erasure 2.1; Swagger
UpdateSubscriptionsRequest): the lists a user is on (the project's list field, as lists/subscribe
writes it), the message types they opted in to or out of, and the channels they left.

Two ways in, which behave differently:

- the Subscriptions API (``PUT /api/subscriptions/{group}/{id}``, ``PATCH``/``DELETE`` one user) is
  additive: one group id added or removed, everything else kept (:func:`toggle`);
- ``users/updateSubscriptions`` and ``bulkUpdateSubscriptions`` "overwrite (does not merge) existing
  data for any non-null fields" (:func:`overwrite`): Flowsync must never call them, and the tests
  check that it does not through the request log and ``stats()["counts"]``.
"""

from __future__ import annotations

import time

from emulators.iterable.state import EMAIL_BASED, Project
from emulators.iterable.users import find_user

# Swagger: "Subscription group (i.e.: emailList, messageType, messageChannel) [Alphanumeric, case insensitive]"
GROUPS = {"emaillist": "emailList", "messagetype": "messageType", "messagechannel": "messageChannel"}
# UpdateSubscriptionsRequest's arrays, each overwriting the profile field of the same name (emailListIds:
# the project's list field, see list_field).
OVERWRITTEN = ("emailListIds", "unsubscribedChannelIds", "unsubscribedMessageTypeIds", "subscribedMessageTypeIds")


def list_field(project: Project) -> str:
    """The profile field of a user's static lists (reference 6.1): emailListIds in email-based projects."""
    return "emailListIds" if project.project_type == EMAIL_BASED else "userListIds"


def group_exists(project: Project, group: str, group_id: int) -> bool:
    known = {"emailList": project.lists, "messageType": project.message_types, "messageChannel": project.channels}
    return group_id in known[group]


def _touched(user: dict) -> None:
    user["profileUpdatedAt"] = time.strftime("%Y-%m-%d %H:%M:%S +00:00", time.gmtime())


def _add(data: dict, name: str, value: int) -> None:
    ids = data.get(name) if isinstance(data.get(name), list) else []
    data[name] = ids if value in ids else [*ids, value]


def _remove(data: dict, name: str, value: int) -> None:
    if isinstance(data.get(name), list):  # a field the user never had stays absent
        data[name] = [item for item in data[name] if item != value]


def toggle(project: Project, user: dict, group: str, group_id: int, *, subscribe: bool) -> None:
    """One Subscriptions API change: only ``group_id`` moves, every other subscription is kept."""
    data = user["dataFields"]
    if group == "emailList":
        (_add if subscribe else _remove)(data, list_field(project), group_id)
    elif group == "messageType":
        # Opting in to a type takes it off the opted-out list, and the reverse: a type is never on both.
        (_add if subscribe else _remove)(data, "subscribedMessageTypeIds", group_id)
        (_remove if subscribe else _add)(data, "unsubscribedMessageTypeIds", group_id)
    else:
        # A profile names the channels it left (unsubscribedChannelIds); being subscribed is not being there.
        (_remove if subscribe else _add)(data, "unsubscribedChannelIds", group_id)
    _touched(user)


def overwrite(project: Project, user: dict, request: dict) -> None:
    """users/updateSubscriptions on one user: each array given replaces the profile's, whatever was there."""
    data = user["dataFields"]
    for name in OVERWRITTEN:
        if request.get(name) is not None:
            data[list_field(project) if name == "emailListIds" else name] = list(request[name])
    _touched(user)


def conflicting(project: Project, email: str | None, user_id: str | None) -> bool:
    """Whether ``email`` and ``user_id`` name two different users already there ("Email/userId conflict")."""
    if not email or not user_id:
        return False
    by_email, by_user_id = find_user(project, email=email), find_user(project, user_id=user_id)
    return by_email is not None and by_user_id is not None and by_email["id"] != by_user_id["id"]

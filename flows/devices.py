"""A mobile device sent with a contact through the capture API: checked here, stored on the contact,
registered by the sync at each destination after the person's upsert (Destination.device_register).

The capture API takes ``{"token", "platform": "APNS"|"APNS_SANDBOX"|"GCM", "applicationName",
"dataFields"?}`` (the names the product documents for app developers). It is stored neutral,
``{"token", "platform", "app_name", "attributes"}``, and each destination makes its own request of
it in its package (Destination.device_register).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PLATFORMS = ("APNS", "APNS_SANDBOX", "GCM")
KEYS = {"token", "platform", "applicationName", "dataFields"}
MAX_TOKEN = 4096  # no limit is documented; an APNs token is 64 hex characters, an FCM one about 160
MAX_NAME = 255
MAX_DATA_BYTES = 10_000


def device_clean(raw: Any) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(The device to store, per-field errors keyed ``device.<field>``); (None, {}) when there is none."""
    if raw is None:
        return None, {}
    if not isinstance(raw, Mapping):
        return None, {"device": "must be an object with token, platform and applicationName"}
    errors: dict[str, str] = {}
    for key in sorted(set(raw) - KEYS):
        errors[f"device.{str(key)[:40]}"] = "unknown key; a device has token, platform, applicationName, dataFields"
    token, platform, app = raw.get("token"), raw.get("platform"), raw.get("applicationName")
    if not isinstance(token, str) or not token.strip():
        errors["device.token"] = "required: the device's push token"
    elif len(token) > MAX_TOKEN or any(c.isspace() for c in token.strip()):
        errors["device.token"] = f"must be one word of at most {MAX_TOKEN} characters"
    if platform not in PLATFORMS:
        errors["device.platform"] = f"must be one of {', '.join(PLATFORMS)}"
    if not isinstance(app, str) or not app.strip():
        errors["device.applicationName"] = "required: the app's name as the destination knows it"
    elif len(app) > MAX_NAME:
        errors["device.applicationName"] = f"at most {MAX_NAME} characters"
    data = raw.get("dataFields", {})
    if not isinstance(data, Mapping):
        errors["device.dataFields"] = "must be an object"
    elif len(json.dumps(data, default=str)) > MAX_DATA_BYTES:
        errors["device.dataFields"] = f"at most {MAX_DATA_BYTES:,} bytes of JSON"
    if errors:
        return None, errors
    return {"token": token.strip(), "platform": platform, "app_name": app.strip(), "attributes": dict(data)}, {}

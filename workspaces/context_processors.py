from __future__ import annotations

from django.http import HttpRequest

from integrations.selectors import open_alerts
from workspaces.selectors import memberships_for_user

# (namespace, url name) -> highlighted entry of the left navigation; a namespace
# alone is its default.
_NAV = {
    ("workspaces", "dashboard"): "overview",
    ("flows", "contacts"): "contacts",
    ("flows", "contact-detail"): "contacts",
    ("flows", "api-settings"): "settings",
    ("flows", None): "flows",
    ("integrations", None): "integrations",
    ("sync_logs", None): "integrations",
    ("field_mapping", None): "integrations",
    ("workspaces", None): "settings",
}


def _nav_section(request: HttpRequest) -> str:
    match = request.resolver_match
    if match is None:
        return ""
    return _NAV.get((match.namespace, match.url_name)) or _NAV.get((match.namespace, None), "")


def workspace_nav(request: HttpRequest) -> dict[str, object]:
    """The current workspace, the switcher's list and the active nav entry, for the layout."""
    workspace = getattr(request, "workspace", None)
    if workspace is None or not request.user.is_authenticated:
        return {}
    return {
        "current_workspace": workspace,
        "current_membership": getattr(request, "membership", None),
        "switcher_memberships": memberships_for_user(user=request.user),
        "nav_section": _nav_section(request),
        "workspace_alerts": open_alerts(workspace=workspace),
    }

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from workspaces.scoping import workspace_view

# The destinations Flowsync can push contacts to; connecting them arrives with
# the Iterable connection issue, this page already lists them.
DESTINATIONS = [
    {"kind": "iterable", "name": "Iterable", "blurb": "Create and update Iterable users from your flows."},
    {"kind": "customerio", "name": "Customer.io", "blurb": "Identify people in Customer.io from your flows."},
]


@workspace_view()
def integration_list(request: HttpRequest) -> HttpResponse:
    return render(request, "integrations/list.html", {"destinations": DESTINATIONS})

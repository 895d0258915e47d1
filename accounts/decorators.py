"""Who may reach the app beyond the account pages: a logged-in user whose address is verified."""

from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse


def unverified_redirect(request: HttpRequest) -> HttpResponse | None:
    """For a logged-in user whose address is not verified yet: the "check your inbox" page
    (which leads back here once verified). None for everyone else."""
    user = request.user
    if user.is_authenticated and not user.email_verified:
        return redirect(reverse("accounts:verify-pending") + "?" + urlencode({"next": request.get_full_path()}))
    return None


def verified_email_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``login_required``, and the address verified (workspaces.scoping checks the same for /w/)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return unverified_redirect(request) or view(request, *args, **kwargs)

    return login_required(wrapper)

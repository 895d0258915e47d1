from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import throttles
from accounts.forms import EmailAuthenticationForm, QueuedPasswordResetForm, SignupForm
from accounts.services import email_verification_send, user_email_verify, user_signup
from accounts.tokens import email_verification_user


def _safe_next(request: HttpRequest) -> str | None:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return None


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("workspaces:home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        refusal = throttles.signup_refusal(request)
        if refusal:
            form.add_error(None, refusal)
        else:
            email = form.cleaned_data["email"]
            user_signup(
                email=email,
                password=form.cleaned_data["password"],
                name=form.cleaned_data["name"],
                next_url=_safe_next(request) or "",
            )
            # SECURITY: the same page for a new and a taken address (user_signup says why).
            return render(request, "registration/signup_sent.html", {"email": email})
    return render(request, "registration/signup.html", {"form": form, "next": _safe_next(request) or ""})


@login_required
def verify_pending(request: HttpRequest) -> HttpResponse:
    """ "Check your inbox": where an unverified user lands, with a (throttled) resend."""
    next_url = _safe_next(request) or ""
    if request.user.email_verified:
        return redirect(next_url or "workspaces:home")
    if request.method == "POST":
        refusal = throttles.verification_resend_refusal(request.user)
        if refusal:
            messages.error(request, refusal)
        else:
            email_verification_send(user=request.user, next_url=next_url)
            messages.success(request, f"We sent a new link to {request.user.email}.")
        return redirect(reverse("accounts:verify-pending") + ("?" + urlencode({"next": next_url}) if next_url else ""))
    return render(request, "registration/verify_pending.html", {"next": next_url})


def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the verification mail: a page whose button proves the address.

    SECURITY: following the link proves the inbox, not who signed up: whoever registered the
    address (an attacker holding an invitation link, with their own password) must not get a
    verified account because its owner, or a mail scanner fetching every link, opened the mail.
    So the link verifies only for a browser logged in as that account, which takes its password,
    and only by a POST from the page's button: a GET (a scanner, a link preview) confirms nothing.
    Anyone else is sent to log in first, and back here; another logged-in user verifies nothing.
    """
    user = email_verification_user(token)
    if user is None:
        return render(request, "registration/verify_invalid.html", status=400)
    if not request.user.is_authenticated:
        messages.info(request, "Log in to confirm your email address.")
        return redirect(reverse("accounts:login") + "?" + urlencode({"next": request.get_full_path()}))
    if request.user.pk != user.pk:
        # Not whose address it is (nor which address): only that this account cannot use it.
        return render(request, "registration/verify_other_user.html", {"link": request.get_full_path()}, status=403)
    next_url = _safe_next(request)
    if request.method != "POST":
        return render(request, "registration/verify_confirm.html", {"next": next_url or ""})
    user_email_verify(user=user)
    messages.success(request, f"Thanks, {user.email} is confirmed.")
    return redirect(next_url or "workspaces:home")


class LoginView(auth_views.LoginView):
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


class PasswordResetView(auth_views.PasswordResetView):
    form_class = QueuedPasswordResetForm
    success_url = reverse_lazy("accounts:password_reset_done")
    email_template_name = "registration/password_reset_email.txt"

    @property
    def extra_email_context(self) -> dict[str, str]:  # type: ignore[override]
        # SECURITY: the link is built from SITE_URL, never from the request's Host header, which
        # whoever asks for the reset chooses (a link to their own host would hand them the token).
        return {"site_url": settings.SITE_URL}

    def form_valid(self, form: QueuedPasswordResetForm) -> HttpResponse:
        # Counted for the address typed, account or not: the refusal reads the same either way.
        refusal = throttles.password_reset_refusal(form.cleaned_data["email"])
        if refusal:
            form.add_error("email", refusal)
            return self.form_invalid(form)
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        # The link came from the inbox: following it proves the address as the verification link does.
        # SECURITY: unlike the verification link, it needs no login, and need not: it verifies only
        # on this POST, which also sets the password. Whoever can use it holds the inbox and takes the
        # account: an attacker who signed up with the victim's address and their own password loses
        # that password here (and their sessions, whose auth hash was made from it), so the verified
        # account is the inbox owner's alone. A scanner's GET of the link only shows the form.
        user_email_verify(user=form.user)
        # The owner has a new password: failures of the old one (an attacker's guesses, or their own)
        # no longer lock them out of it.
        throttles.login_failures_clear(form.user.email)
        return super().form_valid(form)

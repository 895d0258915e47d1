from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.template import loader

from accounts import throttles
from accounts.models import User
from lib.emails import normalize_email
from lib.names import validate_name
from mailer.services import mail_queue


class SignupForm(forms.Form):
    name = forms.CharField(max_length=150, required=False, label="Your name", validators=[validate_name])
    email = forms.EmailField(label="Work email")
    password = forms.CharField(widget=forms.PasswordInput, label="Password", strip=False)

    # SECURITY: no "already taken" error here: the answer must not tell which addresses have
    # accounts (accounts.services.user_signup mails the owner instead).
    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])

    def clean(self) -> dict:
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            candidate = User(email=cleaned.get("email", ""), name=cleaned.get("name", ""))
            try:
                password_validation.validate_password(password, candidate)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class ThrottledLoginMixin:
    """Failed log-ins are limited per address typed and per client address (accounts/throttles.py).

    Each attempt is counted before its password is checked and taken back if it logs in (attempts
    at once cannot slip under the limit together); during a lockout every attempt gets the
    lockout's message, the right password included.
    """

    def clean(self) -> dict:
        if not self.cleaned_data.get("password"):  # nothing to check, so no attempt to count
            return super().clean()  # type: ignore[misc]
        attempt = throttles.login_attempt(self.request, self.data.get("username", ""))
        if attempt.refusal:
            raise forms.ValidationError(attempt.refusal, code="locked_out")
        cleaned = super().clean()  # type: ignore[misc]  # a wrong password raises: it stays counted
        throttles.login_succeeded(attempt)
        return cleaned


class EmailAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    username = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autofocus": True}))


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


class QueuedPasswordResetForm(PasswordResetForm):
    """Django's reset form, its mail sent after commit by the mail task instead of in the request."""

    def send_mail(  # type: ignore[override]
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict,
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        subject = loader.render_to_string(subject_template_name, context)
        body = loader.render_to_string(email_template_name, context)
        mail_queue(to=[to_email], subject=subject, body=body)

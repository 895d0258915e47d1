from __future__ import annotations

from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from lib.emails import normalize_email
from lib.names import validate_name


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, username: str) -> User:
        # The login path (ModelBackend, createsuperuser): an email's case means nothing to its
        # owner, so Erin@Example.com is erin@example.com. Matched on lower(email), which the
        # case-insensitive unique index covers (one row at most, found by index).
        return self.alias(email_lower=Lower("email")).get(email_lower=normalize_email(str(username)))

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.update(is_staff=True, is_superuser=True)
        # Made by an operator on the server (createsuperuser), not by a stranger on the sign-up page.
        extra.setdefault("email_verified_at", timezone.now())
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person who logs in. Identified by email; there is no username."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True, validators=[validate_name])
    # When the owner of the address proved it (the link mailed at sign-up, or a password reset).
    # Until then the account reaches no workspace and accepts no invitation.
    email_verified_at = models.DateTimeField(null=True, blank=True)
    # The workspace the user last opened: where "/" sends them.
    last_workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def display_name(self) -> str:
        return self.name or self.email

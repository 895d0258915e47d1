from __future__ import annotations

from accounts.models import User


def user_create(*, email: str, password: str, name: str = "") -> User:
    return User.objects.create_user(email=email.strip().lower(), password=password, name=name.strip())

"""Secrets at rest and in logs."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from integrations.models import Integration
from lib import crypto
from lib.logredact import RedactSecretsFilter, redact

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "line",
    [
        "sending headers {'Api-Key': 'abcdef1234567890XYZW', 'Content-Type': 'application/json'}",
        "Api-Key: abcdef1234567890XYZW",
        'body {"api_key": "abcdef1234567890XYZW"}',
        "Authorization: Bearer abcdef1234567890XYZW",
        'token {"access_token": "abcdef1234567890XYZW", "refresh_token": "zzzzzzzzzzzzzzzzXYZW"}',
        "grant_type=refresh_token&refresh_token=abcdef1234567890XYZW&client_secret=qqqqqqqqqqqqqqqqXYZW",
    ],
)
def test_redaction_masks_keys_and_tokens(line):
    cleaned = redact(line)
    assert "abcdef1234567890" not in cleaned and "zzzzzzzzzzzzzzzz" not in cleaned and "qqqqqqqqqqqqqqqq" not in cleaned
    assert "…XYZW" in cleaned


def test_the_logging_filter_masks_records_and_their_arguments(caplog):
    logger = logging.getLogger("flowsync.test")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(RedactSecretsFilter())
    logger.addHandler(handler)
    try:
        logger.warning("calling with %s", {"Api-Key": "abcdef1234567890XYZW"})
    finally:
        logger.removeHandler(handler)
    assert seen == ["calling with {'Api-Key': '…XYZW'}"]


def test_the_filter_is_installed_on_the_console_handler(settings):
    assert "redact_secrets" in settings.LOGGING["handlers"]["console"]["filters"]


def test_key_rotation_re_encrypts_everything(settings, workspace_a):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FLOWSYNC_ENCRYPTION_KEYS = [old_key]
    Integration.objects.create(workspace=workspace_a, kind="iterable", credentials={"api_key": "secret-value-1234"})
    settings.FLOWSYNC_ENCRYPTION_KEYS = [new_key, old_key]  # new first, old still readable
    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.FLOWSYNC_ENCRYPTION_KEYS = [new_key]  # the old key is gone
    assert Integration.objects.get().credentials == {"api_key": "secret-value-1234"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM integrations_integration")
        assert "secret-value" not in cursor.fetchone()[0]


def test_a_missing_key_is_a_clear_error(settings, workspace_a):
    settings.FLOWSYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    Integration.objects.create(workspace=workspace_a, kind="iterable", credentials={"api_key": "x" * 20})
    settings.FLOWSYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError, match="FLOWSYNC_ENCRYPTION_KEYS"):
        Integration.objects.get()


def test_the_admin_never_shows_the_secret(client, iterable, workspace_a):
    from tests.factories import UserFactory

    staff = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    integration = Integration.objects.create(
        workspace=workspace_a,
        kind="iterable",
        status="connected",
        credentials={"api_key": "supersecretkey-9876"},
        key_last4="9876",
    )
    for url in ["/admin/integrations/integration/", f"/admin/integrations/integration/{integration.pk}/change/"]:
        html = client.get(url).content.decode()
        assert "supersecretkey" not in html and "9876" in html

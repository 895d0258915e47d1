"""Re-encrypt every stored credential with the newest key of FLOWSYNC_ENCRYPTION_KEYS.

Rotation: put the new key first in FLOWSYNC_ENCRYPTION_KEYS (keep the old ones
after it), deploy, run this command, then remove the old keys.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from integrations.models import Integration


class Command(BaseCommand):
    help = "Re-encrypt stored credentials with the newest encryption key."

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        done = 0
        with transaction.atomic():
            # Reading decrypts with whichever key fits; writing encrypts with the first one.
            for integration in Integration.objects.select_for_update().exclude(credentials=None):
                Integration.objects.filter(pk=integration.pk).update(credentials=integration.credentials)
                done += 1
        self.stdout.write(f"Re-encrypted the credentials of {done} integration(s) with the newest key.")

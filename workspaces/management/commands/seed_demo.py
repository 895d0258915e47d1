"""Create the demo workspace: a login, two flows with standard and custom fields,
and a few hundred contacts. Running it again changes nothing."""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from flows.models import Contact, FieldType, FlowField
from flows.services import contact_capture, flow_create, flow_field_add
from workspaces.models import Workspace
from workspaces.services import workspace_create

FIRST = ["Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia", "Tim", "Hedy"]
LAST = ["Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Perlman"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises"]
COUNTRIES = ["US", "GB", "DE", "FR", "NL", "ES", "CA"]


class Command(BaseCommand):
    help = "Create the demo workspace, login, flows and contacts (idempotent)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--email", default="demo@flowsync.localhost")
        parser.add_argument("--password", default="flowsync-demo")
        parser.add_argument("--contacts", type=int, default=300)
        parser.add_argument(
            "--iterable-key", default="", help="connect the demo to Iterable (the emulator) with this key"
        )

    @transaction.atomic
    def handle(self, *args, email: str, password: str, contacts: int, iterable_key: str, **options) -> None:  # type: ignore[no-untyped-def]
        user = User.objects.filter(email=email).first()
        if user is None:
            # The demo login is made on the server, not by a stranger at the sign-up page: verified.
            user = User.objects.create_user(
                email=email, password=password, name="Demo Admin", email_verified_at=timezone.now()
            )
        workspace = Workspace.objects.filter(slug="demo").first()
        if workspace is None:
            workspace = workspace_create(name="Demo", owner=user)
            self._seed_flows(workspace, user, contacts)
        if iterable_key:
            self._connect_iterable(workspace, user, iterable_key)
        self.stdout.write(f"Demo workspace: {settings.SITE_URL}/w/{workspace.slug}/  login {email} / {password}")

    def _connect_iterable(self, workspace: Workspace, user: User, key: str) -> None:
        from integrations.models import Integration
        from integrations.services import ConnectError, integration_connect

        if Integration.objects.filter(workspace=workspace, kind="iterable", status="connected").exists():
            return
        try:
            integration = integration_connect(
                workspace=workspace,
                actor=user,
                kind="iterable",
                data={"api_key": key, "region": "us", "project_type": "hybrid"},
            )
        except ConnectError as exc:
            self.stderr.write(f"Could not connect the demo to Iterable: {exc.message}")
            return
        # The suggested mapping and the contacts captured so far, so that Sync Now has work to show.
        from field_mapping.forms import initial_choices
        from field_mapping.services import mappable_fields, mapping_save, schema_for, source_fields
        from integrations.destinations import destination_class
        from integrations.sync import integration_sync_settings_save

        available = dict(mappable_fields(schema_for(integration=integration)))
        suggested = destination_class(integration.kind).suggested_targets
        choices = initial_choices(source_fields(integration=integration), [], available, suggested)
        mapping_save(integration=integration, actor=user, choices=choices)
        integration_sync_settings_save(
            integration=integration, actor=user, frequency=0, overwrite_existing=True, backfill=True
        )

    def _seed_flows(self, workspace: Workspace, user: User, count: int) -> None:
        expo = flow_create(workspace=workspace, name="Trade show booth", actor=user)
        for key in ("first_name", "last_name", "company", "job_title", "marketing_consent"):
            flow_field_add(flow=expo, kind=FlowField.Kind.STANDARD, key=key, actor=user)
        flow_field_add(
            flow=expo, kind="custom", key="team_size", label="Team size", field_type=FieldType.NUMBER, actor=user
        )
        flow_field_add(
            flow=expo,
            kind="custom",
            key="interest",
            label="Main interest",
            field_type=FieldType.CHOICE,
            choices="Analytics, Automation, Integrations",
            actor=user,
        )
        store = flow_create(workspace=workspace, name="In-store QR code", actor=user)
        for key in ("first_name", "phone", "country", "birthday"):
            flow_field_add(flow=store, kind=FlowField.Kind.STANDARD, key=key, actor=user)
        flow_field_add(
            flow=store, kind="custom", key="vip_member", label="VIP member", field_type=FieldType.BOOLEAN, actor=user
        )
        flow_field_add(
            flow=store, kind="custom", key="visit_date", label="Visit date", field_type=FieldType.DATE, actor=user
        )
        rng = random.Random(42)
        for i in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first}.{last}.{i}@example.com".lower()
            if i % 2:
                raw = {
                    "email": email,
                    "first_name": first,
                    "last_name": last,
                    "company": rng.choice(COMPANIES),
                    "job_title": rng.choice(["CMO", "Growth lead", "Engineer", "Founder"]),
                    "marketing_consent": rng.random() < 0.7,
                    "team_size": rng.randint(1, 500),
                    "interest": rng.choice(["Analytics", "Automation", "Integrations"]),
                }
                contact_capture(flow=expo, raw=raw, source=Contact.Source.API)
            else:
                raw = {
                    "email": email,
                    "first_name": first,
                    "phone": f"+1 555 {rng.randint(1000000, 9999999)}",
                    "country": rng.choice(COUNTRIES),
                    "birthday": f"{rng.randint(1960, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    "vip_member": rng.random() < 0.2,
                    "visit_date": (timezone.now().date() - timedelta(days=rng.randint(0, 60))).isoformat(),
                }
                contact_capture(flow=store, raw=raw, source=Contact.Source.FORM)

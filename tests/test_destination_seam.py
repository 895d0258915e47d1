"""Destinations are plug-ins (DESIGN, "The destination interface"): outside a destination's package
and its own templates, Flowsync names no destination and none of a destination's data model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from integrations.destinations import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
APPS = (
    "accounts",
    "alert_channels",
    "erasure",
    "field_mapping",
    "flows",
    "health",
    "integrations",
    "lib",
    "mailer",
    "sync_logs",
    "workspaces",
)
# Words that belong to one destination: its name and its data model's own names.
OWN_WORDS = re.compile(
    r"\b(Iterable|iterable|Customer\.io|customerio|dataFields|userId|project_type|mergeNestedObjects|bulkUpdate|api/v2/batch)\b"
)
ALLOWED = {
    # The registry: one line per destination.
    "integrations/destinations/__init__.py",
    # The demo command connects the demo workspace to the bundled Iterable emulator, by name on purpose.
    "workspaces/management/commands/seed_demo.py",
    # The capture API's device object, named as the product documents it to app developers; stored neutral.
    "flows/devices.py",
}


def _own_files() -> list[Path]:
    files = [p for app in APPS for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]
    files += list((ROOT / "templates").rglob("*.html")) + list((ROOT / "static").rglob("*.js"))
    packages = [f"integrations/destinations/{kind}/" for kind in REGISTRY]
    templates = [f"templates/integrations/{kind}/" for kind in REGISTRY]
    return [
        p
        for p in files
        if (rel := p.relative_to(ROOT).as_posix()) not in ALLOWED
        and not any(rel.startswith(prefix) for prefix in packages + templates)
    ]


def test_shared_code_names_no_destination():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _own_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        # typing's Iterable is not the destination
        if OWN_WORDS.search(line.replace("collections.abc import Iterable", "").replace("Iterable[", ""))
    ]
    assert found == []


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_destination_declares_what_the_shared_code_needs(kind):
    destination = REGISTRY[kind]
    assert destination.kind == kind and destination.label and destination.blurb
    assert destination.connect_form is not None and (ROOT / "templates" / destination.connect_template).exists()
    assert destination.identifier_names and destination.new_field_types and destination.push_endpoint
    assert destination.do_not_call_in_templates  # templates read its attributes, never call it

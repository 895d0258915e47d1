from __future__ import annotations

import pytest

from flows.models import FieldType
from integrations.services import integration_connect
from tests.factories import ContactFactory, FlowFieldFactory, make_flow


@pytest.fixture
def connected(iterable, workspace_a, alice):
    """Workspace A connected to the emulator's project 1 (hybrid), which has a few custom fields."""
    iterable.set_fields(
        {
            "age": "long",
            "Company": "string",
            "jobTitle": "string",
            "vip": "boolean",
            "birthday": "date",
            "address": "object",
            "address.street": "string",
        }
    )
    return integration_connect(
        workspace=workspace_a,
        actor=alice,
        kind="iterable",
        data={"api_key": iterable.keys.server_side, "region": "us", "project_type": "hybrid"},
    )


@pytest.fixture
def flows(workspace_a):
    booth = make_flow(
        workspace_a,
        name="Booth",
        extra=[
            {"key": "age", "label": "Age", "field_type": FieldType.NUMBER},
            {"key": "company", "label": "Company", "field_type": FieldType.TEXT, "kind": "standard"},
            {"key": "job_title", "label": "Job title", "field_type": FieldType.TEXT, "kind": "standard"},
            {"key": "shoe_size", "label": "Shoe size", "field_type": FieldType.CHOICE, "choices": ["S", "M"]},
        ],
    )
    store = make_flow(
        workspace_a,
        name="Store",
        extra=[
            {"key": "city", "label": "City", "field_type": FieldType.TEXT, "kind": "standard"},
            {"key": "vip", "label": "VIP", "field_type": FieldType.BOOLEAN},
        ],
    )
    FlowFieldFactory(flow=store, key="age", label="Age", field_type=FieldType.NUMBER)
    return booth, store


@pytest.fixture
def contact(flows):
    booth, _ = flows
    return ContactFactory(
        flow=booth,
        email="ada@example.com",
        data={
            "email": "Ada@Example.com",
            "first_name": "Ada",
            "age": 36,
            "company": "Acme",
            "shoe_size": "M",
        },
    )


def mapping_post(**targets: str) -> dict[str, str]:
    """POST data for the mapping form: target__<key>=<field>; new__<key>=<name> creates a field."""
    data: dict[str, str] = {}
    for key, value in targets.items():
        if key.startswith("new__"):
            data[f"target__{key[5:]}"] = "__new__"
            data[key] = value
        elif key.startswith("empty__") or key == "confirm_shared":
            data[key] = value
        else:
            data[f"target__{key}"] = value
    return data

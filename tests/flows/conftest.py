from __future__ import annotations

import pytest
from django.test import Client

from flows.models import FieldType
from flows.services import capture_token_rotate
from tests.factories import make_flow


@pytest.fixture
def flow(workspace_a):
    return make_flow(
        workspace_a,
        extra=[
            {"key": "age", "label": "Age", "field_type": FieldType.NUMBER},
            {"key": "birthday", "label": "Birthday", "field_type": FieldType.DATE},
            {"key": "vip", "label": "VIP", "field_type": FieldType.BOOLEAN},
            {"key": "size", "label": "Size", "field_type": FieldType.CHOICE, "choices": ["S", "M", "L"]},
            {"key": "phone", "label": "Phone", "field_type": FieldType.PHONE},
        ],
    )


@pytest.fixture
def api_token(workspace_a, alice) -> str:
    return capture_token_rotate(workspace=workspace_a, actor=alice)


@pytest.fixture
def api(api_token):
    """POST JSON to the capture API with workspace A's token."""
    client = Client()

    def post(body, *, token=api_token, content_type="application/json", raw=None):
        import json

        data = raw if raw is not None else json.dumps(body)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.post("/api/v1/contacts", data=data, content_type=content_type, headers=headers)

    return post

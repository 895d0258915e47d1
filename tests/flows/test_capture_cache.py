"""The capture API's short per-process cache of tokens and flows."""

from __future__ import annotations

import pytest

from flows.services import _capture_cache, capture_token_rotate

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached(settings):
    settings.CAPTURE_CACHE_SECONDS = 60
    _capture_cache.clear()
    yield
    _capture_cache.clear()


def test_rotation_applies_at_once_in_this_process(cached, api, flow, workspace_a, alice):
    assert api({"flow": flow.public_id, "fields": {"email": "a@b.co"}}).status_code == 201
    capture_token_rotate(workspace=workspace_a, actor=alice)
    assert api({"flow": flow.public_id, "fields": {"email": "a@b.co"}}).status_code == 401


def test_flow_changes_reach_the_api_after_the_ttl(cached, api, flow, settings):
    assert api({"flow": flow.public_id, "fields": {"email": "a@b.co"}}).status_code == 201
    flow.is_enabled = False
    flow.save()
    # Within the TTL the cached definition is used...
    assert api({"flow": flow.public_id, "fields": {"email": "b@b.co"}}).status_code == 201
    # ...and once it lapses the change applies.
    _capture_cache.clear()
    assert api({"flow": flow.public_id, "fields": {"email": "c@b.co"}}).status_code == 409


def test_unknown_flows_are_not_cached(cached, api, workspace_a):
    from tests.factories import make_flow

    assert api({"flow": "later", "fields": {"email": "a@b.co"}}).status_code == 404
    flow = make_flow(workspace_a)
    flow.public_id = "later"
    flow.save()
    assert api({"flow": "later", "fields": {"email": "a@b.co"}}).status_code == 201

"""The setup's steps as they stand, and "Save and continue" leading from one to the next."""

from __future__ import annotations

import pytest

from integrations.models import Integration
from integrations.selectors import integration_setup

pytestmark = pytest.mark.django_db

MAPPING = "/w/acme/integrations/iterable/mapping/"
SETTINGS = "/w/acme/integrations/iterable/sync/"
SUMMARY = "/w/acme/integrations/iterable/ready/"


def _state(integration, on=None) -> dict[str, tuple[bool, bool]]:
    fresh = Integration.objects.get(pk=integration.pk)
    return {s.key: (s.done, s.current) for s in integration_setup(integration=fresh, on=on)}


def test_the_steps_follow_what_is_done_and_the_page_marks_its_own(integration):
    # Connected and mapped (the fixture), sync settings never saved: step 3 is what is left.
    assert _state(integration) == {"connect": (True, False), "mapping": (True, False), "frequency": (False, True)}
    assert _state(integration, on="mapping")["mapping"] == (True, True)
    assert integration_setup(integration=None)[0].current and not integration_setup(integration=None)[1].open


def test_save_and_continue_leads_to_the_settings_then_the_summary(alice_client, integration):
    data = {"target__email": "email", "target__first_name": "firstName", "target__age": "age"}
    response = alice_client.post(MAPPING, {**data, "continue": "1"})
    assert response.status_code == 302 and response["Location"] == SETTINGS, response.content[:300]
    response = alice_client.post(SETTINGS, {"frequency": "0", "overwrite_existing": "1", "save": ""})
    assert response["Location"] == SUMMARY
    assert all(done for done, _ in _state(integration).values())
    page = alice_client.get(SUMMARY).content.decode()
    assert "Iterable is set up" in page and "Manual only: only when you press Sync Now" in page
    # Once set up, "Save and continue" on the mapping goes to the summary.
    assert alice_client.post(MAPPING, {**data, "continue": "1"})["Location"] == SUMMARY

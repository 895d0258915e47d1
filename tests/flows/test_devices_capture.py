"""A mobile app sends a device with a contact: checked with a clear message per field, stored with it."""

from __future__ import annotations

import pytest

from flows.models import Contact

pytestmark = pytest.mark.django_db

DEVICE = {"token": "a1b2c3", "platform": "APNS", "applicationName": "com.acme.app", "dataFields": {"os": "18.1"}}


def test_a_device_is_stored_with_its_contact(api, flow):
    response = api({"flow": flow.public_id, "fields": {"email": "ada@example.com"}, "device": DEVICE})
    assert response.status_code == 201, response.content
    stored = Contact.objects.get(pk=response.json()["id"]).device
    assert stored == {"token": "a1b2c3", "platform": "APNS", "app_name": "com.acme.app", "attributes": {"os": "18.1"}}
    plain = api({"flow": flow.public_id, "fields": {"email": "bob@example.com"}})
    assert Contact.objects.get(pk=plain.json()["id"]).device is None


@pytest.mark.parametrize(
    ("device", "field", "said"),
    [
        ("a1b2", "device", "must be an object"),
        ({"platform": "APNS", "applicationName": "x"}, "device.token", "required"),
        ({"token": "a b", "platform": "APNS", "applicationName": "x"}, "device.token", "one word"),
        ({"token": "t", "platform": "ios", "applicationName": "x"}, "device.platform", "APNS, APNS_SANDBOX, GCM"),
        ({"token": "t", "platform": "GCM"}, "device.applicationName", "required"),
        ({"token": "t", "platform": "GCM", "applicationName": "x", "dataFields": []}, "device.dataFields", "object"),
        ({"token": "t", "platform": "GCM", "applicationName": "x", "id": 1}, "device.id", "unknown key"),
    ],
)
def test_a_bad_device_is_refused_with_its_field_and_nothing_is_stored(api, flow, device, field, said):
    response = api({"flow": flow.public_id, "fields": {"email": "ada@example.com"}, "device": device})
    assert response.status_code == 422
    assert said in response.json()["error"]["fields"][field]
    assert not Contact.objects.exists()


def test_in_a_batch_a_bad_device_refuses_its_item_only(api, flow):
    response = api(
        {
            "contacts": [
                {"flow": flow.public_id, "fields": {"email": "a@example.com"}, "device": DEVICE},
                {"flow": flow.public_id, "fields": {"email": "b@example.com"}, "device": {"token": ""}},
            ]
        }
    )
    assert response.json()["created"] == 1 and "device.token" in response.json()["results"][1]["errors"]

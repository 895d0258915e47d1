"""One harness per destination, so that the engine's guarantees are tested once for each.

A harness connects an integration of its destination the way an admin would (the real connect
and mapping services), says what the destination now holds, and makes the destination fail the
ways the guarantee tests need: an outage, one record refused, credentials revoked. The fake
destination lives in this process (the engine's logic, nothing between); the others are the
project's emulators over HTTP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from field_mapping import coercion
from field_mapping.services import RowChoice, mapping_save
from integrations.destinations.base import (
    AuthError,
    CatalogueField,
    Connection,
    Destination,
    DestinationField,
    MappedRecord,
    RecordResult,
    ServerError,
)
from integrations.services import integration_connect


@dataclass
class FakeState:
    """What the fake destination holds and how it will answer: reset for each test."""

    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # email -> why it is refused
    outages: int = 0  # the next pushes that answer as an outage
    revoked: bool = False
    pushes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


FAKE = FakeState()


class FakeDestination(Destination):
    """A destination with the smallest data model: people by email, flat attributes."""

    kind = "fake"
    label = "Fakedest"
    blurb = "An in-process destination for the engine's tests."
    identifier_names = ("email",)
    new_field_types = {"text": "string", "number": "number", "email": "string"}
    connect_template = "integrations/connect.html"

    @classmethod
    def connect(cls, data: dict[str, Any], *, bucket_id: str) -> Connection:
        return Connection(credentials={"token": data["token"]}, config={}, key_last4=data["token"][-4:])

    @classmethod
    def catalogue(cls, config: dict[str, Any], schema_fields: dict[str, str]) -> list[CatalogueField]:
        return [CatalogueField(name, kind, name == "email") for name, kind in schema_fields.items()]

    @classmethod
    def coerce(cls, value: Any, destination_type: str, field: str) -> Any:
        coercers = {"string": coercion.to_string, "number": coercion.to_double}
        return coercion.coerce_with(coercers, value, destination_type, field, destination=cls.label)

    @classmethod
    def identifier_value(cls, name: str, value: Any) -> str:
        return coercion.to_string(value, name).strip().lower()

    @classmethod
    def payload(cls, record: MappedRecord, config: dict[str, Any]) -> dict[str, Any]:
        return {"email": record.key, "attributes": dict(record.attributes)}

    @classmethod
    def sent_values(cls, payload: dict[str, Any], key: str) -> dict[str, Any]:
        return dict(payload.get("attributes") or {})

    @classmethod
    def request_preview(cls, payloads: list[dict[str, Any]], *, create_new_fields: bool) -> dict[str, Any]:
        return {"people": payloads}

    @classmethod
    def for_integration(cls, integration, *, interactive: bool = False) -> FakeDestination:
        return cls()

    def identifier_of(self, payload: dict[str, Any]) -> str:
        return payload.get("email", "")

    def verify(self):
        if FAKE.revoked:
            raise AuthError("Fakedest refused the token.")

    def fetch_fields(self) -> list[DestinationField]:
        if FAKE.revoked:
            raise AuthError("Fakedest refused the token.")
        return [DestinationField("email", "string"), DestinationField("firstName", "string")]

    def push(self, records: list[dict[str, Any]], *, create_new_fields: bool = False) -> list[RecordResult]:
        with FAKE.lock:
            FAKE.pushes += 1
            if FAKE.revoked:
                raise AuthError("Fakedest refused the token.")
            if FAKE.outages:
                FAKE.outages -= 1
                raise ServerError("Fakedest answered 503.", status=503)
            results = []
            for record in records:
                email = record["email"]
                if email in FAKE.refused:
                    results.append(RecordResult(email, False, "invalid", FAKE.refused[email]))
                    continue
                FAKE.people.setdefault(email, {}).update(record["attributes"])
                results.append(RecordResult(email, True))
            return results


class Harness:
    kind: str
    # Where the mapped first name lands, and the name the new "age" attribute gets.
    first_name = "firstName"
    age = "age"

    def connect(self, workspace, actor):
        raise NotImplementedError

    def map(self, integration, actor) -> None:
        mapping_save(
            integration=integration,
            actor=actor,
            choices=[
                RowChoice("email", "email"),
                RowChoice("first_name", self.first_name),
                RowChoice("age", self.age, create_new=True),
            ],
        )

    def people(self) -> dict[str, dict[str, Any]]:
        """email -> {"first_name": ..., "age": ...} as the destination holds them."""
        raise NotImplementedError

    def outage(self, times: int) -> None:
        raise NotImplementedError

    def refuse(self, email: str) -> dict[str, Any]:
        """Make the destination refuse this one person; returns the extra raw fields to capture them with."""
        raise NotImplementedError

    def revoke(self) -> None:
        raise NotImplementedError


class FakeHarness(Harness):
    kind = "fake"

    def __init__(self, monkeypatch) -> None:
        from integrations.destinations import DESTINATIONS

        monkeypatch.setitem(DESTINATIONS, FakeDestination.kind, FakeDestination)  # one registry line, for this test
        FAKE.__init__()

    def connect(self, workspace, actor):
        return integration_connect(workspace=workspace, actor=actor, kind="fake", data={"token": "fake-token-1234"})

    def people(self):
        return {
            email: {"first_name": attrs.get("firstName"), "age": attrs.get("age")}
            for email, attrs in FAKE.people.items()
        }

    def outage(self, times: int) -> None:
        FAKE.outages = times

    def refuse(self, email: str) -> dict[str, Any]:
        FAKE.refused[email] = "Fakedest does not take this person."
        return {}

    def revoke(self) -> None:
        FAKE.revoked = True


class IterableHarness(Harness):
    kind = "iterable"

    def __init__(self, emulator) -> None:
        self.emulator = emulator

    def connect(self, workspace, actor):
        return integration_connect(
            workspace=workspace,
            actor=actor,
            kind="iterable",
            data={"api_key": self.emulator.keys.server_side, "region": "us", "project_type": "hybrid"},
        )

    def people(self):
        return {
            user["email"]: {"first_name": user["dataFields"].get("firstName"), "age": user["dataFields"].get("age")}
            for user in self.emulator.users()
            if user.get("email")
        }

    def outage(self, times: int) -> None:
        self.emulator.fault("/api/users/bulkUpdate", status=503, times=times)

    def refuse(self, email: str) -> dict[str, Any]:
        # A person who asked Iterable to forget them is refused alone (reference 2.2: forgottenEmails).
        self.emulator.forget(email)
        return {}

    def revoke(self) -> None:
        self.emulator.reset()  # the key is gone

    def worker_env(self) -> dict[str, str]:
        url = self.emulator.server.url
        return {"ITERABLE_US_BASE_URL": f"{url}/us", "ITERABLE_EU_BASE_URL": f"{url}/eu"}


class CustomerIOHarness(Harness):
    """Customer.io's EU region, people identified by email (the emulator's ``eu`` workspace)."""

    kind = "customerio"
    first_name = "first_name"

    def __init__(self, emulator) -> None:
        self.emulator = emulator
        self.workspace = emulator.eu

    def connect(self, workspace, actor):
        return integration_connect(
            workspace=workspace,
            actor=actor,
            kind="customerio",
            data={
                "site_id": self.workspace.site_id,
                "api_key": self.workspace.api_key,
                "identify_by": "email",
                "app_api_key": self.workspace.app_key,
            },
        )

    def people(self):
        return {
            person["email"]: {
                "first_name": person["attributes"].get("first_name"),
                "age": person["attributes"].get("age"),
            }
            for person in self.emulator.people(self.workspace.site_id)
            if person.get("email")
        }

    def outage(self, times: int) -> None:
        self.emulator.fault("/api/v2/batch", status=503, times=times)

    def refuse(self, email: str) -> dict[str, Any]:
        # Over Customer.io's 1,000 bytes a value (reference 2.4): refused alone, before it is sent.
        return {"first_name": "x" * 1001}

    def revoke(self) -> None:
        self.emulator.reset()  # the workspace and its keys are gone

    def worker_env(self) -> dict[str, str]:
        url = self.emulator.url
        return {
            "CUSTOMERIO_TRACK_US_BASE_URL": f"{url}/us",
            "CUSTOMERIO_TRACK_EU_BASE_URL": f"{url}/eu",
            "CUSTOMERIO_APP_US_BASE_URL": f"{url}/us-api",
            "CUSTOMERIO_APP_EU_BASE_URL": f"{url}/eu-api",
        }

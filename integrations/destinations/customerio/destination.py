"""Customer.io as a Flowsync destination: what it declares (tile, connect, configuration, attributes,
operations) and the verbs of a connected client (verify, fields, push, look up, track).

Facts coded against are in ../shared/reference/customerio.md (section numbers in the comments) and
Customer.io's Track OpenAPI document. People go in ``POST /api/v2/batch`` identify operations, events in
the same endpoint; the optional App API key looks people up.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings

from integrations.credentials import rate_bucket_id, stored_credentials
from integrations.destinations.base import (
    AuthError,
    Capability,
    Connection,
    Destination,
    DestinationError,
    DestinationField,
    PayloadTooLargeError,
    RecordResult,
    TypeMismatchError,
    UnexpectedAnswerError,
    ValidationError,
    VerifyResult,
)
from integrations.destinations.customerio import answers, checks, rules, words
from integrations.destinations.customerio.checks import APP_KEY_HINT, REGION_LABELS
from integrations.destinations.customerio.client import (
    BATCH_PATH,
    PEOPLE_PATH,
    TOPICS_PATH,
    AppClient,
    TrackClient,
    describe_item,
)
from integrations.destinations.customerio.connect import connect_pair
from integrations.destinations.customerio.forms import ConnectForm
from integrations.destinations.http import Response

TOPICS_REASON = (
    "Mapping consent to subscription topics needs an App API key: Flowsync reads the topics of your "
    "subscription center with it. " + APP_KEY_HINT
)
LOOKUP_REASON = (
    "Leave existing people unchanged needs an App API key: Flowsync looks each person up in Customer.io with it "
    "before sending. " + APP_KEY_HINT
)


def batch_parts(sizes: list[int]) -> Iterator[slice]:
    """Consecutive runs of encoded operations (by their ``sizes``) that make one batch request each: at
    most MAX_BATCH_OPERATIONS, and a body smaller than MAX_BATCH_BYTES (reference 3.2). Whether the
    next operation still fits is decided before it is added; a comma goes between two."""
    start, size = 0, rules.BATCH_OVERHEAD
    for index, weight in enumerate(sizes):
        added = weight + (1 if index > start else 0)
        if index > start and (index - start >= rules.MAX_BATCH_OPERATIONS or size + added >= rules.MAX_BATCH_BYTES):
            yield slice(start, index)
            start, size, added = index, rules.BATCH_OVERHEAD, weight
        size += added
    if start < len(sizes):
        yield slice(start, len(sizes))


class CustomerIODestination(Destination):
    kind = "customerio"
    label = "Customer.io"
    blurb = "Create and update Customer.io people from your flows, with an event per submission."
    capabilities = frozenset({Capability.EVENTS, Capability.LOOKUP, Capability.DEVICES, Capability.SUBSCRIPTIONS})
    push_endpoint = f"POST {BATCH_PATH}"
    push_endpoint = "POST /api/v2/batch"
    connect_form = ConnectForm
    connect_template = "integrations/customerio/connect.html"
    identifier_names = rules.IDENTIFIERS
    new_field_types = rules.NEW_FIELD_TYPES
    suggested_targets = rules.SUGGESTED_TARGETS
    stable_codes = words.STABLE_CODES
    # The package's data model and words, which the shared declarations read (base.Destination).
    rules, words = rules, words

    def __init__(
        self,
        client: TrackClient,
        app: AppClient | None = None,
        *,
        identify_by: str = "id",
        environment_id: int | None = None,
    ) -> None:
        self.client = client
        self.app = app
        self.identify_by = identify_by
        self.environment_id = environment_id

    # --- declarations ----------------------------------------------------------------------

    @classmethod
    def connect(cls, data: dict[str, Any], *, bucket_id: str) -> Connection:
        return connect_pair(data, bucket_id=bucket_id)

    @classmethod
    def supports(cls, capability: str, config: dict[str, Any]) -> bool:
        if capability in (Capability.LOOKUP, Capability.SUBSCRIPTIONS):
            # The lookup and the list of subscription topics are the App API's (reference 5).
            return bool(config.get("app_api"))
        return capability in cls.capabilities

    @classmethod
    def unsupported_reason(cls, capability: str, config: dict[str, Any]) -> str:
        if capability == Capability.LOOKUP and not cls.supports(capability, config):
            return LOOKUP_REASON
        if capability == Capability.SUBSCRIPTIONS and not cls.supports(capability, config):
            return TOPICS_REASON
        return ""

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        region = config.get("region") or "us"
        identify_by = config.get("identify_by") or "id"
        environment_id = config.get("environment_id")
        if (
            region not in REGION_LABELS
            or identify_by not in rules.IDENTIFY_BY
            or not (
                environment_id is None or (isinstance(environment_id, int) and not isinstance(environment_id, bool))
            )
        ):
            raise ValueError(f"not a Customer.io configuration: {config!r}")
        return {
            **config,
            "region": region,
            "identify_by": identify_by,
            "environment_id": environment_id,
            "app_api": bool(config.get("app_api")),
        }

    @classmethod
    def describe_config(cls, config: dict[str, Any]) -> str:
        config = cls.validate_config(config)
        workspace = f", workspace {config['environment_id']}" if config["environment_id"] is not None else ""
        identified = rules.IDENTIFY_BY[config["identify_by"]]
        return f"{REGION_LABELS[config['region']]} region{workspace}, people identified by {identified}"

    @classmethod
    def accepted_identifiers(cls, config: dict[str, Any]) -> tuple[str, ...]:
        # One identifier per operation (reference 3.1): the one the workspace identifies people by.
        return (config.get("identify_by") or "id",)

    @classmethod
    def request_preview(cls, payloads: list[dict[str, Any]], *, create_new_fields: bool) -> dict[str, Any]:
        # Customer.io adds an attribute the first time a person carries it: nothing to ask for new fields.
        return {"batch": payloads}

    @classmethod
    def for_integration(cls, integration, *, interactive: bool = False) -> CustomerIODestination:
        config = cls.validate_config(integration.config or {})
        credentials = stored_credentials(integration)
        site_id, api_key = credentials.get("site_id"), credentials.get("api_key")
        if not site_id or not api_key:
            raise AuthError("This integration is not connected.", code="not_connected")
        bucket_id = rate_bucket_id(integration)
        common = {"region": config["region"], "bucket_id": bucket_id, "interactive": interactive}
        track = TrackClient(site_id=site_id, api_key=api_key, **common)
        app_api_key = credentials.get("app_api_key")
        app = AppClient(app_api_key=app_api_key, **common) if app_api_key and config["app_api"] else None
        return cls(track, app, identify_by=config["identify_by"], environment_id=config["environment_id"])

    # --- checks ----------------------------------------------------------------------------

    def region_check(self) -> answers.Region:
        return checks.region_check(self.client)

    def check_write(self) -> None:
        checks.check_write(self.client)

    def check_app_key(self) -> None:
        assert self.app is not None
        checks.check_app_key(self.app, self.identify_by)

    def verify(self) -> VerifyResult:
        """The pair still belongs to the workspace and region it was connected with, may write there,
        and the App API key (when there is one) may look people up."""
        answered = self.region_check()
        if answered.region != self.client.region:
            raise AuthError(
                f"Customer.io now places this workspace in the {REGION_LABELS[answered.region]} region, not "
                f"{REGION_LABELS[self.client.region]}. Connect again.",
                code="wrong_region",
            )
        if self.environment_id is not None and answered.environment_id != self.environment_id:
            raise AuthError(
                f"These credentials are now for Customer.io workspace {answered.environment_id}, not "
                f"{self.environment_id}. Connect again with the workspace's own Site ID and Track API key.",
                code="other_workspace",
            )
        self.check_write()
        if self.app is not None:
            self.check_app_key()
        return VerifyResult(
            region=answered.region,
            key_type="track",
            detail={"environment_id": answered.environment_id, "app_api": self.app is not None},
        )

    def http_clients(self) -> list[Any]:
        return [c for c in (self.client, self.app) if c is not None]

    def fetch_fields(self) -> list[DestinationField]:
        """No call: no Customer.io endpoint lists a workspace's attributes (reference 5). The reserved
        ones stand for the schema, so the shared schema cache and drift checks work as for any other."""
        return [DestinationField(name, kind) for name, kind in rules.RESERVED.items()]

    # --- write -----------------------------------------------------------------------------

    def identifier_of(self, payload: dict[str, Any]) -> str:
        return rules.identifier_of(payload)

    def push(self, records: list[dict[str, Any]], *, create_new_fields: bool = False) -> list[RecordResult]:
        """Identify one batch of people; one result per record, in order.

        A record over one of Customer.io's limits fails alone, unsent (rules.operation_problem). The
        rest go in as many ``POST /api/v2/batch`` requests as the limits ask (batch_parts), each
        operation encoded once: its size decides the request, its bytes go in the body. A 207 fails
        the items it names (answers.read_batch_answer); a 400 for the whole request fails its
        records with Customer.io's reason, unless it is about the size: PayloadTooLargeError, and the
        caller splits the batch. An outage after some records were decided keeps those results and
        fails the rest retryably; before, it is raised.
        """
        results: list[RecordResult | None] = [None] * len(records)
        sendable: list[int] = []
        encoded: list[bytes] = []
        for index, record in enumerate(records):
            data = rules.encode(record)
            problem = rules.operation_problem(record, len(data))
            if problem is not None:
                where, why = problem
                message = f"Not sent: {why}" + (f" ({where})" if where else "")
                results[index] = RecordResult(self.identifier_of(record), False, rules.OVER_LIMIT, message)
                continue
            sendable.append(index)
            encoded.append(data)
        parts = list(batch_parts([len(e) for e in encoded]))
        carried = [[self.identifier_of(records[i]) for i in sendable[part]] for part in parts]
        sent = self._send_parts(
            [(rules.batch_body(encoded[part]), people) for part, people in zip(parts, carried, strict=True)]
        )
        answered = any(response is not None for response, _ in sent)
        for part, (response, error) in zip(parts, sent, strict=True):
            indices = sendable[part]
            operations = [records[i] for i in indices]
            if isinstance(error, PayloadTooLargeError | TypeMismatchError):
                raise error  # the caller splits the batch
            if isinstance(error, ValidationError):
                for i in indices:
                    results[i] = RecordResult(self.identifier_of(records[i]), False, error.code, error.message)
                continue
            if error is not None:
                if not error.retryable or not (answered or any(r is not None for r in results)):
                    raise error
                # An outage for this request while others were answered: those keep their results.
                for i in indices:
                    results[i] = RecordResult(
                        self.identifier_of(records[i]), False, error.code, error.message, retryable=True
                    )
                continue
            chunk = answers.read_batch_answer(
                what="the batch",
                status=response.status,
                body=response.body,
                operations=operations,
                identifier_of=self.identifier_of,
            )
            for i, result in zip(indices, chunk, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def _send_parts(
        self, bodies: list[tuple[bytes, list[str]]]
    ) -> list[tuple[Response | None, DestinationError | None]]:
        """POST each body (with the people it carries), up to CUSTOMERIO_PUSH_CONCURRENCY at once; (response,
        error) each, in order.

        The requests of one batch carry different people (the engine never puts one person twice in a
        batch), so their order between each other does not matter; the next batch starts once every
        one of them is answered, so one person's captures still arrive in order. Each request takes its
        token from the workspace's budget as it is sent, as one at a time would."""

        def send(part: tuple[bytes, list[str]]) -> tuple[Response | None, DestinationError | None]:
            body, carried = part
            try:
                return self.client.request("POST", BATCH_PATH, data=body, carries=carried), None
            except DestinationError as exc:
                return None, exc

        workers = min(len(bodies), max(1, settings.CUSTOMERIO_PUSH_CONCURRENCY))
        if workers <= 1:
            return [send(body) for body in bodies]
        # A pool per batch, not per client: a worker runs thousands of runs, and their idle threads would
        # stay behind (starting a few threads costs far less than one request).
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="customerio-push") as pool:
            return list(pool.map(send, bodies))

    def find_existing(self, records: list[dict[str, Any]]) -> list[bool]:
        """Whether each record's person exists, in order: getPeopleById (App API, reference 5), 100 ids a
        call, paced at CUSTOMERIO_APP_RATE_PER_SECOND; a person left out of the answer does not exist."""
        if self.app is None:
            raise DestinationError(LOOKUP_REASON, code=words.NO_APP_API_KEY)
        kind = self.identify_by
        values = [str((r.get("identifiers") or {}).get(kind) or "") for r in records]
        asked = list(dict.fromkeys(v for v in values if v))
        # Who each id asked for is, as a log row names them (identifier_of: perhaps their other identifier).
        named = {value: self.identifier_of(record) for value, record in zip(values, records, strict=True) if value}
        found: set[str] = set()
        for start in range(0, len(asked), rules.MAX_BATCH_OPERATIONS):
            ids = asked[start : start + rules.MAX_BATCH_OPERATIONS]
            response = self.app.request(
                "POST", PEOPLE_PATH, params={"id_type": kind}, json={"ids": ids}, carries=[named[i] for i in ids]
            )
            found |= answers.found_people(response.status, response.body, kind, ids)
        return [bool(v) and v in found for v in values]

    def subscription_targets(self) -> list[dict[str, str]]:
        """The subscription center's topics (App API GET /v1/subscription_topics) as "topic:<id>"."""
        if self.app is None:
            raise DestinationError(TOPICS_REASON, code=words.NO_APP_API_KEY)
        response = self.app.request("GET", TOPICS_PATH)
        return [
            {"id": f"topic:{topic['id']}", "name": f"Topic: {topic['name']}"}
            for topic in answers.subscription_topics(response.status, response.body)
        ]

    def subscriptions_apply(self, target: str, subscribe: bool, records: list[dict[str, Any]]) -> list[RecordResult]:
        """An ``identify`` per person setting one topic in JSON dot notation
        (``cio_subscription_preferences.topics.topic_<id>``), which leaves their other topics as they are
        (Track OpenAPI, cio_subscription_preferences), through the same batches as a push."""
        try:
            attribute = rules.topic_attribute(target)
        except ValueError as exc:
            raise ValidationError(f"{exc}: choose the topic again in the sync settings") from None
        operations = [
            {
                "type": "person",
                "action": "identify",
                "identifiers": dict(record.get("identifiers") or {}),
                "attributes": {attribute: subscribe},
            }
            for record in records
        ]
        return self.push(operations)

    def device_register(self, record: dict[str, Any], device: dict[str, Any]) -> None:
        """A v2 ``add_device`` operation for the record's person (Track OpenAPI person_add_device): the
        token, the platform in Customer.io's words (APNS and APNS_SANDBOX are ios, GCM android), and the
        app's name beside the device's data fields as its attributes."""
        self._send_one(rules.device_operation(record, device), "device", self.identifier_of(record))

    def device_disable(self, token: str, identifiers: dict[str, str]) -> None:
        """A v2 ``delete_device`` for the person (Track OpenAPI person_delete_device): Customer.io removes a
        device from a person only, so without an identifier it is refused, for good. A ``user_id`` as the
        capture API was given it is the person's ``id`` here."""
        if identifiers.get("user_id") and not identifiers.get("id"):
            identifiers = {**identifiers, "id": identifiers["user_id"]}
        kind = self.identify_by if identifiers.get(self.identify_by) else ""
        kind = kind or next((k for k in rules.IDENTIFIERS if identifiers.get(k)), "")
        if not kind:
            raise ValidationError(
                "Customer.io removes a device from a person only: send the person's email or id with the token",
                code="no_identifier",
            )
        operation = {
            "type": "person",
            "action": "delete_device",
            "identifiers": {kind: identifiers[kind]},
            "device": {"token": token},
        }
        # Carrying every identifier given: the command's log row is named by the first (engine._command_outcome).
        self._send_one(operation, "device", identifiers[kind], carries=[str(v) for v in identifiers.values() if v])

    def _send_one(
        self, operation: dict[str, Any], what: str, identifier: str = "", *, carries: list[str] | None = None
    ) -> None:
        """One v2 operation in a batch of its own; raises what its answer says (a refused item: ValidationError).
        ``carries``: the people it is about, for the exchange log (by default the one ``identifier`` names)."""
        carried = carries if carries is not None else [identifier]
        response = self.client.request(
            "POST", BATCH_PATH, data=rules.batch_body([rules.encode(operation)]), carries=carried
        )
        failed, unexpected = answers.batch_failures(response.status, response.body, 1)
        if unexpected:
            raise UnexpectedAnswerError(
                answers.unexpected_message(f"the {what}", response.status, response.body, unexpected),
                status=response.status,
            )
        if failed:
            refused = answers.failed_result(identifier, failed[0])
            detail = "; ".join(describe_item(e) for e in failed[0])
            raise ValidationError(f"Customer.io refused the {what}: {detail}", code=refused.code)

    def erase(self, people: list[dict[str, str]], *, forget: bool = False) -> list[RecordResult]:
        """Delete each person, or with ``forget`` suppress them (deleted, and their identifiers never
        added back: Track OpenAPI components.schemas.person_suppress), as v2 person operations in
        batches of at most 100, named by the identifier the workspace identifies people by (the other
        one when only that is known). Customer.io deletes a person it does not know without an error."""
        action = "suppress" if forget else "delete"
        results: list[RecordResult | None] = [None] * len(people)
        operations: list[tuple[int, str, bytes]] = []
        for index, person in enumerate(people):
            kind = (
                self.identify_by
                if person.get(self.identify_by)
                else next((k for k in rules.IDENTIFIERS if person.get(k)), "")
            )
            if not kind:
                results[index] = RecordResult(
                    "", False, "no_identifier", "no identifier Customer.io knows this person by"
                )
                continue
            operation = {"type": "person", "action": action, "identifiers": {kind: str(person[kind])}}
            operations.append((index, str(person[kind]), rules.encode(operation)))
        for start in range(0, len(operations), rules.MAX_BATCH_OPERATIONS):
            chunk = operations[start : start + rules.MAX_BATCH_OPERATIONS]
            response = self.client.request(
                "POST", BATCH_PATH, data=rules.batch_body([op for _, _, op in chunk]), carries=[c for _, c, _ in chunk]
            )
            failed, unexpected = answers.batch_failures(response.status, response.body, len(chunk))
            if unexpected:
                raise UnexpectedAnswerError(
                    answers.unexpected_message(f"the {action}", response.status, response.body, unexpected),
                    status=response.status,
                )
            for position, (index, shown, _) in enumerate(chunk):
                errors = failed.get(position)
                results[index] = answers.failed_result(shown, errors) if errors else RecordResult(shown, True)
        return [r for r in results if r is not None]

    def track(self, event_name: str, record: dict[str, Any], data: dict[str, Any], *, event_id: str = "") -> None:
        """One event for the record's person, as a person event operation in a batch (Track OpenAPI
        components.schemas.person_event). Its ``id`` is a ULID derived from ``event_id``: a resend
        carries the same one and Customer.io ignores it (components.schemas.dedupe_id)."""
        problem = rules.event_problem(event_name, data)
        if problem:
            raise ValidationError(problem, code="invalid")
        operation = rules.event_operation(event_name, record, data, event_id=event_id)
        self._send_one(operation, "event", self.identifier_of(record))

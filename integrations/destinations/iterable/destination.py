"""Iterable as a Flowsync destination: what it declares (tile, connect, configuration, fields,
records) and the verbs of a connected client (verify, fetch fields, push, look up, subscribe, track).

Facts coded against are in ../shared/reference/iterable.md (section numbers in the comments).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from integrations.credentials import rate_bucket_id, stored_credentials
from integrations.destinations.base import (
    AuthError,
    Capability,
    ConflictError,
    Connection,
    Destination,
    DestinationError,
    DestinationField,
    NotFoundError,
    RecordResult,
    ServerError,
    TypeMismatchError,
    ValidationError,
    VerifyResult,
)
from integrations.destinations.http import encode_body
from integrations.destinations.iterable import answers, rules, verification, words
from integrations.destinations.iterable.client import (
    MAX_BULK_BYTES,
    NO_USER_CODE,
    USERS_SEPARATOR,
    IterableClient,
    Response,
    split_by_size,
)
from integrations.destinations.iterable.connect import IterableOAuth, connect_api_key
from integrations.destinations.iterable.forms import ConnectKeyForm
from integrations.destinations.iterable.tokens import StoredTokenProvider


class IterableDestination(Destination):
    kind = "iterable"
    label = "Iterable"
    blurb = "Create and update Iterable users from your flows."
    logo = "img/iterable.svg"
    push_endpoint = "POST /api/users/bulkUpdate"
    capabilities = frozenset(
        {
            Capability.SCHEMA,
            Capability.LISTS,
            Capability.EVENTS,
            Capability.LOOKUP,
            Capability.OAUTH,
            Capability.DEVICES,
            Capability.SUBSCRIPTIONS,
        }
    )
    push_endpoint = "POST /api/users/bulkUpdate"
    connect_form = ConnectKeyForm
    oauth = IterableOAuth()
    connect_template = "integrations/iterable/connect.html"
    identifier_names = rules.IDENTIFIERS
    new_field_types = rules.NEW_FIELD_TYPES
    suggested_targets = rules.SUGGESTED_TARGETS
    stable_codes = words.STABLE_CODES
    # The package's data model and words, which the shared declarations read (base.Destination).
    rules, words = rules, words

    def __init__(self, client: IterableClient, *, project_type: str = "hybrid") -> None:
        self.client = client
        self.project_type = project_type
        # Values Iterable refused so far: an instance lives for one sync run (engine.sync_run_execute).
        self.refused = answers.RefusedValues()

    # --- declarations ----------------------------------------------------------------------

    @classmethod
    def connect(cls, data: dict[str, Any], *, bucket_id: str) -> Connection:
        return connect_api_key(data)

    @classmethod
    def stable_code(cls, code: str) -> str:
        # A dotted code in a msg (error.lists.invalidListId, reference 5) names a refused request.
        return "invalid" if code.startswith("error.") and code not in cls.stable_codes else super().stable_code(code)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        region = config.get("region") or "us"
        project_type = config.get("project_type") or "hybrid"
        if region not in ("us", "eu") or project_type not in rules.PROJECT_TYPES:
            raise ValueError(f"not an Iterable configuration: {config!r}")
        return {**config, "region": region, "project_type": project_type}

    @classmethod
    def describe_config(cls, config: dict[str, Any]) -> str:
        config = cls.validate_config(config)
        project = rules.PROJECT_TYPES[config["project_type"]].lower()
        return f"{config['region'].upper()} data center, {project} project"

    @classmethod
    def accepted_identifiers(cls, config: dict[str, Any]) -> tuple[str, ...]:
        return rules.accepted_identifiers(config.get("project_type") or "hybrid")

    @classmethod
    def request_preview(cls, payloads: list[dict[str, Any]], *, create_new_fields: bool) -> dict[str, Any]:
        return cls.bulk_body(payloads, create_new_fields=create_new_fields)

    @classmethod
    def for_integration(cls, integration, *, interactive: bool = False) -> IterableDestination:
        config = cls.validate_config(integration.config or {})
        kwargs: dict[str, Any] = {
            "region": config["region"],
            "bucket_id": rate_bucket_id(integration),
            "interactive": interactive,
        }
        if integration.auth_method == "oauth":
            kwargs["tokens"] = StoredTokenProvider(integration.pk, interactive=interactive)
        else:
            api_key = stored_credentials(integration).get("api_key")
            if not api_key:
                raise AuthError("This integration is not connected.", code="not_connected")
            kwargs["api_key"] = api_key
        return cls(IterableClient(**kwargs), project_type=config["project_type"])

    # --- verify ----------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        """Prove the credentials can read the schema and write users (verification.verify)."""
        return verification.verify(self.client)

    # --- schema ----------------------------------------------------------------------------

    def fetch_fields(self) -> list[DestinationField]:
        body = self.client.request("GET", "/api/users/getFields").body
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise ServerError("Iterable's getFields answer had no 'fields' object", code="bad_response")
        return [DestinationField(name=str(k), type=str(v).lower()) for k, v in sorted(fields.items())]

    # --- write -----------------------------------------------------------------------------

    def identifier_of(self, record: dict[str, Any]) -> str:
        return rules.identifier_of(record, self.project_type)

    def _carried(self, records: list[dict[str, Any]]) -> list[str]:
        """The people a request carries, as their log rows name them: the run's exchange log finds them so."""
        return [self.identifier_of(record) for record in records]

    @staticmethod
    def bulk_body(records: list[dict[str, Any]], *, create_new_fields: bool = False) -> dict[str, Any]:
        """The exact bulkUpdate request body: the mapping preview shows what this returns."""
        body: dict[str, Any] = {"users": records}
        if create_new_fields:
            body["createNewFields"] = True  # the mapping creates fields the project may not accept by default
        return body

    def push(self, records: list[dict[str, Any]], *, create_new_fields: bool = False) -> list[RecordResult]:
        """bulkUpdate one batch; one result per record, in order.

        The batch goes in as many requests as keep each body under MAX_BULK_BYTES (reference 2.2).
        Failures come back by identifier (reference 2.2), mapped here to records; an answer not in
        its documented shape delivers nothing (iterable_answers.read_bulk_answer). A request refused
        whole for values Iterable names (RequestFieldsTypesMismatched, params.validationErrors) fails
        the records carrying them and goes again at once without them; those values fail later
        records of this sync unsent. Raises TypeMismatchError when a refusal names nothing usable,
        PayloadTooLargeError on a 413: the caller splits the batch to isolate the record (records
        of requests already sent go again then; upserts make that harmless).
        """
        results: list[RecordResult | None] = [None] * len(records)
        sendable: list[int] = []
        for index, record in enumerate(records):
            if refusals := self.refused.carried_by(record):
                results[index] = answers.refused_result(self.identifier_of(record), refusals)
            else:
                sendable.append(index)
        # Each record is encoded once: its size decides the requests, its bytes go into the body.
        encoded = [encode_body(records[i]) for i in sendable]
        overhead = len(self.bulk_body_bytes([], create_new_fields=create_new_fields))
        for part in split_by_size([len(e) for e in encoded], overhead=overhead, limit=MAX_BULK_BYTES):
            indices = sendable[part]
            if len(indices) == 1 and overhead + len(encoded[part.start]) > MAX_BULK_BYTES:
                # It would be refused (413) however it is sent: fail it here, its neighbours still go.
                message = f"This user's data is over Iterable's {MAX_BULK_BYTES:,}-byte request limit."
                results[indices[0]] = RecordResult(
                    self.identifier_of(records[indices[0]]), False, "payload_too_large", message
                )
                continue
            try:
                chunk = self._push_refusing(
                    [records[i] for i in indices], encoded[part], create_new_fields=create_new_fields
                )
            except DestinationError as exc:
                if not exc.retryable or all(r is None for r in results):
                    raise  # the caller acts on it (isolates a bad record, stops the run), or nothing is decided yet
                # An outage after some records were decided (delivered, or failed for their own reason): those
                # keep their result, these and the rest wait for the retry.
                for i in sendable[part.start :]:
                    results[i] = RecordResult(
                        self.identifier_of(records[i]), False, exc.code, exc.message, retryable=True
                    )
                break
            for i, result in zip(indices, chunk, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    @classmethod
    def bulk_body_bytes(cls, encoded_records: list[bytes], *, create_new_fields: bool) -> bytes:
        """``encode_body(bulk_body(records))`` from records already encoded one by one: push encodes each
        record once, to measure it and to send it. ``users`` is the body's first key, so the users go
        where the encoded empty body has its first ``[]``."""
        head, tail = encode_body(cls.bulk_body([], create_new_fields=create_new_fields)).split(b"[]", 1)
        return head + b"[" + USERS_SEPARATOR.join(encoded_records) + b"]" + tail

    def _push_refusing(
        self, records: list[dict[str, Any]], encoded: list[bytes], *, create_new_fields: bool
    ) -> list[RecordResult]:
        """One request's records. Each refusal that names values takes out the records carrying them
        (failed with Iterable's reason) and sends the rest again: one round per refusal, not a bisection."""
        results: list[RecordResult | None] = [None] * len(records)
        left = list(range(len(records)))
        while left:
            body = self.bulk_body_bytes([encoded[i] for i in left], create_new_fields=create_new_fields)
            try:
                sent = self._push_chunk([records[i] for i in left], body)
            except TypeMismatchError as exc:
                refusals = answers.refused_values(exc)
                named = answers.RefusedValues(refusals)
                carriers = {i: found for i in left if (found := named.carried_by(records[i]))}
                if not carriers:
                    raise  # it names nothing any record carries: the caller bisects
                self.refused.add(refusals)
                for i, found in carriers.items():
                    results[i] = answers.refused_result(self.identifier_of(records[i]), found)
                left = [i for i in left if i not in carriers]
                continue
            for i, result in zip(left, sent, strict=True):
                results[i] = result
            break
        return [r for r in results if r is not None]

    def _push_chunk(self, records: list[dict[str, Any]], body: bytes) -> list[RecordResult]:
        response = self.client.request("POST", "/api/users/bulkUpdate", data=body, carries=self._carried(records))
        return self._bulk_results("bulkUpdate", response, records)

    def _bulk_results(self, what: str, response: Response, records: list[dict[str, Any]]) -> list[RecordResult]:
        return answers.read_bulk_answer(
            what=what, status=response.status, body=response.body, records=records, identifier_of=self.identifier_of
        )

    def find_existing(self, records: list[dict[str, Any]]) -> list[bool]:
        """Whether each record's user exists already, in order: one lookup each (100 rps per endpoint)."""
        return [self._exists(record) for record in records]

    def _exists(self, record: dict[str, Any]) -> bool:
        email, user_id = record.get("email"), record.get("userId")
        # A userID-based project knows users by userId only. Elsewhere the email identifies the user when
        # the record has one; a record with only a userId is looked up by it (getByEmail would refuse it).
        if email and self.project_type != "userId":
            path, params = "/api/users/getByEmail", {"email": email}
        elif user_id:
            path, params = "/api/users/byUserId", {"userId": user_id}
        else:
            return False  # nothing to look it up by: the push says what is missing
        try:
            response = self.client.request("GET", path, params=params, carries=self._carried([record]))
        except NotFoundError as exc:
            if exc.code == NO_USER_CODE:  # byUserId's other way of saying "not found" (reference 4)
                return False
            raise
        except ValidationError as exc:
            # An identifier Iterable refuses (malformed email or userId) belongs to no user: not the
            # whole batch's failure. The push then fails that record alone, with Iterable's reason.
            if exc.code in ("InvalidEmailAddressError", "InvalidUserIdError"):
                return False
            raise
        return answers.lookup_found(what=path, status=response.status, body=response.body)

    def subscribe(self, list_id: int, records: list[dict[str, Any]]) -> list[RecordResult]:
        """Add the records' users to a static list (POST /api/lists/subscribe); one result per record.
        Its answer is the bulk one (reference 6.3), read as strictly as bulkUpdate's."""
        subscribers = [{k: r[k] for k in ("email", "userId") if r.get(k)} for r in records]
        response = self.client.request(
            "POST",
            "/api/lists/subscribe",
            json={"listId": list_id, "subscribers": subscribers},
            carries=self._carried(records),
        )
        return self._bulk_results("lists/subscribe", response, records)

    def track(
        self, event_name: str, record: dict[str, Any], data_fields: dict[str, Any], *, event_id: str = ""
    ) -> None:
        """One custom event for the record's user (POST /api/events/track). With ``event_id`` (at most
        512 bytes, reference 6.4) a repeat updates that event instead of adding another."""
        body = {
            "eventName": event_name,
            "dataFields": data_fields,
            **{k: record[k] for k in ("email", "userId") if record.get(k)},
            **({"id": event_id} if event_id else {}),
        }
        response = self.client.request("POST", "/api/events/track", json=body, carries=self._carried([record]))
        answers.check_envelope(what="events/track", status=response.status, body=response.body)

    def device_register(self, record: dict[str, Any], device: dict[str, Any]) -> None:
        """POST /api/users/registerDeviceToken (reference 6.2): the person by email or by userId, never both
        (the one the project identifies people by); its data fields merge into those Iterable has."""
        email, user_id = record.get("email"), record.get("userId")
        who = {"email": email} if email and self.project_type != "userId" else {"userId": user_id}
        body = {"token": device["token"], "platform": device["platform"], "applicationName": device["app_name"]}
        if device.get("attributes"):
            body["dataFields"] = device["attributes"]
        response = self.client.request(
            "POST", "/api/users/registerDeviceToken", json={**who, "device": body}, carries=self._carried([record])
        )
        answers.check_envelope(what="users/registerDeviceToken", status=response.status, body=response.body)

    def device_disable(self, token: str, identifiers: dict[str, str]) -> None:
        """POST /api/users/disableDevice (reference 6.2): the token, and the person's email or userId when
        known; without one Iterable disables the token "under all users with this device"."""
        email, user_id = identifiers.get("email"), identifiers.get("userId") or identifiers.get("user_id")
        who = {"email": email} if email and self.project_type != "userId" else ({"userId": user_id} if user_id else {})
        # The identifiers the command's log row is named by (integrations.engine._command_outcome).
        carried = [str(v) for v in identifiers.values() if v]
        body = {"token": token, **who}
        response = self.client.request("POST", "/api/users/disableDevice", json=body, carries=carried)
        answers.check_envelope(what="users/disableDevice", status=response.status, body=response.body)

    def erase(self, people: list[dict[str, str]], *, forget: bool = False) -> list[RecordResult]:
        """Delete (``DELETE /api/users/{email}`` or ``/byUserId/{userId}``, asynchronous at Iterable) or forget
        (``POST /api/users/forget``: deleted and never collected again; 3/s and 1,000 a day per project,
        a 429 past the cap) each person. A userID-based project knows people by userId only and has no
        delete by email; elsewhere the email is used when there is one. A person Iterable does not know (a
        404, byUserId's own "no user" code) or has forgotten already (409) counts as erased."""
        results = []
        for person in people:
            email, user_id = person.get("email"), person.get("userId")
            by_email = bool(email) and self.project_type != "userId"
            if not by_email and not user_id:
                results.append(RecordResult("", False, "no_identifier", "no identifier Iterable knows this person by"))
                continue
            shown = email if by_email else user_id
            try:
                if forget:
                    body = {"email": email} if by_email else {"userId": user_id}
                    response = self.client.request("POST", "/api/users/forget", json=body, carries=[shown])
                elif by_email:
                    response = self.client.request(
                        "DELETE",
                        f"/api/users/{quote(email, safe='@+')}",
                        template="/api/users/{email}",
                        carries=[shown],
                    )
                else:
                    response = self.client.request(
                        "DELETE",
                        f"/api/users/byUserId/{quote(user_id, safe='')}",
                        template="/api/users/byUserId/{userId}",
                        carries=[shown],
                    )
                answers.check_envelope(
                    what="users/forget" if forget else "users/delete", status=response.status, body=response.body
                )
            except NotFoundError:
                pass  # not there: nothing of theirs is left to delete
            except ConflictError as exc:
                if exc.code != "ForgottenUserError":  # a 409 also names an email/userId conflict
                    results.append(RecordResult(shown, False, exc.code, exc.message))
                    continue
            except ValidationError as exc:
                results.append(RecordResult(shown, False, exc.code, exc.message))
                continue
            results.append(RecordResult(shown, True))
        return results

    def lists(self) -> list[dict[str, Any]]:
        body = self.client.request("GET", "/api/lists").body
        return list(body.get("lists") or []) if isinstance(body, dict) else []

    # --- Consent: subscriptions (peers-consent-erasure 2.1) -----------------------------------------
    # Additive calls only: a static list through lists/subscribe and lists/unsubscribe, a message type
    # or a channel through the Subscriptions API (PUT /api/subscriptions/{group}/{id}). Never
    # users/updateSubscriptions, which overwrites every subscription it is not sent.

    def subscription_targets(self) -> list[dict[str, str]]:
        """Standard lists, message types and marketing channels (GET /api/lists, /api/messageTypes,
        /api/channels), as "emailList:<id>", "messageType:<id>", "messageChannel:<id>"."""
        targets = [
            {"id": f"{rules.SUBSCRIBE_LIST}:{item['id']}", "name": f"List: {item.get('name', item['id'])}"}
            for item in self.lists()
            if item.get("listType", "Standard") == "Standard" and isinstance(item.get("id"), int)
        ]
        types = answers.items_of("messageTypes", self.client.request("GET", "/api/messageTypes"))
        channels = answers.items_of("channels", self.client.request("GET", "/api/channels"))
        for item in types:
            policy = "opt-in" if item.get("subscriptionPolicy") == "OptIn" else "opt-out"
            targets.append(
                {
                    "id": f"{rules.SUBSCRIBE_MESSAGE_TYPE}:{item['id']}",
                    "name": f"Message type: {item['name']} ({policy})",
                }
            )
        for item in channels:
            if item.get("channelType") == "Marketing":  # transactional channels cannot be unsubscribed from
                name = f"Channel: {item['name']} ({item.get('messageMedium', '')})"
                targets.append({"id": f"{rules.SUBSCRIBE_CHANNEL}:{item['id']}", "name": name})
        return targets

    def subscriptions_apply(self, target: str, subscribe: bool, records: list[dict[str, Any]]) -> list[RecordResult]:
        try:
            group, group_id = rules.subscription_target(target)
        except ValueError as exc:
            raise ValidationError(f"{exc}: choose the subscription again in the sync settings") from None
        if group == rules.SUBSCRIBE_LIST:
            if subscribe:
                return self.subscribe(group_id, records)
            subscribers = [{k: r[k] for k in ("email", "userId") if r.get(k)} for r in records]
            body = {"listId": group_id, "subscribers": subscribers, "channelUnsubscribe": False}
            response = self.client.request("POST", "/api/lists/unsubscribe", json=body, carries=self._carried(records))
            results = self._bulk_results("lists/unsubscribe", response, records)
            # Not found on an unsubscribe: they are not on the list, which is what was asked (reference 6.3).
            return [RecordResult(r.identifier, True) if r.code == "not_found" else r for r in results]
        by_email, by_user_id = self._subscription_users(records)
        unnamed = [i for i in range(len(records)) if i not in by_email and i not in by_user_id]
        if unnamed:  # nothing the Subscriptions API can name them by (a userId-less record in a userID project)
            named = [r for i, r in enumerate(records) if i not in unnamed]
            results = iter(self.subscriptions_apply(target, subscribe, named) if named else [])
            missing = RecordResult("", False, "no_identifier", "No identifier Iterable's Subscriptions API takes")
            return [missing if i in unnamed else next(results) for i in range(len(records))]
        body = {
            "users": [by_email[i] for i in sorted(by_email)],
            "usersByUserId": [by_user_id[i] for i in sorted(by_user_id)],
        }
        path = f"/api/subscriptions/{group}/{group_id}"
        try:
            response = self.client.request(
                "PUT",
                path,
                params={"action": "subscribe" if subscribe else "unsubscribe"},
                json=body,
                template="/api/subscriptions/{group}/{id}",
                carries=self._carried(records),
            )
        except NotFoundError as exc:
            return [
                RecordResult(self.identifier_of(r), False, exc.code, words.SUBSCRIPTIONS_API_MISSING) for r in records
            ]
        except ConflictError:
            # One email and userId of two different users refuses the whole request: one call each tells whose.
            return [self._subscription_one(group, group_id, subscribe, record) for record in records]
        answers.check_subscription_answer(status=response.status, body=response.body)
        return [RecordResult(self.identifier_of(r), True) for r in records]

    def _subscription_users(self, records: list[dict[str, Any]]) -> tuple[dict[int, str], dict[int, str]]:
        """Each record's user by email where the project identifies people by it, else by userId."""
        by_email, by_user_id = {}, {}
        for index, record in enumerate(records):
            if record.get("email") and self.project_type != "userId":
                by_email[index] = record["email"]
            elif record.get("userId"):
                by_user_id[index] = record["userId"]
        return by_email, by_user_id

    def _subscription_one(self, group: str, group_id: int, subscribe: bool, record: dict[str, Any]) -> RecordResult:
        shown = self.identifier_of(record)
        by_email, by_user_id = self._subscription_users([record])
        if by_email:
            path, template = (
                f"/api/subscriptions/{group}/{group_id}/user/{quote(by_email[0], safe='')}",
                "/user/{email}",
            )
        else:
            path, template = (
                f"/api/subscriptions/{group}/{group_id}/byUserId/{quote(by_user_id[0], safe='')}",
                "/byUserId/{userId}",
            )
        try:
            response = self.client.request(
                "PATCH" if subscribe else "DELETE",
                path,
                template="/api/subscriptions/{group}/{id}" + template,
                carries=[shown],
            )
        except (ConflictError, ValidationError) as exc:
            return RecordResult(shown, False, exc.code, exc.message)
        except NotFoundError as exc:
            return RecordResult(shown, False, exc.code, words.SUBSCRIPTIONS_API_MISSING)
        answers.check_subscription_answer(status=response.status, body=response.body)
        return RecordResult(shown, True)

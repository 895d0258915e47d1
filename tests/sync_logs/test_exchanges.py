"""The exchange log (sync_logs/exchanges.py): every HTTP try a run makes with its destination, kept with the run,
masked and cut, bounded per run across its slices; the run page, the exchange page, a record's link, the admin,
retention and erasure. Against the emulators over real HTTP, on the real database."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from erasure import services as erasure
from integrations import engine
from integrations.sync import sync_now
from sync_logs import ledger
from sync_logs.exchanges import exchange_body_pretty, exchange_body_text
from sync_logs.models import SyncExchange, SyncRecord, SyncRun
from tests.admin.conftest import ADMIN, staff, staff_client  # noqa: F401 - the support persona
from tests.sync.conftest import customerio_integration  # noqa: F401 - connected to Customer.io's emulator

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk_live_4f9a8b7c6d5e"
PUSH = "/api/users/bulkUpdate"


def _exchange_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-exchange="(\d+)"', html)]


def _pushes(run: SyncRun) -> list[SyncExchange]:
    return list(SyncExchange.objects.filter(run=run, endpoint=PUSH).order_by("id"))


def test_an_iterable_run_keeps_its_requests_masked_and_cut(integration, capture, run_sync, settings):
    settings.EXCHANGE_LOG_BODY_CHARS = 200
    capture(3, notes=f"api_key={SECRET}")
    run = run_sync(integration)
    (push,) = _pushes(run)
    assert (push.destination, push.method, push.status, push.attempt, push.error_code) == (
        "iterable",
        "POST",
        200,
        1,
        "",
    )
    assert push.carries == ["user0@example.com", "user1@example.com", "user2@example.com"]
    assert push.created_at <= timezone.now() and push.duration_ms >= 0
    assert SECRET not in push.request_body and f"api_key=…{SECRET[-4:]}" in push.request_body
    assert re.search(r"… \([\d,]+ more characters\)$", push.request_body)
    assert len(push.request_body) < 200 + 40
    assert '"successCount":3' in push.response_body


def test_a_customerio_run_keeps_its_requests_masked(customerio_integration, capture, run_sync):  # noqa: F811
    capture(2, first_name="password=hunter2hunter2")
    run = run_sync(customerio_integration)
    (batch,) = SyncExchange.objects.filter(run=run, endpoint="/api/v2/batch")
    assert (batch.destination, batch.status) == ("customerio", 200)
    assert sorted(batch.carries) == ["user0@example.com", "user1@example.com"]
    assert "hunter2hunter2" not in batch.request_body and "password=…ter2" in batch.request_body
    api_key = customerio_integration.credentials.get("api_key")
    assert api_key and api_key not in batch.request_body + batch.response_body


def test_a_429_then_a_success_are_two_tries_and_the_429_filter_finds_the_first(
    integration, capture, iterable, run_sync, alice_client, logs_url
):
    capture(2)
    iterable.fault(PUSH, status=429, headers={"Retry-After": "0"}, body={"code": "RateLimitExceeded", "msg": "slow"})
    run = run_sync(integration)
    refused, accepted = _pushes(run)
    assert (refused.status, refused.attempt, refused.error_code) == (429, 1, "RateLimitExceeded")
    assert (accepted.status, accepted.attempt) == (200, 2)
    assert run.delivered == 2

    page = alice_client.get(logs_url(f"runs/{run.pk}/")).content.decode()
    assert "Requests to Iterable" in page and set(_exchange_ids(page)) >= {refused.pk, accepted.pk}
    assert _exchange_ids(alice_client.get(logs_url(f"runs/{run.pk}/?requests=429")).content.decode()) == [refused.pk]
    failed = alice_client.get(
        logs_url(f"runs/{run.pk}/?requests=failed"), headers={"HX-Request": "true", "HX-Target": "requests"}
    )
    assert _exchange_ids(failed.content.decode()) == [refused.pk]
    assert "<html" not in failed.content.decode()  # the section alone, for htmx


def test_the_slow_filter_finds_the_slow_requests(
    integration, capture, iterable, run_sync, settings, alice_client, logs_url
):
    settings.EXCHANGE_LOG_SLOW_MS = 150
    settings.SYNC_BATCH_SIZE = 1
    capture(2)
    iterable.fault(PUSH, kind="timeout", seconds=0.2, after=1)  # the second push answers late, a 504
    run = run_sync(integration)
    slow = [e.pk for e in _pushes(run) if e.duration_ms >= 150]
    assert slow and _exchange_ids(alice_client.get(logs_url(f"runs/{run.pk}/?requests=slow")).content.decode()) == slow


def test_a_run_keeps_its_first_requests_then_only_failed_ones_and_counts_the_rest(
    integration, capture, iterable, run_sync, settings, alice_client, logs_url
):
    settings.EXCHANGE_LOG_MAX_PER_RUN = 2
    settings.SYNC_BATCH_SIZE = 1
    settings.DESTINATION_MAX_RETRIES = 0
    capture(6)
    # The fourth push is refused: past the bound, a failure is still kept.
    iterable.fault(PUSH, status=400, body={"code": "BadJsonBody", "msg": "nope"}, after=3)
    run = run_sync(integration)
    kept = _pushes(run)
    assert [e.status for e in kept] == [200, 200, 400]
    run.refresh_from_db()
    assert run.exchanges_dropped == 3
    page = alice_client.get(logs_url(f"runs/{run.pk}/")).content.decode()
    assert "3 more requests not kept" in page


def test_a_sliced_run_counts_every_slice_against_one_bound(integration, capture, settings, monkeypatch):
    """Each slice's log starts from what the database holds: three slices of two pushes, a bound of three."""
    settings.EXCHANGE_LOG_MAX_PER_RUN = 3
    settings.SYNC_BATCH_SIZE = 1
    settings.SYNC_SLICE_BATCHES = 2
    settings.SYNC_SLICE_SECONDS = 30
    capture(6)
    handed_on: list[tuple[int, int, int]] = []
    # The broker's side of a hand-off: the next slice is run here, by the test, instead of by a worker.
    monkeypatch.setattr(engine, "sync_tasks_waiting", lambda: True)
    monkeypatch.setattr(
        engine,
        "sync_run_continue",
        lambda *, run_id, token, after_id, countdown: handed_on.append((run_id, token, after_id)),
    )
    run_id = sync_now(integration=integration).pk
    finished = engine.sync_run_slice(run_id)
    while finished is None and handed_on:
        finished = engine.sync_run_slice(*handed_on.pop())
    assert finished is not None and finished.delivered == 6
    assert finished.slice_token >= 3  # carried by three slices at least
    assert SyncExchange.objects.filter(run_id=run_id).count() == 3
    assert SyncRun.objects.get(pk=run_id).exchanges_dropped == 3


def test_the_record_page_links_to_the_request_that_carried_it(integration, capture, run_sync, alice_client, logs_url):
    capture(2)
    run = run_sync(integration)
    (push,) = _pushes(run)
    record = SyncRecord.objects.get(run=run, identifier="user1@example.com")
    page = alice_client.get(logs_url(f"runs/{run.pk}/records/{record.pk}/")).content.decode()
    assert 'data-testid="sent-in"' in page
    exchange_url = logs_url(f"runs/{run.pk}/requests/{push.pk}/")
    assert f'href="{exchange_url}"' in page

    detail = alice_client.get(exchange_url)
    html = detail.content.decode()
    assert detail.status_code == 200
    assert "POST /api/users/bulkUpdate" in html and "It carried 2 people" in html
    assert "&quot;users&quot;: [\n    {\n      &quot;email&quot;: &quot;user0@example.com&quot;" in html  # pretty


def test_it_checks_workspace(integration, capture, run_sync, charlie_client, bob_client, logs_url):
    capture(1)
    run = run_sync(integration)
    (push,) = _pushes(run)
    url = logs_url(f"runs/{run.pk}/requests/{push.pk}/")
    assert charlie_client.get(url).status_code == 404
    assert charlie_client.get(logs_url(f"runs/{run.pk}/?requests=failed")).status_code == 404
    assert bob_client.get(url).status_code == 200  # a viewer reads what the run page shows


def test_retention_deletes_the_old_requests(integration, capture, run_sync, settings):
    capture(1)
    old = run_sync(integration)
    capture(1)
    new = run_sync(integration)
    SyncExchange.objects.filter(run=old).update(created_at=timezone.now() - timedelta(days=91))
    ledger.sync_logs_purge(batch=1)
    assert not SyncExchange.objects.filter(run=old).exists()
    assert SyncExchange.objects.filter(run=new).exists()


def test_erasure_takes_the_person_out_of_the_requests(integration, capture, run_sync, workspace_a, alice, monkeypatch):
    monkeypatch.setattr(erasure, "_task_queue", lambda *args, **kwargs: None)  # the destination step is not run here
    capture(2)
    run = run_sync(integration)
    (push,) = _pushes(run)
    assert "user0@example.com" in push.request_body
    erasure.erasure_request(workspace=workspace_a, email="user0@example.com", via="app", actor=alice)
    push.refresh_from_db()
    assert push.carries == ["user1@example.com"]
    assert push.request_body == push.response_body == "(erased)"
    assert push.status == 200  # the request's timings and status stay


def test_support_sees_a_runs_requests_in_the_admin(integration, capture, iterable, run_sync, staff_client):  # noqa: F811
    capture(1)
    iterable.fault(PUSH, status=503, body={"code": "GenericError", "msg": "down"})
    run = run_sync(integration)
    refused, accepted = _pushes(run)
    page = staff_client.get(f"{ADMIN}sync_logs/syncrun/{run.pk}/change/").content.decode()
    changelist = f"{ADMIN}sync_logs/syncexchange/?run__id__exact={run.pk}"
    assert changelist.replace("&", "&amp;") in page or changelist in page
    listed = staff_client.get(changelist + "&status_class=failed").context["cl"].result_list
    assert [e.pk for e in listed] == [refused.pk]
    found = staff_client.get(f"{ADMIN}sync_logs/syncexchange/?q=POST /api/users/bulk&destination=iterable")
    assert {e.pk for e in found.context["cl"].result_list} >= {refused.pk, accepted.pk}
    detail = staff_client.get(f"{ADMIN}sync_logs/syncexchange/{refused.pk}/change/").content.decode()
    assert "user0@example.com" in detail and '<pre class="payload">' in detail
    assert staff_client.get(f"{ADMIN}sync_logs/syncexchange/add/").status_code == 403


def test_a_cut_body_is_still_laid_out_for_reading(settings):
    settings.EXCHANGE_LOG_BODY_CHARS = 30
    stored = exchange_body_text(b'{"users":[{"email":"a@example.com","dataFields":{"x":1}}]}')
    assert stored.endswith("… (28 more characters)")
    assert exchange_body_pretty(stored) == (
        '{\n  "users": [\n    {\n      "email": "a@example.\n… (28 more characters)'
    )
    assert exchange_body_pretty('{"a":[1,2]}') == '{\n  "a": [\n    1,\n    2\n  ]\n}'


def test_a_request_a_late_slice_writes_after_the_erasure_is_scrubbed_too(
    integration, capture, run_sync, workspace_a, alice, monkeypatch
):
    monkeypatch.setattr(erasure, "_task_queue", lambda *args, **kwargs: None)
    capture(1)
    run = run_sync(integration)
    request = erasure.erasure_request(workspace=workspace_a, email="user0@example.com", via="app", actor=alice)
    # A slice that was sending them writes its exchanges as it ends, after the erasure.
    late = SyncExchange.objects.create(
        run=run,
        created_at=timezone.now(),
        destination="iterable",
        method="POST",
        endpoint=PUSH,
        status=200,
        duration_ms=3,
        attempt=1,
        request_body='{"users":[{"email":"user0@example.com"}]}',
        carries=["user0@example.com"],
    )
    (step,) = request.steps.all()
    step.due_at = timezone.now()
    step.save(update_fields=["due_at"])
    assert erasure.erasure_step_attempt(step.pk) == "done"
    late.refresh_from_db()
    assert (late.carries, late.request_body) == ([], "(erased)")


def test_lookups_per_record_leave_room_for_the_pushes(integration, capture, iterable, run_sync, settings):
    """'Leave existing people unchanged' looks each person up first. With a bound of eight and batches of
    three: the first batch's lookups are kept while they are the only endpoint, then lookups stop at half the
    bound and every push that carried the people is kept."""
    settings.EXCHANGE_LOG_MAX_PER_RUN = 8
    settings.SYNC_BATCH_SIZE = 3
    # No 429 among the lookups (100/s): a refused try is kept as a failure and would take a place of the bound.
    iterable.configure(rate_limits_on=False)
    # One push in flight: a batch's lookups then come after the batch before it was sent, an order to count on.
    settings.SYNC_PUSHES_IN_FLIGHT = 1
    integration.overwrite_existing = False
    integration.save(update_fields=["overwrite_existing"])
    capture(9)
    run = run_sync(integration)
    kept = Counter(e.endpoint for e in SyncExchange.objects.filter(run=run))
    assert kept[PUSH] == 3 and kept["/api/users/getByEmail"] == 4


def test_the_exchanges_may_be_kept_shorter_than_the_log_rows(integration, capture, run_sync, settings):
    settings.EXCHANGE_LOG_RETENTION_DAYS = 7
    capture(1)
    run = run_sync(integration)
    SyncExchange.objects.filter(run=run).update(created_at=timezone.now() - timedelta(days=8))
    ledger.sync_logs_purge(batch=10)
    assert not SyncExchange.objects.filter(run=run).exists()
    assert run.records.exists()  # the log rows keep SYNC_LOG_RETENTION_DAYS

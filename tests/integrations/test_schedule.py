"""The schedule's tick (integrations_enqueue_due): every due integration started in a few statements, each
once, however many ticks run at once; the tasks go to the workers after commit."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flows.models import Contact
from flows.services import contact_capture
from integrations import sync
from integrations.models import Integration, OutboxItem
from integrations.sync import SYNC_TASK, integrations_enqueue_due, sync_now
from sync_logs import ledger
from sync_logs.models import SyncRun
from tests.factories import WorkspaceFactory, make_flow

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks and set-based SQL: PostgreSQL only"
)


@pytest.fixture(params=["set-based", "one-by-one"])
def tick_path(request, monkeypatch) -> str:
    """Each behaviour on both paths: PostgreSQL's statements, and the ORM path SQLite takes (./run's
    default), run here on the test database."""
    if request.param == "set-based" and connection.vendor != "postgresql":
        pytest.skip("the set-based path is PostgreSQL's")
    if request.param == "one-by-one":
        monkeypatch.setattr(sync, "_due_claim_sql", sync._due_claim_orm)
        monkeypatch.setattr(
            ledger, "_runs_create_set_based", lambda ids, trigger, now: ledger._runs_create_one_by_one(ids, trigger)
        )
    return request.param


@pytest.fixture
def broker_messages(settings):
    """Reads back the messages sent to the broker, from a queue of this test's own (as a test worker's is):
    each as its headers, properties and decoded body."""
    from celery import current_app

    queue = f"test-{uuid.uuid4().hex[:12]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue

    def read() -> list[dict]:
        found = []
        with current_app.connection_for_read() as conn:
            simple = conn.SimpleQueue(queue)
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    break
                found.append(
                    {
                        "headers": message.headers,
                        "properties": message.properties,
                        "content_type": message.content_type,
                        "body": message.decode(),
                    }
                )
                message.ack()
            simple.close()
        return found

    yield read
    read()  # nothing left on the broker: no message, no binding
    with current_app.connection_for_write() as conn:
        simple = conn.SimpleQueue(queue)
        simple.queue.delete()
        simple.close()


@pytest.fixture
def sent_tasks(broker_messages):
    """The tasks sent, as (task name, args)."""
    return lambda: [(m["headers"]["task"], m["body"][0]) for m in broker_messages()]  # body: args, kwargs, embed


def _integration(*, due_contact: bool = True, **fields) -> Integration:
    """A connected Iterable integration of a workspace of its own, due a minute ago every 15 minutes, with a
    contact waiting to be sent (``due_contact``)."""
    values = {
        "kind": "iterable",
        "status": Integration.Status.CONNECTED,
        "credentials": {"api_key": "k" * 32},
        "frequency": 15,
        "next_run_at": timezone.now() - timedelta(minutes=1),
        **fields,
    }
    integration = Integration.objects.create(workspace=WorkspaceFactory(), **values)
    if due_contact:
        flow = make_flow(integration.workspace)
        contact = Contact.objects.create(workspace=integration.workspace, flow=flow, data={}, email="due@example.com")
        OutboxItem.objects.create(integration=integration, contact=contact)
    return integration


def _next_run_at(integration: Integration):
    integration.refresh_from_db(fields=["next_run_at"])
    return integration.next_run_at


@pytest.mark.django_db
def test_each_due_integration_gets_one_run_and_moves_by_its_frequency(tick_path):
    due = [_integration(frequency=f) for f in (15, 30, 60, 1440)] + [_integration(next_run_at=None)]
    before = timezone.now()
    run_ids = integrations_enqueue_due()
    after = timezone.now()

    runs = SyncRun.objects.filter(pk__in=run_ids)
    assert sorted(runs.values_list("integration_id", flat=True)) == sorted(i.pk for i in due)
    assert SyncRun.objects.count() == len(due)
    for integration in due:
        moved = _next_run_at(integration)
        assert (
            before + timedelta(minutes=integration.frequency)
            <= moved
            <= after + timedelta(minutes=integration.frequency)
        )
    assert integrations_enqueue_due() == []  # a second tick right after: none is due any more
    assert SyncRun.objects.count() == len(due)


@pytest.mark.django_db
def test_a_scheduled_run_has_every_column_a_created_one_has(tick_path):
    """The set-based insert fills what SyncRun.objects.create would (the defaults are the model's, in Python)."""
    _integration()
    [run_id] = integrations_enqueue_due()
    reference = ledger.run_create(integration=_integration(frequency=0), trigger=SyncRun.Trigger.SCHEDULE)
    run = SyncRun.objects.get(pk=run_id)
    ignored = {"id", "integration", "created_at"}
    for field in SyncRun._meta.concrete_fields:
        if field.name not in ignored:
            assert getattr(run, field.attname) == getattr(reference, field.attname), field.name
    assert (run.status, run.trigger, run.total, run.worker, run.error_summary) == ("queued", "schedule", 0, "", "")
    assert abs(run.created_at - reference.created_at) < timedelta(seconds=5)


@pytest.mark.django_db
def test_an_integration_with_nothing_to_send_gets_no_run_and_moves_on(tick_path):
    """Nothing queued, or only contacts waiting out a retry backoff: no run (no slot, schema fetch or run row
    for nothing); its next_run_at moves all the same, and it runs at the first tick that has a contact due."""
    empty = _integration(due_contact=False)
    backing_off = _integration()
    OutboxItem.objects.filter(integration=backing_off).update(next_attempt_at=timezone.now() + timedelta(minutes=3))
    busy = _integration()

    assert len(integrations_enqueue_due()) == 1
    assert list(SyncRun.objects.values_list("integration_id", flat=True)) == [busy.pk]
    for integration in (empty, backing_off):
        assert _next_run_at(integration) > timezone.now() + timedelta(minutes=14)


@pytest.mark.django_db
def test_integrations_that_may_not_run_get_none(tick_path):
    waiting = {
        "paused": _integration(paused_at=timezone.now()),
        "disconnected": _integration(status=Integration.Status.DISCONNECTED, credentials=None),
        "needs attention": _integration(status=Integration.Status.NEEDS_ATTENTION, error_message="Key revoked"),
        "manual only": _integration(frequency=0),
    }
    later = timezone.now() + timedelta(minutes=5)
    not_yet = _integration(next_run_at=later)
    # Connected in name with no credentials (is_connected says no): sync_now refused it after its
    # next_run_at had moved; so does the tick.
    no_key = _integration(credentials=None)

    assert integrations_enqueue_due() == []
    assert not SyncRun.objects.exists()
    for why, integration in waiting.items():
        # Still due: it runs at the first tick once resumed, reconnected or fixed.
        assert _next_run_at(integration) == integration.next_run_at, why
    assert _next_run_at(not_yet) == later
    assert _next_run_at(no_key) > timezone.now() + timedelta(minutes=14)


@pytest.mark.django_db
def test_an_integration_with_a_run_going_gets_no_second_one(tick_path):
    busy = _integration()
    going = ledger.run_create(integration=busy, trigger=SyncRun.Trigger.MANUAL)
    SyncRun.objects.filter(pk=going.pk).update(status=SyncRun.Status.RUNNING)
    done = _integration()
    SyncRun.objects.create(integration=done, trigger=SyncRun.Trigger.SCHEDULE, status=SyncRun.Status.SUCCEEDED)

    run_ids = integrations_enqueue_due()

    assert list(SyncRun.objects.filter(pk__in=run_ids).values_list("integration_id", flat=True)) == [done.pk]
    assert list(SyncRun.objects.filter(integration=busy).values_list("pk", "status")) == [(going.pk, "running")]
    # As before: the period moves on; the next one tries again.
    assert _next_run_at(busy) > timezone.now() + timedelta(minutes=14)


@on_postgresql
@pytest.mark.django_db
def test_a_tick_takes_the_same_few_statements_however_many_are_due():
    def statements(count: int) -> int:
        SyncRun.objects.all().delete()
        for _ in range(count):
            _integration()
        with CaptureQueriesContext(connection) as queries:
            assert len(integrations_enqueue_due()) == count
        return len(queries)

    # The claim's UPDATE and the runs' INSERT, in a savepoint here (the test's transaction): none per integration.
    assert statements(2) == statements(40) == 4


@pytest.mark.django_db
def test_the_tasks_are_sent_after_commit_one_per_run(sent_tasks, django_capture_on_commit_callbacks):
    for _ in range(3):
        _integration()
    with django_capture_on_commit_callbacks() as callbacks:
        run_ids = integrations_enqueue_due()
    assert sent_tasks() == []  # not before the commit: a worker would not find the run
    for callback in callbacks:
        callback()
    assert sorted(sent_tasks()) == sorted((SYNC_TASK, [run_id]) for run_id in run_ids)
    assert len(run_ids) == 3


@pytest.mark.django_db
def test_the_tick_sends_the_message_sync_now_sends(broker_messages, django_capture_on_commit_callbacks):
    """What a worker gets from the tick is what apply_async sends for a Sync Now, but for the ids."""
    import integrations.tasks  # noqa: F401 - registers the task, as in the worker that runs the tick

    manual = _integration(frequency=0)
    with django_capture_on_commit_callbacks(execute=True):
        by_hand = sync_now(integration=manual)
    _integration()
    with django_capture_on_commit_callbacks(execute=True):
        [run_id] = integrations_enqueue_due()
    from_sync_now, from_tick = broker_messages()

    assert from_sync_now["body"][0] == [by_hand.pk] and from_tick["body"][0] == [run_id]
    assert from_tick["body"][1:] == from_sync_now["body"][1:]
    assert from_tick["content_type"] == from_sync_now["content_type"] == "application/json"
    own = {"id", "root_id", "argsrepr", "correlation_id", "delivery_tag"}
    for part in ("headers", "properties"):
        tick, by_apply_async = ({k: v for k, v in m[part].items() if k not in own} for m in (from_tick, from_sync_now))
        assert tick == by_apply_async, part
    headers = from_tick["headers"]
    assert (headers["task"], headers["argsrepr"], headers["root_id"]) == (SYNC_TASK, f"({run_id},)", headers["id"])
    assert from_tick["properties"]["correlation_id"] == headers["id"] != from_sync_now["headers"]["id"]


@pytest.mark.django_db
def test_a_publish_signal_sees_every_task_of_the_tick(sent_tasks, django_capture_on_commit_callbacks):
    """With a receiver of Celery's publish signals the tick sends through apply_async, which sends them."""
    from celery.signals import before_task_publish

    seen = []

    def receiver(sender=None, headers=None, **kwargs):
        seen.append((sender, headers["argsrepr"]))

    for _ in range(3):
        _integration()
    before_task_publish.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run_ids = integrations_enqueue_due()
    finally:
        before_task_publish.disconnect(receiver)
    assert sorted(seen) == sorted((SYNC_TASK, f"({run_id},)") for run_id in run_ids)
    assert sorted(sent_tasks()) == sorted((SYNC_TASK, [run_id]) for run_id in run_ids)


@pytest.mark.django_db
def test_nothing_is_sent_for_a_tick_that_rolls_back(sent_tasks, django_capture_on_commit_callbacks):
    _integration()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        integrations_enqueue_due()
        raise RuntimeError("the tick's transaction fails")
    assert sent_tasks() == []
    assert not SyncRun.objects.exists()


@pytest.mark.django_db
def test_runs_the_broker_left_without_a_task_are_withdrawn_and_due_again(
    sent_tasks, monkeypatch, django_capture_on_commit_callbacks
):
    """The broker fails part-way through the sending: the runs it left without a task are deleted (not left
    for the reaper to close as abandoned, each alerting its workspace) and are due again at the next tick."""
    from kombu.messaging import Producer
    from redis.exceptions import ConnectionError as BrokerGone

    integrations = [_integration() for _ in range(5)]
    monkeypatch.setattr(sync, "SEND_CHUNK", 2)  # two messages a pipeline: the first goes, the second fails
    publish, published = Producer.publish, []

    def publish_until_the_broker_goes(self, *args, **kwargs):
        published.append(kwargs.get("routing_key"))
        if len(published) == 3:
            raise BrokerGone("Connection closed by server.")
        return publish(self, *args, **kwargs)

    monkeypatch.setattr(Producer, "publish", publish_until_the_broker_goes)
    with pytest.raises(sync.TasksNotSent) as failed, django_capture_on_commit_callbacks(execute=True):
        run_ids = integrations_enqueue_due()
    assert failed.value.run_ids == run_ids[2:]

    assert sorted(args for _, args in sent_tasks()) == sorted([run_id] for run_id in run_ids[:2])
    assert sorted(SyncRun.objects.values_list("pk", flat=True)) == sorted(run_ids[:2])
    withdrawn = [i for i in integrations if not SyncRun.objects.filter(integration=i).exists()]
    assert len(withdrawn) == 3
    assert all(_next_run_at(integration) <= timezone.now() for integration in withdrawn)

    monkeypatch.setattr(Producer, "publish", publish)  # the broker is back
    with django_capture_on_commit_callbacks(execute=True):
        again = integrations_enqueue_due()
    assert sorted(SyncRun.objects.filter(pk__in=again).values_list("integration_id", flat=True)) == sorted(
        i.pk for i in withdrawn
    )
    assert sorted(args for _, args in sent_tasks()) == sorted([run_id] for run_id in again)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_overlapping_ticks_never_start_an_integration_twice(tick_path, sent_tasks, monkeypatch):
    """Both ticks claim at the same moment and both hold their claim before either creates its runs."""
    due = [_integration() for _ in range(40)]
    claimed_together, holding_together = threading.Barrier(2, timeout=20), threading.Barrier(2, timeout=20)
    claim = sync.integrations_due_claim

    def claim_at_once(*, now):
        claimed_together.wait()
        ids = claim(now=now)
        holding_together.wait()  # no tick has committed yet
        return ids

    monkeypatch.setattr(sync, "integrations_due_claim", claim_at_once)

    def tick(_) -> list[int]:
        try:
            return integrations_enqueue_due()
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(tick, range(2), timeout=30)  # a tick's exception is raised here
    assert not set(first) & set(second)
    runs = SyncRun.objects.all()
    assert sorted(runs.values_list("integration_id", flat=True)) == sorted(i.pk for i in due)
    assert sorted(first + second) == sorted(runs.values_list("pk", flat=True))
    assert sorted(args for _, args in sent_tasks()) == sorted([run.pk] for run in runs)  # one task per run


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_tick_holding_its_claim_does_not_hold_up_a_capture(sent_tasks, monkeypatch):
    """A capture's commit locks its integration FOR KEY SHARE (the outbox row's foreign key, checked at
    commit): the tick's claim, held until the tick commits, lets it through."""
    integration = _integration()
    flow = make_flow(integration.workspace)
    claimed, release = threading.Event(), threading.Event()
    claim = sync.integrations_due_claim

    def claim_and_hold(*, now):
        ids = claim(now=now)
        claimed.set()
        release.wait(20)
        return ids

    monkeypatch.setattr(sync, "integrations_due_claim", claim_and_hold)

    def tick() -> list[int]:
        try:
            return integrations_enqueue_due()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        ticking = pool.submit(tick)
        try:
            assert claimed.wait(20)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")  # blocked: an error, not a hang
                contact_capture(flow=flow, raw={"email": "during@example.com"}, source="api")
        finally:
            release.set()
        [run_id] = ticking.result(timeout=30)
    assert integration.outbox.filter(contact__email="during@example.com").count() == 1
    assert SyncRun.objects.get(pk=run_id).integration_id == integration.pk
    assert sent_tasks() == [(SYNC_TASK, [run_id])]


def test_the_sync_queue_says_whether_work_waits_for_a_worker(broker_messages):
    """What a slice asks before it hands its run on (engine): an empty queue (which Redis does not even keep)
    says no, a waiting slice says yes."""
    assert not sync.sync_tasks_waiting()
    sync.sync_run_continue(run_id=1, token=1, after_id=0, countdown=0)
    assert sync.sync_tasks_waiting()
    assert [m["body"][0] for m in broker_messages()] == [[1, 1, 0]]
    assert not sync.sync_tasks_waiting()

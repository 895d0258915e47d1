"""The log table's daily partitions (PostgreSQL): made ahead and idempotently, a write never refused when one is
missing (DEFAULT), late rows moved out of DEFAULT, whole old days dropped by retention with their runs marked, and
the viewer's queries reading the same rows from only the partitions of the run's days."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sync_logs import ledger, partitions, selectors, services
from sync_logs.models import SyncRecord, SyncRun
from tests.sync_logs.factories import run_with_records

pytestmark = pytest.mark.django_db


def _names() -> set[str]:
    with connection.cursor() as cursor:
        return {p.name for p in partitions.partitions(cursor)}


def _where(records) -> set[str]:
    """The partitions holding these log rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT tableoid::regclass::text FROM {partitions.TABLE} WHERE id = ANY(%s)",
            [[r.pk for r in records]],
        )
        return {row[0] for row in cursor.fetchall()}


def test_partitions_are_made_ahead_once():
    day = timezone.now().date() + timedelta(days=30)  # days nobody made yet
    made = ledger.log_partitions_ensure(today=day, days_ahead=3)
    assert made == [partitions.day_name(day + timedelta(days=n)) for n in range(4)]
    assert ledger.log_partitions_ensure(today=day, days_ahead=3) == []  # idempotent
    with connection.cursor() as cursor:
        found = {p.name: p for p in partitions.partitions(cursor)}
    first = found[partitions.day_name(day)]
    assert (first.lower, first.upper) == partitions.day_range(day)
    # The beat's default run: today and the days just ahead exist (the test database's migrate made them).
    assert ledger.log_partitions_ensure() == []
    assert partitions.day_name(timezone.now().date() + timedelta(days=3)) in found


def test_a_write_with_no_partition_for_its_day_lands_in_default(integration):
    run = run_with_records(integration, 4, at=timezone.now() + timedelta(days=200))
    assert _where(SyncRecord.objects.filter(run=run)) == {partitions.DEFAULT}
    assert selectors.records_page(run=run).items  # and reads back


def test_a_late_partition_takes_its_days_rows_out_of_default(integration):
    at = timezone.now() + timedelta(days=60)
    run = run_with_records(integration, 5, at=at)
    other_day = run_with_records(integration, 2, at=at + timedelta(days=1))
    ids = sorted(SyncRecord.objects.filter(run=run).values_list("id", flat=True))
    assert ledger.log_partitions_ensure(today=at.date(), days_ahead=0) == [partitions.day_name(at.date())]
    assert _where(SyncRecord.objects.filter(run=run)) == {partitions.day_name(at.date())}
    assert sorted(SyncRecord.objects.filter(run=run).values_list("id", flat=True)) == ids  # same rows, same ids
    assert _where(SyncRecord.objects.filter(run=other_day)) == {partitions.DEFAULT}


def test_a_day_with_too_many_rows_in_default_stays_there_with_a_warning(integration, caplog):
    at = timezone.now() + timedelta(days=70)
    run = run_with_records(integration, 3, at=at)
    with caplog.at_level(logging.WARNING, logger="sync_logs.ledger"):
        assert ledger.log_partitions_ensure(today=at.date(), days_ahead=0, move_limit=2) == []
    assert "not made" in caplog.text
    assert partitions.day_name(at.date()) not in _names()
    assert _where(SyncRecord.objects.filter(run=run)) == {partitions.DEFAULT}
    assert len(selectors.records_page(run=run).items) == 3


def test_retention_drops_whole_old_days_and_marks_their_runs(integration, settings):
    settings.SYNC_LOG_RETENTION_DAYS = 90
    cutoff = timezone.now() - timedelta(days=90)
    boundary = partitions.day_start(cutoff.date())  # only whole days before it go
    ledger.log_partitions_ensure(today=(boundary - timedelta(days=3)).date(), days_ahead=4)
    old = run_with_records(integration, 6, at=boundary - timedelta(days=2) + timedelta(hours=1))
    # Across the boundary's midnight: its first day goes, its last rows stay one day more.
    spanning = run_with_records(integration, 2, at=boundary - timedelta(minutes=30))
    SyncRecord.objects.filter(run=spanning, identifier="user0001@example.com").update(
        created_at=boundary + timedelta(minutes=30)
    )
    SyncRun.objects.filter(pk=spanning.pk).update(finished_at=boundary + timedelta(minutes=31))
    kept = run_with_records(integration, 3, at=boundary + timedelta(days=1, hours=1))
    in_default = run_with_records(integration, 25, at=boundary - timedelta(days=10))  # no partition that day
    future_default = run_with_records(integration, 2, at=timezone.now() + timedelta(days=300))
    assert _where(SyncRecord.objects.filter(run=in_default)) == {partitions.DEFAULT}

    deleted = ledger.sync_logs_purge(batch=10)

    assert deleted == 25  # DEFAULT's old rows, in batches; the dropped partitions' rows are not counted
    names = _names()
    for gone in (3, 2, 1):
        assert partitions.day_name((boundary - timedelta(days=gone)).date()) not in names
    assert {partitions.day_name(boundary.date()), partitions.day_name((boundary + timedelta(days=1)).date())} <= names
    assert not SyncRecord.objects.filter(run__in=[old, in_default]).exists()
    assert list(SyncRecord.objects.filter(run=spanning).values_list("identifier", flat=True)) == [
        "user0001@example.com"
    ]
    assert SyncRecord.objects.filter(run=kept).count() == 3
    assert SyncRecord.objects.filter(run=future_default).count() == 2
    marked = set(SyncRun.objects.exclude(logs_purged_at=None).values_list("pk", flat=True))
    assert marked == {old.pk, in_default.pk}  # the spanning run is marked once its last day goes
    old.refresh_from_db()
    assert old.total == 6  # the summary stays
    assert ledger.sync_logs_purge(batch=10) == 0


def test_the_viewer_reads_a_run_across_two_days_from_those_days_only(integration):
    midnight = partitions.day_start(timezone.now().date() + timedelta(days=40))
    ledger.log_partitions_ensure(today=(midnight - timedelta(days=1)).date(), days_ahead=5)
    run = run_with_records(integration, 120, failed_every=7, at=midnight - timedelta(minutes=10))
    late = list(SyncRecord.objects.filter(run=run).order_by("id").values_list("id", flat=True)[60:])
    SyncRecord.objects.filter(pk__in=late).update(created_at=midnight + timedelta(minutes=5))  # moves partition
    SyncRun.objects.filter(pk=run.pk).update(finished_at=midnight + timedelta(minutes=6))
    run.refresh_from_db()
    other = run_with_records(integration, 5, at=midnight + timedelta(days=3))
    assert len(_where(SyncRecord.objects.filter(run=run))) == 2

    every = sorted(SyncRecord.objects.filter(run=run).values_list("id", flat=True))
    seen, after = [], None
    while True:
        page = selectors.records_page(run=run, after=after)
        seen += [r.id for r in page.items]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == every
    failed = selectors.records_page(run=run, status="failed", size=500).items
    assert [r.id for r in failed] == sorted(
        SyncRecord.objects.filter(run=run, status="failed").values_list("id", flat=True)
    )
    assert [r.identifier for r in selectors.records_page(run=run, q="user0100").items] == ["user0100@example.com"]
    assert selectors.record_in_run(run=run, record_id=late[-1]).pk == late[-1]
    assert selectors.record_in_run(run=other, record_id=late[-1]) is None
    assert sum(1 for _ in services.records_csv(run)) == 121

    plan = SyncRecord.objects.filter(run=run, **partitions.run_window(run)).order_by("id")[:51].explain()
    touched = {name for name in _names() if name in plan}
    assert touched == {partitions.day_name((midnight - timedelta(days=1)).date()), partitions.day_name(midnight.date())}


def test_one_contacts_history_spans_the_days(integration, capture):
    (contact,) = capture(1)
    first = run_with_records(integration, 1, contact=contact, at=timezone.now() - timedelta(days=2))
    second = run_with_records(integration, 1, contact=contact)
    history = selectors.contact_history(workspace=integration.workspace, contact=contact)
    attempts = next(d for d in history if d.integration.pk == integration.pk).attempts
    assert [a.run_id for a in attempts] == [second.pk, first.pk]  # newest first, from either day's partition

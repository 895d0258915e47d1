"""The pure parts of bench/processes.py and bench/capacity.py (the benches themselves are run by hand)."""

from __future__ import annotations

import math

from bench.capacity import _simulate
from bench.processes import duplicates


def test_duplicates_are_rewrites_summed_over_the_benchs_projects_only():
    stats = {"projects": {"1": {"users": 3, "rewrites": 1}, "2": {"users": 2, "rewrites": 0}, "9": {"rewrites": 7}}}
    assert duplicates(stats, [1, 2, 3]) == (1, 5)


def test_a_small_run_waits_for_a_backlog_to_finish_unless_runs_are_sliced():
    # One slot, a backlog of 100 s of work at t=0, a small run at t=1; a run's overhead 1 s, 1,000 contacts/s.
    arrivals = [(0.0, 99_000.0, False), (1.0, 0.0, True)]
    waits, backlog_done = _simulate(arrivals, 1, 1.0, 1000.0, math.inf)
    assert waits == [100.0] and backlog_done == [100.0]
    waits, backlog_done = _simulate(arrivals, 1, 1.0, 1000.0, 10.0)
    assert waits == [10.0]  # behind one slice only, then its own second of overhead
    assert backlog_done == [111.0]  # eleven slices, each paying the overhead again, and the small run's second

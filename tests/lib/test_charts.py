"""Server-drawn bar charts: geometry relative to the tallest bar, stacked in the keys' order."""

from __future__ import annotations

from lib.charts import stacked_bars


def test_bars_stack_bottom_up_relative_to_the_tallest():
    chart = stacked_bars(
        [("a", {"delivered": 6, "failed": 2}), ("b", {"delivered": 4})], ("delivered", "failed"), height=100
    )
    first, second = chart.bars
    assert (chart.max_total, first.total, second.total) == (8, 8, 4)
    delivered, failed = first.segments
    assert (delivered.y, delivered.height) == (25.0, 75.0)  # bottom 75 of 100
    assert (failed.y, failed.height) == (0.0, 25.0)  # on top of it, to the top
    assert second.segments[0].height == 50.0 and second.segments[1].height == 0.0
    assert first.x < second.x and first.width == second.width
    assert first.title == "a: 6 delivered, 2 failed"
    assert chart.summary == "2 bars; in all 10 delivered, 2 failed"


def test_an_empty_chart_says_so():
    chart = stacked_bars([("a", {}), ("b", {"delivered": 0})], ("delivered",))
    assert chart.is_empty and all(s.height == 0 for bar in chart.bars for s in bar.segments)

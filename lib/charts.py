"""Bar charts drawn on the server as SVG geometry: no chart script, nothing the strict CSP would have
to allow (the template draws rects; app.css colours them by class).

``stacked_bars`` lays out one bar per column, its values stacked bottom-up in the order of ``keys``.
Heights are relative to the tallest bar, so a quiet week still fills the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    key: str
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    label: str
    x: float
    width: float
    total: int
    segments: list[Segment]

    @property
    def title(self) -> str:
        return f"{self.label}: " + ", ".join(f"{s.value:,} {s.key}" for s in self.segments)


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    keys: tuple[str, ...]
    width: int
    height: int
    max_total: int

    @property
    def is_empty(self) -> bool:
        return self.max_total == 0

    @property
    def summary(self) -> str:
        """The chart in words, for screen readers."""
        sums = {key: sum(s.value for bar in self.bars for s in bar.segments if s.key == key) for key in self.keys}
        return f"{len(self.bars)} bars; in all " + ", ".join(f"{v:,} {k}" for k, v in sums.items())


def stacked_bars(
    columns: Sequence[tuple[str, dict[str, int]]], keys: Sequence[str], *, width: int = 600, height: int = 140
) -> Chart:
    totals = [sum(values.get(k, 0) for k in keys) for _, values in columns]
    top = max(totals, default=0)
    slot = width / max(len(columns), 1)
    bars = []
    for (label, values), total in zip(columns, totals, strict=True):
        y = float(height)
        segments = []
        for key in keys:
            value = values.get(key, 0)
            h = height * value / top if top else 0.0
            y -= h
            segments.append(Segment(key, value, round(y, 2), round(h, 2)))
        bars.append(Bar(label, round(len(bars) * slot + slot * 0.15, 2), round(slot * 0.7, 2), total, segments))
    return Chart(bars, tuple(keys), width, height, top)

"""Figures: the median of repeated runs with its spread, and the ratios the targets are stated in."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figure", "Row", "percentile", "summarize"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; p99 of 500 samples is the 5th largest."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figure:
    """One measured quantity: the median over repeats, with min and max over the same repeats."""

    median: float
    low: float
    high: float
    unit: str
    repeats: list[float] = field(default_factory=list)

    def text(self) -> str:
        digits = 0 if all(float(v).is_integer() for v in (self.median, self.low, self.high)) else _digits(self.median)
        if len(self.repeats) <= 1 or self.low == self.high:
            return f"{self.median:.{digits}f} {self.unit}"
        return f"{self.median:.{digits}f} {self.unit} [{self.low:.{digits}f}-{self.high:.{digits}f}]"

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.low, "max": self.high, "unit": self.unit, "repeats": self.repeats}


def _digits(value: float) -> int:
    magnitude = abs(value)
    if magnitude >= 100:
        return 0
    if magnitude >= 10:
        return 1
    if magnitude >= 1:
        return 2
    return 3


def summarize(values: Sequence[float], unit: str) -> Figure:
    return Figure(statistics.median(values), min(values), max(values), unit, [float(v) for v in values])


@dataclass
class Row:
    """One line of the table: agentdeck against a baseline, the ratio, and whether the target holds.

    `op` is "<=" or ">=", `limit` the target ratio; with `limit` None the row is information only.
    `ratio` is the median of `ratio_repeats` (agentdeck/baseline per repeat) when given, else
    agentdeck's median over the baseline's; it may also be passed in directly.
    """

    key: str
    what: str
    agentdeck: Figure
    baseline: Figure | None
    baseline_name: str
    op: str = "<="
    limit: float | None = None
    ratio: float | None = None
    ratio_repeats: list[float] = field(default_factory=list)
    note: str = ""
    passed: bool | None = None

    def __post_init__(self) -> None:
        # Each repeat measures both sides back to back, so the median of the per-repeat ratios
        # cancels load that drifts between repeats better than a ratio of the two medians.
        if self.ratio is None and self.ratio_repeats:
            self.ratio = statistics.median(self.ratio_repeats)
        if self.ratio is None and self.baseline is not None and self.baseline.median:
            self.ratio = self.agentdeck.median / self.baseline.median
        if self.passed is None and self.limit is not None and self.ratio is not None:
            self.passed = self.ratio <= self.limit if self.op == "<=" else self.ratio >= self.limit

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"

    @property
    def target(self) -> str:
        return "" if self.limit is None else f"{self.op} {self.limit:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "what": self.what,
            "agentdeck": self.agentdeck.to_dict(),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "ratio_repeats": self.ratio_repeats,
            "target": self.target or None,
            "result": self.verdict,
            "note": self.note,
        }

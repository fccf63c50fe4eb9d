"""Figures for the benchmarks: percentiles and the closing table of measured against target."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Row:
    figure: str
    measured: str
    target: str
    met: bool | None  # None: a figure without a target


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        target: float | None = None,
        higher_is_better: bool = True,
    ) -> None:
        measured = f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
        if target is None:
            self.rows.append(Row(figure, measured, "", None))
            return
        met = value >= target if higher_is_better else value <= target
        self.rows.append(
            Row(figure, measured, f"{'≥' if higher_is_better else '≤'} {target:,g} {unit}", met)
        )

    def count(self, figure: str, value: int, must_be: int | None = None) -> None:
        met = None if must_be is None else value == must_be
        self.rows.append(Row(figure, f"{value:,}", "" if must_be is None else f"= {must_be}", met))

    def print(self) -> None:
        table = [("figure", "measured", "target", "met?")]
        for row in self.rows:
            met = "" if row.met is None else ("yes" if row.met else "NO")
            table.append((row.figure, row.measured, row.target, met))
        widths = [max(len(line[i]) for line in table) for i in range(4)]
        table.insert(1, tuple("-" * width for width in widths))
        print()
        for line in table:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def p50_p99(values: list[float]) -> str:
    return f"p50 {percentile(values, 50):6.2f} ms  p99 {percentile(values, 99):6.2f} ms"


def say(text: str) -> None:
    print(text, flush=True)

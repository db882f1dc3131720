"""Timing, statistics, rows and the table.

Every case times incident_flow and its baseline in the same process run, interleaved: after a
warm-up round, each repeat runs every contender once, in alternating order, after a full
``gc.collect()`` and with the garbage collector disabled for the sample (as timeit does). A
contender measures its own timed region with :func:`time.perf_counter_ns` and returns a value
per operation (nanoseconds, bytes or operations per second). The table reports the median and
the min–max of the repeats and the median of the per-repeat ratios (both sides of a repeat ran
back to back), so a noisy machine shifts both sides alike.
"""

from __future__ import annotations

import enum
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Case",
    "Mode",
    "Result",
    "Row",
    "Settings",
    "Stats",
    "Unit",
    "environment",
    "format_value",
    "paired_ratio",
    "render",
    "run_interleaved",
    "share",
    "speedup",
    "timed",
    "within",
]


class Mode(enum.StrEnum):
    """How long to run: ``full`` for the docs, ``quick`` for a check, ``smoke`` for the tests."""

    FULL = "full"
    QUICK = "quick"
    SMOKE = "smoke"


@dataclass(frozen=True)
class Settings:
    """The sizes of one run."""

    mode: Mode
    repeats: int
    warmups: int = 1

    def pick(self, full: int, quick: int, smoke: int) -> int:
        """The size for this mode."""
        return {Mode.FULL: full, Mode.QUICK: quick, Mode.SMOKE: smoke}[self.mode]

    @classmethod
    def for_mode(cls, mode: Mode) -> Settings:
        """Seven repeats in full mode, three in quick mode, one in smoke mode."""
        repeats = {Mode.FULL: 7, Mode.QUICK: 3, Mode.SMOKE: 1}[mode]
        return cls(mode, repeats, warmups=1)


class Unit(enum.StrEnum):
    """What a row's numbers are."""

    NS = "time"
    """Nanoseconds per operation (shown in ns, µs or ms)."""
    BYTES = "bytes"
    """Bytes per item."""
    RATE = "rate"
    """Operations per second."""


@dataclass(frozen=True)
class Stats:
    """Median, min and max of the repeats."""

    median: float
    low: float
    high: float
    samples: tuple[float, ...] = ()

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        """Summarise ``values`` (at least one)."""
        if not values:
            raise ValueError("no samples")
        return cls(statistics.median(values), min(values), max(values), tuple(values))


@dataclass
class Row:
    """One line of the table: a measurement, its baseline and its target."""

    case: str
    measure: str
    unit: Unit
    stats: Stats | None
    baseline: str = ""
    baseline_stats: Stats | None = None
    ratio: float | None = None
    ratio_text: str = "—"
    target: str = "—"
    passed: bool | None = None
    note: str = ""

    @property
    def result(self) -> str:
        """PASS, MISS or — (no target)."""
        if self.passed is None:
            return "—"
        return "PASS" if self.passed else "MISS"


@dataclass
class Result:
    """What a case returns: its rows and notes (memory sites, fixed costs, methods)."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    """A benchmark case: ``run`` measures it; ``workload`` (if any) is the part to profile."""

    number: int
    name: str
    title: str
    run: Callable[[Settings], Result]
    workload: Callable[[Settings], tuple[Callable[[], object], Callable[[], None]]] | None = None
    """Returns (the code to profile, a cleanup to call afterwards)."""


def timed(body: Callable[[], object], operations: int) -> float:
    """Run ``body`` once and return nanoseconds per operation."""
    start = time.perf_counter_ns()
    body()
    return (time.perf_counter_ns() - start) / operations


def run_interleaved(
    contenders: Mapping[str, Callable[[], float]], settings: Settings
) -> dict[str, Stats]:
    """Warm up, then run every contender once per repeat, in alternating order.

    Each contender returns one sample (it times its own region); see :func:`_sample`.
    """
    names = list(contenders)
    for _ in range(settings.warmups):
        for name in names:
            _sample(contenders[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(settings.repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            samples[name].append(_sample(contenders[name]))
    return {name: Stats.of(values) for name, values in samples.items()}


def _sample(contender: Callable[[], float]) -> float:
    """One sample with the garbage collector off, after a full collection (as timeit does).

    With the collector on, a sample's cost depended on how much cyclic garbage earlier samples
    had left and on how many objects the sample kept alive: a transitions Machine per incident
    cost twice as much per incident in a sample of 1,000 incidents as in one of 50.
    """
    gc.collect()
    gc.disable()
    try:
        return contender()
    finally:
        gc.enable()


def format_value(value: float, unit: Unit) -> str:
    """A number with its unit, three significant digits where it matters."""
    if unit is Unit.NS:
        for scale, suffix in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value:.3g} ns"
    if unit is Unit.BYTES:
        return f"{value:,.0f} B" if value < 10_000 else f"{value / 1024:,.1f} KiB"
    return f"{value:,.0f}/s" if value >= 100 else f"{value:.3g}/s"


def _cells(row: Row) -> list[str]:
    if row.stats is None:
        median = spread = "—"
    else:
        median = format_value(row.stats.median, row.unit)
        spread = (
            f"{format_value(row.stats.low, row.unit)} – {format_value(row.stats.high, row.unit)}"
        )
    baseline = row.baseline or "—"
    if row.baseline_stats is not None:
        baseline += f": {format_value(row.baseline_stats.median, row.unit)}"
    return [row.case, row.measure, median, spread, baseline, row.ratio_text, row.target, row.result]


HEADERS = ["case", "measure", "median", "min – max", "baseline (median)", "ratio", "target", ""]


def environment(settings: Settings) -> str:
    """One paragraph: where and how the table was measured."""
    return (
        f"{settings.mode} mode, {settings.repeats} repeat(s) after {settings.warmups} warm-up; "
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC. Times: time.perf_counter_ns; "
        "garbage collector disabled during each sample, gc.collect() before it; ratio: median of "
        "the per-repeat ratios; memory: tracemalloc."
    )


def render(
    results: Sequence[tuple[Case, Result]], settings: Settings, *, markdown: bool = False
) -> str:
    """The table and the notes, as aligned text or as Markdown."""
    rows = [_cells(row) for _, result in results for row in result.rows]
    lines: list[str] = []
    if markdown:
        lines.append(environment(settings))
        lines.append("")
        lines.append("| " + " | ".join(HEADERS) + " |")
        lines.append("|" + "|".join(" --- " for _ in HEADERS) + "|")
        lines.extend("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows)
    else:
        widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
        lines.append(environment(settings))
        lines.append("")
        lines.append("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        )
    notes = [
        (case, note)
        for case, result in results
        for note in [
            *result.notes,
            *(f"{row.measure}: {row.note}" for row in result.rows if row.note),
        ]
    ]
    if notes:
        lines.append("")
        lines.append("Notes:" if not markdown else "Notes:\n")
        for case, note in notes:
            lines.append(f"- {case.number} {case.title}: {note}")
    return "\n".join(lines) + "\n"


def speedup(
    case: str,
    measure: str,
    ours: Stats,
    baseline: str,
    theirs: Stats,
    *,
    at_least: float,
    note: str = "",
) -> Row:
    """A row whose target is "at least ``at_least`` times faster than the baseline"."""
    ratio = paired_ratio(theirs, ours)
    return Row(
        case,
        measure,
        Unit.NS,
        ours,
        baseline,
        theirs,
        ratio,
        f"{ratio:.3g}× faster",
        f"≥ {at_least:g}× faster",
        ratio >= at_least,
        note,
    )


def within(
    case: str,
    measure: str,
    ours: Stats,
    baseline: str,
    theirs: Stats,
    *,
    at_most: float | None,
    of: str = "the baseline",
    note: str = "",
) -> Row:
    """A row whose target is "at most ``at_most`` times the baseline's time"."""
    ratio = paired_ratio(ours, theirs)
    return Row(
        case,
        measure,
        Unit.NS,
        ours,
        baseline,
        theirs,
        ratio,
        f"{ratio:.3g}× {of}",
        f"≤ {at_most:g}× {of}" if at_most is not None else "—",
        ratio <= at_most if at_most is not None else None,
        note,
    )


def share(
    case: str,
    measure: str,
    ours: Stats,
    baseline: str,
    theirs: Stats,
    *,
    at_least: float | None,
    of: str,
    note: str = "",
) -> Row:
    """A row whose target is "at least ``at_least`` (a fraction) of the baseline's speed"."""
    ratio = paired_ratio(theirs, ours)
    return Row(
        case,
        measure,
        Unit.NS,
        ours,
        baseline,
        theirs,
        ratio,
        f"{ratio:.0%} of {of}",
        f"≥ {at_least:.0%} of {of}" if at_least is not None else "—",
        ratio >= at_least if at_least is not None else None,
        note,
    )


def paired_ratio(numerator: Stats, denominator: Stats) -> float:
    """The median of the per-repeat ratios (the repeats ran side by side); of the medians when
    the two were not sampled alike."""
    pairs = list(zip(numerator.samples, denominator.samples, strict=False))
    if pairs and len(numerator.samples) == len(denominator.samples):
        return statistics.median(a / b for a, b in pairs)
    return numerator.median / denominator.median

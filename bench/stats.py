"""Percentiles, per-window summaries and their spreads, and table cells (pure)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Spread:
    """The median of per-window values and their range [lo–hi]."""

    mid: float
    lo: float
    hi: float
    n: int  # how many windows

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        values = [v for v in values if v == v]  # drop NaN
        if not values:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(values), min(values), max(values), len(values))


def per_window(windows: Sequence[Sequence[float]], q: float) -> list[float]:
    return [pct(w, q) for w in windows]


def ratios(plugin: Sequence[float], plain: Sequence[float]) -> list[float]:
    """Plugin / plain of paired windows (the same round)."""
    return [b / a for a, b in zip(plain, plugin, strict=False) if a > 0]


def ms(spread: Spread) -> str:
    if spread.n == 0:
        return "–"
    if spread.n == 1:
        return f"{spread.mid * 1000:.1f} ms"
    return f"{spread.mid * 1000:.1f} [{spread.lo * 1000:.1f}–{spread.hi * 1000:.1f}] ms"


def signed_ms(spread: Spread) -> str:
    """A difference in ms with its sign: +7.0 [6.1–8.2] ms."""
    if spread.n == 0:
        return "–"
    if spread.n == 1:
        return f"{spread.mid * 1000:+.1f} ms"
    return f"{spread.mid * 1000:+.1f} [{spread.lo * 1000:+.1f}…{spread.hi * 1000:+.1f}] ms"


def ratio(spread: Spread) -> str:
    if spread.n == 0:
        return "–"
    if spread.n == 1:
        return f"{spread.mid:.2f}"
    return f"{spread.mid:.2f} [{spread.lo:.2f}–{spread.hi:.2f}]"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def verdict(value: float, limit: float) -> str:
    if value != value:
        return ""
    return "met" if value <= limit else "**missed**"


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0

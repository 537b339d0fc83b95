"""Every number a report prints, formatted in one place, with its unit.

Rules: a metric keeps the precision that tells entries apart and no more (accuracy as a
percentage with one decimal, other metrics four significant digits); times carry units
(ms, s, min); learning rates are written as people type them (``0.001``, ``3e-4``);
a missing value says why it is missing (``never``, ``diverged``, ``n/a``).
"""
from __future__ import annotations

import math


def number(x: float, digits: int = 4) -> str:
    """Significant digits, scientific only for very small or large magnitudes; NaN as n/a."""
    if x is None or x != x:
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        text = f"{x:.{digits}g}"
        return text
    mant, exp = f"{x:.{digits - 1}e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def metric(x: float | None, name: str, missing: str = "n/a") -> str:
    """A metric value: accuracy as a percentage (``93.6%``), others with 4 significant digits."""
    if x is None or x != x or (isinstance(x, float) and math.isinf(x)):
        return missing
    if name == "accuracy":
        return f"{100 * x:.1f}%"
    return number(x)


def metric_difference(x: float, name: str) -> str:
    """A difference of metric values: accuracy in percentage points."""
    if x != x:
        return "n/a"
    if math.isinf(x):
        return "unbounded"
    if name == "accuracy":
        return f"{100 * x:.1f} points"
    return number(x, 3)


def lr(x: float | None) -> str:
    """A learning rate as typed: ``0.01``, ``3e-4``, ``1e-5``."""
    if x is None or x != x:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1e-3:
        return f"{x:.3g}"
    mant, exp = f"{x:.2e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def steps(x: float) -> str:
    """Steps, or ``never`` for a miss."""
    if x != x:
        return "n/a"
    return "never" if math.isinf(x) else f"{x:.0f}"


def seconds(x: float) -> str:
    """A duration with a unit that keeps it readable: ``350 ms``, ``2.31 s``, ``3 min 05 s``."""
    if x != x:
        return "n/a"
    if math.isinf(x):
        return "never"
    if x < 1e-3:
        return f"{x * 1e6:.0f} us"
    if x < 1:
        return f"{x * 1e3:.0f} ms"
    if x < 60:
        return f"{x:.2f} s"
    minutes, secs = divmod(int(round(x)), 60)
    return f"{minutes} min {secs:02d} s"


def nbytes(n: float) -> str:
    """Bytes in binary units."""
    if n != n:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def pvalue(p: float) -> str:
    if p != p:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def percent(x: float) -> str:
    return f"{100 * x:.0f}%"


def interval(med: float, lo: float, hi: float, fmt) -> str:
    """``"120 [100-140]"``: the median and its interval (one value when they coincide)."""
    m = fmt(med)
    if lo == hi == med or (lo != lo and hi != hi):
        return m
    return f"{m} [{fmt(lo)}–{fmt(hi)}]"

"""A fixed learning-rate sweep and the choice of the best rate, on validation.

The sweep gives every optimizer the same *relative* grid around a centre (the workload's
suggested rate): ``centre x factors``, plus the optimizer's library default so the untuned
user's point is always measured. The choice is made per optimizer from the mean over
seeds of the final **validation** metric (a diverged seed counts as the worst value), or
from the median steps to target (misses infinite), ties broken by validation; the test
split plays no part, so the test numbers a report quotes at the chosen rate are not
selected numbers.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd


def grid(centre: float, library_default: float, factors: Sequence[float]) -> list[float]:
    """``centre * factors`` plus ``library_default`` (once), rounded to 3 significant digits, sorted."""
    lrs = [float(f"{centre * f:.3g}") for f in factors]
    if not any(math.isclose(lr, library_default, rel_tol=1e-2) for lr in lrs):
        lrs.append(float(library_default))
    return sorted(lrs)


def _score(value: float, higher_is_better: bool) -> float:
    """Larger is better; NaN (diverged) is the worst."""
    if value != value:
        return -math.inf
    return value if higher_is_better else -value


def choose(rows: pd.DataFrame, by: str = "final", group: str = "family", metric: str = "val_final") -> dict[str, float]:
    """Each group's best lr: ``by="final"`` on the mean validation metric, ``by="steps"`` on the
    median steps to target (misses infinite) with the validation metric breaking ties.

    ``rows`` has one row per run with columns ``group``, ``lr``, ``metric``,
    ``steps_to_target`` (NaN when never reached) and ``higher_is_better``.
    """
    hib = bool(rows["higher_is_better"].iloc[0])
    out = {}
    for name, grp in rows.groupby(group):
        scored = []
        for lr, g in grp.groupby("lr"):
            final = sum(_score(v, hib) for v in g[metric]) / len(g)
            steps = g["steps_to_target"].fillna(math.inf).median()
            scored.append(((-steps, final) if by == "steps" else (final,), lr))
        out[name] = max(scored)[1]
    return out

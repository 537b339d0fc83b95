"""Performance profiles across workloads (Dolan and Moré 2002; AlgoPerf's scoring).

For entry :math:`e` on workload :math:`w`, let :math:`t_{e,w}` be its median steps to
target (infinite when it does not hold the target on most seeds) and
:math:`r_{e,w} = t_{e,w} / \\min_{e'} t_{e',w}` its ratio to the best entry there. The
profile of :math:`e` is

.. math::
    \\rho_e(\\tau) = \\frac{1}{|W|} \\,\\bigl|\\{ w : r_{e,w} \\le \\tau \\}\\bigr|,

the fraction of workloads on which it is within a factor :math:`\\tau` of the best:
:math:`\\rho_e(1)` is how often it is (one of) the fastest, :math:`\\rho_e(\\infty)` how often
it reaches the target at all. A workload where no entry reaches the target tells nothing
and is left out (and said so).

Entries are matched across workloads by label, so a profile needs the same entries on
several workloads. Seconds give a second view only when every run was measured alone
(no parallel runs sharing the machine).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

TAUS = tuple(float(t) for t in np.round(np.logspace(0, math.log10(16), 41), 4))


def ratios(summary: pd.DataFrame, clock: str = "steps_to_target") -> tuple[pd.DataFrame, list[str]]:
    """``(entries x workloads ratios, workloads left out because nobody reached the target)``."""
    if summary.empty:
        return pd.DataFrame(), []
    table = summary.pivot_table(index="optimizer", columns="workload", values=clock, aggfunc="first", sort=False)
    dropped = [w for w in table.columns if not np.isfinite(table[w]).any()]
    table = table.drop(columns=dropped)
    best = table.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = table / best
    # a best time of 0 (target met before training) makes every ratio 0/0 or x/0: count ties at the best
    out = out.where(~((table == 0) & (best == 0)), 1.0).fillna(math.inf)
    return out, dropped


def profiles(summary: pd.DataFrame, clock: str = "steps_to_target",
             taus: tuple[float, ...] = TAUS) -> tuple[pd.DataFrame, list[str]]:
    """``(rho, dropped)``: rows are entries, columns the ``taus``, values :math:`\\rho_e(\\tau)`."""
    r, dropped = ratios(summary, clock)
    if r.empty or r.shape[1] == 0:
        return pd.DataFrame(), dropped
    rho = pd.DataFrame({tau: (r <= tau).mean(axis=1) for tau in taus})
    return rho, dropped


def shared_entries(summary: pd.DataFrame) -> list[str]:
    """Entries that ran on every workload of the summary (the ones a profile compares fairly)."""
    if summary.empty:
        return []
    n = summary["workload"].nunique()
    counts = summary.groupby("optimizer", sort=False)["workload"].nunique()
    return [e for e, c in counts.items() if c == n]

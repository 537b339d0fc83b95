"""The claims a comparison makes, per workload: the winner, the ties, the failures.

A report states a handful of claims that matter, never every pair. For each workload:

* **The winner** is the entry ranked first (:mod:`.table`: tiers of the final test metric,
  then time to target).
* **Against each other entry** the winner is tested once, on the criterion that put it
  ahead: the final test metric when they are in different tiers, steps to target when
  they tie on the metric. The test is the exact rank test of :mod:`.stats`, its p-values
  corrected with Holm's method over all of the winner's comparisons. "The winner beats B"
  is claimed only when the corrected p-value is below :data:`~.stats.ALPHA` *and* the
  difference of the medians exceeds the practical threshold
  (:func:`~.table.practical_threshold` for the metric, :func:`~.table.steps_threshold`
  for steps); otherwise the two show **no clear difference**.
* **Too few seeds**: below :func:`~.stats.seeds_needed` seeds per entry (at least 5: with 3
  seeds the smallest possible p-value is 0.1) no verdict words are used at all; the
  report shows the medians with their intervals and says so.
* **Failures**: every entry with diverged or failed runs, and how many; every entry that
  never held the target on some seeds, with a note when its lr was an untuned default
  (then a miss says nothing about the optimizer at a tuned learning rate).

Everything here is data (:class:`WorkloadVerdict`); :mod:`inertia.lab.reporting` words it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .stats import ALPHA, holm, median, rank_test, seeds_needed
from .table import oriented, practical_threshold, steps_threshold


@dataclass
class PairTest:
    """The winner against one other entry."""

    other: str
    criterion: str  # "final metric" or "time to target"
    difference: float  # how far the winner is ahead: medians, in metric units or steps (inf: the other never got there)
    p: float
    p_adjusted: float = math.nan
    practical: bool = False  # |difference| above the practical threshold
    clear: bool = False  # the winner beats it: adjusted p < ALPHA and practical


@dataclass
class WorkloadVerdict:
    """What the runs of one workload support (see the module docstring)."""

    workload: str
    metric: str
    higher_is_better: bool
    threshold: float  # practical threshold of the metric
    steps_threshold: float
    seeds: int  # fewest seeds of any entry
    needed: int  # seeds per entry needed for verdict words
    winner: str | None
    runner_up: str | None
    tests: list[PairTest] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # entries with diverged/failed runs
    misses: list[dict[str, Any]] = field(default_factory=list)  # entries not reaching the target on some seeds
    untuned: list[str] = field(default_factory=list)  # entries at a library-default lr
    met_at_start: list[str] = field(default_factory=list)  # entries meeting the target before training

    @property
    def comparisons(self) -> int:
        return len(self.tests)

    @property
    def too_few_seeds(self) -> bool:
        return self.seeds < self.needed

    @property
    def beaten(self) -> list[PairTest]:
        return [t for t in self.tests if t.clear and not self.too_few_seeds]

    @property
    def ties(self) -> list[PairTest]:
        return [t for t in self.tests if not t.clear and not self.too_few_seeds]

    @property
    def clear_winner(self) -> bool:
        """The winner beats every other entry."""
        return bool(self.tests) and not self.too_few_seeds and all(t.clear for t in self.tests)


def _values(runs: pd.DataFrame, label: str, criterion: str, hib: bool) -> list[float]:
    g = runs[runs["optimizer"] == label]
    if criterion == "final metric":
        return oriented(g["final_metric"], hib)
    return [float(x) for x in g["steps_to_target"]]


def workload_verdict(runs: pd.DataFrame, summary: pd.DataFrame, info: dict[str, Any]) -> WorkloadVerdict:
    """The claims for one workload from its per-run and per-entry tables (already ranked)."""
    hib = bool(info["higher_is_better"])
    delta, dsteps = practical_threshold(info), steps_threshold(info)
    order = list(summary.sort_values("rank")["optimizer"])
    first = order[0] if order else None
    seeds = int(summary["seeds"].min()) if len(summary) else 0
    v = WorkloadVerdict(workload=info["name"], metric=info["metric"], higher_is_better=hib, threshold=delta,
                        steps_threshold=dsteps, seeds=seeds, needed=seeds_needed(max(1, len(order) - 1)),
                        winner=first, runner_up=order[1] if len(order) > 1 else None)
    by_label = {r["optimizer"]: r for _, r in summary.iterrows()}
    for other in order[1:]:
        same_tier = by_label[first]["tier"] == by_label[other]["tier"]
        criterion = "time to target" if same_tier else "final metric"
        a, b = _values(runs, first, criterion, hib), _values(runs, other, criterion, hib)
        ma, mb = median(a), median(b)  # lower is better for both criteria, misses and divergence infinite
        diff = 0.0 if ma == mb else mb - ma
        practical = diff > (dsteps if same_tier else delta)
        v.tests.append(PairTest(other, criterion, difference=diff, p=rank_test(a, b), practical=practical))
    for t, adj in zip(v.tests, holm([t.p for t in v.tests])):
        t.p_adjusted = adj
        t.clear = adj < ALPHA and t.practical
    for label in order:
        r = by_label[label]
        if r["diverged"] or r["failed"]:
            v.failures.append({"entry": label, "diverged": int(r["diverged"]), "failed": int(r["failed"]),
                               "seeds": int(r["seeds"]), "errors": list(r["errors"])[:1],
                               "lr_source": r["lr_source"]})
        if r["n_not_reached"]:
            v.misses.append({"entry": label, "not_reached": int(r["n_not_reached"]), "seeds": int(r["seeds"]),
                             "lr_source": r["lr_source"]})
        if r["lr_source"] == "default":
            v.untuned.append(label)
        if r["met_at_start"]:
            v.met_at_start.append(label)
    return v


def verdicts(runs: pd.DataFrame, summary: pd.DataFrame, infos: dict[str, dict[str, Any]]) -> dict[str, WorkloadVerdict]:
    """:func:`workload_verdict` for every workload, in the summary's order."""
    out = {}
    for workload in dict.fromkeys(summary["workload"]) if len(summary) else []:
        out[workload] = workload_verdict(runs[runs["workload"] == workload],
                                         summary[summary["workload"] == workload], {**infos[workload], "name": workload})
    return out

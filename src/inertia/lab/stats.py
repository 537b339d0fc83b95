"""From runs to numbers a person can trust: time-to-target, medians with spread, and "beats".

* **Time to target** of a run is the first *evaluation* at which the metric meets the
  workload's target, in steps and in training seconds. A run that never gets there (or
  diverged) has time-to-target **infinity**, and stays in the statistics: a median over
  seeds where most runs fail is infinite, which is the truth.
* **Across seeds** every quantity is summarised by its median and its min–max range
  (with three seeds an inter-quartile range would be no more informative).
* **"A beats B"** is claimed only under :data:`RULE`: every seed of A strictly better than
  every seed of B. Under the null hypothesis that A and B are exchangeable, that ordering
  has probability ``1 / C(2n, n)`` for n seeds each (1/20 = 0.05 for three), so it is an
  exact one-sided rank test at that level; with fewer seeds no claim is possible at 5%.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .runner import RunRecord

INF = float("inf")

RULE = ("A beats B when every seed of A is strictly better than every seed of B (time to target: "
        "fewer steps, never reached = infinite; final metric: in the workload's direction). With n seeds "
        "each, that ordering has chance 1/C(2n,n) if A and B were equally good (1/20 = 0.05 for 3 seeds).")


def time_to_target(rec: RunRecord, target: float, higher_is_better: bool) -> tuple[float, float]:
    """``(steps, training seconds)`` at the first evaluation meeting the target, else ``(inf, inf)``."""
    for step, seconds, value in rec.evals:
        if value == value and (value >= target if higher_is_better else value <= target):
            return float(step), float(seconds)
    return INF, INF


def median(values: Iterable[float]) -> float:
    """The median, where infinities count as the largest values (``np.median`` may give NaN)."""
    v = sorted(float(x) for x in values if x == x)
    if not v:
        return float("nan")
    mid = len(v) // 2
    if len(v) % 2:
        return v[mid]
    a, b = v[mid - 1], v[mid]
    return INF if math.isinf(b) and b > 0 else (a + b) / 2


def detour(trajectory: Sequence[Sequence[float]] | None) -> float:
    """Path length divided by the straight-line distance from start to end point (>= 1).

    Plain gradient descent across a narrow valley zig-zags from wall to wall and scores
    well above 1; momentum, which averages the bounces away, scores lower; a method that
    rescales the steep coordinate (RMSprop) heads almost straight down the valley (near 1).
    """
    if not trajectory or len(trajectory) < 2:
        return float("nan")
    t = np.asarray(trajectory, dtype=float)
    if not np.isfinite(t).all():
        return float("nan")
    length = np.linalg.norm(np.diff(t, axis=0), axis=1).sum()
    straight = np.linalg.norm(t[-1] - t[0])
    return float(length / straight) if straight > 0 else float("nan")


def roughness(losses: Sequence[float]) -> float:
    """Median absolute step-to-step change of log loss: how noisy the training curve is."""
    x = np.asarray(losses, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if len(x) < 3:
        return float("nan")
    return float(np.median(np.abs(np.diff(np.log(x)))))


def run_frame(records: Sequence[RunRecord], infos: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per run. ``infos`` maps workload name to its info (target, direction, extras)."""
    rows = []
    for r in records:
        info = infos[r.workload]
        hib = bool(info["higher_is_better"])
        steps_tt, secs_tt = time_to_target(r, info["target"], hib)
        values = [v for _, _, v in r.evals if v == v]
        best = (max(values) if hib else min(values)) if values else float("nan")
        n_train = (info.get("extras") or {}).get("n_train")
        rows.append({
            "workload": r.workload, "optimizer": r.label, "name": r.optimizer, "seed": r.seed,
            "status": r.status, "steps_to_target": steps_tt, "seconds_to_target": secs_tt,
            "final_metric": r.evals[-1][2] if r.evals and r.status == "ok" else float("nan"),
            "best_metric": best,
            "final_loss": r.losses[-1] if r.losses else float("nan"),
            "steps_done": r.steps_done, "train_time": r.train_time, "time_per_step": r.time_per_step,
            "steps_per_s": 1.0 / r.time_per_step if r.time_per_step and r.time_per_step > 0 else float("nan"),
            "batch_size": r.batch_size,
            "epochs": (r.steps_done * min(r.batch_size, n_train) / n_train) if (n_train and r.batch_size) else float("nan"),
            "state_bytes": r.state_bytes, "peak_memory": r.peak_memory, "device": r.device,
            "detour": detour(r.trajectory), "roughness": roughness(r.losses), "key": r.key,
        })
    return pd.DataFrame(rows)


def _spread(values: pd.Series) -> tuple[float, float, float]:
    v = [float(x) for x in values]
    finite_or_inf = [x for x in v if x == x]
    if not finite_or_inf:
        return float("nan"), float("nan"), float("nan")
    return median(v), min(finite_or_inf), max(finite_or_inf)


def summarize(runs: pd.DataFrame, infos: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (workload, optimizer entry): medians and min–max over seeds.

    Rows are ordered within each workload from best to worst: median steps-to-target, then
    median final metric. Column ``rank`` is that order (1 = best). A workload whose entries
    differ in cost per step (``minibatch``: batch sizes) sets ``extras["rank_by"] = "seconds"``
    and is ranked by median seconds-to-target instead: there, steps are not comparable.
    """
    rows = []
    for (workload, label), g in runs.groupby(["workload", "optimizer"], sort=False):
        hib = bool(infos[workload]["higher_is_better"])
        row: dict[str, Any] = {"workload": workload, "optimizer": label, "seeds": len(g),
                               "reached": f"{int(np.isfinite(g['steps_to_target']).sum())}/{len(g)}",
                               "diverged": int((g["status"] == "diverged").sum()),
                               "metric": infos[workload]["metric"], "target": infos[workload]["target"]}
        for col in ("steps_to_target", "seconds_to_target", "final_metric", "best_metric", "final_loss",
                    "steps_per_s", "time_per_step", "epochs", "detour", "roughness"):
            row[col], row[col + "_min"], row[col + "_max"] = _spread(g[col])
        row["state_bytes"] = int(g["state_bytes"].max())
        row["peak_memory"] = int(g["peak_memory"].max())
        row["batch_size"] = g["batch_size"].iloc[0]
        row["_sort_metric"] = -row["final_metric"] if hib else row["final_metric"]
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    df["_sort_metric"] = df["_sort_metric"].fillna(INF)
    order = list(dict.fromkeys(runs["workload"]))
    df["_w"] = df["workload"].map({w: i for i, w in enumerate(order)})
    by_seconds = df["workload"].map(lambda w: (infos[w].get("extras") or {}).get("rank_by") == "seconds")
    df["_time"] = df["seconds_to_target"].where(by_seconds, df["steps_to_target"])
    df = df.sort_values(["_w", "_time", "_sort_metric"], kind="stable")
    df["rank"] = df.groupby("workload").cumcount() + 1
    return df.drop(columns=["_w", "_sort_metric", "_time"]).reset_index(drop=True)


def beats(a: Sequence[float], b: Sequence[float], lower_is_better: bool) -> bool:
    """:data:`RULE`: every value of ``a`` strictly better than every value of ``b``.

    Infinite times count as the worst possible value; NaN (a diverged final metric) counts
    as worse than anything, and two infinities never beat each other.
    """
    if len(a) < 1 or len(b) < 1:
        return False
    worst = INF if lower_is_better else -INF
    fa = [worst if x != x else x for x in a]
    fb = [worst if x != x else x for x in b]
    if lower_is_better:
        return max(fa) < min(fb)
    return min(fa) > max(fb)


def claims(runs: pd.DataFrame, infos: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pairwise "A beats B" that the seeds support, per workload, on two criteria.

    Returns dicts with ``workload, winner, loser, criterion`` (``time to target`` or
    ``final metric``) and ``evidence`` (the two sets of seed values).
    """
    out = []
    for workload, g in runs.groupby("workload", sort=False):
        hib = bool(infos[workload]["higher_is_better"])
        groups = {label: gg for label, gg in g.groupby("optimizer", sort=False)}
        for la, lb in combinations(groups, 2):
            for criterion, col, lower in (("time to target", "steps_to_target", True),
                                          ("final metric", "final_metric", not hib)):
                va, vb = list(groups[la][col]), list(groups[lb][col])
                for win, lose, vw, vl in ((la, lb, va, vb), (lb, la, vb, va)):
                    if beats(vw, vl, lower):
                        out.append({"workload": workload, "winner": win, "loser": lose,
                                    "criterion": criterion, "evidence": (vw, vl)})
    return out


def verdicts(summary: pd.DataFrame, claim_list: list[dict[str, Any]]) -> dict[str, str]:
    """One sentence per workload: who ranks first and what the seeds support about it."""
    out = {}
    for workload, g in summary.groupby("workload", sort=False):
        first = g.iloc[0]
        others = [o for o in g["optimizer"] if o != first["optimizer"]]
        tt = {c["loser"] for c in claim_list if c["workload"] == workload and c["winner"] == first["optimizer"]
              and c["criterion"] == "time to target"}
        fm = {c["loser"] for c in claim_list if c["workload"] == workload and c["winner"] == first["optimizer"]
              and c["criterion"] == "final metric"}
        lead = (f"{first['optimizer']} ranks first (median {_fmt_steps(first['steps_to_target'])}, "
                f"{_fmt_seconds(first['seconds_to_target'])} to target, "
                f"final {first['metric']} {first['final_metric']:.4g})")
        if not others:
            out[workload] = lead + "."
            continue
        beaten = set(tt) | set(fm)
        if beaten >= set(others):
            out[workload] = lead + f"; it beats every other entry on every seed ({_which(tt, fm, others)})."
        elif beaten:
            rest = [o for o in others if o not in beaten]
            out[workload] = (lead + f"; it beats {', '.join(sorted(beaten))} on every seed, but the seeds do not "
                             f"separate it from {', '.join(rest)}.")
        else:
            out[workload] = lead + "; the seeds do not support calling it better than any other entry."
    return out


def _which(tt: set, fm: set, others: list) -> str:
    if tt >= set(others) and fm >= set(others):
        return "time to target and final metric"
    if tt >= set(others):
        return "time to target"
    if fm >= set(others):
        return "final metric"
    return "time to target or final metric"


def _fmt_steps(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.0f} steps"


def _fmt_seconds(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.2f} s"

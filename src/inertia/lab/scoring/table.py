"""From stored runs to tables: one row per run, one row per entry, and the ranking.

:func:`run_frame` reads :class:`~inertia.lab.records.RunRecord` objects (as the store
returns them) and the workloads' infos; nothing here has seen a model or a tensor.

**Ranking** (:func:`summarize`, column ``rank``). The primary criterion is the final
*test* metric (median over seeds; a diverged or failed run counts as the worst value),
compared in steps of the workload's practical threshold (:func:`practical_threshold`):
the best entry and every entry within the threshold of it form the first tier, the best
of the rest and those within the threshold of it the second, and so on. Within a tier,
entries are ordered by median steps to target (misses infinite), then by the final test
metric. A workload whose entries differ in cost per step (``extras["rank_by"] =
"seconds"``: batch sizes) orders a tier by median seconds to target instead, which the
lab measures one run at a time for such workloads. The order is not a claim: the claims
are in :mod:`.verdict`, tested.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import outcomes
from ..records import RunRecord
from .stats import INF, median, median_interval

#: timings whose slowest seed took this many times the fastest per step are flagged as noise
TIMING_SPREAD = 1.5


def practical_threshold(info: dict[str, Any]) -> float:
    """The smallest difference in the metric that matters (stated in every report).

    The workload's ``min_difference`` when it sets one; else for accuracy one percentage
    point, and never less than two examples of the test split (a difference of one example
    is never a finding); for other metrics 1% of the target's magnitude.
    """
    if info.get("min_difference") is not None:
        return float(info["min_difference"])
    if info.get("metric") == "accuracy":
        n_test = (info.get("extras") or {}).get("n_test")
        return max(0.01, 2.0 / n_test if n_test else 0.0)
    return 0.01 * abs(float(info["target"]))


def steps_threshold(info: dict[str, Any]) -> float:
    """The smallest difference in steps to target that matters: one evaluation period (the
    resolution of the measurement) or 5% of the budget, whichever is larger."""
    return max(float(info["eval_every"]), 0.05 * float(info["steps"]))


def worst(hib: bool) -> float:
    return -INF if hib else INF


def oriented(values: Sequence[float], hib: bool) -> list[float]:
    """Metric values as "lower is better" numbers, NaN (diverged, failed) as the worst (+inf)."""
    return [INF if v != v else (-v if hib else v) for v in (float(x) for x in values)]


def detour(trajectory: Sequence[Sequence[float]] | None) -> float:
    """Path length divided by the straight-line distance from start to end point (>= 1).

    Plain gradient descent across a narrow valley zig-zags from wall to wall and scores
    well above 1; momentum, which averages the bounces away, scores lower; a method that
    rescales the steep coordinate (RMSprop) heads almost straight down the valley (near 1).
    """
    if not trajectory or len(trajectory) < 2:
        return math.nan
    t = np.asarray(trajectory, dtype=float)
    if not np.isfinite(t).all():
        return math.nan
    with np.errstate(all="ignore"):
        length = np.linalg.norm(np.diff(t, axis=0), axis=1).sum()
        straight = np.linalg.norm(t[-1] - t[0])
    return float(length / straight) if straight > 0 and np.isfinite(length) else math.nan


def roughness(losses: Sequence[float]) -> float:
    """Median absolute step-to-step change of log loss: how noisy the training curve is."""
    x = np.asarray(losses, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if len(x) < 3:
        return math.nan
    return float(np.median(np.abs(np.diff(np.log(x)))))


def run_frame(records: Sequence[RunRecord], infos: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per run. ``infos`` maps workload name to its info (target, direction, extras)."""
    rows = []
    for r in records:
        info = infos[r.workload]
        hib, target = bool(info["higher_is_better"]), float(info["target"])
        completed = r.status == "completed"
        steps_tt, secs_tt = outcomes.time_to_target(r.evals, target, hib, completed)
        values = [v for _, _, v in r.evals if v == v and math.isfinite(v)]
        n_train = (info.get("extras") or {}).get("n_train")
        rows.append({
            "workload": r.workload, "optimizer": r.label, "name": r.optimizer, "seed": r.seed,
            "lr": r.lr if r.lr is not None else math.nan, "lr_source": r.lr_source, "schedule": r.schedule,
            "batch_size": r.batch_size, "hparams": r.hparams,
            "outcome": outcomes.outcome(r.status, r.evals, target, hib), "status": r.status, "error": r.error,
            "steps_to_target": steps_tt, "seconds_to_target": secs_tt,
            "met_at_start": bool(r.evals) and outcomes.meets(r.evals[0][2], target, hib) and steps_tt == 0,
            "final_metric": float(r.test_metric) if completed and r.test_metric is not None else math.nan,
            "val_final": r.evals[-1][2] if completed and r.evals else math.nan,
            "best_metric": (max(values) if hib else min(values)) if values else math.nan,
            "final_loss": r.losses[-1] if r.losses else math.nan,
            "steps_done": r.steps_done, "train_time": r.train_time, "wall_time": r.wall_time,
            "time_per_step": r.time_per_step if r.time_per_step is not None else math.nan,
            "steps_per_s": 1.0 / r.time_per_step if r.time_per_step and r.time_per_step > 0 else math.nan,
            "epochs": (r.steps_done * min(r.batch_size, n_train) / n_train) if (n_train and r.batch_size) else math.nan,
            "state_bytes": r.state_bytes, "peak_memory": r.peak_memory, "device": r.device, "threads": r.threads,
            "concurrency": r.concurrency, "skipped_steps": r.skipped_steps,
            "detour": detour(r.trajectory), "roughness": roughness(r.losses), "key": r.key,
        })
    return pd.DataFrame(rows)


def _stat(values: Sequence[float]) -> dict[str, float]:
    v = [float(x) for x in values]
    finite_or_inf = [x for x in v if x == x]
    lo, hi, conf = median_interval(finite_or_inf)
    return {"": median(finite_or_inf), "_lo": lo, "_hi": hi, "_conf": conf,
            "_min": min(finite_or_inf) if finite_or_inf else math.nan,
            "_max": max(finite_or_inf) if finite_or_inf else math.nan}


def _metric_stat(values: Sequence[float], hib: bool) -> dict[str, float]:
    """Like :func:`_stat` with diverged (NaN) counted as the worst value, then turned back."""
    s = _stat(oriented(values, hib))
    back = {k: (-x if hib else x) for k, x in s.items() if k != "_conf"}
    if hib:  # orientation flipped the order: lo/hi and min/max swap
        back["_lo"], back["_hi"], back["_min"], back["_max"] = back["_hi"], back["_lo"], back["_max"], back["_min"]
    back = {k: (math.nan if math.isinf(x) else x) for k, x in back.items()}
    return {**back, "_conf": s["_conf"]}


def summarize(runs: pd.DataFrame, infos: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (workload, optimizer entry): counts of each outcome, medians with their
    95% interval (``_lo``/``_hi``, exact coverage in ``_conf``) and seed range
    (``_min``/``_max``), timings, memory, and the ``rank`` described in the module docstring.

    A final metric of NaN in a median or bound means "a diverged or failed run" sits there.
    """
    if runs.empty:
        return pd.DataFrame()
    rows = []
    for (workload, label), g in runs.groupby(["workload", "optimizer"], sort=False):
        info = infos[workload]
        hib = bool(info["higher_is_better"])
        counts = g["outcome"].value_counts()
        row: dict[str, Any] = {
            "workload": workload, "optimizer": label, "name": g["name"].iloc[0], "seeds": len(g),
            "lr": g["lr"].iloc[0], "lr_source": g["lr_source"].iloc[0], "schedule": g["schedule"].iloc[0],
            "batch_size": g["batch_size"].iloc[0],
            "reached": f"{int(counts.get(outcomes.REACHED, 0))}/{len(g)}",
            **{f"n_{o.replace(' ', '_')}": int(counts.get(o, 0)) for o in outcomes.OUTCOMES},
            "diverged": int(counts.get(outcomes.DIVERGED, 0)), "failed": int(counts.get(outcomes.FAILED, 0)),
            "met_at_start": int(g["met_at_start"].sum()),
            "metric": info["metric"], "target": info["target"], "threshold": practical_threshold(info),
            "errors": [e for e in g["error"] if e],
        }
        for col in ("steps_to_target", "seconds_to_target", "final_loss", "steps_per_s", "time_per_step",
                    "wall_time", "epochs", "detour", "roughness"):
            for suffix, value in _stat(g[col]).items():
                row[col + suffix] = value
        for col in ("final_metric", "val_final", "best_metric"):
            for suffix, value in _metric_stat(g[col], hib).items():
                row[col + suffix] = value
        tps = g["time_per_step"][np.isfinite(g["time_per_step"]) & (g["time_per_step"] > 0)]
        row["timing_spread"] = float(tps.max() / tps.min()) if len(tps) > 1 else 1.0
        row["timing_noisy"] = row["timing_spread"] > TIMING_SPREAD
        row["concurrency"] = int(g["concurrency"].max())
        row["state_bytes"] = int(g["state_bytes"].max())
        row["peak_memory"] = int(g["peak_memory"].max())
        row["skipped_steps"] = int(g["skipped_steps"].sum())
        row["_final"] = median(oriented(g["final_metric"], hib))
        rows.append(row)
    df = pd.DataFrame(rows)
    order = {w: i for i, w in enumerate(dict.fromkeys(runs["workload"]))}
    ranked = []
    for workload, g in sorted(df.groupby("workload", sort=False), key=lambda kv: order[kv[0]]):
        ranked.append(_rank(g, infos[workload]))
    return pd.concat(ranked).drop(columns=["_final"]).reset_index(drop=True)


def _rank(g: pd.DataFrame, info: dict[str, Any]) -> pd.DataFrame:
    """Tiers of the final test metric, each ordered by time to target (module docstring)."""
    delta = practical_threshold(info)
    by_seconds = (info.get("extras") or {}).get("rank_by") == "seconds"
    clock = "seconds_to_target" if by_seconds else "steps_to_target"
    rest = g.sort_values("_final", kind="stable")
    out, tier = [], 0
    while len(rest):
        head = rest["_final"].iloc[0]
        inside = (rest["_final"] <= head + delta) if math.isfinite(head) else rest["_final"].isin([head])
        band = rest[inside].copy()
        band["tier"] = tier + 1
        out.append(band.sort_values([clock, "_final"], kind="stable"))
        rest = rest[~inside]
        tier += 1
    ranked = pd.concat(out)
    ranked["rank"] = range(1, len(ranked) + 1)
    return ranked

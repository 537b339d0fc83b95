"""The suite's results tables, from stored records only: one row per run, and the curves.

Pure (no torch): the verdicts and the report read these tables, and the tests build them
by hand. Outcomes follow :mod:`inertia.lab.outcomes` ("reached" holds to the end, on the
validation split); ``final`` is the test metric measured once at the end of the run.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

from .. import outcomes

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"

#: the three optimizers the lesson compares: family -> (inertia name, fixed hyperparameters)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "Adam": ("adam", {}),
    "RMSprop": ("rmsprop", {}),
    "SGD+Momentum": ("sgd", {"momentum": 0.9}),
}


def family_of(optimizer: str, hparams: dict[str, Any]) -> str | None:
    """Which of the lesson's three optimizers a run used (None: not one of them)."""
    if optimizer == "sgd":
        return "SGD+Momentum" if hparams.get("momentum", 0) else None
    return {"adam": "Adam", "rmsprop": "RMSprop"}.get(optimizer)


def scenario_of(workload: str, hparams: dict[str, Any]) -> str:
    """The scenario key of a run, from its workload and its entry's sparse mode."""
    keys = {"mnist-cnn": "image", "reviews": "text", "movielens": "recsys"}
    key = keys.get(workload, workload)
    return f"{key}-{hparams.get('sparse', 'dense')}" if key == "recsys" else key


def _parsed(records: Iterable[Any]):
    """``(record dict, family, entry hparams, scenario)`` for each run of one of the three families."""
    for rec in records:
        r = rec if isinstance(rec, dict) else rec.to_dict()
        hp = dict((r.get("spec") or {}).get("hparams") or r.get("hparams") or {})
        family = family_of(r["optimizer"], hp)
        if family is not None and "lr" in hp:
            yield r, family, hp, scenario_of(r["workload"], hp)


def trials_table(studies: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The tuning trials of stored studies (:meth:`inertia.lab.store.Store.tunings`), one row each:
    scenario, family, slot, lr, outcome, value (validation, at the step it trained to), step, curve."""
    rows = []
    for study in studies:
        entry = study["plan"].get("entry") or {}
        family = family_of(entry.get("name", ""), entry.get("hparams") or {})
        if family is None:
            continue
        scenario = scenario_of(study["workload"], entry.get("hparams") or {})
        rows += [{"scenario": scenario, "family": family, "slot": t["slot"], "lr": t["params"].get("lr"),
                  "outcome": t["outcome"], "value": t["value"], "step": t["step"], "curve": t["curve"]}
                 for t in study["trials"]]
    return pd.DataFrame(rows, columns=["scenario", "family", "slot", "lr", "outcome", "value", "step", "curve"])


def runs_table(records: Iterable[Any], baselines: dict[str, float] | None = None,
               library_lrs: dict[str, float] | None = None,
               thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per run from run records (``RunRecord`` objects or their dicts).

    Columns: scenario, workload, family, lr, tuned (the lr was chosen by the lab's tuning),
    library_default (an untuned run at the family's library default, from ``library_lrs``), seed, status, final (test metric at the end; NaN if the
    run diverged or failed), val_final and best (validation metric at the end, best
    validation metric), steps_to_target and seconds_to_target (NaN if the target never held),
    time_per_step, metric, higher_is_better, target, baseline (the trivial predictor's test
    score, from ``baselines[workload]``), threshold (the workload's practical threshold,
    from ``thresholds[workload]``).
    """
    rows = []
    for r, family, hp, scenario in _parsed(records):
        cfg = r["workload_config"]
        hib, target = bool(cfg["higher_is_better"]), float(cfg["target"])
        evals = [(int(s), float(t), float(m)) for s, t, m in r.get("evals") or []]
        values = [m for _, _, m in evals if math.isfinite(m)]
        status = r.get("status", "completed")
        ok = status == "completed"
        steps, secs = outcomes.time_to_target(evals, target, hib, ok)
        lib = (library_lrs or {}).get(family)
        test = r.get("test_metric")
        tuned = r.get("lr_source") == "tuned"
        rows.append({
            "scenario": scenario, "workload": r["workload"], "family": family, "lr": float(hp["lr"]), "tuned": tuned,
            "library_default": not tuned and lib is not None and math.isclose(float(hp["lr"]), lib, rel_tol=1e-2),
            "seed": int(r["seed"]), "status": status,
            "final": float(test) if ok and test is not None else math.nan,
            "val_final": evals[-1][2] if ok and evals else math.nan,
            "best": (max(values) if hib else min(values)) if values else math.nan,
            "steps_to_target": steps if math.isfinite(steps) else math.nan,
            "seconds_to_target": secs if math.isfinite(secs) else math.nan,
            "time_per_step": float(r.get("time_per_step") or math.nan),
            "metric": cfg["metric"], "higher_is_better": hib, "target": target,
            "baseline": float((baselines or {}).get(r["workload"], math.nan)),
            "threshold": float((thresholds or {}).get(r["workload"], math.nan)),
        })
    return pd.DataFrame(rows)


def curves_table(records: Iterable[Any]) -> pd.DataFrame:
    """The validation evaluations of every run: scenario, family, lr, seed, step, value."""
    rows = [{"scenario": scenario, "family": family, "lr": float(hp["lr"]), "seed": int(r["seed"]),
             "step": int(step), "value": float(value)}
            for r, family, hp, scenario in _parsed(records) for step, _, value in r.get("evals") or []]
    return pd.DataFrame(rows, columns=["scenario", "family", "lr", "seed", "step", "value"])


def baseline_of(info: dict[str, Any]) -> float:
    """The trivial predictor's score a workload's info records (NaN when it records none)."""
    extras = info.get("extras") or {}
    for key in ("baseline_rmse", "test_majority_accuracy"):
        if key in extras:
            return float(extras[key])
    return math.nan

"""The suite's protocol: the scenarios, the fair learning-rate sweep and the results tables."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import pandas as pd

from ..workload import OptimizerSpec

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"

#: the three optimizers the seed compares: family -> (inertia name, fixed hyperparameters)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "Adam": ("adam", {}),
    "RMSprop": ("rmsprop", {}),
    "SGD+Momentum": ("sgd", {"momentum": 0.9}),
}


def library_default_lr(family: str) -> float:
    """The lr an untuned user gets: the default of the inertia class's constructor."""
    from ..specs import OPTIMIZERS

    return float(inspect.signature(OPTIMIZERS[FAMILIES[family][0]].__init__).parameters["lr"].default)


@dataclass(frozen=True)
class Scenario:
    """One scenario of the suite: a workload with options and how the optimizers run on it."""

    key: str  # "image", "text", "recsys-lazy", "recsys-dense"
    title: str
    workload: str  # registry name
    options: dict[str, Any]
    factors: tuple[float, ...]  # the lr sweep: workload default lr times these
    hparams: dict[str, Any] = field(default_factory=dict)  # added to every entry (sparse mode)


FULL_FACTORS = (0.1, 10 ** -0.5, 1.0, 10 ** 0.5, 10.0)
QUICK_FACTORS = (0.1, 1.0, 10.0)


def scenarios(quick: bool = False) -> list[Scenario]:
    """The suite's scenarios and budgets.

    Full: 5 learning rates per optimizer, about 60 min on two CPU cores with two seeds.
    Quick (about 10 min): 3 learning rates, shorter runs, smaller data, and the densified
    recommender variant left out; its verdicts are a smoke test of the protocol, not evidence.
    """
    if quick:
        return [
            Scenario("image", "image classification (MNIST, small ResNet)", "mnist-cnn",
                     dict(channels=8, blocks=2, steps=120), QUICK_FACTORS),
            Scenario("text", "BERT fine-tuning (MiniLM-L6 on food reviews)", "reviews",
                     dict(trainable_layers=1, max_len=48, batch_size=32, steps=40, eval_every=10,
                          train_subset=1000, test_subset=400), QUICK_FACTORS),
            Scenario("recsys-lazy", "recommender, sparse gradients, lazy updates (MovieLens MF)", "movielens",
                     dict(steps=200, eval_every=25), QUICK_FACTORS, {"sparse": "lazy"}),
        ]
    rec = dict(steps=1000, eval_every=100)
    return [
        Scenario("image", "image classification (MNIST, small ResNet)", "mnist-cnn",
                 dict(channels=8, blocks=2, steps=300), FULL_FACTORS),
        Scenario("text", "BERT fine-tuning (MiniLM-L6 on food reviews)", "reviews",
                 dict(trainable_layers=1, max_len=64, batch_size=32, steps=100, eval_every=20,
                      test_subset=600), FULL_FACTORS),
        Scenario("recsys-lazy", "recommender, sparse gradients, lazy updates (MovieLens MF)",
                 "movielens", rec, FULL_FACTORS, {"sparse": "lazy"}),
        Scenario("recsys-dense", "recommender, sparse gradients densified (MovieLens MF)",
                 "movielens", rec, FULL_FACTORS, {"sparse": "dense"}),
    ]


def learning_rates(workload_lr: float, library_lr: float, factors: Sequence[float]) -> list[float]:
    """The sweep: ``workload_lr * factors`` plus ``library_lr`` (once), rounded to 3 digits."""
    lrs = [float(f"{workload_lr * f:.3g}") for f in factors]
    if not any(math.isclose(lr, library_lr, rel_tol=1e-2) for lr in lrs):
        lrs.append(library_lr)
    return sorted(lrs)


def entries(scenario: Scenario, default_lr: dict[str, float]) -> list[tuple[str, OptimizerSpec]]:
    """``(family, OptimizerSpec)`` for every optimizer and learning rate of a scenario."""
    out = []
    for family, (name, fixed) in FAMILIES.items():
        lib = library_default_lr(family)
        for lr in learning_rates(default_lr.get(name, lib), lib, scenario.factors):
            # fused=False: every entry runs the same reference implementation, so the suite
            # compares algorithms, not which of them happens to have a fast kernel.
            hp = {**fixed, **scenario.hparams, "lr": lr, "fused": False}
            out.append((family, OptimizerSpec(name, hp, label=f"{family} lr={lr:g}")))
    return out


# ---------------------------------------------------------------------------- the results table

def family_of(optimizer: str, hparams: dict[str, Any]) -> str | None:
    """Which of the seed's three optimizers a run used (None: not one of them)."""
    if optimizer == "sgd":
        return "SGD+Momentum" if hparams.get("momentum", 0) else None
    return {"adam": "Adam", "rmsprop": "RMSprop"}.get(optimizer)


def scenario_of(workload: str, hparams: dict[str, Any]) -> str:
    """The scenario key of a run, from its workload and its entry's sparse mode."""
    keys = {"mnist-cnn": "image", "reviews": "text", "movielens": "recsys"}
    key = keys.get(workload, workload)
    return f"{key}-{hparams.get('sparse', 'dense')}" if key == "recsys" else key


def _parsed(records: Iterable[Any]):
    """``(record dict, family, hparams, scenario)`` for each run of one of the three families."""
    for rec in records:
        r = rec if isinstance(rec, dict) else rec.to_dict()
        hp = dict(r.get("hparams") or {})
        family = family_of(r["optimizer"], hp)
        if family is not None and "lr" in hp:
            yield r, family, hp, scenario_of(r["workload"], hp)


def runs_table(records: Iterable[Any], baselines: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per run from run records (``RunRecord`` objects or their dicts).

    Columns: scenario, workload, family, lr, library_default, seed, status, final (metric at
    the end; NaN if diverged), best (best metric seen), steps_to_target, seconds_to_target
    (NaN if never reached), time_per_step, metric, higher_is_better, target, baseline
    (the trivial predictor's score, from ``baselines[workload]``; NaN when unknown).
    """
    rows = []
    for r, family, hp, scenario in _parsed(records):
        cfg = r["workload_config"]
        hib, target = bool(cfg["higher_is_better"]), float(cfg["target"])
        evals = [(int(s), float(t), float(m)) for s, t, m in r.get("evals") or []]
        values = [m for _, _, m in evals if math.isfinite(m)]
        ok = r.get("status", "ok") == "ok"
        reached = [(s, t) for s, t, m in evals if math.isfinite(m) and (m >= target if hib else m <= target)]
        rows.append({
            "scenario": scenario, "workload": r["workload"], "family": family, "lr": float(hp["lr"]),
            "library_default": math.isclose(float(hp["lr"]), library_default_lr(family), rel_tol=1e-2),
            "seed": int(r["seed"]), "status": r.get("status", "ok"),
            "final": evals[-1][2] if ok and evals else math.nan,
            "best": (max(values) if hib else min(values)) if values else math.nan,
            "steps_to_target": float(reached[0][0]) if reached else math.nan,
            "seconds_to_target": float(reached[0][1]) if reached else math.nan,
            "time_per_step": float(r.get("time_per_step") or math.nan),
            "metric": cfg["metric"], "higher_is_better": hib, "target": target,
            "baseline": float((baselines or {}).get(r["workload"], math.nan)),
        })
    return pd.DataFrame(rows)


def curves_table(records: Iterable[Any]) -> pd.DataFrame:
    """The evaluations of every run: scenario, family, lr, seed, step, value."""
    rows = [{"scenario": scenario, "family": family, "lr": float(hp["lr"]), "seed": int(r["seed"]),
             "step": int(step), "value": float(value)}
            for r, family, hp, scenario in _parsed(records) for step, _, value in r.get("evals") or []]
    return pd.DataFrame(rows, columns=["scenario", "family", "lr", "seed", "step", "value"])



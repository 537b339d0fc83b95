"""The ``seed-claims`` suite: do the seed lesson's three claims hold on real data?

The seed lesson says:

1. *Image classification*: "Adam reaches 90% fastest, while SGD+Momentum generalises best."
2. *BERT fine-tuning*: "Adam works with default hyperparameters, RMSprop needs careful tuning."
3. *Recommender systems* (sparse gradients): "RMSprop is more stable; Adam may fail to converge."

Each claim is a statement about *tuned* optimizers or about *defaults*, so the suite runs a
fair protocol: Adam, RMSprop and SGD+Momentum (heavy ball, momentum 0.9) each get the
same learning-rate sweep (the workload's suggested lr times the same log-spaced factors)
plus the library's own default lr (what an untuned user gets), on every seed. Nothing
else is tuned. The scenarios are real data, offline: ``mnist-cnn`` (4,000 MNIST digits,
small ResNet), ``reviews`` (MiniLM-L6 fine-tuning on Amazon food reviews) and
``movielens`` (matrix factorisation with sparse embedding gradients, once with lazy
sparse updates like SparseAdam and once densified).

The verdicts are pure functions of a results table (one row per run; see
:func:`runs_table`), so they can be recomputed and tested from any stored database.
Every verdict is decided seed by seed: the claim is **supported** when it holds on every
seed, **not supported** when it fails on every seed, and **inconclusive** when the seeds
disagree (or a comparison is an exact tie). A learning rate is chosen per optimizer on the
mean over seeds, by the same criterion the claim is about (steps to target for "fastest",
final test metric otherwise); we select and report on the same test set, which flatters
every optimizer equally and is stated in the report.
"""
from __future__ import annotations

import inspect
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from .workload import OptimizerSpec

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"

#: the three optimizers the seed compares: family -> (inertia name, fixed hyperparameters)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "Adam": ("adam", {}),
    "RMSprop": ("rmsprop", {}),
    "SGD+Momentum": ("sgd", {"momentum": 0.9}),
}


def library_default_lr(family: str) -> float:
    """The lr an untuned user gets: the default of the inertia class's constructor."""
    from .specs import OPTIMIZERS

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


# ---------------------------------------------------------------------------- verdicts (pure)

@dataclass
class Verdict:
    """A claim, its status, the sentence saying why, and the per-seed evidence."""

    claim: str
    scenario: str
    status: str
    reason: str
    per_seed: list[dict[str, Any]] = field(default_factory=list)


def _score(value: float, hib: bool) -> float:
    """A number where larger is better and NaN (diverged) is the worst."""
    if value != value:
        return -math.inf
    return value if hib else -value


def _status(outcomes: list[bool | None]) -> str:
    # numpy booleans are not `True`: normalise in place so per-seed tables show plain values
    outcomes[:] = [None if o is None else bool(o) for o in outcomes]
    if outcomes and all(o is True for o in outcomes):
        return SUPPORTED
    if outcomes and all(o is False for o in outcomes):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def _rows(table: pd.DataFrame, scenario: str) -> pd.DataFrame:
    rows = table[table["scenario"] == scenario]
    if rows.empty:
        raise ValueError(f"no runs for scenario {scenario!r} in the results table")
    return rows


def tuned_lr(table: pd.DataFrame, scenario: str, by: str = "final") -> dict[str, float]:
    """Each family's best lr on the mean over seeds.

    ``by="final"``: the best mean final metric (a diverged seed counts as the worst);
    ``by="steps"``: the fewest median steps to target (never reached counts as infinite),
    ties broken by the final metric.
    """
    rows = _rows(table, scenario)
    hib = bool(rows["higher_is_better"].iloc[0])
    out = {}
    for family, grp in rows.groupby("family"):
        scored = []
        for lr, g in grp.groupby("lr"):
            final = sum(_score(v, hib) for v in g["final"]) / len(g)
            steps = g["steps_to_target"].fillna(math.inf).median()
            scored.append(((-steps, final) if by == "steps" else (final,), lr))
        out[family] = max(scored)[1]
    return out


def _at(rows: pd.DataFrame, family: str, lr: float, seed: int) -> pd.Series | None:
    hit = rows[(rows["family"] == family) & (rows["lr"] == lr) & (rows["seed"] == seed)]
    return None if hit.empty else hit.iloc[0]


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "not run"
    if value != value:
        return "diverged"
    return f"{value:.1%}" if metric == "accuracy" else f"{value:.4f}"


def verdict_fastest(table: pd.DataFrame, scenario: str = "image", claimed: str = "Adam") -> Verdict:
    """"``claimed`` reaches the target fastest": fewest steps to target, each at its fastest lr."""
    rows = _rows(table, scenario)
    lrs = tuned_lr(table, scenario, by="steps")
    target = rows["target"].iloc[0]
    per_seed, outcomes = [], []
    for seed in sorted(rows["seed"].unique()):
        steps = {f: _at(rows, f, lr, seed) for f, lr in lrs.items()}
        steps = {f: (r["steps_to_target"] if r is not None else math.nan) for f, r in steps.items()}
        mine = steps.get(claimed, math.nan)
        others = [v for f, v in steps.items() if f != claimed and v == v]
        best_other = min(others) if others else math.inf
        if mine != mine and best_other == math.inf:
            outcome = None  # nobody reached the target: no evidence either way
        elif mine != mine:
            outcome = False
        else:
            outcome = True if mine < best_other else (None if mine == best_other else False)
        outcomes.append(outcome)
        per_seed.append({"seed": int(seed), **{f: v for f, v in steps.items()}})
    status = _status(outcomes)
    _holds(per_seed, outcomes)
    speed = ", ".join(f"{f} (lr {lr:g}): median {_steps(rows, f, lr)}" for f, lr in lrs.items())
    reason = (f"Steps to {_fmt(target, rows['metric'].iloc[0])} test {rows['metric'].iloc[0]}, each optimizer at its "
              f"fastest learning rate: {speed}. {claimed} was strictly fastest on "
              f"{sum(o is True for o in outcomes)} of {len(outcomes)} seeds"
              f"{_ties(outcomes)}.")
    return Verdict(f"{claimed} reaches {target:.0%} fastest", scenario, status, reason, per_seed)


def _steps(rows: pd.DataFrame, family: str, lr: float) -> str:
    s = rows[(rows["family"] == family) & (rows["lr"] == lr)]["steps_to_target"]
    median = s.fillna(math.inf).median()
    if median == math.inf:
        return f"never (reached on {int(s.notna().sum())} of {len(s)} seeds)"
    return f"{median:g} steps"


def _ties(outcomes: Sequence[bool | None], what: str = "tie or nobody reached it") -> str:
    n = sum(o is None for o in outcomes)
    return f" ({what} on {n})" if n else ""


def verdict_best_final(table: pd.DataFrame, scenario: str = "image", claimed: str = "SGD+Momentum") -> Verdict:
    """"``claimed`` generalises best": the best final test metric, each optimizer at its best lr."""
    rows = _rows(table, scenario)
    lrs = tuned_lr(table, scenario, by="final")
    hib, metric = bool(rows["higher_is_better"].iloc[0]), rows["metric"].iloc[0]
    per_seed, outcomes = [], []
    for seed in sorted(rows["seed"].unique()):
        finals = {f: (r["final"] if (r := _at(rows, f, lr, seed)) is not None else math.nan) for f, lr in lrs.items()}
        mine = _score(finals.get(claimed, math.nan), hib)
        best_other = max((_score(v, hib) for f, v in finals.items() if f != claimed), default=-math.inf)
        outcome = True if mine > best_other else (None if mine == best_other else False)
        outcomes.append(outcome)
        per_seed.append({"seed": int(seed), **finals})
    status = _status(outcomes)
    _holds(per_seed, outcomes)
    means = ", ".join(f"{f} (lr {lr:g}) {_fmt(_mean_final(rows, f, lr), metric)}" for f, lr in lrs.items())
    reason = (f"Final test {metric} (mean over seeds), each optimizer at its best learning rate: {means}. "
              f"{claimed} was strictly best on {sum(o is True for o in outcomes)} of {len(outcomes)} seeds"
              f"{_ties(outcomes, 'exact tie')}.")
    return Verdict(f"{claimed} generalises best (final test {metric})", scenario, status, reason, per_seed)


def _mean_final(rows: pd.DataFrame, family: str, lr: float) -> float | None:
    """Mean final metric over seeds; NaN if any seed diverged, None if never run."""
    finals = rows[(rows["family"] == family) & (rows["lr"] == lr)]["final"]
    if finals.empty:
        return None
    return float("nan") if finals.isna().any() else float(finals.mean())


def verdict_defaults(table: pd.DataFrame, scenario: str = "text", works: str = "Adam",
                     needs_tuning: str = "RMSprop", tol: float = 0.02) -> Verdict:
    """"``works`` works with its defaults, ``needs_tuning`` needs careful tuning".

    On each seed both halves must hold: ``works`` at the library default lr is within ``tol``
    of the best tuned result of any optimizer, and ``needs_tuning`` at its library default
    lr is more than ``tol`` worse than itself at its tuned lr.
    """
    rows = _rows(table, scenario)
    lrs = tuned_lr(table, scenario, by="final")
    hib, metric = bool(rows["higher_is_better"].iloc[0]), rows["metric"].iloc[0]
    defaults = {f: library_default_lr(f) for f in (works, needs_tuning)}
    per_seed, outcomes = [], []
    for seed in sorted(rows["seed"].unique()):
        tuned = {f: _score(r["final"], hib) if (r := _at(rows, f, lr, seed)) is not None else -math.inf
                 for f, lr in lrs.items()}
        at_default = {f: _score(r["final"], hib) if (r := _at(rows, f, lr, seed)) is not None else math.nan
                      for f, lr in defaults.items()}
        works_ok = at_default[works] >= max(tuned.values()) - tol
        needs = at_default[needs_tuning] < tuned.get(needs_tuning, -math.inf) - tol
        ok = None if math.isnan(at_default[works]) or math.isnan(at_default[needs_tuning]) else (works_ok and needs)
        outcomes.append(ok)
        per_seed.append({"seed": int(seed), f"{works} at default": _raw(at_default[works], hib),
                         f"{needs_tuning} at default": _raw(at_default[needs_tuning], hib),
                         "best tuned": _raw(max(tuned.values()), hib),
                         f"{needs_tuning} tuned": _raw(tuned.get(needs_tuning, -math.inf), hib),
                         f"{works} ok": bool(works_ok), f"{needs_tuning} needs tuning": bool(needs)})
    status = _status(outcomes)
    _holds(per_seed, outcomes)
    sens = "; ".join(f"{f}: {n} of {m} learning rates within {tol:g} of its best"
                     for f, (n, m) in ((f, _forgiving(rows, f, hib, tol)) for f in lrs))
    reason = (f"Mean final test {metric}: {works} at its default lr {defaults[works]:g} scores "
              f"{_fmt(_mean_final(rows, works, defaults[works]), metric)}, {needs_tuning} at its default lr "
              f"{defaults[needs_tuning]:g} scores {_fmt(_mean_final(rows, needs_tuning, defaults[needs_tuning]), metric)}; "
              f"tuned: " + ", ".join(f"{f} {_fmt(_mean_final(rows, f, lr), metric)} (lr {lr:g})" for f, lr in lrs.items())
              + f". Tolerance {tol:g}. Sensitivity (mean over seeds) — {sens}. The claim held on "
              f"{sum(o is True for o in outcomes)} of {len(outcomes)} seeds.")
    return Verdict(f"{works} works with default hyperparameters while {needs_tuning} needs careful tuning",
                   scenario, status, reason, per_seed)


def _raw(score: float, hib: bool) -> float:
    """Undo :func:`_score` for display: the metric value, NaN for a diverged run."""
    if math.isinf(score):
        return float("nan")
    return float(score if hib else -score)


def _holds(per_seed: list[dict[str, Any]], outcomes: list[bool | None]) -> None:
    for entry, outcome in zip(per_seed, outcomes):
        entry["holds"] = outcome


def _forgiving(rows: pd.DataFrame, family: str, hib: bool, tol: float) -> tuple[int, int]:
    """How many of a family's learning rates come within ``tol`` of its best (seed means)."""
    g = rows[rows["family"] == family].groupby("lr")["final"].apply(lambda s: sum(_score(v, hib) for v in s) / len(s))
    return int((g >= g.max() - tol).sum()), int(len(g))


def converged(final: float, best: float, baseline: float, hib: bool, rebound_tol: float = 0.02) -> bool:
    """A run converged when it ended finite, better than the trivial predictor, and within
    ``rebound_tol`` of the best value it reached (it did not climb back up)."""
    if final != final:
        return False
    if (best - final if hib else final - best) > rebound_tol:
        return False
    if baseline != baseline:
        return True
    return final > baseline if hib else final < baseline


def verdict_stability(table: pd.DataFrame, scenario: str = "recsys-lazy", stable: str = "RMSprop",
                      fragile: str = "Adam", rebound_tol: float = 0.02) -> Verdict:
    """"``stable`` is more stable and ``fragile`` may fail to converge".

    On each seed, over the same relative learning-rate sweep: ``fragile`` fails to converge
    (diverges, ends no better than the trivial predictor, or ends more than ``rebound_tol``
    worse than its own best: see :func:`converged`) on more learning rates than
    ``stable`` does. If neither ever fails, the claim does not hold on that seed.
    """
    rows = _rows(table, scenario)
    hib, metric = bool(rows["higher_is_better"].iloc[0]), rows["metric"].iloc[0]
    per_seed, outcomes = [], []
    for seed in sorted(rows["seed"].unique()):
        s = rows[rows["seed"] == seed]
        fails = {f: int(sum(not converged(r.final, r.best, r.baseline, hib, rebound_tol)
                            for r in s[s["family"] == f].itertuples()))
                 for f in (stable, fragile)}
        counts = {f: int((s["family"] == f).sum()) for f in (stable, fragile)}
        outcomes.append(fails[fragile] > fails[stable])
        per_seed.append({"seed": int(seed), f"{fragile} failed": f"{fails[fragile]}/{counts[fragile]}",
                         f"{stable} failed": f"{fails[stable]}/{counts[stable]}"})
    status = _status(outcomes)
    _holds(per_seed, outcomes)
    rebound = "; ".join(f"{f}: {_rebound(rows, f, hib):.4f}" for f in (stable, fragile))
    base = rows["baseline"].iloc[0]
    reason = (f"A run fails to converge when it diverges, ends no better than the trivial predictor "
              f"({_fmt(base, metric)} test {metric}) or ends more than {rebound_tol:g} worse than its own best. "
              f"Failures per seed (same relative learning-rate sweep): "
              + "; ".join(f"seed {p['seed']}: {fragile} {p[f'{fragile} failed']}, {stable} {p[f'{stable} failed']}"
                          for p in per_seed)
              + f". Mean rebound from the best to the final {metric} over converged runs (lower is steadier) — "
              f"{rebound}. The claim held on {sum(o is True for o in outcomes)} of {len(outcomes)} seeds.")
    return Verdict(f"{stable} is more stable and {fragile} may fail to converge", scenario,
                   status, reason, per_seed)


def _rebound(rows: pd.DataFrame, family: str, hib: bool) -> float:
    g = rows[(rows["family"] == family) & rows["final"].notna()]
    g = g[[converged(f, bs, b, hib, math.inf) for f, bs, b in zip(g["final"], g["best"], g["baseline"])]]
    if g.empty:
        return math.nan
    return float(((g["best"] - g["final"]) if hib else (g["final"] - g["best"])).mean())


#: the seed's words, and which verdict function tests them on which scenario
CLAIMS: list[tuple[str, str, Any]] = [
    ("On image classification, Adam reaches 90% fastest ...", "image", verdict_fastest),
    ("... while SGD+Momentum generalises best.", "image", verdict_best_final),
    ("For BERT fine-tuning, Adam works with default hyperparameters while RMSprop needs careful tuning.",
     "text", verdict_defaults),
    ("For recommender systems with sparse gradients, RMSprop is more stable and Adam may fail to converge.",
     "recsys-lazy", verdict_stability),
    ("(same claim, sparse gradients densified instead of lazy updates)", "recsys-dense", verdict_stability),
]


def verdicts(table: pd.DataFrame) -> list[tuple[str, Verdict]]:
    """Every claim whose scenario has runs in ``table``: ``(seed's words, verdict)``."""
    present = set(table["scenario"]) if not table.empty else set()
    return [(quote, fn(table, scenario)) for quote, scenario, fn in CLAIMS if scenario in present]


def recommendations(table: pd.DataFrame, tol: float = 0.01) -> list[str]:
    """"Which optimizer to pick", one line per scenario, from the measured means only."""
    lines = []
    for scenario in dict.fromkeys(table["scenario"]):
        rows = _rows(table, scenario)
        hib, metric = bool(rows["higher_is_better"].iloc[0]), rows["metric"].iloc[0]
        lrs = tuned_lr(table, scenario, by="final")
        finals = {f: _mean_final(rows, f, lr) for f, lr in lrs.items()}
        ranked = sorted(finals, key=lambda f: _score(finals[f], hib), reverse=True)
        best = ranked[0]
        close = [f for f in ranked[1:] if _score(finals[f], hib) >= _score(finals[best], hib) - tol]
        good = {f: _forgiving(rows, f, hib, tol)[0] for f in lrs}
        top = [f for f in lrs if good[f] == max(good.values())]
        forgiving = (top[0] if len(top) == 1 else f"no clear winner ({', '.join(top)} tie)") \
            if max(good.values()) > 1 else "none: each has a single good learning rate in the sweep"
        text = (f"**{scenario}**: pick **{best}** (lr {lrs[best]:g}: {_fmt(finals[best], metric)} final test {metric})")
        edge = [f for f, lr in lrs.items() if lr in (rows[rows["family"] == f]["lr"].min(), rows[rows["family"] == f]["lr"].max())]
        if edge:  # the optimum may lie outside the sweep: the tuning is not finished there
            text += f" [best lr at the edge of the sweep for {', '.join(edge)}: a wider sweep may change this]"
        if close:
            text += f"; {', '.join(close)} within {tol:g}, so the choice barely matters here"
        text += (f". Least sensitive to the learning rate (most learning rates within {tol:g} of its best): "
                 f"{forgiving}. Without tuning (library defaults): "
                 + ", ".join(f"{f} {_fmt(_mean_final(rows, f, library_default_lr(f)), metric)}" for f in lrs) + ".")
        lines.append(text)
    return lines


def baseline_of(info: dict[str, Any]) -> float:
    """The trivial predictor's score a workload's info records (NaN when it records none)."""
    extras = info.get("extras") or {}
    for key in ("baseline_rmse", "test_majority_accuracy"):
        if key in extras:
            return float(extras[key])
    return float("nan")


def load(db: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]]]:
    """The runs table, the curves and the workload infos of a stored database."""
    from .store import Store

    with Store(db, readonly=True) as store:
        records = store.runs()
        infos = {r.workload: store.workload_info(r.workload_config) for r in records}
    baselines = {name: baseline_of(info) for name, info in infos.items()}
    return runs_table(records, baselines), curves_table(records), infos


# ---------------------------------------------------------------------------- the report

_BADGE = {SUPPORTED: "✅ supported", NOT_SUPPORTED: "❌ not supported", INCONCLUSIVE: "❔ inconclusive"}
_COLORS = {"Adam": "tab:blue", "RMSprop": "tab:orange", "SGD+Momentum": "tab:green"}


def plot_scenario(table: pd.DataFrame, curves: pd.DataFrame, scenario: str, out: Path) -> list[str]:
    """Two figures per scenario: final metric vs learning rate, and tuned learning curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(table, scenario)
    hib, metric = bool(rows["higher_is_better"].iloc[0]), rows["metric"].iloc[0]
    names = []
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for family, grp in rows.groupby("family"):
        color = _COLORS.get(family)
        ax.scatter(grp["lr"], grp["final"], s=12, alpha=0.5, color=color)
        mean = grp.groupby("lr")["final"].mean()
        ax.plot(mean.index, mean.values, "-o", color=color, label=family, ms=4)
        lib = library_default_lr(family)
        if lib in mean.index:  # the untuned user's point
            ax.plot([lib], [mean[lib]], "s", mfc="none", mec="black", ms=10)
    base = rows["baseline"].iloc[0]
    if base == base:
        ax.axhline(base, ls=":", color="grey", label="trivial predictor")
    ax.axhline(rows["target"].iloc[0], ls="--", color="red", lw=0.8, label="target")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (black square: library default)", ylabel=f"final test {metric}",
           title=f"{scenario}: sensitivity to the learning rate")
    ax.legend(fontsize=7)
    fig.tight_layout()
    names.append(f"lr-{scenario}.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)

    lrs = tuned_lr(table, scenario, by="final")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for family, lr in lrs.items():
        c = curves[(curves["scenario"] == scenario) & (curves["family"] == family) & (curves["lr"] == lr)]
        for i, (_, g) in enumerate(c.groupby("seed")):
            ax.plot(g["step"], g["value"], color=_COLORS.get(family), alpha=0.8,
                    label=f"{family} lr={lr:g}" if i == 0 else None)
    ax.axhline(rows["target"].iloc[0], ls="--", color="red", lw=0.8)
    ax.set(xlabel="step", ylabel=f"test {metric}", title=f"{scenario}: tuned learning curves (one line per seed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    names.append(f"curves-{scenario}.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)
    return names


def _md_table(frame: pd.DataFrame) -> list[str]:
    def cell(v: Any) -> str:
        if v is None or isinstance(v, bool):
            return {True: "yes", False: "no", None: "undecided"}[v]
        if isinstance(v, float):
            return "—" if v != v else f"{v:.4g}"
        return str(v)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def markdown(table: pd.DataFrame, curves: pd.DataFrame, out: Path, meta: dict[str, Any],
             infos: dict[str, dict[str, Any]] | None = None) -> str:
    """The report's markdown (writes the figures into ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# The seed's claims, tested", "",
             f"Suite `seed-claims`{' (quick)' if meta.get('quick') else ''}: seeds {meta.get('seeds')}, "
             f"wall time {meta.get('wall_time', float('nan')):.0f} s on {meta.get('device', '?')}"
             + (f" (load average {meta['load']}; {os.cpu_count()} CPUs)" if meta.get("load") else "") + ".", "",
             "Protocol: Adam, RMSprop and SGD+Momentum (momentum 0.9) each get the same learning-rate sweep "
             "(the workload's suggested lr times the same factors) plus the library's default lr; nothing else "
             "is tuned. Each claim is decided seed by seed: **supported** if it holds on every seed, "
             "**not supported** if it fails on every seed, **inconclusive** otherwise. Learning rates are chosen "
             "on the mean over seeds and reported on the same test set (optimistic for every optimizer alike).", ""]
    for quote, v in verdicts(table):
        lines += [f"## “{quote}”", "", f"**{_BADGE[v.status]}** — tested as: {v.claim} ({v.scenario}).", "",
                  v.reason, ""]
        lines += _md_table(pd.DataFrame(v.per_seed)) + [""]
    lines += ["## Which optimizer to pick", "", "From these runs only (a small budget: treat as evidence, not law):", ""]
    lines += [f"- {line}" for line in recommendations(table)] + [""]
    lines += ["## Scenarios", ""]
    for scenario in dict.fromkeys(table["scenario"]):
        rows = _rows(table, scenario)
        info = (infos or {}).get(rows["workload"].iloc[0], {})
        facts = ", ".join(f"{k} {v}" for k, v in (info.get("extras") or {}).items()
                          if isinstance(v, (int, float, str)) and k != "contour")
        tps = rows.groupby("family")["time_per_step"].median()
        lines += [f"### {scenario}", "", info.get("description", rows["workload"].iloc[0]), "",
                  f"Facts: {facts}." if facts else "",
                  "Median training time per step: " + ", ".join(f"{f} {t * 1000:.1f} ms" for f, t in tps.items()) + ".", ""]
        if (out / scenario / "report.html").exists():
            lines += [f"The lab's full report for this scenario (loss curves, time to target, memory): "
                      f"[{scenario}/report.html]({scenario}/report.html).", ""]
        for name in plot_scenario(table, curves, scenario, out):
            lines += [f"![{name}]({name})", ""]
    if meta.get("skipped"):
        lines += ["## Skipped scenarios", ""] + [f"- {s}" for s in meta["skipped"]] + [""]
    lines += ["## All runs", ""]
    cols = ["scenario", "family", "lr", "library_default", "seed", "status", "final", "best", "steps_to_target"]
    lines += _md_table(table[cols].sort_values(["scenario", "family", "lr", "seed"])) + [""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    import html
    import re

    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html(md: str, title: str = "seed-claims", base: Path | None = None) -> str:
    """An HTML page from the report's markdown subset (headings, lists, tables, images, links).

    Images found under ``base`` are embedded as base64, like the lab's own reports, so the
    page opens offline from anywhere (an e-mail attachment, a CI artifact).
    """
    import base64
    import re

    body, table_open, list_open = [], False, False
    for line in md.splitlines():
        if not line.startswith("|") and table_open:
            body.append("</table>")
            table_open = False
        if not line.startswith("- ") and list_open:
            body.append("</ul>")
            list_open = False
        if line.startswith("|"):
            if set(line) <= set("|-"):
                continue
            tag = "th" if not table_open else "td"
            if not table_open:
                body.append("<table>")
                table_open = True
            body.append("<tr>" + "".join(f"<{tag}>{_inline(c.strip())}</{tag}>" for c in line.strip("|").split("|")) + "</tr>")
        elif m := re.match(r"(#+) (.*)", line):
            body.append(f"<h{len(m[1])}>{_inline(m[2])}</h{len(m[1])}>")
        elif m := re.match(r"!\[(.*)\]\((.*)\)", line):
            src = m[2]
            if base is not None and (base / src).is_file():
                src = "data:image/png;base64," + base64.b64encode((base / src).read_bytes()).decode()
            body.append(f'<img src="{src}" alt="{m[1]}">')
        elif line.startswith("- "):
            if not list_open:
                body.append("<ul>")
                list_open = True
            body.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    body.append("</table>" if table_open else "")
    style = ("body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}table{border-collapse:collapse;"
             "font-size:85%}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")


def write_report(table: pd.DataFrame, curves: pd.DataFrame, out: str | Path, meta: dict[str, Any],
                 infos: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write ``report.md``, ``report.html``, ``summary.json`` (the verdicts) and the PNGs into
    ``out``; return the markdown's path.

    The names match the lab's own reports, so ``inertia compare --suite seed-claims`` points
    at the right file; each scenario's lab report lives in ``out/<scenario>/``.
    """
    out = Path(out)
    md = markdown(table, curves, out, meta, infos)
    (out / "report.md").write_text(md, encoding="utf-8")
    (out / "report.html").write_text(to_html(md, base=out), encoding="utf-8")
    # the verdicts as data, for CI checks and for comparing suites across versions
    summary = {"meta": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, list))},
               "verdicts": [{"quote": q, "claim": v.claim, "scenario": v.scenario, "status": v.status,
                             "reason": v.reason} for q, v in verdicts(table)],
               "recommendations": recommendations(table)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return out / "report.md"


# ---------------------------------------------------------------------------- running the suite

def _load() -> str:
    """The 1-minute load average: timings on a shared machine mean little without it."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):  # not on every platform
        return "?"


def run(out: str, quick: bool = False, quiet: bool = False, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Run (or resume) the suite and write its report into ``out``; return the runs table.

    Each scenario is one :func:`inertia.lab.compare` call sharing the database
    ``out/runs.sqlite`` (so finished runs are skipped on resume) and writing the lab's own
    report (curves, time to target, memory) into ``out/<scenario>/``; ``out/report.md`` and
    ``report.html`` hold the verdicts. A scenario whose extras are missing is skipped, and
    the report says what to install.
    """
    from .api import compare
    from .store import Store
    from .workloads import get

    seeds = list(seeds) if seeds is not None else [0, 1]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "runs.sqlite"
    started, load0 = time.perf_counter(), _load()
    keys: list[str] = []
    skipped: list[str] = []
    for sc in scenarios(quick):
        try:
            work = get(sc.workload, **sc.options)
        except ImportError as exc:
            skipped.append(f"{sc.key}: {exc}")
            if not quiet:
                print(f"[seed-claims] skipping {sc.key}: {exc}")
            continue
        specs = [spec for _, spec in entries(sc, dict(work.default_lr))]
        t0 = time.perf_counter()
        compare([work], specs, seeds=seeds, out=out_dir / sc.key, db=db, quiet=quiet,
                title=f"seed-claims: {sc.title}",
                command=f"inertia compare --suite seed-claims{' --quick' if quick else ''}")
        with Store(db, readonly=True) as store:
            keys += store.comparison()["run_keys"]
        if not quiet:
            print(f"[seed-claims] {sc.key}: {len(specs) * len(seeds)} runs, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    with Store(db, readonly=True) as store:
        records = store.runs(keys)
        infos = {r.workload: store.workload_info(r.workload_config) for r in records}
    table = runs_table(records, {n: baseline_of(i) for n, i in infos.items()})
    meta = {"quick": quick, "seeds": seeds, "wall_time": time.perf_counter() - started,
            "device": records[0].device if records else "?", "skipped": skipped,
            "load": f"{load0} at the start, {_load()} at the end"}
    if not table.empty:
        path = write_report(table, curves_table(records), out_dir, meta, infos)
        if not quiet:
            print(f"[seed-claims] report: {path} ({meta['wall_time']:.0f} s)")
    return table

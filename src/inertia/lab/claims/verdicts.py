"""Verdicts on the lesson's claims: pure functions of a results table, decided seed by seed.

Each family runs in two *arms* on every seed: **tuned** (the lr, and nothing else, chosen
by the lab's equal-budget tuning on the validation split: the table's ``tuned`` rows) and
**default** (the library-default lr, what an untuned user gets). A table without tuned
rows (a fixed learning-rate sweep) has each family's lr chosen from the sweep on
validation instead (:func:`inertia.lab.tuning.choose`). Claims about the final metric read
the test split; one tolerance per scenario, the workload's practical threshold (the
table's ``threshold`` column), is used everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ..reporting import format as fmt
from ..scoring import tuning as found
from ..tuning.sweep import choose
from .table import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED
# ---------------------------------------------------------------------------- verdicts (pure)

@dataclass
class Verdict:
    """A claim, its status, the sentence saying why, and the per-seed evidence."""

    claim: str
    scenario: str
    status: str
    reason: str
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    lrs: dict[str, float] = field(default_factory=dict)  # the learning rate of each family's column


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


def _tuned(rows: pd.DataFrame) -> bool:
    """Whether the table holds tuned arms (else it is a fixed sweep)."""
    return "tuned" in rows and bool(rows["tuned"].any())


def tuned_lr(table: pd.DataFrame, scenario: str, by: str = "final") -> dict[str, float]:
    """Each family's tuned lr: the tuned arm's, else the sweep's best on validation
    (:func:`inertia.lab.tuning.choose`)."""
    rows = _rows(table, scenario)
    if _tuned(rows):
        return {f: float(g["lr"].iloc[0]) for f, g in rows[rows["tuned"]].groupby("family")}
    return choose(rows, by=by)


def _select(rows: pd.DataFrame, family: str, lr: float, arm: str = "tuned") -> pd.DataFrame:
    """A family's runs at an lr, in one arm (``tuned``/``default``) when the table has arms."""
    hit = rows[(rows["family"] == family) & (rows["lr"] == lr)]
    if _tuned(rows):
        hit = hit[hit["tuned"] == (arm == "tuned")]
    return hit


def tolerance(rows: pd.DataFrame, tol: float | None = None) -> float:
    """The tolerance of a scenario: ``tol`` when given, else the workload's practical threshold."""
    if tol is not None:
        return float(tol)
    t = rows["threshold"].iloc[0] if "threshold" in rows else math.nan
    return float(t) if t == t else 0.01


def _trials(trials: pd.DataFrame | None, scenario: str, family: str) -> list[dict[str, Any]]:
    """One family's tuning trials in a scenario, as :mod:`inertia.lab.scoring.tuning` reads them."""
    if trials is None or trials.empty:
        return []
    t = trials[(trials["scenario"] == scenario) & (trials["family"] == family)]
    return [{"slot": r.slot, "params": {"lr": r.lr}, "outcome": r.outcome, "value": r.value, "step": r.step,
             "curve": r.curve} for r in t.itertuples()]


def _band_text(trials: pd.DataFrame | None, scenario: str, family: str, hib: bool, tol: float) -> str:
    band = found.band(_trials(trials, scenario, family), hib, tol)
    if band is None:
        return f"{family}: too few trials trained far enough to tell"
    return (f"{family}: good from lr {fmt.lr(band['low'])} to {fmt.lr(band['high'])} (x{band['width']:.3g}, "
            f"{band['good']} of {band['of']} trials within {tol:.3g} at step {band['step']})")


def library_lr(rows: pd.DataFrame, family: str) -> float:
    """The family's library-default lr as run in this scenario (NaN when it was not run)."""
    hit = rows[(rows["family"] == family) & rows["library_default"]]["lr"]
    return float(hit.iloc[0]) if len(hit) else math.nan


def _at(rows: pd.DataFrame, family: str, lr: float, seed: int, arm: str = "tuned") -> pd.Series | None:
    hit = _select(rows, family, lr, arm)
    hit = hit[hit["seed"] == seed]
    return None if hit.empty else hit.iloc[0]


def _fmt(value: float | None, metric: str) -> str:
    """A metric value in a verdict's sentence, formatted as every report formats it."""
    if value is None:
        return "not run"
    return fmt.metric(value, metric, missing="diverged")


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
        per_seed.append({"seed": int(seed), **{f: (v if v == v else "never") for f, v in steps.items()}})
    status = _status(outcomes)
    _holds(per_seed, outcomes)
    speed = ", ".join(f"{f} (lr {lr:g}): median {_steps(rows, f, lr)}" for f, lr in lrs.items())
    reason = (f"Steps until the validation {rows['metric'].iloc[0]} holds {_fmt(target, rows['metric'].iloc[0])} to the "
              f"end, each optimizer at its fastest learning rate (chosen on validation): {speed}. {claimed} was strictly fastest on "
              f"{sum(o is True for o in outcomes)} of {len(outcomes)} seeds"
              f"{_ties(outcomes)}.")
    return Verdict(f"{claimed} reaches {target:.0%} fastest", scenario, status, reason, per_seed, lrs)


def _steps(rows: pd.DataFrame, family: str, lr: float) -> str:
    s = _select(rows, family, lr)["steps_to_target"]
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
    reason = (f"Final test {metric} (mean over seeds), each optimizer at its best learning rate on validation: {means}. "
              f"{claimed} was strictly best on {sum(o is True for o in outcomes)} of {len(outcomes)} seeds"
              f"{_ties(outcomes, 'exact tie')}.")
    return Verdict(f"{claimed} generalises best (final test {metric})", scenario, status, reason, per_seed, lrs)


def _mean_final(rows: pd.DataFrame, family: str, lr: float, arm: str = "tuned") -> float | None:
    """Mean final metric over seeds (of one arm); NaN if any seed diverged, None if never run."""
    finals = _select(rows, family, lr, arm)["final"]
    if finals.empty:
        return None
    return float("nan") if finals.isna().any() else float(finals.mean())


def verdict_defaults(table: pd.DataFrame, scenario: str = "text", works: str = "Adam",
                     needs_tuning: str = "RMSprop", tol: float | None = None,
                     trials: pd.DataFrame | None = None) -> Verdict:
    """"``works`` works with its defaults, ``needs_tuning`` needs careful tuning".

    On each seed both halves must hold: ``works`` at the library default lr is within ``tol``
    of the best tuned result of any optimizer, and ``needs_tuning`` at its library default
    lr is more than ``tol`` worse than itself at its tuned lr (``tol``: the scenario's
    practical threshold unless given).
    """
    rows = _rows(table, scenario)
    lrs = tuned_lr(table, scenario, by="final")
    hib, metric = bool(rows["higher_is_better"].iloc[0]), rows["metric"].iloc[0]
    tol = tolerance(rows, tol)
    defaults = {f: library_lr(rows, f) for f in (works, needs_tuning)}
    per_seed, outcomes = [], []
    for seed in sorted(rows["seed"].unique()):
        tuned = {f: _score(r["final"], hib) if (r := _at(rows, f, lr, seed)) is not None else -math.inf
                 for f, lr in lrs.items()}
        at_default = {f: _score(r["final"], hib) if (r := _at(rows, f, lr, seed, "default")) is not None else math.nan
                      for f, lr in defaults.items()}
        works_ok = at_default[works] >= max(tuned.values()) - tol
        needs = at_default[needs_tuning] < tuned.get(needs_tuning, -math.inf) - tol
        ok = None if math.isnan(at_default[works]) or math.isnan(at_default[needs_tuning]) else (works_ok and needs)
        outcomes.append(ok)
        per_seed.append({"seed": int(seed), f"{works} at default lr {defaults[works]:g}": _raw(at_default[works], hib),
                         f"{needs_tuning} at default lr {defaults[needs_tuning]:g}": _raw(at_default[needs_tuning], hib),
                         "best tuned": _raw(max(tuned.values()), hib),
                         f"{needs_tuning} tuned (lr {lrs.get(needs_tuning, math.nan):g})": _raw(tuned.get(needs_tuning, -math.inf), hib),
                         f"{works} ok": bool(works_ok), f"{needs_tuning} needs tuning": bool(needs)})
    status = _status(outcomes)
    _holds(per_seed, outcomes)
    if _tuned(rows):
        sens = "; ".join(_band_text(trials, scenario, f, hib, tol) for f in lrs)
    else:
        sens = "; ".join(f"{f}: {n} of {m} learning rates within {tol:.3g} of its best"
                         for f, (n, m) in ((f, _forgiving(rows, f, hib, tol)) for f in lrs))
    reason = (f"Mean final test {metric}: {works} at its default lr {defaults[works]:g} scores "
              f"{_fmt(_mean_final(rows, works, defaults[works], 'default'), metric)}, {needs_tuning} at its default lr "
              f"{defaults[needs_tuning]:g} scores "
              f"{_fmt(_mean_final(rows, needs_tuning, defaults[needs_tuning], 'default'), metric)}; "
              f"tuned: " + ", ".join(f"{f} {_fmt(_mean_final(rows, f, lr), metric)} (lr {lr:g})" for f, lr in lrs.items())
              + f". Tolerance {tol:.3g} (the practical threshold). Sensitivity "
              f"({'from the tuning trials, validation' if _tuned(rows) else 'mean over seeds'}) — {sens}. The claim held on "
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


def converged(final: float, best: float, baseline: float, hib: bool, rebound_tol: float = 0.02,
              last: float | None = None) -> bool:
    """A run converged when it ended finite, better than the trivial predictor, and within
    ``rebound_tol`` of the best value it reached (it did not climb back up).

    ``last`` is the final value on the split ``best`` was measured on (validation), when
    ``final`` is the test metric; by default ``final`` itself.
    """
    if final != final:
        return False
    last = final if last is None else last
    if (best - last if hib else last - best) > rebound_tol:
        return False
    if baseline != baseline:
        return True
    return final > baseline if hib else final < baseline


def trial_failures(trials: pd.DataFrame | None, scenario: str, family: str, baseline: float,
                   hib: bool) -> tuple[int, int]:
    """``(failed, of)``: a family's tuning trials that diverged or failed, or ended (at their rung) no
    better than the trivial predictor."""
    ts = _trials(trials, scenario, family)
    bad = [t for t in ts if t["outcome"] in ("diverged", "failed") or t["value"] is None or t["value"] != t["value"]
           or (baseline == baseline and not (t["value"] > baseline if hib else t["value"] < baseline))]
    return len(bad), len(ts)


def verdict_stability(table: pd.DataFrame, scenario: str = "recsys-lazy", stable: str = "RMSprop",
                      fragile: str = "Adam", rebound_tol: float | None = None,
                      trials: pd.DataFrame | None = None) -> Verdict:
    """"``stable`` is more stable and ``fragile`` may fail to converge".

    On each seed, over the same relative learning-rates: ``fragile`` fails to converge
    (diverges, ends no better than the trivial predictor, or ends more than ``rebound_tol``
    worse than its own best: see :func:`converged`) more often than ``stable`` does. The
    learning rates are a fixed sweep's, or, with tuning, those of the equal-budget search
    (its trials, the same for every seed, counted as failed when they diverge or end no
    better than the trivial predictor) plus the seed's tuned and default runs. If neither
    ever fails, the claim does not hold on that seed.
    """
    rows = _rows(table, scenario)
    rebound_tol = tolerance(rows, rebound_tol)
    hib, metric = bool(rows["higher_is_better"].iloc[0]), rows["metric"].iloc[0]
    base = rows["baseline"].iloc[0]
    searched = {f: trial_failures(trials, scenario, f, base, hib) for f in (stable, fragile)} if _tuned(rows) \
        else {f: (0, 0) for f in (stable, fragile)}
    per_seed, outcomes = [], []
    for seed in sorted(rows["seed"].unique()):
        s = rows[rows["seed"] == seed]
        fails = {f: searched[f][0] + int(sum(not converged(r.final, r.best, r.baseline, hib, rebound_tol,
                                                           getattr(r, "val_final", None))
                                             for r in s[s["family"] == f].itertuples()))
                 for f in (stable, fragile)}
        counts = {f: searched[f][1] + int((s["family"] == f).sum()) for f in (stable, fragile)}
        outcomes.append(fails[fragile] > fails[stable])
        per_seed.append({"seed": int(seed), f"{fragile} failed": f"{fails[fragile]}/{counts[fragile]}",
                         f"{stable} failed": f"{fails[stable]}/{counts[stable]}"})
    status = _status(outcomes)
    _holds(per_seed, outcomes)
    rebound = "; ".join(f"{f}: {_rebound(rows, f, hib):.4f}" for f in (stable, fragile))
    where = ("the equal-budget search's trials (" + ", ".join(f"{f} {searched[f][0]} of {searched[f][1]}"
                                                             for f in (fragile, stable))
             + ") plus each seed's tuned and default runs" if _tuned(rows) else "same relative learning-rate sweep")
    reason = (f"A run fails to converge when it diverges, ends no better than the trivial predictor "
              f"({_fmt(base, metric)} test {metric}) or ends more than {rebound_tol:.3g} worse than its own best "
              "validation value. "
              f"Failures per seed ({where}): "
              + "; ".join(f"seed {p['seed']}: {fragile} {p[f'{fragile} failed']}, {stable} {p[f'{stable} failed']}"
                          for p in per_seed)
              + f". Mean rebound from the best to the final {metric} over converged runs (lower is steadier) — "
              f"{rebound}. The claim held on {sum(o is True for o in outcomes)} of {len(outcomes)} seeds.")
    return Verdict(f"{stable} is more stable and {fragile} may fail to converge", scenario,
                   status, reason, per_seed)


def _rebound(rows: pd.DataFrame, family: str, hib: bool) -> float:
    """Mean climb from the best to the final validation value over converged runs."""
    g = rows[(rows["family"] == family) & rows["final"].notna()]
    last = g["val_final"] if "val_final" in g else g["final"]
    g, last = (g[[converged(f, bs, b, hib, math.inf) for f, bs, b in zip(g["final"], g["best"], g["baseline"])]],
               last)
    if g.empty:
        return math.nan
    last = last.loc[g.index]
    return float(((g["best"] - last) if hib else (last - g["best"])).mean())


#: the lesson's words, and which verdict function tests them on which scenario
CLAIMS: list[tuple[str, str, Any]] = [
    ("On image classification, Adam reaches 90% fastest ...", "image", verdict_fastest),
    ("... while SGD+Momentum generalises best.", "image", verdict_best_final),
    ("For BERT fine-tuning, Adam works with default hyperparameters while RMSprop needs careful tuning.",
     "text", verdict_defaults),
    ("For recommender systems with sparse gradients, RMSprop is more stable and Adam may fail to converge.",
     "recsys-lazy", verdict_stability),
    ("(same claim, sparse gradients densified instead of lazy updates)", "recsys-dense", verdict_stability),
]


def verdicts(table: pd.DataFrame, trials: pd.DataFrame | None = None) -> list[tuple[str, Verdict]]:
    """Every claim whose scenario has runs in ``table``: ``(the lesson's words, verdict)``.

    ``trials``: the tuning trials (:func:`inertia.lab.claims.table.trials_table`), for the claims
    about sensitivity and stability when the table's learning rates were tuned.
    """
    present = set(table["scenario"]) if not table.empty else set()
    out = []
    for quote, scenario, fn in CLAIMS:
        if scenario in present:
            extra = {"trials": trials} if fn in (verdict_defaults, verdict_stability) else {}
            out.append((quote, fn(table, scenario, **extra)))
    return out


def recommendations(table: pd.DataFrame, tol: float | None = None, trials: pd.DataFrame | None = None) -> list[str]:
    """"Which optimizer to pick", one line per scenario, from the measured means only
    (learning rates chosen on validation, final metrics on test)."""
    lines = []
    for scenario in dict.fromkeys(table["scenario"]):
        rows = _rows(table, scenario)
        t = tolerance(rows, tol)
        hib, metric = bool(rows["higher_is_better"].iloc[0]), rows["metric"].iloc[0]
        lrs = tuned_lr(table, scenario, by="final")
        finals = {f: _mean_final(rows, f, lr) for f, lr in lrs.items()}
        ranked = sorted(finals, key=lambda f: _score(finals[f], hib), reverse=True)
        best = ranked[0]
        close = [f for f in ranked[1:] if _score(finals[f], hib) >= _score(finals[best], hib) - t]
        if _tuned(rows):
            widths = {f: (found.band(_trials(trials, scenario, f), hib, t) or {}).get("width", 0.0) for f in lrs}
            top = [f for f in lrs if widths[f] == max(widths.values())]
            forgiving = ((top[0] if len(top) == 1 else f"no clear winner ({', '.join(top)} tie)")
                         + " (band of good learning rates in the tuning trials: "
                         + ", ".join(f"{f} x{w:.3g}" for f, w in widths.items()) + ")") \
                if max(widths.values()) > 1 else "none: each had a single good learning rate among its trials"
        else:
            good = {f: _forgiving(rows, f, hib, t)[0] for f in lrs}
            top = [f for f in lrs if good[f] == max(good.values())]
            forgiving = (top[0] if len(top) == 1 else f"no clear winner ({', '.join(top)} tie)") \
                if max(good.values()) > 1 else "none: each has a single good learning rate in the sweep"
        how = "tuned" if _tuned(rows) else "best of the sweep"
        text = (f"**{scenario}**: pick **{best}** (lr {lrs[best]:g}, {how}: {_fmt(finals[best], metric)} final test {metric})")
        if _tuned(rows):
            edge = [f for f in lrs if found.at_edge(_trials(trials, scenario, f), hib)]
        else:
            edge = [f for f, lr in lrs.items()
                    if lr in (rows[rows["family"] == f]["lr"].min(), rows[rows["family"] == f]["lr"].max())]
        if edge:  # the optimum may lie outside what was searched: the tuning is not finished there
            text += f" [best lr at the edge of what was searched for {', '.join(edge)}: a wider search may change this]"
        if close:
            text += f"; {', '.join(close)} within {t:.3g}, so the choice barely matters here"
        text += (f". Least sensitive to the learning rate (most learning rates within {t:.3g} of its best): "
                 f"{forgiving}. Without tuning (library defaults): "
                 + ", ".join(f"{f} {_fmt(_mean_final(rows, f, library_lr(rows, f), 'default'), metric)}" for f in lrs)
                 + ".")
        lines.append(text)
    return lines

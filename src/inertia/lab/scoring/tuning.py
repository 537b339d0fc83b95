"""What a tuning study found, from its stored trials alone: the choice, the sensitivity, the cost.

A study's trials are plain dicts (as :mod:`inertia.lab.tuning` stores them in the results
database): ``slot``, ``params`` (``lr`` …), ``outcome`` (``completed``, ``pruned``,
``diverged``, ``failed``), ``step`` (the last step trained), ``curve`` (``[step,
validation value]`` at each evaluation) and ``value`` (the last validation value).
Nothing here trains or imports Optuna, so a report is rebuilt from the database alone.

**The choice.** Trials are ranked by how far they trained, then by their validation value
there: a trial that survived to a later rung beat, at every rung, the ones stopped before it
(that is what the pruner decided), and trials stopped at the same step are compared at that
step. Diverged and failed trials rank last. The best-ranked trial's hyperparameters are
re-run on the comparison's seeds and judged on the test split.

**Sensitivity**: how wide the band of good learning rates is. At the latest evaluation step
that at least :data:`MIN_BAND` trials reached, the learning rates whose validation value
there is within the practical threshold of the best value there; the band is reported as
its lowest and highest lr and their ratio (a factor of 10 means "anything within a decade
works"). Trials stopped before that step are not in it.

**What the default cost**: slot 0 of every study trains at the centre of the space (the
library-default lr, all else default); it is compared with the chosen trial at the latest
step both reached, on the validation split.

**Cost**: the training steps all trials took, over the steps of one full run.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

#: trials needed at an evaluation step to measure a band of good learning rates there
MIN_BAND = 3
GOOD = ("completed", "pruned")


def _oriented(value: float | None, hib: bool) -> float:
    """Larger is better; missing or NaN is the worst."""
    if value is None or value != value:
        return -math.inf
    return value if hib else -value


def rank(trials: Sequence[dict[str, Any]], hib: bool) -> list[dict[str, Any]]:
    """Trials best first (see the module docstring)."""
    def key(t: dict[str, Any]) -> tuple:
        ok = t.get("outcome") in GOOD and t.get("value") is not None
        return (ok, t.get("step", 0) if ok else 0, _oriented(t.get("value"), hib), -t.get("slot", 0))
    return sorted(trials, key=key, reverse=True)


def best(trials: Sequence[dict[str, Any]], hib: bool) -> dict[str, Any] | None:
    """The trial to re-run on the seeds; None when no trial left a value (all diverged or failed)."""
    ranked = rank(trials, hib)
    if ranked and ranked[0].get("outcome") in GOOD and ranked[0].get("value") is not None:
        return ranked[0]
    return None


def value_at(trial: dict[str, Any], step: int) -> float | None:
    for s, v in trial.get("curve") or []:
        if s == step:
            return v
    return None


def band(trials: Sequence[dict[str, Any]], hib: bool, threshold: float) -> dict[str, Any] | None:
    """The band of good learning rates (module docstring), or None when too few trials trained."""
    steps = sorted({s for t in trials if t.get("outcome") in GOOD for s, _ in (t.get("curve") or []) if s > 0},
                   reverse=True)
    for step in steps:
        at = [(t["params"]["lr"], v) for t in trials if t.get("outcome") in GOOD
              and (v := value_at(t, step)) is not None and v == v]
        if len(at) < MIN_BAND:
            continue
        top = max(_oriented(v, hib) for _, v in at)
        good = sorted(lr for lr, v in at if _oriented(v, hib) >= top - threshold)
        return {"step": step, "low": good[0], "high": good[-1], "width": good[-1] / good[0],
                "good": len(good), "of": len(at), "threshold": threshold}
    return None


def default_cost(trials: Sequence[dict[str, Any]], hib: bool) -> dict[str, Any] | None:
    """The centre trial (slot 0, the untuned default) against the chosen one, at the latest step both reached."""
    chosen = best(trials, hib)
    centre = next((t for t in trials if t.get("slot") == 0), None)
    if chosen is None or centre is None:
        return None
    if centre.get("outcome") not in GOOD:
        return {"step": None, "lr": centre["params"].get("lr"), "default": None, "tuned": chosen.get("value"),
                "outcome": centre.get("outcome"), "same": chosen is centre}
    common = sorted(({s for s, _ in centre.get("curve") or []} & {s for s, _ in chosen.get("curve") or []}) - {0})
    if not common:
        return None
    step = common[-1]
    d, c = value_at(centre, step), value_at(chosen, step)
    return {"step": step, "lr": centre["params"].get("lr"), "default": d, "tuned": c,
            "difference": (c - d) if hib else (d - c), "outcome": centre.get("outcome"), "same": chosen is centre}


def edge_of(lrs: Sequence[float], lr: float) -> str:
    """``"down"``/``"up"`` when ``lr`` is the smallest/largest of the learning rates tried, else ``""``.

    The best of what was tried lying at the end of it means the optimum may lie beyond, so
    the search must look further that way (:func:`inertia.lab.tuning.space.widened`).
    Fewer than three learning rates have no inside, so no edge.
    """
    lrs = [x for x in lrs if x == x]
    if len(lrs) < 3:
        return ""
    return "down" if lr <= min(lrs) else "up" if lr >= max(lrs) else ""


def at_edge(trials: Sequence[dict[str, Any]], hib: bool) -> str:
    """:func:`edge_of` for the chosen trial among all trials of a study."""
    chosen = best(trials, hib)
    if chosen is None:
        return ""
    return edge_of([t["params"]["lr"] for t in trials if "lr" in (t.get("params") or {})], chosen["params"]["lr"])


def cost(trials: Sequence[dict[str, Any]], full_steps: int) -> dict[str, float]:
    """Steps and seconds all trials took, and the steps as a multiple of one full run."""
    steps = sum(int(t.get("step") or 0) for t in trials)
    seconds = sum(float(t.get("seconds") or 0.0) for t in trials)
    return {"steps": steps, "multiple": steps / full_steps if full_steps else math.nan, "seconds": seconds}


def counts(trials: Sequence[dict[str, Any]]) -> dict[str, int]:
    out = {"completed": 0, "pruned": 0, "diverged": 0, "failed": 0}
    for t in trials:
        out[t.get("outcome", "failed")] = out.get(t.get("outcome", "failed"), 0) + 1
    return out


def summarize(study: dict[str, Any], hib: bool, threshold: float) -> dict[str, Any]:
    """Everything the report says about one study, as data."""
    trials = study.get("trials") or []
    chosen = best(trials, hib)
    return {"chosen": chosen, "band": band(trials, hib, threshold), "default": default_cost(trials, hib),
            "edge": at_edge(trials, hib), "cost": cost(trials, int(study.get("full_steps") or 0)),
            "counts": counts(trials)}

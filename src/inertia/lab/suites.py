"""Named suites: ``inertia compare --suite NAME [--quick]``.

A suite is a fixed comparison (or, for ``seed-claims``, a protocol of its own in
:mod:`inertia.lab.claims`). ``--quick`` runs a short version; each suite says what that
version covers and what it cannot test, and the report repeats it under its title, so a
quick report is never read as the real thing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd

from .api import DEFAULT_OUT, DEFAULT_SEEDS, DEFAULT_TUNE, compare
from .claims.protocol import QUICK_COVERAGE
from .specs import SpecError


@dataclass(frozen=True)
class Suite:
    description: str
    run: Callable[..., pd.DataFrame]
    quick: str  # what --quick covers and cannot test


def _quick_note(suite: str) -> list[str]:
    return [f"**Quick version** (`--suite {suite} --quick`): {SUITES[suite].quick}"]


#: trials per entry in a quick headline run
QUICK_TUNE = 4


def _headline(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None, tune=None) -> pd.DataFrame:
    return compare(seeds=seeds or DEFAULT_SEEDS, out=out, quiet=quiet, steps=60 if quick else None, jobs=jobs,
                   tune=tune if tune is not None else (QUICK_TUNE if quick else DEFAULT_TUNE),
                   title="inertia: the lesson's headline comparison", notes=_quick_note("headline") if quick else ())


def _surfaces(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None, tune=None) -> pd.DataFrame:
    return compare(["valley", "valley-noisy", "rosenbrock", "rosenbrock-noisy"], seeds=seeds or DEFAULT_SEEDS,
                   out=out, quiet=quiet, steps=100 if quick else None, jobs=jobs, tune=tune,
                   title="inertia: 2-D surfaces", notes=_quick_note("surfaces") if quick else ())


def _minibatch(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None, tune=None) -> pd.DataFrame:
    return compare(["minibatch"], seeds=seeds or DEFAULT_SEEDS, out=out, quiet=quiet, steps=60 if quick else None,
                   jobs=jobs, tune=tune, title="inertia: batch vs stochastic vs mini-batch",
                   notes=_quick_note("minibatch") if quick else ())


# ---------------------------------------------------------------------------- large batch

#: lr-scaling rules: how a learning rate picked at batch b grows at batch B (ratio = B / b)
RULES = {"linear": lambda ratio: ratio, "sqrt": lambda ratio: ratio ** 0.5}
#: the large-batch suite's optimizers: (label, inertia name, fixed hyperparameters)
LARGE_BATCH_OPTIMIZERS = (("Adam", "adam", {}), ("SGD+Momentum", "sgd", {"momentum": 0.9}),
                          ("LAMB", "lamb", {}), ("LARS", "lars", {}))
#: every large-batch entry warms up linearly over this many steps, then decays by cosine
WARMUP = 10


def large_batch_entries(workload) -> list:
    """Each optimizer under each scaling rule: ``lr = base lr x rule(B / b)``, warm-up then cosine."""
    from .specs import OptimizerSpec

    ratio = workload.extras["global_batch"] / workload.extras["base_batch"]
    out = []
    for label, name, hp in LARGE_BATCH_OPTIMIZERS:
        for rule, scale in RULES.items():
            factor = scale(ratio)
            out.append(OptimizerSpec(name, {**hp, "lr": float(f"{workload.default_lr[name] * factor:.3g}")},
                                     schedule=f"warmup(steps={WARMUP})+cosine", label=f"{label} ({rule} x{factor:.3g})"))
    return out


def large_batch_statement(workload) -> str:
    """What the report must state: the batch, how it is reached, the rules and the base learning rates."""
    ex = workload.extras
    ratio = ex["global_batch"] / ex["base_batch"]
    bases = ", ".join(f"{label} {workload.default_lr[name]:g}" for label, name, _ in LARGE_BATCH_OPTIMIZERS)
    return (f"**Large batch.** Global batch {ex['global_batch']:,} digits per step ({ex['global_batch'] / ex['n_train']:.0%} "
            f"of the {ex['n_train']:,} training digits), reached by accumulating the gradients of "
            f"{ex['accumulation_steps']} micro-batches of {ex['micro_batch']} in one process. Learning rates are "
            f"scaled from those hand-picked at batch {ex['base_batch']} ({bases}) by the **linear** rule "
            f"(lr x B/b = x{RULES['linear'](ratio):.3g}) and the **square-root** rule (lr x sqrt(B/b) = "
            f"x{RULES['sqrt'](ratio):.3g}); every entry warms up linearly over {WARMUP} steps, then decays by cosine.")


def _large_batch(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None, tune=None) -> pd.DataFrame:
    from .workloads import get

    work = get("mnist-large-batch", steps=40 if quick else 150)
    return compare([work], large_batch_entries(work), seeds=seeds or DEFAULT_SEEDS, out=out, quiet=quiet, jobs=jobs,
                   tune=tune, title="inertia: large-batch training (LAMB, LARS, Adam, SGD+Momentum)",
                   notes=[large_batch_statement(work)] + (_quick_note("large-batch") if quick else []))


def _seed_claims(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None, tune=None) -> pd.DataFrame:
    from . import claims

    return claims.run(out, quick=quick, quiet=quiet, seeds=seeds, jobs=jobs, tune=tune)


SUITES: dict[str, Suite] = {
    "headline": Suite(
        f"the default: Adam, RMSprop, Momentum, SGD and AdamW (and Schedule-Free AdamW and Muon where inertia has "
        f"them and they apply) on mnist-cnn and valley, each tuned with {DEFAULT_TUNE} trials, 3 seeds", _headline,
        f"the same workloads and entries with 60 steps instead of 300 (mnist-cnn) and 150 (valley) and {QUICK_TUNE} "
        f"tuning trials instead of {DEFAULT_TUNE}. It cannot test time to target (in a measured run no entry reached "
        "either workload's target in 60 steps) nor the final metric at the full budget; it checks that everything "
        "runs and reports."),
    "surfaces": Suite(
        "the four 2-D workloads (valley, rosenbrock, exact and noisy) with the headline four", _surfaces,
        "100 steps per run instead of 150 (valley) and 1000 (rosenbrock): in a measured run no entry reached "
        "Rosenbrock's target (exact or noisy) in 100 steps, so time to target is tested on the valley only, and "
        "final values are not those of the full budget."),
    "minibatch": Suite(
        "batch vs stochastic vs mini-batch gradient descent on MNIST softmax regression", _minibatch,
        "60 steps instead of 300: batch and mini-batch descent still reach the 85% target (in a measured run, "
        "within 10-30 steps), but stochastic descent sees only 60 examples and cannot, so its time to target "
        "and the final accuracies at the full budget are not tested."),
    "large-batch": Suite(
        "LAMB and LARS with warm-up vs Adam and SGD+Momentum at a global batch of 1,024 (gradient accumulation), "
        "under the linear and square-root lr-scaling rules", _large_batch,
        "40 steps instead of 150 (about 12 epochs instead of 44): it checks that every entry runs and the report "
        "states the batch and the rules; the ranking at the full budget is not tested."),
    "seed-claims": Suite(
        "every claim of the lesson, checked on real workloads (inertia.lab.claims)", _seed_claims, QUICK_COVERAGE),
}


def run_suite(name: str, out: str = DEFAULT_OUT, quick: bool = False, quiet: bool = True,
              seeds: Sequence[int] | None = None, jobs: int | None = None, tune=None) -> pd.DataFrame:
    """Run a named suite (``inertia compare --suite NAME``); ``tune`` overrides its tuning budget
    (trials per entry or a :class:`~inertia.lab.tuning.Budget`; 0: none)."""
    if name not in SUITES:
        raise SpecError(f"Invalid suite {name!r}: valid names: {', '.join(SUITES)}")
    return SUITES[name].run(out, quick=quick, quiet=quiet, seeds=list(seeds) if seeds else None, jobs=jobs, tune=tune)

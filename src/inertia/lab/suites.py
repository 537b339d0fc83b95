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

from .api import DEFAULT_OUT, DEFAULT_SEEDS, compare
from .claims.protocol import QUICK_COVERAGE
from .specs import SpecError


@dataclass(frozen=True)
class Suite:
    description: str
    run: Callable[..., pd.DataFrame]
    quick: str  # what --quick covers and cannot test


def _quick_note(suite: str) -> list[str]:
    return [f"**Quick version** (`--suite {suite} --quick`): {SUITES[suite].quick}"]


def _headline(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None) -> pd.DataFrame:
    return compare(seeds=seeds or DEFAULT_SEEDS, out=out, quiet=quiet, steps=60 if quick else None, jobs=jobs,
                   title="inertia: the lesson's headline comparison", notes=_quick_note("headline") if quick else ())


def _surfaces(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None) -> pd.DataFrame:
    return compare(["valley", "valley-noisy", "rosenbrock", "rosenbrock-noisy"], seeds=seeds or DEFAULT_SEEDS,
                   out=out, quiet=quiet, steps=100 if quick else None, jobs=jobs, title="inertia: 2-D surfaces",
                   notes=_quick_note("surfaces") if quick else ())


def _minibatch(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None) -> pd.DataFrame:
    return compare(["minibatch"], seeds=seeds or DEFAULT_SEEDS, out=out, quiet=quiet, steps=60 if quick else None,
                   jobs=jobs, title="inertia: batch vs stochastic vs mini-batch",
                   notes=_quick_note("minibatch") if quick else ())


def _seed_claims(out: str, quick: bool = False, quiet: bool = False, seeds=None, jobs=None) -> pd.DataFrame:
    from . import claims

    return claims.run(out, quick=quick, quiet=quiet, seeds=seeds, jobs=jobs)


SUITES: dict[str, Suite] = {
    "headline": Suite(
        "the default: Adam, RMSprop, Momentum, SGD on mnist-cnn and valley, 3 seeds", _headline,
        "the same workloads and entries with 60 steps instead of 300 (mnist-cnn) and 150 (valley). It cannot "
        "test time to target (in a measured run no entry reached either workload's target in 60 steps) nor the "
        "final metric at the full budget; it checks that everything runs and reports."),
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
    "seed-claims": Suite(
        "every claim of the lesson, checked on real workloads (inertia.lab.claims)", _seed_claims, QUICK_COVERAGE),
}


def run_suite(name: str, out: str = DEFAULT_OUT, quick: bool = False, quiet: bool = True,
              seeds: Sequence[int] | None = None, jobs: int | None = None) -> pd.DataFrame:
    """Run a named suite (``inertia compare --suite NAME``)."""
    if name not in SUITES:
        raise SpecError(f"Invalid suite {name!r}: valid names: {', '.join(SUITES)}")
    return SUITES[name].run(out, quick=quick, quiet=quiet, seeds=list(seeds) if seeds else None, jobs=jobs)

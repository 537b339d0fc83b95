"""The suite's protocol: the scenarios, their budgets, and the two arms of every optimizer.

Every family (Adam, RMSprop, SGD+Momentum) runs on every seed in two arms:

* **tuned**: the lab's equal-budget tuning (:mod:`inertia.lab.tuning`, the same as the main
  job's) chooses its lr on the validation split, the same number of trials for each family;
* **default**: its library-default lr, what an untuned user gets (``;tune=no``).

Nothing else is tuned (momentum stays 0.9, betas at their defaults).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..specs import OptimizerSpec, hyperparameters
from .table import FAMILIES


def library_default_lr(family: str) -> float:
    """The lr an untuned user gets: the default of the inertia class's constructor."""
    return float(hyperparameters(FAMILIES[family][0])["lr"])


def library_lrs() -> dict[str, float]:
    return {family: library_default_lr(family) for family in FAMILIES}


@dataclass(frozen=True)
class Scenario:
    """One scenario of the suite: a workload with options and how the optimizers run on it."""

    key: str  # "image", "text", "recsys-lazy", "recsys-dense"
    title: str
    workload: str  # registry name
    options: dict[str, Any]
    hparams: dict[str, Any] = field(default_factory=dict)  # added to every entry (sparse mode)


#: trials per family (the main job's budget) and in the quick version
FULL_TRIALS, QUICK_TRIALS = 8, 4

#: what ``--suite seed-claims --quick`` covers and cannot test (printed in its report)
QUICK_COVERAGE = (f"{QUICK_TRIALS} tuning trials per optimizer instead of {FULL_TRIALS}, shorter runs on subsets of the "
                  "data, and no densified recommender scenario: the claim about densified sparse gradients is not "
                  "tested, and the other verdicts are a smoke test of the protocol, not evidence.")


def scenarios(quick: bool = False) -> list[Scenario]:
    """The suite's scenarios and budgets (times are in ``docs/lab.md``)."""
    if quick:
        return [
            Scenario("image", "image classification (MNIST, small ResNet)", "mnist-cnn",
                     dict(channels=8, blocks=2, steps=120)),
            Scenario("text", "BERT fine-tuning (MiniLM-L6 on food reviews)", "reviews",
                     dict(trainable_layers=1, max_len=48, batch_size=32, steps=40, eval_every=10,
                          train_subset=1000, val_subset=300, test_subset=400)),
            Scenario("recsys-lazy", "recommender, sparse gradients, lazy updates (MovieLens MF)", "movielens",
                     dict(steps=200, eval_every=25), {"sparse": "lazy"}),
        ]
    rec = dict(steps=1000, eval_every=100)
    return [
        Scenario("image", "image classification (MNIST, small ResNet)", "mnist-cnn",
                 dict(channels=8, blocks=2, steps=300)),
        Scenario("text", "BERT fine-tuning (MiniLM-L6 on food reviews)", "reviews",
                 dict(trainable_layers=1, max_len=64, batch_size=32, steps=100, eval_every=20, test_subset=600)),
        Scenario("recsys-lazy", "recommender, sparse gradients, lazy updates (MovieLens MF)",
                 "movielens", rec, {"sparse": "lazy"}),
        Scenario("recsys-dense", "recommender, sparse gradients densified (MovieLens MF)",
                 "movielens", rec, {"sparse": "dense"}),
    ]


def entries(scenario: Scenario) -> list[tuple[str, OptimizerSpec]]:
    """``(family, OptimizerSpec)`` for both arms of every family: tuned (no lr: tuning chooses it)
    and default (the library lr, run as given)."""
    out = []
    for family, (name, fixed) in FAMILIES.items():
        # fused=False: every entry runs the same reference implementation, so the suite
        # compares algorithms, not which of them happens to have a fast kernel.
        hp = {**fixed, **scenario.hparams, "fused": False}
        out.append((family, OptimizerSpec(name, hp, label=family)))
        out.append((family, OptimizerSpec(name, {**hp, "lr": library_default_lr(family)},
                                          label=f"{family} at its default lr", fixed=True)))
    return out

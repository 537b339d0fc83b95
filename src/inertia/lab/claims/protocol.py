"""The suite's protocol: the scenarios, their budgets and the fair learning-rate sweep."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..specs import OptimizerSpec, hyperparameters
from ..tuning import grid
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
    factors: tuple[float, ...]  # the lr sweep: workload default lr times these
    hparams: dict[str, Any] = field(default_factory=dict)  # added to every entry (sparse mode)


#: what ``--suite seed-claims --quick`` covers and cannot test (printed in its report)
QUICK_COVERAGE = ("3 learning rates per optimizer instead of 5, shorter runs on subsets of the data, and no "
                  "densified recommender scenario: the claim about densified sparse gradients is not tested, and "
                  "the other verdicts are a smoke test of the protocol, not evidence.")

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
                          train_subset=1000, val_subset=300, test_subset=400), QUICK_FACTORS),
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


def learning_rates(workload_lr: float, library_lr: float, factors) -> list[float]:
    """The sweep: ``workload_lr * factors`` plus ``library_lr`` (see :func:`inertia.lab.tuning.grid`)."""
    return grid(workload_lr, library_lr, factors)


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

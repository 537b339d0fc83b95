"""The workload registry: names, one-line descriptions, and where each workload is built.

Entries point at factories as ``"module:function"`` strings and are imported only when
the workload is built, so ``inertia workloads`` lists everything without importing
heavy dependencies (transformers for ``reviews``). A factory takes keyword options and
returns a :class:`~inertia.lab.workload.Workload`; ``get("valley", noise=1.0)`` passes
them through. Adding a workload means adding one entry here.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

from ..workload import Workload


@dataclass(frozen=True)
class Entry:
    factory: str  # "package.module:function"
    description: str
    options: dict[str, Any] = field(default_factory=dict)  # passed to the factory

    def build(self, **options: Any) -> Workload:
        module, _, func = self.factory.partition(":")
        return getattr(importlib.import_module(module), func)(**{**self.options, **options})


REGISTRY: dict[str, Entry] = {
    "valley": Entry("inertia.lab.workloads.surfaces:valley",
                    "narrow 2-D quadratic valley (condition number 50), exact gradients; trajectories on contours"),
    "valley-noisy": Entry("inertia.lab.workloads.surfaces:valley_noisy",
                          "the narrow valley with Gaussian gradient noise (option noise=, default 2.0)"),
    "rosenbrock": Entry("inertia.lab.workloads.surfaces:rosenbrock",
                        "Rosenbrock's banana valley from (-1.5, 2), exact gradients; trajectories on contours"),
    "rosenbrock-noisy": Entry("inertia.lab.workloads.surfaces:rosenbrock_noisy",
                              "Rosenbrock with Gaussian gradient noise (option noise=, default 1.0)"),
    "minibatch": Entry("inertia.lab.workloads.mnist:minibatch",
                       "batch (m) vs stochastic (1) vs mini-batch (64, 256) GD, softmax regression on MNIST"),
    "mnist-mlp": Entry("inertia.lab.workloads.mnist:mnist_mlp",
                       "784-128-10 MLP on 3,500 real MNIST digits (stratified split), target 90% accuracy"),
    "mnist-cnn": Entry("inertia.lab.workloads.mnist:mnist_cnn",
                       "small ResNet (residual blocks + batch norm) on real MNIST digits, target 90% accuracy"),
    "reviews": Entry("inertia.lab.workloads.reviews:workload",
                     "sentiment of real reviews with a small pretrained transformer (needs inertia[text])"),
    "movielens": Entry("inertia.lab.workloads.movielens:workload",
                       "matrix factorisation on MovieLens ratings, sparse embedding gradients (needs inertia[recsys])"),
}


class UnknownWorkloadError(KeyError):
    """A workload name not in the registry; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str, **options: Any) -> Workload:
    """Build the named workload with its options (``get("valley-noisy", noise=0.5)``).

    The workload remembers how it was built (:attr:`Workload.source`), so a worker process
    can build its own copy instead of receiving the data.
    """
    if name not in REGISTRY:
        raise UnknownWorkloadError(f"unknown workload {name!r}; valid names: {', '.join(REGISTRY)}")
    return dataclasses.replace(REGISTRY[name].build(**options), source=(name, dict(options)))


def describe() -> list[tuple[str, str]]:
    """``(name, description)`` for every workload, importing nothing."""
    return [(name, entry.description) for name, entry in REGISTRY.items()]

"""The workload registry: names, one-line descriptions, and where each workload is built.

Entries point at factories as ``"module:function"`` strings and are imported only when
the workload is built, so ``inertia workloads`` lists everything without importing
heavy dependencies (transformers for ``reviews``). A factory takes keyword options and
returns a :class:`~inertia.lab.workload.Workload`; ``get("valley", noise=1.0)`` passes
them through. Adding a workload means adding one entry here.

Your own workload needs no entry: ``get("mypkg.mymodule:make_workload")`` (and
``inertia compare --workload mypkg.mymodule:make_workload``) imports the module and calls
the function, which returns a :class:`~inertia.lab.workload.Workload` (:func:`load`).
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
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
    "mnist-large-batch": Entry("inertia.lab.workloads.mnist:mnist_large_batch",
                               "the MNIST MLP at a global batch of 1,024 (29% of the training digits) by gradient "
                               "accumulation over micro-batches of 128 (the large-batch suite)"),
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
    """Build the named workload with its options (``get("valley-noisy", noise=0.5)``), or load
    one from an import path (``get("mypkg.mymodule:make_workload")``, :func:`load`).

    The workload remembers how it was built (:attr:`Workload.source`), so a worker process
    can build its own copy instead of receiving the data.
    """
    if is_import_path(name):
        return dataclasses.replace(load(name, **options), source=(name, dict(options)))
    if name not in REGISTRY:
        raise UnknownWorkloadError(f"unknown workload {name!r}; valid names: {', '.join(REGISTRY)} "
                                   "(or your own as MODULE:FUNCTION, e.g. mypkg.mymodule:make_workload)")
    return dataclasses.replace(REGISTRY[name].build(**options), source=(name, dict(options)))


def is_import_path(name: str) -> bool:
    """``mypkg.mymodule:make_workload`` or ``path/to/file.py:make_workload``, not a registry name."""
    module, colon, func = name.rpartition(":")
    return bool(colon and module and func.isidentifier())


def load(target: str, **options: Any) -> Workload:
    """Import ``MODULE:FUNCTION`` and call ``FUNCTION(**options)``, which must return a Workload.

    ``MODULE`` is a module name (``mypkg.mymodule``; the current directory is searched
    first, as ``python -m`` does) or a file (``path/to/mine.py``). Whatever the function
    raises, or returns other than a :class:`Workload`, is an error naming the workload.
    """
    import os
    import sys

    from ..specs import SpecError

    module_name, _, func = target.rpartition(":")
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise SpecError(f"Invalid workload {target!r}: no file {path}")
            spec = importlib.util.spec_from_file_location(f"inertia_user_workload_{abs(hash(path))}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module: say what failed, naming the workload
        raise SpecError(f"Invalid workload {target!r}: importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, func, None)
    if not callable(factory):
        raise SpecError(f"Invalid workload {target!r}: {module_name} has no function {func!r}")
    try:
        work = factory(**options)
    except Exception as exc:  # noqa: BLE001
        raise SpecError(f"Invalid workload {target!r}: {func}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(work, Workload):
        raise SpecError(f"Invalid workload {target!r}: {func}() returned a {type(work).__name__}, expected a Workload "
                        "(build one with Workload.from_tensors)")
    return work


def describe() -> list[tuple[str, str]]:
    """``(name, description)`` for every workload, importing nothing."""
    return [(name, entry.description) for name, entry in REGISTRY.items()]

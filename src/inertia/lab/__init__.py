"""inertia's lab: compare optimizers side by side on fixed workloads, and say how sure it is.

The lab is laid out like its data flow:

* **workloads** — :class:`Workload` (data with train/validation/test splits, model, loss,
  metric, target, budget; :mod:`.workloads` has the built-ins and
  :meth:`Workload.from_tensors` checks your own) and :class:`OptimizerSpec` (name,
  hyperparameters, schedule; text form in :mod:`.specs`);
* **running and storing** — :mod:`.running` trains runs (small ones in parallel
  processes) into :class:`~.records.RunRecord` objects; :mod:`.store` keeps them in SQLite,
  so comparisons resume;
* **tuning** — :mod:`.tuning`: learning-rate sweeps, chosen on the validation split;
* **scoring** — :mod:`.scoring` and :mod:`.outcomes`: outcomes, medians with intervals,
  rank tests with Holm's correction, the claims, performance profiles — from records alone;
* **reporting** — :mod:`.reporting`: one document model rendered as Markdown, HTML and
  terminal text, with figures that carry text alternatives.

:func:`compare` runs a comparison and writes its report; :func:`report` rebuilds one from
a database; :func:`run_suite` runs a named suite (``seed-claims`` is :mod:`.claims`).

Example::

    from inertia.lab import compare
    table = compare(["valley"], ["adam:lr=0.2", "momentum:lr=0.3", "sgd"], seeds=range(5), out="valley-report")
"""
from __future__ import annotations

from .specs import OptimizerSpec
from .workload import Workload

custom_workload = Workload.from_tensors


def __getattr__(name: str):
    # keep `import inertia.lab` light: the API pulls in pandas, scipy and matplotlib
    if name in ("compare", "report", "load_runs", "plan"):
        from . import api
        return getattr(api, name)
    if name in ("run_suite", "SUITES"):
        from . import suites
        return getattr(suites, name)
    raise AttributeError(f"module 'inertia.lab' has no attribute {name!r}")


__all__ = ["Workload", "OptimizerSpec", "custom_workload", "compare", "report", "load_runs", "plan", "run_suite"]

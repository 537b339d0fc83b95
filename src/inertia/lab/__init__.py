"""inertia's lab: compare optimizers side by side on fixed workloads, honestly.

* :class:`Workload` (the problem: data, model, loss, metric, target, budget) and
  :class:`OptimizerSpec` (name, hyperparameters, schedule) are separate (AlgoPerf's split).
* :func:`compare` trains every (workload, entry, seed) run, stores each in SQLite
  (:mod:`inertia.lab.store`, resumable), and writes a report (:mod:`inertia.lab.report`);
  it returns the summary as a pandas DataFrame. :func:`report` rebuilds a report from a
  database alone.
* Building blocks for other suites: :func:`inertia.lab.runner.train` (one run),
  :class:`inertia.lab.store.Store`, :mod:`inertia.lab.stats` (time to target, medians,
  the "beats" rule), :func:`inertia.lab.report.build`.

Example::

    from inertia.lab import compare
    table = compare(["valley"], ["adam:lr=0.2", "momentum:lr=0.3", "sgd"], seeds=[0, 1, 2], out="valley-report")
"""
from __future__ import annotations

from .workload import OptimizerSpec, Workload

custom_workload = Workload.from_tensors


def __getattr__(name: str):
    # keep `import inertia.lab` light: the API pulls in pandas and matplotlib
    if name in ("compare", "report", "load_runs", "plan", "run_suite", "SUITES"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'inertia.lab' has no attribute {name!r}")


__all__ = ["Workload", "OptimizerSpec", "custom_workload", "compare", "report", "load_runs", "plan", "run_suite"]

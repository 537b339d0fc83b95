"""The lab's Python API, mirroring the CLI: :func:`compare`, :func:`report`, :func:`load_runs`.

A comparison is workloads x optimizer entries x seeds. :func:`compare` validates everything
first (unknown names, invalid hyperparameters, an unusable output folder or database all
fail before any training), then trains each run that the database does not already hold,
saving each in one transaction, and finally renders the report from the database.
Interrupt it and run it again: finished runs are skipped, the rest are trained.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from . import runner, specs
from . import workloads as registry
from .progress import bars, format_table
from .report import build
from .store import Store, StoreError
from .workload import OptimizerSpec, Workload

#: the seed lesson's headline entries: Adam, RMSprop, SGD+Momentum (the lesson's form), plain SGD
HEADLINE_OPTIMIZERS = ("adam", "rmsprop", "momentum", "sgd")
HEADLINE_WORKLOADS = ("mnist-cnn", "valley")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_OUT = "inertia-report"


class OutputError(RuntimeError):
    """The output folder cannot be created or written; nothing was changed."""


def resolve_workload(w: str | Workload) -> Workload:
    """A Workload as is, or a registry name with options: ``"valley-noisy:noise=0.5"``."""
    if isinstance(w, Workload):
        return w
    name, options = specs.parse_workload(w)
    try:
        return registry.get(name, **options)
    except TypeError as exc:  # an option the factory does not take
        raise specs.SpecError(f"Invalid option for workload {name!r}: {exc}") from None


def resolve_entries(optimizers: Iterable[str | OptimizerSpec] | None, workload: Workload) -> list[OptimizerSpec]:
    """Entries as given (strings parsed), else the workload's defaults, else the headline four."""
    if optimizers:
        return [o if isinstance(o, OptimizerSpec) else specs.parse_optimizer(o) for o in optimizers]
    if workload.default_entries:
        return list(workload.default_entries)
    return [OptimizerSpec(name) for name in HEADLINE_OPTIMIZERS]


def check_output(out: Path) -> None:
    """Create ``out`` and prove it is writable, or raise :class:`OutputError`."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".inertia-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {out}: {exc.strerror or exc}") from None


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, before any training."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise specs.SpecError(f"Invalid device: {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise specs.SpecError(f"Invalid device: {device!r} (no CUDA device is available here; use cpu)")


def plan(workloads: Sequence[str | Workload] | None = None, optimizers: Sequence[str | OptimizerSpec] | None = None,
         seeds: Sequence[int] = DEFAULT_SEEDS, steps: int | None = None) -> list[tuple[Workload, OptimizerSpec, int]]:
    """Resolve and validate a comparison into its runs, training nothing.

    Every entry is constructed on a dummy parameter with each workload's default learning
    rate (and its schedule built), so invalid hyperparameters raise the optimizer's own
    ValueError here, before any run starts.
    """
    ws = [resolve_workload(w) for w in (workloads or HEADLINE_WORKLOADS)]
    if steps is not None:
        ws = [w.with_budget(steps) for w in ws]
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("Invalid seeds: [] (need at least one)")
    runs = []
    for w in ws:
        entries = resolve_entries(optimizers, w)
        labels = [e.display for e in entries]
        if len(set(labels)) != len(labels):
            raise specs.SpecError(f"two entries share a label on {w.name}: {labels} (give one a label=)")
        for e in entries:
            specs.validate(e, w.default_lr, w.steps)
            if e.batch_size is not None and w.batch_size is None:
                raise specs.SpecError(f"Invalid batch: {e.batch_size} in {e.display} "
                                      f"(workload {w.name!r} has no batch size)")
        runs += [(w, e, s) for e in entries for s in seeds]
    return runs


def compare(workloads: Sequence[str | Workload] | None = None,
            optimizers: Sequence[str | OptimizerSpec] | None = None,
            seeds: Sequence[int] = DEFAULT_SEEDS, out: str | os.PathLike = DEFAULT_OUT,
            db: str | os.PathLike | None = None, steps: int | None = None, device: str | None = None,
            quiet: bool = False, title: str = "", command: str = "", write_report: bool = True,
            on_run: Callable[[runner.RunRecord], None] | None = None) -> pd.DataFrame:
    """Run a comparison (resuming from ``db``) and write its report; return the summary table.

    Args:
        workloads: names (``"valley"``, ``"valley-noisy:noise=0.5"``) or :class:`Workload` objects;
            default: the headline ``mnist-cnn`` and ``valley``.
        optimizers: entry strings (``"sgd:lr=0.1,momentum=0.9;schedule=cosine"``, see
            :mod:`inertia.lab.specs`) or :class:`OptimizerSpec`; default: each workload's own
            entries, else Adam, RMSprop, Momentum and SGD with the workload's learning rates.
        seeds: training seeds (initialisation and batch order).
        out: the report folder; ``db`` defaults to ``<out>/runs.sqlite``.
        steps: override every workload's step budget (a different budget is a different run).
        device: ``"cpu"``/``"cuda"``; default CUDA when present (2-D workloads stay on the CPU).
        quiet: no progress line (it only ever shows when stderr is a terminal).
        on_run: called with each newly trained run's record after it is saved.

    Returns:
        One row per (workload, entry): ``reached``, ``steps_to_target`` / ``seconds_to_target`` /
        ``final_metric`` / ``best_metric`` / ``steps_per_s`` … as median with ``_min``/``_max``,
        ``state_bytes``, ``peak_memory`` and ``rank`` within the workload (1 = best).
        ``df.attrs["claims"]`` lists the "A beats B" claims the seeds support.
    """
    runs = plan(workloads, optimizers, seeds, steps)
    if device is not None:
        check_device(device)
    out = Path(out)
    check_output(out)
    db_path = Path(db) if db is not None else out / "runs.sqlite"
    progress = bars(quiet)
    with Store(db_path) as store:
        keys = [runner.run_key(w, e, s) for w, e, s in runs]
        todo = [(run, k) for run, k in zip(runs, keys) if not store.has(k)]
        progress.begin(len(runs), skipped=len(runs) - len(todo))
        try:
            for (w, e, s), key in todo:
                rec = runner.train(w, e, s, device=device, progress=progress)
                store.save(rec, w.info())
                if on_run is not None:
                    on_run(rec)
        finally:
            progress.end()
        store.add_comparison(keys, title=title, command=command)
        if write_report:
            result = build(store, out, keys, title=title, command=command)
            summary = result["summary"]
        else:
            summary = _summary_only(store, keys)
    summary.attrs["claims"] = result["claims"] if write_report else []
    summary.attrs["db"] = str(db_path)
    return summary


def _summary_only(store: Store, keys: Sequence[str]) -> pd.DataFrame:
    from . import stats
    from .report import _infos
    records = store.runs(keys)
    infos = _infos(store, records)
    return stats.summarize(stats.run_frame(records, infos), infos)


def report(db: str | os.PathLike, out: str | os.PathLike, comparison: int | None = None,
           all_runs: bool = False) -> dict[str, Any]:
    """Regenerate a report from the database alone.

    By default it covers the latest comparison recorded in ``db`` (``comparison=ID`` picks
    another, ``all_runs=True`` takes every run). Returns :func:`inertia.lab.report.build`'s dict.
    """
    out = Path(out)
    check_output(out)
    with Store(db, readonly=True) as store:
        comp = None if all_runs else store.comparison(comparison)
        if comparison is not None and comp is None:
            raise StoreError(f"no comparison {comparison} in {db}")
        keys = comp["run_keys"] if comp else None
        return build(store, out, keys, title=(comp or {}).get("title", ""), command=(comp or {}).get("command", ""))


def load_runs(db: str | os.PathLike) -> pd.DataFrame:
    """Every run in a database as one row each (time to target, final metric, timings …)."""
    from . import stats
    from .report import _infos
    with Store(db, readonly=True) as store:
        records = store.runs()
        return stats.run_frame(records, _infos(store, records))


# ---------------------------------------------------------------------- suites

def _headline(out: str, quick: bool = False, quiet: bool = False, seeds=None) -> pd.DataFrame:
    return compare(seeds=seeds or DEFAULT_SEEDS, out=out, quiet=quiet, steps=60 if quick else None,
                   title="inertia: the lesson's headline comparison")


def _surfaces(out: str, quick: bool = False, quiet: bool = False, seeds=None) -> pd.DataFrame:
    return compare(["valley", "valley-noisy", "rosenbrock", "rosenbrock-noisy"], seeds=seeds or DEFAULT_SEEDS,
                   out=out, quiet=quiet, steps=100 if quick else None, title="inertia: 2-D surfaces")


def _minibatch(out: str, quick: bool = False, quiet: bool = False, seeds=None) -> pd.DataFrame:
    return compare(["minibatch"], seeds=seeds or DEFAULT_SEEDS, out=out, quiet=quiet,
                   steps=60 if quick else None, title="inertia: batch vs stochastic vs mini-batch")


def _seed_claims(out: str, quick: bool = False, quiet: bool = False, seeds=None) -> pd.DataFrame:
    from . import claims  # another module's suite: imported only when asked for
    return claims.run(out, quick=quick, quiet=quiet, seeds=seeds)


#: name -> (description, runner(out, quick, quiet, seeds) -> DataFrame)
SUITES: dict[str, tuple[str, Callable[..., pd.DataFrame]]] = {
    "headline": ("the default: Adam, RMSprop, Momentum, SGD on mnist-cnn and valley, 3 seeds", _headline),
    "surfaces": ("the four 2-D workloads (valley, rosenbrock, exact and noisy) with the headline four", _surfaces),
    "minibatch": ("batch vs stochastic vs mini-batch gradient descent on MNIST softmax regression", _minibatch),
    "seed-claims": ("every claim of the seed lesson, checked on real workloads (inertia.lab.claims)", _seed_claims),
}


def run_suite(name: str, out: str = DEFAULT_OUT, quick: bool = False, quiet: bool = True,
              seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Run a named suite (``inertia compare --suite NAME``)."""
    if name not in SUITES:
        raise specs.SpecError(f"unknown suite {name!r}; valid names: {', '.join(SUITES)}")
    return SUITES[name][1](out, quick=quick, quiet=quiet, seeds=list(seeds) if seeds else None)


__all__ = ["compare", "report", "load_runs", "plan", "run_suite", "SUITES", "OutputError", "format_table"]

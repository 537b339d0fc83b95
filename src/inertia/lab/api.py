"""The lab's Python API, mirroring the CLI: :func:`compare`, :func:`report`, :func:`load_runs`.

A comparison is workloads x optimizer entries x seeds. :func:`compare` checks everything
first (unknown names, invalid hyperparameters, wrong argument types, an unusable output
folder or database all fail before any training, with one message naming the argument).
With ``tune=N`` it then tunes every entry with the same budget (:mod:`inertia.lab.tuning`:
N trials each, chosen on validation) and replaces each entry by its tuned version. It
trains each run the database does not already hold — small models several at a time in
worker processes (:mod:`inertia.lab.running.pool`) — saving each in one transaction as it
finishes, and finally writes the report from the database. Interrupt it and run it again:
finished trials and runs are skipped, the rest (and any failed one) are trained.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from . import specs
from . import workloads as registry
from .progress import Progress
from .records import RunRecord
from .running import build, pool, runner
from .specs import OptimizerSpec, SpecError
from .store import Store, StoreError
from .tuning import Budget
from .workload import Workload

#: the lesson's headline entries: Adam, RMSprop, SGD+Momentum (the lesson's form), plain SGD
HEADLINE_OPTIMIZERS = ("adam", "rmsprop", "momentum", "sgd")
#: newer optimizers the main comparison adds after the headline four, each where inertia has it
#: (:data:`inertia.optim.registry.REGISTRY`) and the workload suits it (:func:`applies`)
NEWER_OPTIMIZERS = ("adamw", "adamw-schedulefree", "muon")
HEADLINE_WORKLOADS = ("mnist-cnn", "valley")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_OUT = "inertia-report"
#: trials per entry of the main job (``inertia compare`` with no arguments) and the suites
DEFAULT_TUNE = 8


class OutputError(RuntimeError):
    """The output folder cannot be created or written; nothing was changed."""


# ---------------------------------------------------------------------------- arguments

def _listed(value: Any, singles: tuple[type, ...]) -> list[Any]:
    """One item or a list of them, as a list (a string is one item, not its characters)."""
    if isinstance(value, singles) or isinstance(value, type):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError


def resolve_workload(w: Any) -> Workload:
    """A Workload as is, a registry name with options (``"valley-noisy:noise=0.5"``), or the
    import path of a function returning one (``"mypkg.mymodule:make_workload"``, see
    :func:`inertia.lab.workloads.load`)."""
    if isinstance(w, Workload):
        return w
    if not isinstance(w, str):
        hint = (" (build a workload from your model with Workload.from_tensors)"
                if hasattr(w, "parameters") or callable(w) else "")
        raise SpecError(f"Invalid workload {w!r}: expected a name such as 'valley', an import path such as "
                        f"'mypkg.mymodule:make_workload', or a Workload{hint}")
    name, options = specs.parse_workload(w)
    try:
        return registry.get(name, **options)
    except TypeError as exc:  # an option the factory does not take
        raise SpecError(f"Invalid workload {w!r}: {exc}") from None


def _is_pair(e: Any) -> bool:
    """``(class, {"lr": 3e-4})``: an optimizer class with its keyword arguments."""
    return isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], type) and isinstance(e[1], dict)


def resolve_entry(e: Any) -> OptimizerSpec:
    """An entry from its text, an :class:`OptimizerSpec`, an optimizer class, or a ``(class, kwargs)`` pair.

    inertia's own classes become their registry names (``inertia.Adam`` is ``adam``); any
    other ``torch.optim.Optimizer`` class is a peer, shown by its import path and run as is
    (``torch.optim.AdamW``, ``(torch.optim.SGD, {"lr": 0.1, "momentum": 0.9})``).
    """
    import torch

    if isinstance(e, OptimizerSpec):
        specs.check_hparams(e)
        return e
    if isinstance(e, str):
        return specs.parse_optimizer(e)
    cls, kwargs = e if _is_pair(e) else (e, {})
    if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
        names = {c: n for n, c in specs.optimizer_classes().items()}
        spec = (OptimizerSpec(names[cls], dict(kwargs)) if cls in names
                else OptimizerSpec(specs.class_path(cls), dict(kwargs), cls=cls))
        specs.check_hparams(spec)
        return spec
    raise SpecError(f"Invalid entry {e!r}: expected text such as 'adam:lr=1e-3' or 'torch.optim.AdamW:lr=3e-4', "
                    "an OptimizerSpec, a torch.optim.Optimizer class, or a (class, {'lr': ...}) pair")


def resolve_entries(optimizers: Any, workload: Workload) -> list[OptimizerSpec]:
    """Entries as given, else the workload's defaults, else the headline four."""
    if optimizers is not None and not (isinstance(optimizers, (list, tuple)) and not optimizers):
        try:
            items = [optimizers] if _is_pair(optimizers) else _listed(optimizers, (str, OptimizerSpec))
        except TypeError:
            raise SpecError(f"Invalid optimizers {optimizers!r}: expected a list of entries such as "
                            "['adam:lr=1e-3', 'sgd:lr=0.1']") from None
        return [resolve_entry(o) for o in items]
    if workload.default_entries:
        return list(workload.default_entries)
    from ..optim.registry import REGISTRY

    newer = [name for name in NEWER_OPTIMIZERS if name in REGISTRY and applies(name, workload)]
    return [OptimizerSpec(name) for name in HEADLINE_OPTIMIZERS + tuple(newer)]


def applies(name: str, workload: Workload) -> bool:
    """Whether the main comparison runs optimizer ``name`` on ``workload`` by default.

    Muon orthogonalises the update of each weight matrix and hands every other parameter to
    AdamW: on a model without matrices (the 2-D surfaces: one point of two coordinates) it
    would be AdamW under another name, so it runs only where the model has a parameter with
    two or more dimensions. Every other optimizer applies everywhere.
    """
    if name != "muon":
        return True
    import torch

    model = workload.init_model(0, torch.device("cpu"))
    return any(p.ndim >= 2 for p in model.parameters())


def resolve_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, (int, str)) or not isinstance(seeds, Iterable):
        raise SpecError(f"Invalid seeds {seeds!r}: expected a list of integers such as [0, 1, 2]")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) and not (hasattr(s, "__index__") and not isinstance(s, float)):
            raise SpecError(f"Invalid seeds {list(seeds)!r}: {s!r} is not an integer")
        if int(s) < 0:
            raise SpecError(f"Invalid seeds {list(seeds)!r}: {s!r} is negative")
        if int(s) in out:
            raise SpecError(f"Invalid seeds {list(seeds)!r}: seed {int(s)} is given twice")
        out.append(int(s))
    if not out:
        raise SpecError("Invalid seeds []: need at least one")
    return out


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"Invalid {name} {value!r}: must be a positive integer")
    return int(value)


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
    except (RuntimeError, TypeError) as exc:
        raise SpecError(f"Invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SpecError(f"Invalid device {device!r}: no CUDA device is available here; use cpu")


def plan(workloads: Any = None, optimizers: Any = None, seeds: Any = DEFAULT_SEEDS,
         steps: int | None = None) -> list[tuple[Workload, OptimizerSpec, int]]:
    """Resolve and check a comparison into its runs, training nothing.

    Every entry is built on a dummy parameter with each workload's learning rates (and its
    schedule over the budget), so an invalid hyperparameter fails here with the entry named.
    """
    if workloads is None or (isinstance(workloads, (list, tuple)) and not workloads):
        workloads = HEADLINE_WORKLOADS
    try:
        items = _listed(workloads, (str, Workload))
    except TypeError:
        items = [workloads]
    ws = [resolve_workload(w) for w in items]
    steps = _count(steps, "steps")
    if steps is not None:
        ws = [w.with_budget(steps) for w in ws]
    seeds = resolve_seeds(seeds)
    runs = []
    for w in ws:
        entries = resolve_entries(optimizers, w)
        labels = [e.display for e in entries]
        for label in labels:
            if labels.count(label) > 1:
                raise SpecError(f"Invalid entries: two are shown as {label!r} on {w.name} (give one a label=)")
        for e in entries:
            build.validate(e, w.default_lr, w.steps)
            if e.batch_size is not None and w.batch_size is None:
                raise SpecError(f"Invalid entry {e.source!r}: batch={e.batch_size}, but workload {w.name!r} has "
                                "no batch size")
        runs += [(w, e, s) for e in entries for s in seeds]
    return runs


# ---------------------------------------------------------------------------- running

def resolve_budget(tune: Any) -> Budget | None:
    """``tune`` as a :class:`~inertia.lab.tuning.Budget`: None or 0 for no tuning, N trials, or a Budget."""
    if tune is None or isinstance(tune, Budget):
        return tune
    if isinstance(tune, bool) or not isinstance(tune, int) or tune < 0:
        raise SpecError(f"Invalid tune {tune!r}: the number of trials per entry (0: no tuning), or a Budget")
    return Budget(tune) if tune else None


def compare(workloads: Any = None, optimizers: Any = None, seeds: Any = DEFAULT_SEEDS,
            out: str | os.PathLike = DEFAULT_OUT, db: str | os.PathLike | None = None, steps: int | None = None,
            device: str | None = None, threads: int | None = None, jobs: int | None = None, quiet: bool = False,
            title: str = "", command: str = "", notes: Sequence[str] = (), write_report: bool = True,
            on_run: Callable[[RunRecord], None] | None = None, tune: int | Budget | None = None,
            storage: str | None = None, worker: bool = False) -> pd.DataFrame | int:
    """Run a comparison (resuming from ``db``) and write its report; return the summary table.

    Args:
        workloads: names (``"valley"``, ``"valley-noisy:noise=0.5"``) or :class:`Workload` objects
            (one or a list); default: the headline ``mnist-cnn`` and ``valley``.
        optimizers: entry strings (``"sgd:lr=0.1,momentum=0.9;schedule=cosine"``, see
            :mod:`inertia.lab.specs`), :class:`OptimizerSpec` objects or inertia optimizer classes;
            default: each workload's own entries, else Adam, RMSprop, Momentum and SGD, then
            AdamW, Schedule-Free AdamW and Muon where inertia has them and they apply
            (:data:`NEWER_OPTIMIZERS`, :func:`applies`), at the workload's hand-picked learning
            rates (tuned with ``tune``).
        seeds: training seeds (initialisation and batch order); 5 or more for verdict words.
        out: the report folder; ``db`` defaults to ``<out>/runs.sqlite``.
        steps: override every workload's step budget (a different budget is a different run).
        device: ``"cpu"``/``"cuda"``; default CUDA when present (2-D workloads stay on the CPU).
        threads: torch threads per run (default: the workload's ``cpu_threads``; 1 for small models).
        jobs: runs at a time for small models, in worker processes (default: one per core
            that other work leaves idle, measured when the pool would start; 1: everything in
            this process, one by one).
        quiet: no progress bar (it only ever shows when stderr is a terminal).
        notes: sentences the report prints under its title (what a quick suite leaves out).
        on_run: called with each newly trained run's record after it is saved.
        tune: tune every entry first with the same budget: the number of trials per entry, or a
            :class:`~inertia.lab.tuning.Budget` (pruner, sampler, other knobs); None or 0: run
            the entries as given. Tuned entries take the lr (and knobs) of their best trial
            on the validation split and are shown by their name without it.
        storage: the Optuna study storage for tuning: a database URL such as
            ``postgresql://user@host/db`` shared by several machines; default an SQLite file
            ``<out>/studies.sqlite``.
        worker: only work on the tuning trials of a comparison that another process runs with
            the same ``storage`` and arguments; train no final runs, write no report, and
            return the number of trials this process ran.

    Returns:
        One row per (workload, entry) — see :func:`inertia.lab.scoring.summarize`: outcome
        counts, medians with intervals of steps/seconds to target and of the final test,
        best and final validation metrics, lr and its source, timings, memory, ``rank``.
        ``df.attrs`` holds ``claims``, ``verdicts``, ``advice``, ``document`` (the report)
        and ``db``.
    """
    runs = plan(workloads, optimizers, seeds, steps)
    threads, jobs = _count(threads, "threads"), _count(jobs, "jobs")
    budget = resolve_budget(tune)
    if worker and budget is None:
        raise SpecError("Invalid worker=True: a worker works on tuning trials; give tune=N (--tune N)")
    if device is not None:
        check_device(device)
    out = Path(out)
    check_output(out)
    db_path = Path(db) if db is not None else out / "runs.sqlite"
    started, load0 = time.perf_counter(), runner.load_average()
    tuning_keys: list[str] = []
    if budget is not None:
        tuned = _tune(runs, budget, out, storage, device, threads, jobs, quiet, worker)
        if worker:
            return tuned
        runs, tuning_keys, tuned_list = tuned
        with Store(db_path) as store:
            for t in tuned_list:
                store.save_tuning(t.plan.key, t.plan.workload, _workload_of(runs, t).config(), t.plan.label, t.data)
    with Store(db_path) as store:
        keys = [runner.run_key(w, e, s) for w, e, s in runs]
        todo = [pool.Task(w, e, s) for (w, e, s), k in zip(runs, keys) if not store.has(k)]
        infos = {k: w.info() for (w, _, _), k in zip(runs, keys)}
        concurrency = [1]
        with Progress(len(runs), skipped=len(runs) - len(todo), quiet=quiet) as bar:
            def begin(t: pool.Task) -> None:
                bar.start(f"{t.workload.name} {t.spec.display} seed {t.seed}", t.workload.steps)

            for rec in pool.run_all(todo, device=device, threads=threads, jobs=jobs, on_start=begin, on_step=bar.step):
                store.save(rec, infos[rec.key])
                concurrency.append(rec.concurrency)
                bar.done(f"{rec.workload} {rec.label} seed {rec.seed}", rec.status)
                if on_run is not None:
                    on_run(rec)
        meta = {"wall_time": time.perf_counter() - started, "trained": len(todo), "skipped": len(runs) - len(todo),
                "jobs": max(concurrency), "cpus": pool.cpus(), "load": [load0, runner.load_average()], "notes": list(notes),
                "tunings": tuning_keys, "budget": budget.to_dict() if budget else None}
        store.add_comparison(keys, title=title, command=command, meta=meta)
        from .reporting import comparison  # matplotlib and scipy: only once there is something to report

        if write_report:
            result = comparison.build(store, out, keys, title=title, command=command, meta=meta)
            summary = result["summary"]
            summary.attrs.update({k: result[k] for k in ("claims", "verdicts", "advice", "document")})
        else:
            summary = comparison.score(store, keys)["summary"]
    summary.attrs["db"] = str(db_path)
    return summary


def _tune(runs, budget: Budget, out: Path, storage: str | None, device, threads, jobs, quiet: bool, worker: bool):
    """Tune every (workload, entry) of ``runs``; return the runs with tuned entries (or, for a
    worker, the number of trials it ran)."""
    from .tuning import driver, study

    pairs: list[tuple[Workload, OptimizerSpec]] = []
    for w, e, _ in runs:
        if not e.fixed and not any(w is pw and e == pe for pw, pe in pairs):
            pairs.append((w, e))
    url = study.storage_url(storage, out)
    from .tuning.budget import rungs

    total = sum(rungs(budget.trials, w.steps, w.eval_every, budget.pruner).planned_trials() for w, _ in pairs)
    with Progress(total, quiet=quiet, unit="trial") as bar:
        result = driver.tune(pairs, budget, url, device=device, threads=threads, jobs=jobs, worker=worker,
                             on_trial=lambda r: bar.done(f"{r.get('study', 'trial')} slot {r.get('slot', '?')} "
                                                         f"rung {r.get('rung', '?')}", r["outcome"]))
    if worker:
        return result
    def tuned_of(w: Workload, e: OptimizerSpec) -> OptimizerSpec:
        return e if e.fixed else next(t for (pw, pe), t in zip(pairs, result) if pw is w and pe == e).spec

    tuned_runs = [(w, tuned_of(w, e), s) for w, e, s in runs]
    return tuned_runs, [t.plan.key for t in result], result


def _workload_of(runs, tuned) -> Workload:
    return next(w for w, e, _ in runs if e.tuned == tuned.plan.key)


def report(db: str | os.PathLike, out: str | os.PathLike, comparison: int | None = None,
           all_runs: bool = False) -> dict[str, Any]:
    """Regenerate a report from the database alone.

    By default it covers the latest comparison recorded in ``db`` (``comparison=ID`` picks
    another, ``all_runs=True`` takes every run). Returns :func:`inertia.lab.reporting.comparison.build`'s dict.
    """
    from .reporting.comparison import build as build_report

    which = comparison
    out = Path(out)
    check_output(out)
    with Store(db, readonly=True) as store:
        comp = None if all_runs else store.comparison(which)
        if which is not None and comp is None:
            raise StoreError(f"no comparison {which} in {db}")
        keys = comp["run_keys"] if comp else None
        comp = comp or {}
        return build_report(store, out, keys, title=comp.get("title", ""), command=comp.get("command", ""),
                            meta=comp.get("meta"))


def load_runs(db: str | os.PathLike) -> pd.DataFrame:
    """Every run in a database as one row each (outcome, time to target, metrics, lr, timings …)."""
    from .reporting import comparison

    with Store(db, readonly=True) as store:
        return comparison.score(store)["runs"]


__all__ = ["compare", "report", "load_runs", "plan", "resolve_budget", "OutputError", "DEFAULT_SEEDS", "DEFAULT_OUT",
           "DEFAULT_TUNE"]

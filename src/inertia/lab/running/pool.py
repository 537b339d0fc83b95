"""Train many runs: small ones several at a time in worker processes, the rest one by one.

A small model (a workload with ``cpu_threads=1``: the 2-D surfaces, the MNIST models,
MovieLens, a user model of up to a million parameters) gains nothing from a second torch
thread, which mostly spin-waits (issue 13 measured fifteen runs of a user MLP on 2 cores:
87 s with torch's default threads, 15 s with one thread each, identical metrics). So such
runs are trained single-threaded, ``jobs`` at a time, in separate processes (one run per
process at a time, so runs never share a torch thread pool). A pool costs a few seconds
per worker to start, so it is used only when the runs it would take are measured to be
worth it (:func:`run_all`); on a machine already busy with other work it cannot help much,
and the load average in every record says how busy the machine was.

Two kinds of run never go to the pool: workloads whose entries are ranked by wall time
(``extras["rank_by"] = "seconds"``, the minibatch lesson) and big models (``cpu_threads``
not 1), which use the machine's cores themselves. Every record says how many runs shared
the machine while it trained (:attr:`~inertia.lab.records.RunRecord.concurrency`), so no
report mistakes a shared-machine timing for a clean one.

Workers are joblib's loky processes: fresh interpreters (no fork of a process holding
OpenMP or numba threads), reused across comparisons, and ended when the comparison ends
or dies (:func:`_watch_parent`). A registry workload is rebuilt in
the worker from its name and options; a user workload travels by cloudpickle, closures
and data included.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..records import RunRecord
from ..specs import OptimizerSpec
from ..workload import Workload
from . import runner


@dataclass(frozen=True)
class Task:
    """One run to train."""

    workload: Workload
    spec: OptimizerSpec
    seed: int


def cpus() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def parallel_ok(workload: Workload, device: str | None, threads: int | None) -> bool:
    """Whether this workload's runs may train side by side in worker processes."""
    dev = device or workload.device or ("cuda" if _cuda() else "cpu")
    single = (threads or workload.cpu_threads) == 1
    timed = (workload.extras or {}).get("rank_by") == "seconds"
    return str(dev) == "cpu" and single and not timed


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _portable(workload: Workload) -> Any:
    """What to send a worker: the registry recipe when there is one, else the workload itself."""
    if workload.source is None:
        return workload
    name, options = workload.source
    return ("registry", name, options, workload.steps, workload.eval_every)


def _rebuild(portable: Any) -> Workload:
    if isinstance(portable, Workload):
        return portable
    _, name, options, steps, eval_every = portable
    from ..workloads import get

    return get(name, **options).with_budget(steps, eval_every)


def _watch_parent(parent: int) -> None:
    """Run in every worker as it starts: end the worker when the comparison that started it dies.

    joblib's loky ends its workers on a normal exit or Ctrl-C; after ``kill -9`` they would
    keep training runs nobody will store, then idle. A daemon thread sees the parent go
    (the worker is re-parented) within a second and exits the process. ``parent`` is the
    comparison's pid, passed in, since it may already be gone when the worker starts.
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="inertia-parent-watch", daemon=True).start()


def _work(portable: Any, spec: OptimizerSpec, seed: int, device: str | None, threads: int | None,
          concurrency: int) -> RunRecord:
    """A worker's job: build the workload and train one run."""
    return runner.train(_rebuild(portable), spec, seed, device=device, threads=threads, concurrency=concurrency)


#: a pool is started only when the runs it would take are expected to need this many seconds one by one
POOL_WORTH_S = 20.0


def idle_cores(sample: float = 0.3) -> float:
    """Cores left idle by every process on the machine, measured over ``sample`` seconds.

    Read from ``/proc/stat`` (Linux): the idle share of CPU time times the number of
    cores; elsewhere all cores count as idle. It is measured while this process waits, so
    it shows what other work leaves free, which the lagging load average does not.
    """
    import time

    def times() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)

    try:
        idle0, total0 = times()
        time.sleep(sample)
        idle1, total1 = times()
    except (OSError, ValueError, IndexError):
        return float(cpus())
    return cpus() * (idle1 - idle0) / max(1, total1 - total0)


def split(tasks: list[Task], device: str | None, threads: int | None, jobs: int | None) -> tuple[list[Task], list[Task], int]:
    """``(poolable, here, jobs)``: which tasks may go to worker processes and how many at a time."""
    jobs = cpus() if jobs is None else int(jobs)
    flags = [jobs > 1 and parallel_ok(t.workload, device, threads) for t in tasks]
    pooled = [t for t, f in zip(tasks, flags) if f]
    here = [t for t, f in zip(tasks, flags) if not f]
    if len(pooled) == 1:  # a pool for one run only costs its start-up
        here, pooled = pooled + here, []
    return pooled, here, min(jobs, len(pooled)) if pooled else 1


def run_all(tasks: Iterable[Task], *, device: str | None = None, threads: int | None = None,
            jobs: int | None = None, on_start: Callable[[Task], None] | None = None,
            on_step: runner.OnStep | None = None) -> Iterator[RunRecord]:
    """Train every task and yield each record as soon as it is done (store it right away).

    Whether a pool is worth its start-up (a few seconds per worker: a fresh interpreter
    imports torch) is measured, not guessed: the first run of each poolable workload trains
    here, alone (so its timing is clean), and the rest go to the pool only when they are
    expected to take more than :data:`POOL_WORTH_S` seconds one by one.

    By default (``jobs=None``) the pool gets one worker per core that other work leaves idle
    (:func:`idle_cores`, measured just before it starts): on a 2-core machine busy with
    other processes, two workers only add their start-up (measured: 12 MNIST runs took
    74 s one by one and 80-92 s two at a time while other tests ran, 61 s two at a time once
    the machine was quiet).

    Args:
        jobs: runs at a time for workloads that allow it (:func:`parallel_ok`); None: one per
            idle core; 1 trains everything here, one by one; N forces N at a time.
        threads: torch threads per run (default: each workload's ``cpu_threads``).
        on_start: called before a run starts here (not for pool runs, which start in bulk).
        on_step: per-step callback for runs trained here (progress display).
    """
    poolable, here, n = split(list(tasks), device, threads, jobs)

    def local(t: Task) -> RunRecord:
        if on_start is not None:
            on_start(t)
        return runner.train(t.workload, t.spec, t.seed, device=device, threads=threads, on_step=on_step)

    seconds: dict[int, float] = {}  # one run's wall time per workload, measured here
    rest = []
    for t in poolable:
        if id(t.workload) in seconds:
            rest.append(t)
            continue
        rec = local(t)
        seconds[id(t.workload)] = rec.wall_time
        yield rec
    expected = sum(seconds[id(t.workload)] for t in rest)
    n = min(n, worth_a_pool(expected, len(rest), jobs))
    if n > 1:
        yield from _pooled(rest, n, device, threads)
    else:
        here = rest + here
    for t in here:
        yield local(t)


def executor(jobs: int) -> Any:
    """The pool of ``jobs`` worker processes (joblib's loky, reused across calls; module docstring)."""
    from joblib.externals.loky import get_reusable_executor

    # one torch/OpenMP thread per worker from its very start (the runner sets it per run too);
    # loky starts each worker with this process's sys.path, so a user's workload module imports there too
    env = {var: "1" for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
    return get_reusable_executor(max_workers=jobs, env=env, initializer=_watch_parent, initargs=(os.getpid(),))


def worth_a_pool(expected_seconds: float, n_tasks: int, jobs: int | None) -> int:
    """How many workers to start for work expected to take ``expected_seconds`` one by one (1: none)."""
    if n_tasks < 2 or expected_seconds <= POOL_WORTH_S:
        return 1
    n = cpus() if jobs is None else int(jobs)
    if jobs is None:  # one per core other work leaves idle: on a busy machine a pool only adds start-up
        n = min(n, max(1, round(idle_cores())))
    return max(1, min(n, n_tasks))


def _pooled(tasks: list[Task], jobs: int, device: str | None, threads: int | None) -> Iterator[RunRecord]:
    from concurrent.futures import as_completed

    pool = executor(jobs)
    futures = [pool.submit(_work, _portable(t.workload), t.spec, t.seed, device, threads, jobs) for t in tasks]
    try:
        for done in as_completed(futures):
            yield done.result()
    except BaseException:  # Ctrl-C, or the caller stopped early: no run keeps training for nobody
        for f in futures:
            f.cancel()
        pool.shutdown(wait=False, kill_workers=True)
        raise

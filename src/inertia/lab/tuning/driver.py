"""Running tuning studies: plan each entry's study, work on the trials (here, in worker
processes, or on other machines), and turn what was found into the entries to re-run.

:func:`tune` is what :func:`inertia.lab.compare` calls with ``tune=N``: one study per
(workload, entry), all sharing one :class:`~.budget.Budget`. A trial trains the entry
with the trial's hyperparameters on :data:`~.budget.TUNING_SEED`, reports its validation
metric at every evaluation (where the pruner may stop it), and never looks at the test
split. When every study is finished, each entry's best trial (:mod:`inertia.lab.scoring.tuning`)
becomes a tuned entry, re-run by the comparison on its seeds and judged on test.

Work is shared through the study storage: small models run their trials in worker
processes (:mod:`inertia.lab.running.pool`) when that is measured to be worth it, and any
number of other processes, on this machine or others with the same ``storage``, may join
(``inertia compare ... --storage URL --worker``). Each claims one waiting trial at a time
(:meth:`.study.Study.claim`), so the planned trials run once each, whoever runs them.
"""
from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import optuna

from ..records import COMPLETED, DIVERGED, FAILED, PRUNED
from ..running import pool, runner
from ..scoring import tuning as found
from ..specs import OptimizerSpec, SpecError, fail, hyperparameters, jsonable
from ..workload import Workload
from . import space as sp
from .budget import Budget, rungs
from .study import Heartbeat, Plan, Study, study_key

#: seconds between looks at the storage while other processes hold the remaining trials
POLL_S = 0.5
#: continue a configuration's paused training at its next rung when this process still holds it
#: (False: always train it again from its start; the results are the same, only slower)
CONTINUE = True
#: at most this many bytes of paused trainings (parameters and optimizer state) are kept
CACHE_BYTES = 512 * 2**20

_paused: "OrderedDict[tuple[str, int], runner.Training]" = OrderedDict()


@dataclass
class Job:
    """One study to work on: the workload, the entry (without the tuned values), the plan."""

    workload: Workload
    spec: OptimizerSpec
    plan: Plan
    url: str


def untuned(spec: OptimizerSpec, knobs: tuple[sp.Knob, ...]) -> OptimizerSpec:
    """The entry without the values tuning will choose (its lr and the tuned knobs' hyperparameters)."""
    drop = {"lr"} | {k.hparam for k in knobs}
    return dataclasses.replace(spec, hparams={k: v for k, v in spec.hparams.items() if k not in drop}, tuned=None)


def centre_of(workload: Workload, spec: OptimizerSpec) -> tuple[float, str]:
    """The lr the search is centred on, and where it comes from (module :mod:`.space`)."""
    lr = spec.hparams.get("lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        return float(lr), "entry"
    default = hyperparameters(spec).get("lr")
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default > 0:
        return float(default), "default"
    if workload.default_lr.get(spec.name):
        return float(workload.default_lr[spec.name]), "workload"
    raise fail(spec.source, f"{spec.name} has no default learning rate to centre the search on: give lr=")


def plan_for(workload: Workload, spec: OptimizerSpec, budget: Budget) -> Plan:
    """The study of one entry on one workload (checked before anything trains)."""
    hp = {**hyperparameters(spec), **spec.hparams}
    knobs = sp.knobs_for(budget.tune_also, hp)
    centre, source = centre_of(workload, spec)
    space = sp.centred(centre, knobs, source)
    base = untuned(spec, knobs)
    label = spec.label or base.display
    key = study_key(workload.config(), base.config(), budget, centre)
    defaults = {k.hparam: hp.get(k.hparam) for k in knobs}
    return Plan(key=key, workload=workload.name, label=label, hib=workload.higher_is_better, budget=budget,
                space=space, rungs=rungs(budget.trials, workload.steps, workload.eval_every, budget.pruner),
                defaults=defaults, full_steps=workload.steps, eval_every=workload.eval_every, entry=base.config())


# ---------------------------------------------------------------------------- trials

def run_trial(job: Job, study: Study, trial: optuna.Trial, device: str | None = None,
              threads: int | None = None) -> dict[str, Any]:
    """Train one claimed trial and tell the study what happened; returns a short summary."""
    try:
        params = study.suggest(trial)
        hp = sp.to_hparams(params, job.plan.defaults)
        trial.set_user_attr("run", {"hparams": jsonable(hp), "worker": f"{socket.gethostname()}:{os.getpid()}"})
        spec = dataclasses.replace(job.spec, hparams={**job.spec.hparams, **hp}, label=None, tuned=None)
        run, before = _resume(job, trial, spec, device, threads)
        started = time.perf_counter()
        with Heartbeat(job.url, trial._trial_id):
            rec = run.advance(until=study.stop_step(trial))
        seconds = time.perf_counter() - started
    except KeyboardInterrupt:
        study.study.tell(trial, state=optuna.trial.TrialState.FAIL)  # no error: the next claim runs it again
        raise
    if rec.status == PRUNED:  # paused at its rung: it may earn the next one
        _keep(job.plan.key, int(trial.user_attrs["slot"]), run)
    outcome = {COMPLETED: "completed", PRUNED: "pruned", DIVERGED: "diverged", FAILED: "failed"}[rec.status]
    try:
        _tell(study, trial, rec, outcome, rec.steps_done - before, seconds)
    except optuna.exceptions.UpdateFinishedTrialError:
        # another process took this trial for abandoned (no heartbeat within the grace period) and
        # enqueued it again: that attempt counts, this one is dropped
        outcome = "dropped (taken for abandoned)"
    return {"study": job.plan.key, "slot": trial.user_attrs.get("slot"), "rung": trial.user_attrs.get("rung", 0),
            "outcome": outcome, "lr": hp.get("lr"), "steps": rec.steps_done, "seconds": seconds}


def _resume(job: Job, trial: optuna.Trial, spec: OptimizerSpec, device: str | None,
            threads: int | None) -> tuple[runner.Training, int]:
    """The trial's training, continued from the previous rung when this process paused it there,
    else new; and the step it starts from."""
    rung, slot = int(trial.user_attrs.get("rung", 0)), int(trial.user_attrs["slot"])
    run = _paused.pop((job.plan.key, slot), None)
    if (CONTINUE and run is not None and rung > 0 and run.spec == spec
            and run.step == job.plan.rungs.stops[rung - 1]):
        return run, run.step
    return runner.Training(job.workload, spec, job.plan.budget.seed, device, threads), 0


def _keep(study: str, slot: int, run: runner.Training) -> None:
    """Hold a paused training for its next rung, dropping the oldest beyond :data:`CACHE_BYTES`."""
    if not CONTINUE:
        return
    _paused[study, slot] = run

    def size(r: runner.Training) -> int:
        return sum(p.numel() * p.element_size() for p in r.params) + runner.state_bytes(r.optimizer)

    while len(_paused) > 1 and sum(size(r) for r in _paused.values()) > CACHE_BYTES:
        _paused.popitem(last=False)


def _tell(study: Study, trial: optuna.Trial, rec, outcome: str, trained: int, seconds: float) -> None:
    """Store a trained trial's result and finish it."""
    curve = [[int(s), float(v)] for s, _, v in rec.evals if math.isfinite(v)]
    trial.set_user_attr("result", {"steps": rec.steps_done, "trained": trained, "seconds": seconds,
                                   "curve": curve, "outcome": outcome, "last_value": curve[-1][1] if curve else None,
                                   **({"stopped": rec.error} if rec.error and rec.status != FAILED else {})})
    if rec.status == FAILED:  # kept apart: a failed trial with an error runs again only on the next invocation
        trial.set_user_attr("error", rec.error)
    if rec.status in (COMPLETED, PRUNED):  # trained to its rung (the end, or where it was told to stop)
        study.study.tell(trial, rec.evals[-1][2])
    elif rec.status == FAILED:
        study.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:  # diverged: a finished trial with no value
        study.study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def work(jobs: list[Job], device: str | None = None, threads: int | None = None, max_trials: int | None = None,
         on_trial: Callable[[dict[str, Any]], None] | None = None, wait: bool = True) -> int:
    """Claim and run trials of these studies, in order, until none is left (or ``max_trials``).

    While the remaining trials are held by other processes (or wait for the first phase
    to finish), it polls the storage (``wait=False``: returns instead). Returns how many
    trials this call ran.
    """
    studies = [Study(j.url, j.plan) for j in jobs]
    ran = 0
    while max_trials is None or ran < max_trials:
        pending = False
        for job, study in zip(jobs, studies):
            trial, status = study.claim()
            if trial is None:
                pending |= status == "wait"
                continue
            result = run_trial(job, study, trial, device, threads)
            ran += 1
            if on_trial is not None:
                on_trial(result)
            break
        else:
            if not pending or not wait:
                return ran
            time.sleep(POLL_S)
    return ran


def _work_portable(portables: list[tuple[Any, OptimizerSpec, Plan, str]], device: str | None,
                   threads: int | None) -> int:
    """A worker process's job: rebuild the workloads and work on the studies until none is left."""
    jobs = [Job(pool._rebuild(w), spec, plan, url) for w, spec, plan, url in portables]
    return work(jobs, device, threads)


# ---------------------------------------------------------------------------- tuning a comparison

@dataclass
class Tuned:
    """What tuning chose for one entry on one workload."""

    spec: OptimizerSpec  # the entry to re-run: the chosen hyperparameters, tuned=<study key>
    plan: Plan
    data: dict[str, Any]  # the exported study (stored in the results database)


def tune(pairs: list[tuple[Workload, OptimizerSpec]], budget: Budget, url: str, *, device: str | None = None,
         threads: int | None = None, jobs: int | None = None, worker: bool = False,
         on_trial: Callable[[dict[str, Any]], None] | None = None) -> list[Tuned] | int:
    """Tune every (workload, entry) pair with the same budget; return each one's :class:`Tuned`.

    ``worker=True`` only works on the trials (of a comparison another process runs with the
    same storage) and returns how many it ran.
    """
    plans = [plan_for(w, e, budget) for w, e in pairs]
    seen: dict[tuple[str, str], str] = {}
    for (w, e), p in zip(pairs, plans):
        if (w.name, p.label) in seen:
            raise SpecError(f"Invalid entries: {seen[w.name, p.label]!r} and {e.source!r} are both shown as "
                            f"{p.label!r} once tuned on {w.name} (they differ only in what tuning chooses; "
                            "give one a label=)")
        seen[w.name, p.label] = e.source
    job_list = [Job(w, untuned(e, p.space.knobs), p, url) for (w, e), p in zip(pairs, plans)]
    for job in job_list:
        Study(url, job.plan).prepare(retry_errors=not worker)
    ran = _work_all(job_list, device, threads, jobs, on_trial)
    # trials other processes hold: wait for them, and run any they abandon
    ran += work(job_list, device, threads, on_trial=on_trial)
    if worker:
        return ran
    out = []
    for job in job_list:
        data = Study(url, job.plan).export()
        chosen = found.best(data["trials"], job.plan.hib)
        hp = chosen["hparams"] if chosen else {"lr": job.plan.space.centre}
        data["chosen"] = {"slot": chosen["slot"] if chosen else None, "hparams": hp}
        spec = dataclasses.replace(job.spec, hparams={**job.spec.hparams, **hp}, label=job.plan.label,
                                   tuned=job.plan.key)
        out.append(Tuned(spec, job.plan, data))
    return out


def _work_all(job_list: list[Job], device: str | None, threads: int | None, jobs: int | None,
              on_trial: Callable[[dict[str, Any]], None] | None) -> int:
    """Work on every study here, moving the small models' trials to worker processes when that pays.

    As for runs (:func:`inertia.lab.running.pool.run_all`), it is measured, not guessed: one
    trial runs here first (slot 0 trains to the end: one full run's time), and the rest go to
    a pool only when they are expected to need more than ``POOL_WORTH_S`` seconds one by one.
    """
    poolable = [j for j in job_list if jobs != 1 and pool.parallel_ok(j.workload, device, threads)]
    here = [j for j in job_list if j not in poolable]
    ran = 0
    if poolable:
        t0 = time.perf_counter()
        first = work(poolable, device, threads, max_trials=1, on_trial=on_trial, wait=False)
        ran += first
        per_run = time.perf_counter() - t0
        left = sum(j.plan.rungs.multiple() for j in poolable) - first
        n = pool.worth_a_pool(per_run * left, sum(Study(j.url, j.plan).counts()["waiting"] for j in poolable), jobs)
        if first and n > 1:
            ran += _pooled(poolable, n, device, threads, on_trial)
        else:
            here = poolable + here
    return ran + work(here, device, threads, on_trial=on_trial, wait=False)


def _pooled(job_list: list[Job], n: int, device: str | None, threads: int | None,
            on_trial: Callable[[dict[str, Any]], None] | None) -> int:
    """``n`` worker processes work on the studies; this process reports their progress from the storage."""
    executor = pool.executor(n)
    portables = [(pool._portable(j.workload), j.spec, j.plan, j.url) for j in job_list]
    futures = [executor.submit(_work_portable, portables, device, threads) for _ in range(n)]
    studies = [Study(j.url, j.plan) for j in job_list]
    reported = sum(s.counts()["finished"] for s in studies)
    try:
        while not all(f.done() for f in futures):
            time.sleep(POLL_S)
            now = sum(s.counts()["finished"] for s in studies)
            for _ in range(now - reported):
                if on_trial is not None:
                    on_trial({"outcome": "finished in a worker process"})
            reported = now
        return sum(f.result() for f in futures)
    except BaseException:  # Ctrl-C: no worker keeps training trials for nobody
        for f in futures:
            f.cancel()
        executor.shutdown(wait=False, kill_workers=True)
        raise

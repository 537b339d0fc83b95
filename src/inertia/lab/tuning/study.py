"""One tuning study in Optuna's storage: its planned trials, claiming them race-free, its rungs, export.

**Storage.** Studies live in an Optuna RDB storage: by default an SQLite file in the
output folder (``<out>/studies.sqlite``); ``storage="postgresql://user@host/db"`` (the
``inertia[postgres]`` extra) lets processes on many machines work on one comparison.

**Trials.** A configuration is a *slot* (``0 .. N-1``); a trial is one slot trained to
one rung (``user_attrs`` ``slot`` and ``rung``, :mod:`.budget`). Rung 0 has every slot;
rung ``k+1`` is opened, once, when every trial of rung ``k`` has finished, with the best
``keep[k]`` slots there (:meth:`Study.claim`).

**Exactly the planned trials.** Optuna's ``study.optimize(n_trials=N)`` counts per worker:
two workers would run 2N. So a study's trials are *enqueued* (all of rung 0 when the study
is created, each later rung when it opens), and a worker only ever claims a waiting trial,
changing its state from WAITING to RUNNING in the storage; it never creates one. Claiming,
enqueuing and opening a rung happen under a study-wide lock (:class:`Lock`: a PostgreSQL
advisory lock, or a file lock beside the SQLite file), so no trial is claimed twice and
none is lost: each (slot, rung) ends with exactly one finished trial.

**Resuming.** A running trial records a heartbeat every :data:`HEARTBEAT_S` seconds. A
trial whose worker was killed stops beating; after :data:`GRACE_S` seconds any worker marks
it failed (Optuna's ``fail_stale_trials``) and enqueues it again with the same parameters.
A trial interrupted with Ctrl-C is marked failed and enqueued again at once. A trial whose
training raised an error is kept as failed (with its message) and retried on the next
invocation, like a failed run of a comparison. So re-running an interrupted comparison
continues its studies where they stopped.

**Phases.** Slots ``0 .. first-1`` explore the centred space (slot 0 is the centre, the
untuned default); the other slots' rung-0 trials wait until every first-phase rung-0 trial
has finished, then search beyond the edge where the best of them lay, or the same range
again (:mod:`.space`). The second phase's space follows from the stored first-phase trials,
so every worker computes the same one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.trial import TrialState

from ..scoring import tuning as found
from ..store import StoreError
from . import space as sp
from .budget import Budget, Rungs

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: seconds between a running trial's heartbeats (environment: ``INERTIA_TUNING_HEARTBEAT_S``)
HEARTBEAT_S = int(os.environ.get("INERTIA_TUNING_HEARTBEAT_S", "5"))
#: seconds without a heartbeat after which a running trial counts as abandoned and runs again
#: (``INERTIA_TUNING_GRACE_S``; a machine whose trials can stall longer, e.g. swapping, wants more)
GRACE_S = max(int(os.environ.get("INERTIA_TUNING_GRACE_S", "30")), 2 * HEARTBEAT_S)  # never below two beats
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
#: a trial's identity in its study: (rung, slot)
Key = tuple


class StorageError(StoreError):
    """The study storage cannot be used (unreachable server, missing driver); nothing was changed."""


# ---------------------------------------------------------------------------- storage

def storage_url(storage: str | None, out: Path) -> str:
    """The SQLAlchemy URL of the study storage: ``storage`` as given, else ``<out>/studies.sqlite``.

    ``postgresql://`` URLs use the psycopg 3 driver (``inertia[postgres]``) unless another
    driver is named (``postgresql+psycopg2://``).
    """
    if storage is None:
        return f"sqlite:///{(Path(out) / 'studies.sqlite').resolve()}"
    if not isinstance(storage, str) or "://" not in storage:
        raise ValueError(f"Invalid storage: {storage!r} (a database URL such as postgresql://user@host/db, "
                         "or None for an SQLite file in the output folder)")
    if storage.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StorageError('Invalid storage: a postgresql:// URL needs the psycopg driver: '
                               'pip install "inertia[postgres]"') from None
        storage = "postgresql+psycopg://" + storage.split("://", 1)[1]
    return storage


def shown(url: str) -> str:
    """A storage URL fit for a report: the password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats (one per URL and process)."""
    if url not in _STORAGES:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 120}}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S,
                                                     grace_period=GRACE_S)
        except Exception as exc:  # noqa: BLE001 - a bad URL, an unreachable server, a missing driver
            raise StorageError(f"Invalid storage {shown(url)!r}: {type(exc).__name__}: {exc}") from None
        if url.startswith("sqlite"):
            _write_ahead(storage.engine)
        _STORAGES[url] = storage
    return _STORAGES[url]


def _write_ahead(engine: Any) -> None:
    """SQLite in write-ahead-log mode, synced at checkpoints: Optuna commits every attribute it
    sets, and a full sync per commit (the default) cost 8 ms each, a third of a small study's time.
    The log survives a crash of the process (not of the machine); several processes share it."""
    from sqlalchemy import event

    def pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener reconnect with it


class Lock:
    """A lock held across processes (and machines) while a study's slots are claimed or decided.

    PostgreSQL: a session-level advisory lock keyed by the study name. SQLite: ``flock`` on
    ``<file>.lock`` (the file lives on one machine). Other databases: none (claims then rely
    on Optuna's row updates alone).
    """

    def __init__(self, url: str, name: str) -> None:
        from sqlalchemy.engine import make_url

        self.url, self.name = url, name
        u = make_url(url)
        self.kind = "postgresql" if u.get_backend_name() == "postgresql" else "sqlite" if u.get_backend_name() == "sqlite" else ""
        self.path = Path(f"{u.database}.lock") if self.kind == "sqlite" and u.database else None
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.kind == "sqlite" and self.path is not None:
            import fcntl

            with open(self.path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        elif self.kind == "postgresql":
            from sqlalchemy import text

            with open_storage(self.url).engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    conn.commit()
        else:
            yield


# ---------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Plan:
    """Everything that defines a study; stored with it, so every worker tunes the same thing."""

    key: str  # the study name
    workload: str
    label: str  # the tuned entry as the report shows it
    hib: bool
    budget: Budget
    space: sp.Space  # the first phase's
    rungs: Rungs
    defaults: dict[str, Any]  # the entry's values of the tuned knobs' hyperparameters (betas …)
    full_steps: int
    eval_every: int
    entry: dict[str, Any] = dataclasses.field(default_factory=dict)  # the untuned entry's config

    @property
    def phases(self) -> sp.Phases:
        return sp.Phases(self.budget.trials)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "workload": self.workload, "label": self.label, "higher_is_better": self.hib,
                "budget": self.budget.to_dict(), "space": self.space.to_dict(), "rungs": self.rungs.to_dict(),
                "defaults": json.loads(json.dumps(self.defaults, default=repr)), "full_steps": self.full_steps,
                "eval_every": self.eval_every, "first_phase": self.phases.first, "entry": self.entry}

    def points(self, phase: int) -> list[list[float]]:
        """The quasirandom unit points of a phase's slots (the second phase gets a fresh sequence)."""
        n = self.phases.first if phase == 1 else self.budget.trials - self.phases.first
        return sp.sobol(n, self.space.dims, sp.QMC_SEED + phase - 1)


def study_key(workload_config: dict[str, Any], entry_config: dict[str, Any], budget: Budget, centre: float) -> str:
    """A study's name: the workload's name and a hash of all that determines its trials."""
    blob = json.dumps({"workload": workload_config, "entry": entry_config, "budget": budget.to_dict(),
                       "centre": centre, "version": 1}, sort_keys=True, default=repr)
    return f"{workload_config['name']}/{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


# ---------------------------------------------------------------------------- sampling

class SlotSampler(optuna.samplers.BaseSampler):
    """Draws each slot's parameters: the centre for slot 0, the slot's Sobol point for the
    others, or Optuna's TPE for the second phase when the budget asks for it."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.points = {1: plan.points(1), 2: plan.points(2)}
        self.tpe = optuna.samplers.TPESampler(seed=plan.budget.seed, n_startup_trials=1) \
            if plan.budget.sampler == "tpe" else None

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        slot = int(trial.user_attrs["slot"])
        phase = self.plan.phases.phase(slot)
        if phase == 2 and self.tpe is not None:
            return self.tpe.sample_independent(study, trial, param_name, param_distribution)
        if slot == 0 and param_name == "lr":
            return self.plan.space.centre
        index = slot if phase == 1 else slot - self.plan.phases.first
        dim = 0 if param_name == "lr" else 1 + [k.name for k in self.plan.space.knobs].index(param_name)
        d = param_distribution
        return math.exp(math.log(d.low) + self.points[phase][index][dim] * (math.log(d.high) - math.log(d.low)))

    def before_trial(self, study, trial):
        if self.tpe is not None:
            self.tpe.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        if self.tpe is not None:
            self.tpe.after_trial(study, trial, state, values)


# ---------------------------------------------------------------------------- the study

def latest(trials: list[optuna.trial.FrozenTrial]) -> dict[Key, optuna.trial.FrozenTrial]:
    """Each (rung, slot)'s latest attempt (a trial is attempted again only after a failure)."""
    out: dict[Key, optuna.trial.FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if "slot" in t.user_attrs:
            out[int(t.user_attrs.get("rung", 0)), int(t.user_attrs["slot"])] = t
    return out


def finished(t: optuna.trial.FrozenTrial | None) -> bool:
    """Finished for good in this invocation (an interrupted or abandoned trial will run again)."""
    return t is not None and t.state in FINISHED and not _retryable(t, False)


def _retryable(t: optuna.trial.FrozenTrial, errors: bool) -> bool:
    """A failed attempt to run again: interrupted or abandoned always, an error only when asked."""
    return t.state == TrialState.FAIL and (errors or "error" not in t.user_attrs)


class Study:
    """A tuning study in its storage, opened (and created when new) from its :class:`Plan`."""

    def __init__(self, url: str, plan: Plan) -> None:
        self.url, self.plan = url, plan
        self.lock = Lock(url, plan.key)
        storage = open_storage(url)
        direction = "maximize" if plan.hib else "minimize"
        pruner = optuna.pruners.NopPruner()  # rungs are trials of their own (module docstring)
        try:
            self.study = optuna.create_study(storage=storage, study_name=plan.key, direction=direction,
                                             load_if_exists=True, sampler=SlotSampler(plan), pruner=pruner)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot open study {plan.key} in {shown(url)}: {type(exc).__name__}: {exc}") from None
        self._phase2: sp.Space | None = None

    # -------------------------------------------------------------- trials

    def prepare(self, retry_errors: bool = True) -> None:
        """Enqueue rung 0, or check a stored study has this plan; re-enqueue failed trials."""
        with self.lock.held():
            stored = self.study.user_attrs.get("plan")
            if stored is None:
                self.study.set_user_attr("plan", self.plan.to_dict())
            elif stored.get("budget") != self.plan.to_dict()["budget"]:
                raise StorageError(f"study {self.plan.key} in {shown(self.url)} was planned differently; "
                                   "nothing was changed: use another storage or output folder")
            self._fill(retry_errors)

    def opened(self) -> dict[int, list[int]]:
        """The slots of every opened rung."""
        attrs = self.study.user_attrs
        out = {0: list(range(self.plan.budget.trials))}
        for k in range(1, self.plan.rungs.last + 1):
            if f"rung{k}" in attrs:
                out[k] = list(attrs[f"rung{k}"])
        return out

    def _fill(self, retry_errors: bool) -> None:
        """Enqueue every trial of an opened rung that has no live or finished attempt (under the lock)."""
        trials = latest(self.study.get_trials(deepcopy=False))
        for rung, slots in self.opened().items():
            for slot in slots:
                t = trials.get((rung, slot))
                if t is not None and not _retryable(t, retry_errors):
                    continue
                source = t if t is not None else trials.get((0, slot)) if rung else None
                params = dict(source.params) if source is not None else {}
                attrs = {"slot": slot, "rung": rung, "params": params,
                         **({"retry_of": t.number} if t is not None else {})}
                self.study.enqueue_trial(params, user_attrs=attrs)

    def _open_next(self) -> bool:
        """Open the next rung when the last opened one has finished (under the lock); True if opened."""
        opened = self.opened()
        k = max(opened)
        if k >= self.plan.rungs.last:
            return False
        trials = latest(self.study.get_trials(deepcopy=False))
        rung = [trials.get((k, s)) for s in opened[k]]
        if not all(finished(t) for t in rung):
            return False
        ranked = found.rank([trial_dict(t, self.plan) for t in rung], self.plan.hib)
        survivors = [t["slot"] for t in ranked if t["outcome"] in found.GOOD][:self.plan.rungs.keep[k]]
        self.study.set_user_attr(f"rung{k + 1}", survivors)
        return True

    def counts(self) -> dict[str, int]:
        """Trials of the plan finished, running and waiting (counting rungs not yet opened as waiting)."""
        trials = latest(self.study.get_trials(deepcopy=False))
        out = {"finished": 0, "running": 0, "waiting": 0}
        opened = self.opened()
        for rung, slots in opened.items():
            for slot in slots:
                t = trials.get((rung, slot))
                out["finished" if finished(t) else "running" if t is not None and t.state == TrialState.RUNNING
                    else "waiting"] += 1
        out["waiting"] += sum(self.plan.rungs.counts[k] for k in range(len(opened), self.plan.rungs.last + 1))
        return out

    def done(self) -> bool:
        """Every rung opened and every trial of it finished."""
        opened = self.opened()
        trials = latest(self.study.get_trials(deepcopy=False))
        return max(opened) == self.plan.rungs.last and all(
            finished(trials.get((rung, slot))) for rung, slots in opened.items() for slot in slots)

    def claim(self) -> tuple[optuna.Trial | None, str]:
        """``(trial, "claimed")``, or ``(None, "wait")`` while others hold or block the rest, or ``(None, "done")``."""
        with self.lock.held():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)  # an abandoned trial becomes FAIL ...
            self._fill(retry_errors=False)  # ... and is enqueued again
            while self._open_next():
                self._fill(retry_errors=False)
            trials = latest(self.study.get_trials(deepcopy=False))
            first = self.plan.phases.first
            first_done = all(finished(trials.get((0, s))) for s in range(first))
            storage = open_storage(self.url)
            for (rung, slot), t in sorted(trials.items()):
                if t.state != TrialState.WAITING or (rung == 0 and slot >= first and not first_done):
                    continue
                if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    storage.record_heartbeat(t._trial_id)
                    return optuna.Trial(self.study, t._trial_id), "claimed"
            return None, ("done" if self.done() else "wait")

    # -------------------------------------------------------------- the trial's space

    def phase2_space(self) -> sp.Space:
        """The second phase's space, from the first phase's rung-0 trials (the same for every worker)."""
        if self._phase2 is None:
            trials = latest(self.study.get_trials(deepcopy=False))
            first = [trial_dict(trials[0, s], self.plan) for s in range(self.plan.phases.first) if (0, s) in trials]
            chosen = found.best(first, self.plan.hib)
            edge = found.edge_of([t["params"]["lr"] for t in first if "lr" in t["params"]],
                                 chosen["params"]["lr"]) if chosen else ""
            whole = self.plan.budget.sampler == "tpe"  # TPE models the whole widened range; Sobol covers the new part
            self._phase2 = sp.widened(self.plan.space, edge, extension_only=not whole)
        return self._phase2

    def suggest(self, trial: optuna.Trial) -> dict[str, float]:
        """The trial's parameters (Optuna names): its slot's, drawn from its phase's space at rung 0."""
        slot = int(trial.user_attrs["slot"])
        space = self.plan.space if self.plan.phases.phase(slot) == 1 else self.phase2_space()
        fixed = trial.user_attrs.get("params") or {}
        if "lr" in fixed:  # a later rung, or a retry: the slot's own parameters
            low, high = min(space.low, fixed["lr"]), max(space.high, fixed["lr"])
        else:
            low, high = space.low, space.high
        params = {"lr": trial.suggest_float("lr", low, high, log=True)}
        if slot != 0:  # the centre keeps every other knob at the entry's value
            for knob in space.knobs:
                params[knob.name] = trial.suggest_float(knob.name, knob.low, knob.high, log=True)
        return params

    def stop_step(self, trial: optuna.Trial) -> int:
        """The step this trial trains to: its rung's."""
        return self.plan.rungs.stops[int(trial.user_attrs.get("rung", 0))]

    # -------------------------------------------------------------- results

    def export(self) -> dict[str, Any]:
        """The study as stored data: its plan, second-phase space, each slot's furthest trial, the cost."""
        trials = latest(self.study.get_trials(deepcopy=False))
        deepest: dict[int, dict[str, Any]] = {}
        for (rung, slot), t in sorted(trials.items()):
            if finished(t):
                deepest[slot] = trial_dict(t, self.plan)
        attempts = [t for t in self.study.get_trials(deepcopy=False) if "slot" in t.user_attrs]
        first_done = all(finished(trials.get((0, s))) for s in range(self.plan.phases.first))
        return {"key": self.plan.key, "storage": shown(self.url), "plan": self.plan.to_dict(),
                "phase2": self.phase2_space().to_dict() if self.plan.phases.first < self.plan.budget.trials
                and first_done else None,
                "full_steps": self.plan.full_steps, "trials": [deepest[s] for s in sorted(deepest)],
                "spent": {"steps": sum(int((t.user_attrs.get("result") or {}).get("trained", 0)) for t in attempts),
                          "budgeted_steps": sum(int((t.user_attrs.get("result") or {}).get("steps", 0))
                                                for t in attempts),
                          "seconds": sum(float((t.user_attrs.get("result") or {}).get("seconds", 0.0))
                                         for t in attempts),
                          "trials": len(attempts), "rungs": {str(k): v for k, v in self.opened().items()}}}


def trial_dict(t: optuna.trial.FrozenTrial, plan: Plan) -> dict[str, Any]:
    """One finished trial as a plain dict (see :mod:`inertia.lab.scoring.tuning`)."""
    a = t.user_attrs
    r = a.get("result") or {}
    slot, rung = int(a["slot"]), int(a.get("rung", 0))
    stop = plan.rungs.stops[rung]
    outcome = r.get("outcome") or ("failed" if t.state == TrialState.FAIL else "pruned")
    if outcome in ("completed", "pruned"):  # trained to its rung: to the end, or stopped there
        outcome = "completed" if stop == plan.full_steps else "pruned"
    return {"number": t.number, "slot": slot, "rung": rung, "phase": plan.phases.phase(slot),
            "params": dict(t.params), "hparams": (a.get("run") or {}).get("hparams", {}), "outcome": outcome,
            "value": t.value if t.state == TrialState.COMPLETE else r.get("last_value"),
            "step": r.get("steps", 0), "curve": r.get("curve", []), "seconds": r.get("seconds", 0.0),
            "error": a.get("error") or r.get("stopped"), "retries": int("retry_of" in a)}


class Heartbeat:
    """Beats for a running trial in a background thread until stopped (a context manager)."""

    def __init__(self, url: str, trial_id: int) -> None:
        self.storage, self.trial_id = open_storage(url), trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="inertia-trial-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat is retried; the trial goes on
                self.storage.record_heartbeat(self.trial_id)

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=HEARTBEAT_S + 1)


__all__ = ["Plan", "Study", "StorageError", "storage_url", "open_storage", "study_key", "Heartbeat", "Lock",
           "latest", "trial_dict", "shown"]

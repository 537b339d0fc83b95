"""Train one (workload, optimizer entry, seed) run and record everything about it.

:func:`train` is the only training loop in the lab. It runs for the workload's full step
budget (no early stopping: time to target is read off afterwards), evaluates the
validation split at step 0, every ``eval_every`` steps and at the end, measures the test
split once at the end, and returns a :class:`~inertia.lab.records.RunRecord` holding

* the training loss, learning rate and cumulative training time of every step,
* the evaluations ``(step, training seconds, validation metric)`` and the final test metric,
* the 2-D trajectory for workloads that ask for it,
* every hyperparameter the optimizer used (defaults included) and where the lr came from,
* wall time, training time per step, threads, how many runs shared the machine, the load,
  optimizer-state bytes, peak memory, the device and library versions.

Evaluation time is excluded from the training clock, so "seconds to target" measures the
optimizer and model, not how often we looked.

Divergence is judged from what the run *does*, never only from what the optimizer says
(an optimizer may skip non-finite steps silently, and a peer optimizer raises nothing):
a non-finite loss, metric or parameter, or an exploding loss
(:class:`inertia.lab.outcomes.Watchdog`) stops the run as ``"diverged"``, and so does
:class:`inertia.NonFiniteGradientError`. Any other exception stops it as ``"failed"``
with its message. Either way the run is data, never a crash of the comparison.

:func:`run_key` names a run by the hash of everything that determines it (workload config
with its budget, entry config, seed): the store uses it to skip finished runs on resume.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import resource
import sys
import time
import traceback
from typing import Any, Callable

import torch

from ... import NonFiniteGradientError, schedules
from .. import outcomes
from ..records import COMPLETED, DIVERGED, FAILED, PRUNED, RunRecord
from ..specs import OptimizerSpec
from ..workload import Workload
from ..workloads.common import Accumulated
from . import build

OnStep = Callable[[int, float], None]
#: called with ``(step, validation metric)`` at every evaluation after step 0; True stops the run as pruned
OnEval = Callable[[int, float], bool]


def run_key(workload: Workload, spec: OptimizerSpec, seed: int) -> str:
    """The run's identity: a hash of the workload config (incl. budget), the entry and the seed."""
    blob = json.dumps({"workload": workload.config(), "spec": spec.config(), "seed": int(seed)},
                      sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def pick_device(workload: Workload | None = None, device: str | torch.device | None = None) -> torch.device:
    """The requested device, else the workload's preference, else CUDA when present."""
    if device is not None:
        return torch.device(device)
    if workload is not None and workload.device:
        return torch.device(workload.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def versions() -> dict[str, str]:
    import numpy

    from ... import __version__
    return {"inertia": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's state tensors (moments, velocities …)."""
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return float("nan")


def threads_for(workload: Workload, dev: torch.device, threads: int | None = None) -> int:
    """torch threads for a run: the caller's choice, else the workload's on the CPU, else torch's."""
    if threads:
        return int(threads)
    if dev.type == "cpu" and workload.cpu_threads:
        return int(workload.cpu_threads)
    return torch.get_num_threads()


def train(workload: Workload, spec: OptimizerSpec, seed: int, device: str | torch.device | None = None,
          threads: int | None = None, concurrency: int = 1, on_step: OnStep | None = None,
          on_eval: OnEval | None = None, test: bool = True) -> RunRecord:
    """Train one run for the full budget and return its record (nothing is stored here).

    Args:
        threads: torch intra-op threads during the run (default: ``workload.cpu_threads`` on
            the CPU); torch's setting is restored afterwards.
        concurrency: how many runs train on this machine at the same time, recorded so that
            reports never mistake shared-machine seconds for a clean timing.
        on_step: called with ``(step, loss)`` after every step (progress display).
        on_eval: called with ``(step, validation metric)`` after each evaluation; returning
            True stops the run with status ``"pruned"``.
        test: measure the test split at the end; tuning trials do not (they choose on validation).
    """
    run = Training(workload, spec, seed, device, threads)
    run.advance(on_step=on_step, on_eval=on_eval)
    rec = run.finish(test)
    rec.concurrency = int(concurrency)
    return rec


class Training:
    """A run in progress, which can stop at any step and continue later exactly as if it had not.

    :func:`train` is ``Training(...).advance()`` then :meth:`finish`. Tuning stops a trial at
    its rung with ``advance(until=step)`` and, when the trial earns the next rung, continues
    the same object (:mod:`inertia.lab.tuning.driver`): the model, optimizer, schedule,
    batch order, divergence watchdog and torch's random state all carry on, so the steps
    after the pause are the ones a run that never paused would have taken.
    """

    def __init__(self, workload: Workload, spec: OptimizerSpec, seed: int, device: str | torch.device | None = None,
                 threads: int | None = None) -> None:
        self.workload, self.spec, self.seed = workload, spec, seed
        self.dev = pick_device(workload, device)
        self.threads = threads_for(workload, self.dev, threads)
        self.rec = _new_record(workload, spec, seed, self.dev)
        self.rec.threads = self.threads
        if self.dev.type == "cpu":
            self.rec.device = f"cpu ({self.threads} thread{'s' if self.threads > 1 else ''})"
        self.optimizer: torch.optim.Optimizer | None = None
        self.model = None
        self.clock = 0.0  # seconds inside training steps
        self.wall = 0.0  # seconds inside advance(), evaluations included
        self.rng: Any = None  # torch's random state while paused (dropout …)

    @property
    def step(self) -> int:
        return self.rec.steps_done

    @property
    def stopped(self) -> bool:
        """Diverged or failed: it cannot continue."""
        return self.rec.status in (DIVERGED, FAILED)

    def _start(self) -> None:
        w, spec, rec = self.workload, self.spec, self.rec
        if self.dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.dev)
        torch.manual_seed(self.seed)  # dropout and other in-model randomness
        self.model = w.init_model(self.seed, self.dev)
        self.model.train()
        self.optimizer = build.build_optimizer(spec, self.model.parameters(), w.default_lr)
        if has_modes(self.optimizer):
            self.optimizer.train()  # Schedule-Free (the ``schedulefree`` package) starts in eval mode
        rec.hparams = build.resolved(self.optimizer)
        rec.lr = float(self.optimizer.param_groups[0]["lr"])
        self.scheduler = None
        if spec.schedule:
            sched = build.build_schedule(spec.schedule, rec.lr, w.steps, spec.source)
            self.scheduler = schedules.Scheduler(self.optimizer, sched)
        self.batches = w.make_batches(self.seed, self.dev, spec.batch_size)
        self.params = list(self.model.parameters())
        _warm_up(spec, self.params, w.default_lr)
        if w.trajectory:
            rec.trajectory = [_point(self.params)]
        self.watchdog = outcomes.Watchdog()
        with evaluation(self.optimizer):
            rec.evals.append((0, 0.0, float(w.evaluate(self.model, self.dev, "validation"))))

    def advance(self, until: int | None = None, on_step: OnStep | None = None,
                on_eval: OnEval | None = None) -> RunRecord:
        """Train up to step ``until`` (default: the budget), or until it diverges, fails or
        ``on_eval`` stops it; returns the record so far. A run paused before the end of its
        budget has status ``"pruned"`` until it continues."""
        if self.stopped:
            return self.rec
        w, rec = self.workload, self.rec
        until = w.steps if until is None else min(int(until), w.steps)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        if self.rng is not None:
            torch.set_rng_state(self.rng)
        started = time.perf_counter()
        rec.status = COMPLETED
        try:
            if self.model is None:
                self._start()
            self._loop(until, on_step, on_eval)
        except Exception as exc:  # noqa: BLE001 - any failure is this run's outcome, not the comparison's crash
            rec.status = FAILED
            rec.error = f"step {rec.steps_done + 1}: " + "".join(traceback.format_exception_only(exc)).strip()
        finally:
            self.rng = torch.get_rng_state()
            self.wall += time.perf_counter() - started
            torch.set_num_threads(previous)
        if rec.status == COMPLETED and rec.steps_done < w.steps:
            rec.status = PRUNED
        return rec

    def _loop(self, until: int, on_step: OnStep | None, on_eval: OnEval | None) -> None:
        w, rec, model, optimizer = self.workload, self.rec, self.model, self.optimizer
        for step in range(rec.steps_done + 1, until + 1):
            t0 = time.perf_counter()
            try:
                batch = next(self.batches)
                optimizer.zero_grad(set_to_none=True)
                value = _backward(w, model, batch)  # also waits for the device: honest timing
                optimizer.step()
            except NonFiniteGradientError as exc:
                rec.status, rec.error = DIVERGED, f"step {step}: {exc}"
                return
            self.clock += time.perf_counter() - t0
            rec.losses.append(value)
            rec.lrs.append(_current_lr(optimizer))  # the lr this step used
            rec.times.append(self.clock)
            rec.steps_done = step
            if self.scheduler is not None:
                self.scheduler.step()
            if rec.trajectory is not None:
                rec.trajectory.append(_point(self.params))
            why = self.watchdog.update(value)
            if why:
                rec.status, rec.error = DIVERGED, f"step {step}: {why}"
                return
            if step % w.eval_every == 0 or step == w.steps:
                with evaluation(optimizer):
                    metric = float(w.evaluate(model, self.dev, "validation"))
                    finite = _finite_parameters(self.params)
                rec.evals.append((step, self.clock, metric))
                why = (f"the validation {w.metric} is {metric}" if not math.isfinite(metric)
                       else None if finite else "a parameter is NaN or infinite")
                if why:
                    rec.status, rec.error = DIVERGED, f"step {step}: {why}"
                    return
                if on_eval is not None and step < w.steps and on_eval(step, metric):
                    return
            if on_step is not None:
                on_step(step, value)

    def finish(self, test: bool = True) -> RunRecord:
        """The record with its final measurements: the test split (when the run completed its
        budget and ``test``), timings, optimizer state and peak memory."""
        rec, dev = self.rec, self.dev
        started = time.perf_counter()
        if rec.status == COMPLETED and test:
            try:
                with evaluation(self.optimizer):
                    rec.test_metric = float(self.workload.evaluate(self.model, dev, "test"))
            except Exception as exc:  # noqa: BLE001
                rec.status = FAILED
                rec.error = "test evaluation: " + "".join(traceback.format_exception_only(exc)).strip()
        rec.train_time = self.clock
        rec.time_per_step = self.clock / rec.steps_done if rec.steps_done else float("nan")
        rec.wall_time = self.wall + time.perf_counter() - started
        if self.optimizer is not None:
            rec.state_bytes = state_bytes(self.optimizer)
            rec.skipped_steps = int(getattr(self.optimizer, "nonfinite_steps",
                                            getattr(self.optimizer, "skipped_steps", 0)) or 0)
        if dev.type == "cuda":
            rec.peak_memory, rec.peak_memory_kind = int(torch.cuda.max_memory_allocated(dev)), "cuda max allocated"
        else:
            # Linux reports KiB; it is the whole process's high-water mark, not this run's alone
            rec.peak_memory = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
            rec.peak_memory_kind = "process peak RSS"
        rec.load.append(load_average())
        return rec


def has_modes(optimizer: Any) -> bool:
    """Whether ``optimizer`` has a train and an eval mode, as Schedule-Free optimizers do.

    Schedule-Free (Defazio et al. 2024; ``inertia.AdamWScheduleFree``, the ``schedulefree``
    package) takes its gradients at one point ``y`` and averages its iterates into another,
    ``x``: the model should be evaluated at ``x``. Its convention is two methods,
    ``optimizer.eval()`` (the parameters become ``x``) and ``optimizer.train()`` (back to
    ``y``; ``step()`` refuses to run in eval mode). Any optimizer with both methods is
    treated so; ``torch.optim.Optimizer`` itself has neither.
    """
    return callable(getattr(optimizer, "eval", None)) and callable(getattr(optimizer, "train", None))


@contextlib.contextmanager
def evaluation(optimizer: Any):
    """Evaluate inside this block: the optimizer in eval mode (:func:`has_modes`), back in
    train mode afterwards; a no-op for optimizers without modes."""
    if not has_modes(optimizer):
        yield
        return
    optimizer.eval()
    try:
        yield
    finally:
        optimizer.train()


def _new_record(workload: Workload, spec: OptimizerSpec, seed: int, dev: torch.device) -> RunRecord:
    hp, source = build.resolve_lr(spec, workload.default_lr)
    return RunRecord(
        key=run_key(workload, spec, seed), workload=workload.name, label=spec.display,
        optimizer=spec.name, seed=int(seed), workload_config=workload.config(), spec=spec.config(),
        lr=float(hp["lr"]) if isinstance(hp.get("lr"), (int, float)) else None, lr_source=source,
        schedule=spec.schedule, steps=workload.steps, batch_size=spec.batch_size or workload.batch_size,
        device=str(dev), versions=versions(), load=[load_average()],
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def _finite_parameters(params: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)


def _backward(workload: Workload, model: torch.nn.Module, batch) -> float:
    """The loss of one step, its gradient accumulated into ``.grad``; returns the loss value.

    A batch of :class:`~inertia.lab.workloads.common.Accumulated` micro-batches is one step at
    their combined size: each micro-batch's loss is scaled by its share of the examples and
    back-propagated on its own (so only one micro-batch's activations are alive at a time),
    which sums to exactly the gradient of the mean loss over the whole batch.
    """
    if isinstance(batch, Accumulated):
        total = 0.0
        for part, weight in zip(batch.parts, batch.weights):
            loss = workload.loss(model, part) * weight
            loss.backward()
            total += float(loss.detach())
        return total
    loss = workload.loss(model, batch)
    loss.backward()
    return float(loss.detach())


def _current_lr(optimizer: torch.optim.Optimizer) -> float:
    lr = optimizer.param_groups[0]["lr"]
    return float(lr.item() if isinstance(lr, torch.Tensor) else lr)


def _warm_up(spec: OptimizerSpec, params: list[torch.Tensor], default_lr) -> None:
    """One step of the same optimizer on throwaway copies of the parameters, off the clock.

    Fused kernels compile on first use (numba, CUDA); without this the first run of each
    optimizer in a process would pay that once-only cost in its seconds-to-target, and a
    run's timing would depend on the order of the comparison.
    """
    clones = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for c in clones:
        c.grad = torch.zeros_like(c)
    try:
        opt = build.build_optimizer(spec, clones, default_lr)
        if has_modes(opt):
            opt.train()
        opt.step()
    except Exception:  # noqa: BLE001 - a warm-up failure must not hide the real run's error
        pass


def _point(params: list[torch.Tensor]) -> list[float]:
    return [float(v) for v in torch.cat([p.detach().flatten() for p in params]).cpu()[:2]]

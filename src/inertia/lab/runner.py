"""Train one (workload, optimizer entry, seed) run and record everything about it.

:func:`train` is the only training loop in the lab. It runs for the workload's full step
budget (no early stopping: time-to-target is read off afterwards), evaluates at step 0,
every ``eval_every`` steps and at the end, and returns a :class:`RunRecord` holding

* the training loss, learning rate and cumulative training time of every step,
* the evaluations ``(step, training seconds, metric)``,
* the 2-D trajectory for workloads that ask for it,
* wall time, training time per step, optimizer-state bytes and peak memory,
* the device and library versions.

Evaluation time is excluded from the training clock, so "seconds to target" measures the
optimizer and model, not how often we looked. A run whose loss becomes NaN/inf, or whose
optimizer raises :class:`inertia.NonFiniteGradientError`, stops there and is recorded as
``status="diverged"`` (it never reaches the target); it is data, not a crash.

:func:`run_key` names a run by the hash of everything that determines it (workload config
with its budget, entry config, seed): the store uses it to skip finished runs on resume.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from .. import schedules
from ..optim import NonFiniteGradientError
from . import specs
from .workload import OptimizerSpec, Workload


class Progress(Protocol):
    """What the runner reports to while training (see :mod:`inertia.lab.progress`)."""

    def start(self, total: int, description: str) -> None: ...
    def update(self, steps: int, loss: float) -> None: ...
    def finish(self, status: str) -> None: ...


class _Silent:
    def start(self, total: int, description: str) -> None: pass
    def update(self, steps: int, loss: float) -> None: pass
    def finish(self, status: str) -> None: pass


@dataclass
class RunRecord:
    """Everything one run produced. Lists are per step (index 0 = step 1) unless noted."""

    key: str
    workload: str
    label: str
    optimizer: str
    seed: int
    workload_config: dict[str, Any]
    spec: dict[str, Any]
    hparams: dict[str, Any]  # as constructed, with the workload's default lr filled in
    status: str = "ok"  # "ok" or "diverged"
    error: str | None = None
    steps: int = 0  # the budget
    steps_done: int = 0
    batch_size: int | None = None
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # cumulative training seconds after each step
    evals: list[tuple[int, float, float]] = field(default_factory=list)  # (step, train seconds, metric)
    trajectory: list[list[float]] | None = None  # points, index 0 = the start
    wall_time: float = 0.0
    train_time: float = 0.0
    time_per_step: float = 0.0
    state_bytes: int = 0
    peak_memory: int = 0
    peak_memory_kind: str = ""
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    from .. import __version__
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


def _current_lr(optimizer: torch.optim.Optimizer) -> float:
    lr = optimizer.param_groups[0]["lr"]
    return float(lr.item() if isinstance(lr, torch.Tensor) else lr)


def train(workload: Workload, spec: OptimizerSpec, seed: int, device: str | torch.device | None = None,
          progress: Progress | None = None) -> RunRecord:
    """Train one run for the full budget and return its record (nothing is stored here).

    On the CPU, torch's thread count is set to ``workload.cpu_threads`` for the run and
    restored afterwards (the record's ``device`` says e.g. ``cpu (1 thread)``).
    """
    dev = pick_device(workload, device)
    previous = torch.get_num_threads()
    threads = workload.cpu_threads if dev.type == "cpu" and workload.cpu_threads else previous
    torch.set_num_threads(threads)
    try:
        rec = _train(workload, spec, seed, dev, progress or _Silent())
    finally:
        torch.set_num_threads(previous)
    if dev.type == "cpu":
        rec.device = f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return rec


def _train(workload: Workload, spec: OptimizerSpec, seed: int, dev: torch.device, progress: Progress) -> RunRecord:
    started = time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(seed)  # dropout and other in-model randomness
    model = workload.init_model(seed, dev)
    model.train()
    optimizer = specs.build_optimizer(spec, model.parameters(), workload.default_lr)
    scheduler = None
    if spec.schedule:
        sched = specs.build_schedule(spec.schedule, _current_lr(optimizer), workload.steps)
        scheduler = schedules.Scheduler(optimizer, sched)
    batches = workload.make_batches(seed, dev, spec.batch_size)
    rec = RunRecord(
        key=run_key(workload, spec, seed), workload=workload.name, label=spec.display,
        optimizer=spec.name, seed=int(seed), workload_config=workload.config(), spec=spec.config(),
        hparams={k: (list(v) if isinstance(v, tuple) else v)
                 for k, v in specs.resolve_hparams(spec, workload.default_lr).items()},
        steps=workload.steps, batch_size=spec.batch_size or workload.batch_size,
        device=str(dev), versions=versions(), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    params = list(model.parameters())
    _warm_up(spec, params, workload.default_lr)
    if workload.trajectory:
        rec.trajectory = [_point(params)]
    rec.evals.append((0, 0.0, float(workload.evaluate(model, dev))))
    progress.start(workload.steps, f"{workload.name} {spec.display} seed {seed}")
    clock = 0.0
    for step in range(1, workload.steps + 1):
        t0 = time.perf_counter()
        try:
            batch = next(batches)
            optimizer.zero_grad(set_to_none=True)
            loss = workload.loss(model, batch)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())  # also waits for the device: honest timing
        except NonFiniteGradientError as exc:
            rec.status, rec.error = "diverged", f"step {step}: {exc}"
            break
        clock += time.perf_counter() - t0
        rec.losses.append(value)
        rec.lrs.append(_current_lr(optimizer))  # the lr this step used
        rec.times.append(clock)
        rec.steps_done = step
        if scheduler is not None:
            scheduler.step()
        if rec.trajectory is not None:
            rec.trajectory.append(_point(params))
        if not math.isfinite(value):
            rec.status, rec.error = "diverged", f"step {step}: loss is {value}"
            break
        if step % workload.eval_every == 0 or step == workload.steps:
            metric = float(workload.evaluate(model, dev))
            rec.evals.append((step, clock, metric))
            if not math.isfinite(metric):
                rec.status, rec.error = "diverged", f"step {step}: metric is {metric}"
                break
        progress.update(step, value)
    progress.finish(rec.status)
    rec.train_time = clock
    rec.time_per_step = clock / rec.steps_done if rec.steps_done else float("nan")
    rec.wall_time = time.perf_counter() - started
    rec.state_bytes = state_bytes(optimizer)
    if dev.type == "cuda":
        rec.peak_memory, rec.peak_memory_kind = int(torch.cuda.max_memory_allocated(dev)), "cuda max allocated"
    else:
        # Linux reports KiB; it is the whole process's high-water mark, not this run's alone
        rec.peak_memory = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
        rec.peak_memory_kind = "process peak RSS"
    return rec


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
        specs.build_optimizer(spec, clones, default_lr).step()
    except Exception:  # noqa: BLE001 - a warm-up failure must not hide the real run's error
        pass


def _point(params: list[torch.Tensor]) -> list[float]:
    return [float(v) for v in torch.cat([p.detach().flatten() for p in params]).cpu()[:2]]

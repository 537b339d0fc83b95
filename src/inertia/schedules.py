"""Learning-rate schedules: pure functions of the step (or epoch).

A :class:`Schedule` is a callable ``t -> lr``. Schedules compose with :func:`sequence`
(e.g. linear warm-up then cosine), and :class:`Scheduler` drives any optimizer's
param groups from one (inertia's or torch.optim's), per step or per epoch. It writes
the value *into* the group: into the existing tensor when the group's lr is a tensor
(so ``torch.compile``d steps never recompile), as a float otherwise.

The seed's four decays are here with their formulas:

=============  ==================================================
exponential    :math:`\\alpha_0 e^{-kt}`
inverse_time   :math:`\\alpha_0 / (1 + kt)`  (the seed's 1/t decay)
step           :math:`\\alpha_0 \\gamma^{\\lfloor t/N \\rfloor}`  (the seed halves every 10 epochs)
cosine         :math:`\\alpha_{min} + \\tfrac12(\\alpha_0-\\alpha_{min})(1+\\cos(\\pi t/T))`
=============  ==================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class Schedule:
    """A learning rate as a function of ``t`` (a step or an epoch, counted from 0)."""

    fn: Callable[[int], float]
    name: str

    def __call__(self, t: int) -> float:
        if t < 0:
            raise ValueError(f"Invalid t: {t!r} (must be >= 0)")
        return float(self.fn(t))

    def __repr__(self) -> str:
        return self.name


def _check_lr(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"Invalid {name}: {value!r} (must be a finite number >= 0)")


def constant(lr0: float) -> Schedule:
    """``lr0`` for every t."""
    _check_lr("lr0", lr0)
    return Schedule(lambda t: lr0, f"constant({lr0})")


def exponential(lr0: float, k: float) -> Schedule:
    """``lr0 * exp(-k t)``."""
    _check_lr("lr0", lr0)
    _check_lr("k", k)
    return Schedule(lambda t: lr0 * math.exp(-k * t), f"exponential({lr0}, k={k})")


def inverse_time(lr0: float, k: float) -> Schedule:
    """``lr0 / (1 + k t)``: the seed's "1/t" decay."""
    _check_lr("lr0", lr0)
    _check_lr("k", k)
    return Schedule(lambda t: lr0 / (1 + k * t), f"inverse_time({lr0}, k={k})")


def step(lr0: float, every: int = 10, factor: float = 0.5) -> Schedule:
    """``lr0 * factor ** (t // every)``: by default the seed's "halve every 10 epochs"."""
    _check_lr("lr0", lr0)
    if every <= 0:
        raise ValueError(f"Invalid every: {every!r} (must be a positive integer)")
    if not 0 < factor <= 1:
        raise ValueError(f"Invalid factor: {factor!r} (must be in (0, 1])")
    return Schedule(lambda t: lr0 * factor ** (t // every), f"step({lr0}, every={every}, factor={factor})")


def cosine(lr0: float, T: int, lr_min: float = 0.0) -> Schedule:
    """``lr_min + (lr0 - lr_min)(1 + cos(pi t / T)) / 2`` for t <= T, then ``lr_min``."""
    _check_lr("lr0", lr0)
    _check_lr("lr_min", lr_min)
    if T <= 0:
        raise ValueError(f"Invalid T: {T!r} (must be a positive integer)")

    def fn(t: int) -> float:
        t = min(t, T)
        return lr_min + (lr0 - lr_min) * (1 + math.cos(math.pi * t / T)) / 2

    return Schedule(fn, f"cosine({lr0}, T={T}, lr_min={lr_min})")


def warmup(lr0: float, steps: int, start: float = 0.0) -> Schedule:
    """Linear warm-up from ``start`` to ``lr0`` over ``steps``, then ``lr0``."""
    _check_lr("lr0", lr0)
    _check_lr("start", start)
    if steps <= 0:
        raise ValueError(f"Invalid steps: {steps!r} (must be a positive integer)")
    return Schedule(lambda t: start + (lr0 - start) * min(t, steps) / steps,
                    f"warmup({lr0}, steps={steps}, start={start})")


def sequence(*parts: tuple[Schedule, int] | Schedule) -> Schedule:
    """Join schedules end to end: ``sequence((warmup(1e-3, 100), 100), cosine(1e-3, 900))``.

    Every part but the last is ``(schedule, length)``; each part sees its own t from 0.
    """
    if not parts:
        raise ValueError("Invalid parts: () (need at least one schedule)")
    *head, last = parts
    if isinstance(last, tuple):
        last = last[0]
    bounds: list[tuple[int, Schedule]] = []
    offset = 0
    for part in head:
        if not (isinstance(part, tuple) and len(part) == 2):
            raise ValueError(f"Invalid part: {part!r} (all but the last need a length: (schedule, steps))")
        sched, length = part
        if length <= 0:
            raise ValueError(f"Invalid length: {length!r} (must be a positive integer)")
        bounds.append((offset, sched))
        offset += length
    bounds.append((offset, last))

    def fn(t: int) -> float:
        for begin, sched in reversed(bounds):
            if t >= begin:
                return sched(t - begin)
        raise AssertionError("unreachable")

    return Schedule(fn, " then ".join(repr(s) for _, s in bounds))


class Scheduler:
    """Drive the learning rate of an optimizer's groups from a :class:`Schedule`.

    Call :meth:`step` once per optimizer step (or once per epoch, if the schedule counts
    epochs). The first value, ``schedule(0)``, is written at construction. With several
    groups, pass one schedule per group, or ``scale_by_initial=True`` to multiply each
    group's initial lr by ``schedule(t) / schedule(0)``.

    Example:
        >>> import torch
        >>> from inertia import schedules
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = schedules.Scheduler(opt, schedules.step(1.0, every=2))
        >>> [round(opt.param_groups[0]["lr"], 2) for _ in range(4) if sched.step() or True]
        [1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: torch.optim.Optimizer,
                 schedule: Schedule | Sequence[Schedule], scale_by_initial: bool = False) -> None:
        groups = optimizer.param_groups
        if isinstance(schedule, Schedule):
            schedules = [schedule] * len(groups)
        else:
            schedules = list(schedule)
            if len(schedules) != len(groups):
                raise ValueError(f"Invalid schedule: {len(schedules)} schedules for {len(groups)} groups")
        self.optimizer = optimizer
        self.schedules = schedules
        self.scale_by_initial = scale_by_initial
        self.initial = [float(g["lr"]) for g in groups]
        self.t = 0
        self._write()

    def value(self, index: int = 0) -> float:
        lr = self.schedules[index](self.t)
        if self.scale_by_initial:
            base = self.schedules[index](0)
            lr = self.initial[index] * (lr / base if base else 0.0)
        return lr

    def _write(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            lr = self.value(i)
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)  # in place: a compiled step sees the same tensor
            else:
                group["lr"] = lr

    def step(self) -> None:
        """Advance t by one and write the new learning rates."""
        self.t += 1
        self._write()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"t": self.t, "initial": list(self.initial)}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        self.initial = list(state["initial"])
        self._write()

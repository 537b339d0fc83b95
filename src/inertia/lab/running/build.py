"""From a checked entry to a live optimizer and schedule, and what it really used.

:func:`build_optimizer` constructs the entry's optimizer through the public API
(``inertia.<Class>(params, **hyperparameters)``, or the peer class an entry names by import
path, such as ``torch.optim.AdamW``), and :func:`resolved` reads back every
hyperparameter the optimizer ended up with, library defaults included, from its
``state_dict()`` — so a report shows ``betas=(0.9, 0.999)`` even when nobody typed it.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ... import schedules
from ...optim.registry import REGISTRY
from ..specs import OptimizerSpec, SpecError, check_hparams, fail, hyperparameters, jsonable, optimizer_class, parse_schedule


def resolve_lr(spec: OptimizerSpec, default_lr: Mapping[str, float] | None) -> tuple[dict[str, Any], str]:
    """The entry's keyword arguments and where its lr comes from: ``tuned`` (chosen by the
    lab's tuning), ``entry`` (typed), ``workload`` (hand-picked) or ``default`` (library)."""
    hp = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.hparams.items()}
    if "lr" in hp:
        return hp, "tuned" if spec.tuned else "entry"
    if default_lr and spec.name in default_lr:
        hp["lr"] = default_lr[spec.name]
        return hp, "workload"
    return hp, "default"


def _dtypes(hp: dict[str, Any]) -> dict[str, Any]:
    """``state_dtype=bfloat16`` (a word in an entry) as the torch dtype it names."""
    value = hp.get("state_dtype")
    if isinstance(value, str):
        dtype = getattr(torch, value.removeprefix("torch."), None)
        if isinstance(dtype, torch.dtype):
            hp = {**hp, "state_dtype": dtype}
    return hp


def build_optimizer(spec: OptimizerSpec, params, default_lr: Mapping[str, float] | None = None) -> torch.optim.Optimizer:
    """Construct the entry's optimizer; the optimizer's own messages come through, naming the entry."""
    cls = optimizer_class(spec)
    hp, _ = resolve_lr(spec, default_lr)
    if "lr" not in hp and hyperparameters(cls).get("lr") == "required":
        raise fail(spec.source, f"{spec.name} has no default learning rate: give lr=")
    info = REGISTRY.get(spec.name)
    if info is not None and info.cls is cls and info.groups is not None:
        # the optimizer's own split of a flat parameter list (Muon: the matrices, and the
        # rest, convolution filters and biases included, in its AdamW group)
        params = info.groups(list(params))
    try:
        return cls(params, **_dtypes(hp))
    except (ValueError, TypeError, RuntimeError) as exc:
        raise fail(spec.source, str(exc)) from None


def resolved(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Every hyperparameter of the optimizer's first param group, as JSON-able values."""
    group = dict(optimizer.state_dict()["param_groups"][0])
    group.pop("params", None)
    return jsonable(group)


def build_schedule(text: str, lr0: float, steps: int, whole: str | None = None) -> schedules.Schedule:
    """A schedule from its text form, starting at ``lr0`` over a budget of ``steps``."""
    whole = text if whole is None else whole
    parts = parse_schedule(text, whole)
    built: list = []
    used = 0
    for i, (name, kw) in enumerate(parts):
        kw = dict(kw)
        last = i == len(parts) - 1
        length = kw.pop("len", None)
        if name == "warmup":
            length = length or kw.get("steps", 100)
            kw.setdefault("steps", length)
        makers = {
            "constant": lambda: schedules.constant(lr0),
            "cosine": lambda: schedules.cosine(lr0, T=kw.pop("T", max(1, steps - used)), **kw),
            "exponential": lambda: schedules.exponential(lr0, **kw),
            "inverse_time": lambda: schedules.inverse_time(lr0, **kw),
            "step": lambda: schedules.step(lr0, **kw),
            "warmup": lambda: schedules.warmup(lr0, **kw),
        }
        try:
            sched = makers[name]()
        except (TypeError, ValueError) as exc:
            raise fail(whole, f"schedule {name}: {exc}") from None
        if last:
            built.append(sched)
            continue
        if length is None:
            raise fail(whole, f"schedule part {name!r} needs len= (it is not last)")
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise fail(whole, f"len of schedule {name} must be a positive integer, got {length!r}")
        built.append((sched, int(length)))
        used += int(length)
    return built[0] if len(built) == 1 else schedules.sequence(*built)


def validate(spec: OptimizerSpec, default_lr: Mapping[str, float] | None = None, steps: int = 100) -> None:
    """Build the entry on a dummy parameter (and its schedule): fail before any training."""
    if not isinstance(spec, OptimizerSpec):
        raise SpecError(f"Invalid entry {spec!r}: expected an OptimizerSpec or text such as 'adam:lr=1e-3'")
    check_hparams(spec)
    # a matrix: every optimizer takes one (torch.optim.Muon takes nothing else)
    opt = build_optimizer(spec, [torch.nn.Parameter(torch.zeros(2, 2))], default_lr)
    if spec.schedule:
        sched = build_schedule(spec.schedule, float(opt.param_groups[0]["lr"]), steps, spec.source)
        schedules.Scheduler(opt, sched)
        for t in (0, steps // 2, steps):  # the schedule must give a usable lr over the budget
            try:
                lr = sched(t)
            except (TypeError, ValueError) as exc:
                raise fail(spec.source, f"schedule {spec.schedule!r} fails at step {t}: {exc}") from None
            if not lr == lr or lr < 0:
                raise fail(spec.source, f"schedule {spec.schedule!r} gives lr={lr!r} at step {t}")

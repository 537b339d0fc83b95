"""Text forms of optimizer entries, schedules and workloads, and building them.

The CLI (and :func:`inertia.lab.compare`, which accepts the same strings) writes an
optimizer entry as::

    NAME[:KEY=VALUE,KEY=VALUE...][;schedule=SCHEDULE][;batch=N][;label=TEXT]

    adam                                  defaults (the workload's lr for adam)
    adam:lr=1e-3,betas=(0.9,0.99)         values are Python literals; commas inside () are fine
    sgd:lr=0.1,momentum=0.9;schedule=cosine
    sgd:lr=0.5;batch=1;label=stochastic   batch size, for workloads that have one (minibatch)

A schedule is ``NAME[(KEY=VALUE,...)]``, joined by ``+`` to run one after another:
``cosine``, ``cosine(lr_min=1e-4)``, ``exponential(k=0.01)``, ``inverse_time(k=0.01)``,
``step(every=100,factor=0.5)``, ``warmup(steps=50)+cosine``, ``constant``. Every schedule
starts from the entry's ``lr``; ``cosine`` decays over the rest of the step budget unless
given ``T=``; a part that is not last needs a length (``warmup`` uses its ``steps``, the
others take ``len=``). Schedules count optimizer steps.

A workload is ``NAME[:KEY=VALUE,...]``, e.g. ``valley-noisy:noise=0.5`` or ``mnist-cnn:channels=8``.
"""
from __future__ import annotations

import ast
import inspect
from typing import Any

import torch

from .. import optim, schedules
from .workload import OptimizerSpec

OPTIMIZERS: dict[str, type] = {
    "sgd": optim.SGD, "momentum": optim.Momentum, "rmsprop": optim.RMSprop, "adam": optim.Adam,
    "adamw": optim.AdamW, "adagrad": optim.Adagrad, "lion": optim.Lion, "lamb": optim.LAMB,
    "lars": optim.LARS,
}


class SpecError(ValueError):
    """A malformed entry, an unknown name or an invalid hyperparameter (message says which)."""


def _split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses and brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "none":
            return None
        return text  # bare words stay strings: nonfinite=skip


def parse_kv(text: str, what: str) -> dict[str, Any]:
    """``"lr=0.1,betas=(0.9,0.99)"`` -> ``{"lr": 0.1, "betas": (0.9, 0.99)}``."""
    out = {}
    for part in _split_top(text, ","):
        key, eq, val = part.partition("=")
        if not eq or not key.strip():
            raise SpecError(f"Invalid {what}: {part!r} (expected KEY=VALUE)")
        out[key.strip()] = _value(val.strip())
    return out


def parse_optimizer(text: str) -> OptimizerSpec:
    """Parse an optimizer entry (see the module docstring for the syntax)."""
    head, *fields = _split_top(text, ";") or [""]
    name, _, args = head.partition(":")
    name = name.strip().lower()
    if name not in OPTIMIZERS:
        raise SpecError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    hparams = parse_kv(args, f"hyperparameter of {name}") if args.strip() else {}
    extra: dict[str, Any] = {"schedule": None, "batch": None, "label": None}
    for f in fields:
        key, eq, val = f.partition("=")
        key = key.strip().lower()
        if not eq or key not in extra:
            raise SpecError(f"Invalid entry field: {f!r} in {text!r} (expected schedule=, batch= or label=)")
        extra[key] = val.strip()
    batch = None
    if extra["batch"] is not None:
        try:
            batch = int(extra["batch"])
        except ValueError:
            batch = -1
        if batch <= 0:
            raise SpecError(f"Invalid batch: {extra['batch']!r} (must be a positive integer)")
    return OptimizerSpec(name, hparams, schedule=extra["schedule"], label=extra["label"], batch_size=batch)


def parse_workload(text: str) -> tuple[str, dict[str, Any]]:
    """``"valley-noisy:noise=0.5"`` -> ``("valley-noisy", {"noise": 0.5})``."""
    name, _, args = text.partition(":")
    return name.strip(), (parse_kv(args, "workload option") if args.strip() else {})


def resolve_hparams(spec: OptimizerSpec, default_lr: dict[str, float] | None = None) -> dict[str, Any]:
    """The entry's hyperparameters, with the workload's learning rate when it gives none."""
    hp = dict(spec.hparams)
    if "lr" not in hp and default_lr and spec.name in default_lr:
        hp["lr"] = default_lr[spec.name]
    # tuples arrive as lists from JSON; the optimizers compare betas as tuples
    return {k: tuple(v) if isinstance(v, list) else v for k, v in hp.items()}


def build_optimizer(spec: OptimizerSpec, params, default_lr: dict[str, float] | None = None) -> torch.optim.Optimizer:
    """Construct the entry's optimizer; its own ValueError/TypeError messages pass through."""
    if spec.name not in OPTIMIZERS:
        raise SpecError(f"unknown optimizer {spec.name!r}; valid names: {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[spec.name](params, **resolve_hparams(spec, default_lr))
    except TypeError as exc:  # an unknown keyword: say which optimizer and what it takes
        raise SpecError(f"{spec.display}: {exc} (valid: {', '.join(hyperparameters(spec.name))})") from None


def build_schedule(text: str, lr0: float, steps: int) -> schedules.Schedule:
    """A schedule from its text form, starting at ``lr0`` over a budget of ``steps``."""
    parts = _split_top(text, "+")
    if not parts:
        raise SpecError(f"Invalid schedule: {text!r}")
    built: list = []
    used = 0
    for i, part in enumerate(parts):
        name, _, rest = part.partition("(")
        name = name.strip().lower()
        kw = parse_kv(rest.rstrip(")"), f"schedule option of {name}") if rest else {}
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
        if name not in makers:
            raise SpecError(f"unknown schedule {name!r}; valid names: {', '.join(makers)}")
        try:
            sched = makers[name]()
        except TypeError as exc:
            raise SpecError(f"Invalid schedule {part!r}: {exc}") from None
        if last:
            built.append(sched)
        else:
            if length is None:
                raise SpecError(f"Invalid schedule {text!r}: part {part!r} needs len= (it is not last)")
            built.append((sched, int(length)))
            used += int(length)
    return built[0] if len(built) == 1 else schedules.sequence(*built)


def validate(spec: OptimizerSpec, default_lr: dict[str, float] | None = None, steps: int = 100) -> None:
    """Build the entry on a dummy parameter (and its schedule): fail before any training."""
    opt = build_optimizer(spec, [torch.nn.Parameter(torch.zeros(2))], default_lr)
    if spec.schedule:
        sched = build_schedule(spec.schedule, float(opt.param_groups[0]["lr"]), steps)
        schedules.Scheduler(opt, sched)


def hyperparameters(name: str) -> dict[str, Any]:
    """The constructor's hyperparameters and their defaults (for ``inertia optimizers``)."""
    sig = inspect.signature(OPTIMIZERS[name].__init__)
    return {p.name: ("required" if p.default is p.empty else p.default) for p in sig.parameters.values()
            if p.name not in ("self", "params") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def describe_optimizers() -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, one-line summary, defaults)`` for every optimizer."""
    from ..optim.registry import REGISTRY

    return [(n, REGISTRY[n].summary if n in REGISTRY else OPTIMIZERS[n].__doc__.splitlines()[0],
             hyperparameters(n)) for n in OPTIMIZERS]

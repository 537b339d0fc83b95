"""Checkpoints that move between inertia and torch.optim, in both directions.

The rule for keys. An inertia optimizer's ``state_dict()`` carries exactly the param-group
keys and state keys that torch's optimizer of the same name writes, plus an inertia-only
option (``nonfinite``, ``sparse``, ``state_dtype``, ...) only when its value differs from
the default. So ``torch.optim.Adam`` loads an ``inertia.Adam`` checkpoint and vice versa,
and ``torch.distributed.checkpoint``'s default load planner, which requires every key of
the loading optimizer's state dict to be present in the checkpoint, works either way.
State torch does not keep is kept out too: ``inertia.SGD`` writes no ``step`` (torch's SGD
detects its first step by the missing momentum buffer), and a parameter whose only state
would be that counter gets no entry at all.

Loading. A checkpoint is validated against the parameters before anything changes: a
state tensor of the wrong shape raises ``ValueError`` naming the parameter and key, and
the optimizer is left as it was. Options passed to the constructor are kept (a checkpoint
never silently replaces ``state_dtype=torch.bfloat16`` by float32): the loaded state is
converted to them. Checkpoints written before an option existed load with its default,
and an integer ``step`` (very old torch files) becomes a float32 tensor.
"""
from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..engine import state as state_policy

if TYPE_CHECKING:
    from .base import Optimizer


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return False  # a tensor option is always written out
    return a == b and type(a) is type(b)


def export(opt: "Optimizer", packed: dict[str, Any]) -> dict[str, Any]:
    """Turn ``torch.optim.Optimizer.state_dict()``'s output into torch's exact format."""
    from .base import EXTRA_DEFAULTS, STANDARD_DEFAULTS

    keep = opt.checkpoint_group_keys()
    defaults = {**STANDARD_DEFAULTS, **EXTRA_DEFAULTS}
    for group in packed["param_groups"]:
        for key in list(group):
            if key in keep or key in ("params", "param_names"):
                continue
            if key in defaults and _same(group[key], defaults[key]):
                del group[key]
    packed["state"] = {index: entry for index, entry in packed["state"].items() if entry}
    return packed


def validate(opt: "Optimizer", state_dict: dict[str, Any]) -> None:
    """Raise before loading if a state tensor does not fit its parameter."""
    saved_groups = state_dict.get("param_groups", [])
    if len(saved_groups) != len(opt.param_groups):
        return  # torch's own check raises for this
    if any(len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, opt.param_groups)):
        return
    ids = chain.from_iterable(s["params"] for s in saved_groups)
    owners = [(p, i, s) for i, (g, s) in enumerate(zip(opt.param_groups, saved_groups))
              for p in g["params"]]
    saved_state = state_dict.get("state", {})
    for index, (p, group_index, saved_group) in zip(ids, owners):
        entry = saved_state.get(index)
        if not entry:
            continue
        group = {**opt.param_groups[group_index], **saved_group}
        group.setdefault("state_dtype", None)
        template = opt.rule(group).init(torch.empty_like(p, device="meta"))
        for key, value in entry.items():
            if key == "step" or key not in template or not isinstance(value, Tensor):
                continue
            want = template[key].shape
            if value.shape != want:
                raise ValueError(
                    f"Invalid state_dict: state {key!r} of parameter {index} (group "
                    f"{group_index}) has shape {tuple(value.shape)} but the parameter needs "
                    f"{tuple(want)}; nothing was loaded")
            if value.is_complex() != p.is_complex():
                raise ValueError(
                    f"Invalid state_dict: state {key!r} of parameter {index} is "
                    f"{value.dtype} for a {p.dtype} parameter; nothing was loaded")


def adopt(opt: "Optimizer", pins: list[dict[str, Any]]) -> None:
    """After torch's loader ran: restore pinned options, fill defaults, convert the state."""
    for group, pinned in zip(opt.param_groups, pins):
        group.update(pinned)
        for key, value in opt.defaults.items():
            group.setdefault(key, value)
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:
                continue
            step = state.get("step")
            if step is not None and not opt.step_in_state:
                del state["step"]  # an older inertia SGD checkpoint: derived from the buffers
            elif step is not None:
                # a float32 count on the parameter's device, whatever the file held
                value = step.detach() if isinstance(step, Tensor) else torch.tensor(float(step))
                state["step"] = value.to(dtype=torch.float32, device=p.device)
            target = group["state_dtype"] or p.dtype
            scalars = state_policy.scalar_keys(opt.rule(group))
            for key, value in state.items():
                if key == "step" or not isinstance(value, Tensor):
                    continue
                if key in scalars:  # per-tensor scalar state (mu_product): float32 always
                    state[key] = value.to(device=p.device, dtype=torch.float32)
                elif value.is_floating_point() and not p.is_complex():
                    state[key] = value.to(dtype=target, device=p.device)
                else:
                    state[key] = value.to(device=p.device)

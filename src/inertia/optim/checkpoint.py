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

8-bit state. A ``state_dtype="8bit"`` optimizer's checkpoint holds what it keeps: the
uint8 codes under the state's own key (``exp_avg``) and the float32 block scales under
``<key>_absmax`` (inertia keys, next to torch's), with ``state_dtype`` (and a non-default
``state_block_size``) among the group's options. Loading converts in every direction: into
a float32 (or bfloat16) optimizer the state is decoded; into an 8-bit optimizer a float
state is encoded, and an 8-bit one with another block size is decoded and encoded again
(the error of one encoding: see ``docs/memory.md``). torch's loader would cast the codes
and scales to the parameter's dtype; they are set aside before it runs and restored after.
:func:`to_torch` gives torch.optim's own format (state decoded to the parameters' dtype,
no inertia keys), which ``torch.optim.Adam`` and the others load as their own.
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


def _owners(opt: "Optimizer", saved_groups: list) -> list[tuple[Any, Tensor, int]]:
    """``(saved index, parameter, group index)`` in the order torch's loader pairs them."""
    ids = chain.from_iterable(s["params"] for s in saved_groups)
    params = [(p, i) for i, g in enumerate(opt.param_groups) for p in g["params"]]
    return [(index, p, i) for index, (p, i) in zip(ids, params)]


def set_aside(opt: "Optimizer", state_dict: dict[str, Any]) -> dict:
    """The 8-bit codes and scales of ``state_dict`` by parameter, before torch's loader casts
    every state tensor to its parameter's dtype; and each saved group's block size."""
    from ..backends import quantize as Q

    saved_groups = state_dict.get("param_groups", [])
    saved_state = state_dict.get("state", {})
    kept: dict = {"blocks": [g.get("state_block_size", Q.DEFAULT_BLOCK) for g in saved_groups],
                  "tensors": {}}
    if len(saved_groups) != len(opt.param_groups):
        return kept
    for index, p, _ in _owners(opt, saved_groups):
        entry = saved_state.get(index) or {}
        raw = {k: v for k, v in entry.items() if isinstance(v, Tensor) and k != "step"
               and (not (v.is_floating_point() or v.is_complex()) or Q.is_scale(k, entry))}
        if raw:
            kept["tensors"][p] = raw
    return kept


def adopt(opt: "Optimizer", pins: list[dict[str, Any]], kept: dict | None = None) -> None:
    """After torch's loader ran: restore pinned options, fill defaults, convert the state."""
    from ..backends import quantize as Q
    from ..engine import state as S

    kept = kept or {"blocks": [], "tensors": {}}
    for index, (group, pinned) in enumerate(zip(opt.param_groups, pins)):
        saved_block = kept["blocks"][index] if index < len(kept["blocks"]) else \
            group.get("state_block_size", Q.DEFAULT_BLOCK)
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
            for key, value in kept["tensors"].get(p, {}).items():
                state[key] = value.to(device=p.device)  # as saved, not cast by torch's loader
            target = S.state_dtype(group, p)
            scalars = state_policy.scalar_keys(opt.rule(group))
            for key, value in list(state.items()):
                if key == "step" or not isinstance(value, Tensor) or key not in state:
                    continue
                if Q.is_scale(key, state):
                    continue  # scales: converted with their codes
                if key in scalars:  # per-tensor scalar state (mu_product): float32 always
                    state[key] = value.to(device=p.device, dtype=torch.float32)
                elif Q.scale_key(key) in state or isinstance(target, Q.Blockwise):
                    _convert_8bit(state, key, p, target, saved_block)
                elif value.is_floating_point() and not p.is_complex():
                    state[key] = value.to(dtype=target, device=p.device)
                else:
                    state[key] = value.to(device=p.device)


def _convert_8bit(state: dict, key: str, p: Tensor, target, saved_block: int) -> None:
    """State ``key`` of ``p`` from what was loaded (8-bit blocks of ``saved_block``, or
    numbers) to the ``target`` storage (8-bit blocks or a dtype)."""
    from ..backends import quantize as Q
    from ..engine import state as S

    scale = Q.scale_key(key)
    coded = scale in state
    if isinstance(target, Q.Blockwise) and coded and saved_block == target.block:
        return  # already as wanted
    values = S.load(state, key, saved_block)
    state.pop(scale, None)
    if isinstance(target, Q.Blockwise):
        state.update(S.store(key, values.to(p.device), target, p))
    else:
        state[key] = values.to(dtype=target, device=p.device)


def to_torch(opt: "Optimizer") -> dict[str, Any]:
    """``opt``'s checkpoint in torch.optim's own format: every state tensor in its
    parameter's dtype (8-bit state decoded, bfloat16 state widened), no ``_absmax`` scales
    and no inertia options. ``torch.optim.Adam`` (SGD, RMSprop, Adagrad, AdamW) loads it as
    its own; for an optimizer torch does not have, it is the float checkpoint."""
    from ..backends import quantize as Q
    from ..engine import state as S
    from .base import EXTRA_DEFAULTS

    packed = opt.state_dict()
    params = [p for g in opt.param_groups for p in g["params"]]
    for group, saved in zip(opt.param_groups, packed["param_groups"]):
        for key in EXTRA_DEFAULTS:
            saved.pop(key, None)
        for index in saved["params"]:
            entry = packed["state"].get(index)
            if not entry:
                continue
            p = params[index]
            for key in list(entry):
                value = entry.get(key)
                if key == "step" or not isinstance(value, Tensor) or key not in entry:
                    continue
                if Q.scale_key(key) in entry:
                    value = S.load(entry, key, group["state_block_size"])
                    del entry[Q.scale_key(key)]
                if (value.dim() > 0 or p.dim() == 0) and value.is_floating_point():
                    value = value.to(p.dtype)
                entry[key] = value
    return packed

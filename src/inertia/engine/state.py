"""Optimizer state: created lazily, kept where the parameter is, in one dtype policy.

The one place that decides

* **when state exists**: on a parameter's first step with a gradient (Adagrad, like
  torch's, creates it with the optimizer);
* **where the step count lives**: ``state["step"]``, a float32 0-d tensor on the
  parameter's device (as torch.optim's ``capturable``/``fused`` modes keep it), so a
  step never copies it from the host and never waits for the device; it is advanced by
  the operator that applies the update. An optimizer whose torch twin keeps no count
  (SGD: ``step_in_state = False``) keeps it beside the state, out of checkpoints, and
  derives it from the state when it is missing (a momentum buffer means a step was taken);
* **how the state is stored**: the group's ``state_dtype``, else the parameter's dtype
  (complex parameters keep complex state, updated through real views); ``"8bit"`` stores
  each elementwise state tensor as bytes and per-block float32 scales
  (:mod:`inertia.backends.quantize`): ``state[key]`` holds the uint8 codes, shaped like the
  parameter, and ``state[key + "_absmax"]`` the ``(rows, blocks per row)`` scales. Tensors too
  small or too narrow for blocks to pay (:func:`~inertia.backends.quantize.eligible`), and
  sharded ones whose shards are not whole rows, keep float32 state (float64 for float64
  parameters);
* **which dtype arithmetic happens in**: float64 if the parameter or state is float64,
  else float32 (bfloat16 storage is widened).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..backends import quantize as Q
from ..backends.reference import compute_dtype  # noqa: F401 - the policy, re-exported
from . import distributed as D

#: ``state_dtype`` value of the 8-bit blockwise state
EIGHT_BIT = "8bit"


def state_dtype(group: dict[str, Any], p: Tensor) -> "torch.dtype | Q.Blockwise":
    """How ``p``'s elementwise state is stored: a dtype (for a complex ``p``: the dtype of
    its real view), or :class:`~inertia.backends.quantize.Blockwise` for 8-bit blocks."""
    real = p.real.dtype if p.is_complex() else p.dtype
    wanted = group["state_dtype"]
    if wanted != EIGHT_BIT:
        return wanted or real
    if quantizable(p, group.get("state_min_size", Q.MIN_SIZE)):
        return Q.Blockwise(group.get("state_block_size", Q.DEFAULT_BLOCK))
    return torch.float64 if real == torch.float64 else torch.float32


def quantizable(p: Tensor, min_size: int = Q.MIN_SIZE) -> bool:
    """Whether ``p``'s state may be stored in 8-bit blocks: a real floating tensor of at
    least two dimensions, ``min_size`` elements and rows of :data:`~inertia.backends.
    quantize.MIN_ROW` (the *whole* tensor's shape when sharded, so every rank decides
    alike), whose shards, if any, are whole rows (FSDP2's ``Shard(0)``)."""
    if not p.is_floating_point() or not Q.eligible(tuple(p.shape), min_size):
        return False
    return D.whole_rows(p)


def new_step(p: Tensor, value: float = 0.0) -> Tensor:
    return torch.full((), value, dtype=torch.float32, device=p.device)


def scalar_keys(rule) -> set[str]:
    """The rule's per-tensor scalar state (0-d whatever the parameter's shape, e.g. NAdam's
    ``mu_product``): kept in float32, as torch keeps it, whatever ``state_dtype`` says."""
    probe = torch.empty((2,), device="meta")
    return {k for k, v in rule.init(probe).items() if v.dim() == 0}


def template(rule, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
    """``p``'s fresh state without ``step``: the rule's initial values, stored as the policy
    says (in the state dtype, or 8-bit codes and their scales)."""
    dtype = state_dtype(group, p) if group["state_dtype"] is not None else None
    out = {}
    scalars = scalar_keys(rule)
    for key, value in rule.init(p).items():
        if key in scalars:
            out[key] = value
        elif isinstance(dtype, Q.Blockwise):
            out.update(store(key, value, dtype, p))
            continue
        elif dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        elif dtype is not None and value.is_complex():
            value = value.to(torch.complex128 if dtype == torch.float64 else torch.complex64)
        out[key] = value
    return out


def store(key: str, value: Tensor, storage: "torch.dtype | Q.Blockwise", p: Tensor
          ) -> dict[str, Tensor]:
    """State entries holding ``value`` (state ``key`` of ``p``) as ``storage`` says: the
    value in that dtype, or the codes and scales of 8-bit blocks (sharded like ``p``)."""
    if not isinstance(storage, Q.Blockwise):
        return {key: value.to(storage)}
    local = D.local(value)
    if not bool(local.any()):  # zeros (most initial states): no arithmetic needed
        rows, _, nb = Q.layout(tuple(local.shape), storage.block)
        codes = torch.zeros(local.shape, dtype=torch.uint8, device=local.device)
        scales = torch.zeros((rows, nb), dtype=torch.float32, device=local.device)
    else:
        codes, scales = Q.quantize(local, key, storage.block)
    rows, _, nb = Q.layout(tuple(p.shape), storage.block)
    return {key: D.like(p, codes, tuple(p.shape)),
            Q.scale_key(key): D.like(p, scales, (rows, nb))}


def load(state: dict[str, Tensor], key: str, block: int) -> Tensor:
    """State ``key`` as numbers: dequantised (float32) when it is stored in 8-bit blocks
    of ``block`` elements, else as it is."""
    scales = state.get(Q.scale_key(key))
    if scales is None:
        return state[key]
    codes = state[key]
    values = Q.dequantize(D.local(codes), D.local(scales), key, block)
    return D.like(codes, values, tuple(codes.shape))


def ensure(optimizer, p: Tensor, rule, group: dict[str, Any]) -> dict[str, Tensor]:
    """``p``'s state (without the step count), created on first use."""
    if not optimizer.step_in_state:
        if p not in optimizer._steps:
            fresh = not optimizer.state.get(p)
            initial = template(rule, p, group)
            if initial:  # no entry at all for a stateless rule, as torch keeps none
                state = optimizer.state[p]
                for key, value in initial.items():
                    state.setdefault(key, value)
            optimizer._steps[p] = new_step(p, 0.0 if fresh else 1.0)
            optimizer._state_version += 1
        return optimizer.state.get(p, {})
    state = optimizer.state[p]
    if "step" not in state:
        if state:
            raise ValueError(f"Invalid optimizer state: parameter of shape {tuple(p.shape)} "
                             f"has state {sorted(state)} but no 'step'")
        state["step"] = new_step(p)
        for key, value in template(rule, p, group).items():
            state.setdefault(key, value)
        optimizer._state_version += 1  # the tensors kernels were planned with changed
    return state


def step_of(optimizer, p: Tensor) -> Tensor:
    """``p``'s step count (after :func:`ensure`)."""
    return optimizer.state[p]["step"] if optimizer.step_in_state else optimizer._steps[p]

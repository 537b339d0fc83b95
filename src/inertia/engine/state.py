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
* **which dtype the state has**: the group's ``state_dtype``, else the parameter's
  (complex parameters keep complex state, updated through real views);
* **which dtype arithmetic happens in**: float64 if the parameter or state is float64,
  else float32 (bfloat16 storage is widened).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..backends.reference import compute_dtype  # noqa: F401 - the policy, re-exported


def state_dtype(group: dict[str, Any], p: Tensor) -> torch.dtype:
    """The dtype of ``p``'s state (for a complex ``p``: the dtype of its real view)."""
    real = p.real.dtype if p.is_complex() else p.dtype
    return group["state_dtype"] or real


def new_step(p: Tensor, value: float = 0.0) -> Tensor:
    return torch.full((), value, dtype=torch.float32, device=p.device)


def scalar_keys(rule) -> set[str]:
    """The rule's per-tensor scalar state (0-d whatever the parameter's shape, e.g. NAdam's
    ``mu_product``): kept in float32, as torch keeps it, whatever ``state_dtype`` says."""
    probe = torch.empty((2,), device="meta")
    return {k for k, v in rule.init(probe).items() if v.dim() == 0}


def template(rule, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
    """``p``'s fresh state without ``step``: the rule's initial values in the state dtype."""
    dtype = group["state_dtype"]
    out = {}
    scalars = scalar_keys(rule)
    for key, value in rule.init(p).items():
        if key in scalars:
            out[key] = value
        elif dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        elif dtype is not None and value.is_complex():
            value = value.to(torch.complex128 if dtype == torch.float64 else torch.complex64)
        out[key] = value
    return out


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

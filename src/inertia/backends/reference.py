"""The reference path: a rule applied with torch ops, one tensor at a time.

This is the definition every fused kernel is tested against, and the path for whatever a
kernel does not take (``fused=False``, ``differentiable=True``, non-contiguous tensors,
state of a foreign dtype, rules the tracer cannot express). It reads like the math: for
each parameter, ``u, changed = rule.update(g, state, p)`` then ``p <- p + u``.

Conventions shared with the kernels: the gradient is multiplied by ``gmul`` (the sign for
``maximize``, 1/grad_scale under AMP, the clipping coefficient), per-tensor scalars (the
step, hence bias corrections, and norms) are float64, elementwise arithmetic happens in
the compute dtype (float64 if parameter or state is float64, else float32), a complex
tensor is its real view, and the step count advances after the update.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..rules.transforms import Transform


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype arithmetic happens in: float64 stays, anything narrower is done in float32."""
    out = torch.float32
    for d in dtypes:
        out = torch.promote_types(out, d)
    return out


def _real(x: Tensor) -> Tensor:
    return torch.view_as_real(x) if x.is_complex() else x


def apply(rule: Transform, p: Tensor, grad: Tensor, state: dict[str, Any], step: Tensor,
          gmul: Any, lazy: bool = False, keep: Tensor | None = None,
          advance: Tensor | None = None) -> None:
    """One step of ``rule`` for parameter ``p``: updates ``p``, ``state`` and ``step`` in place.

    ``grad`` may be sparse (COO, coalesced): densified, or with ``lazy`` only the rows it
    touches (and their state) are updated. Under autograd (``differentiable=True``) the
    rule reads copies, since it may save its inputs for backward and the writes below are
    in place. ``keep`` (a 0-d bool tensor) writes the new values only where it holds, with
    no host synchronisation: the non-finite guard of this path (whole tensors). The step
    count advances by ``advance`` (default 1).
    """
    if grad.is_sparse and not lazy:
        grad = grad.to_dense()
    if p.is_complex():
        # torch.optim's convention: a complex number is two real coordinates.
        grad = _real(grad.to_dense() if grad.is_sparse else grad)
        p = _real(p)
        state = {k: _real(v) for k, v in state.items()}
    state = {k: v for k, v in state.items() if k != "step"}
    cd = compute_dtype(p.dtype, *(v.dtype for v in state.values() if isinstance(v, Tensor)))
    record = torch.is_grad_enabled()
    counter = step
    step = counter.to(torch.float64) + 1
    if grad.is_sparse:
        rows = tuple(grad.indices())
        current = {k: v[rows].to(cd) for k, v in state.items()}
        param = p[rows].to(cd)
        g = grad.values().to(cd)
    else:
        rows = None
        current = {k: v.to(cd, copy=record) for k, v in state.items()}
        param = p.to(cd, copy=record)
        g = grad.to(cd)
    current["step"] = step
    if not (isinstance(gmul, (int, float)) and gmul == 1):
        g = g * gmul
    update, changed = rule.update(g, current, param)
    new = {None: param + update, **changed}
    if keep is not None:
        old = {None: param, **{k: current[k] for k in changed}}
        new = {k: torch.where(keep, v, old[k]) for k, v in new.items()}
    if rows is None:
        p.copy_(new.pop(None))
        for key, value in new.items():
            state[key].copy_(value)
    else:
        p[rows] = new.pop(None).to(p.dtype)
        for key, value in new.items():
            state[key][rows] = value.to(state[key].dtype)
    counter.add_(1 if advance is None else advance.to(counter.device, counter.dtype))

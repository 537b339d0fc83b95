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
        # per-tensor scalar state (NAdam's mu_product) is whole, not per row
        current = {k: (v if v.dim() == 0 else v[rows]).to(cd) for k, v in state.items()}
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
            if state[key].dim() == 0:
                state[key].copy_(value)
            else:
                state[key][rows] = value.to(state[key].dtype)
    counter.add_(1 if advance is None else advance.to(counter.device, counter.dtype))


def apply_many(rule: Transform, params: list, grads: list, states: list, steps: list,
               gmuls: list, keeps: list | None = None, advance: Tensor | None = None) -> None:
    """:func:`apply` for many tensors at once, through the rule's batched form ``rule.many``.

    For rules with whole-tensor transformations (Muon's Newton-Schulz iteration, Adafactor's
    row and column statistics; see :class:`~inertia.rules.transforms.Transform`), which
    batch their work over the tensors of a group. Conventions are :func:`apply`'s, per
    tensor (dense gradients only: such rules refuse sparse ones before the step).
    """
    record = torch.is_grad_enabled()
    targets, currents, ps, gs = [], [], [], []
    for p, grad, state, counter, gmul in zip(params, grads, states, steps, gmuls):
        if p.is_complex():
            grad, p = _real(grad), _real(p)
            state = {k: _real(v) for k, v in state.items()}
        state = {k: v for k, v in state.items() if k != "step"}
        cd = compute_dtype(p.dtype, *(v.dtype for v in state.values() if isinstance(v, Tensor)))
        current = {k: v.to(cd, copy=record) for k, v in state.items()}
        current["step"] = counter.to(torch.float64) + 1
        g = grad.to(cd)
        if not (isinstance(gmul, (int, float)) and gmul == 1):
            g = (g * gmul).to(cd)  # (a 0-d gradient times the float64 gmul would promote)
        targets.append((p, state))
        currents.append(current)
        ps.append(p.to(cd, copy=record))
        gs.append(g)
    updates, changes = rule.many(gs, currents, ps)
    for i, ((p, state), param, update, changed) in enumerate(zip(targets, ps, updates, changes)):
        new = {None: param + update, **changed}
        if keeps is not None and keeps[i] is not None:
            old = {None: param, **{k: currents[i][k] for k in changed}}
            new = {k: torch.where(keeps[i], v, old[k]) for k, v in new.items()}
        p.copy_(new.pop(None))
        for key, value in new.items():
            state[key].copy_(value)
        counter = steps[i]
        counter.add_(1 if advance is None else advance.to(counter.device, counter.dtype))

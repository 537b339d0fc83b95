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

Compact storage (:mod:`.quantize`), exactly as the kernels do it: state stored in 8-bit
blocks is decoded before the rule runs and the rule's new values (still in the compute
dtype: a two-pass rule's norms see them unrounded) are encoded after it; a bfloat16
parameter with stochastic rounding takes its new value rounded with the counter-based
random bits of its elements.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..rules.transforms import Transform
from . import quantize as Q
from .layout import like, local, positions


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype arithmetic happens in: float64 stays, anything narrower is done in float32."""
    out = torch.float32
    for d in dtypes:
        out = torch.promote_types(out, d)
    return out


def _real(x: Tensor) -> Tensor:
    return torch.view_as_real(x) if x.is_complex() else x


def _open(p: Tensor, stored: dict[str, Any], block: int):
    """A parameter's state as a rule reads it: ``(state, values, coded, cd)``: the state
    tensors without the step count and the 8-bit scales, the same with 8-bit ones decoded,
    the keys stored in 8 bits, and the compute dtype (of the parameter and the unencoded
    state)."""
    coded = {k for k in stored if Q.scale_key(k) in stored}
    state = {k: v for k, v in stored.items() if k != "step" and not Q.is_scale(k, stored)}
    cd = compute_dtype(p.dtype, *(v.dtype for k, v in state.items()
                                  if isinstance(v, Tensor) and k not in coded))
    values = {k: (_decode(stored, k, block) if k in coded else v)
              for k, v in state.items()} if coded else state
    return state, values, coded, cd


def _held(keep: Tensor | None) -> Tensor | None:
    """``keep``, or None where it is a CPU tensor that holds: reading it there synchronises
    nothing, and the selects it would cost (a pass over the parameter and each state) are
    skipped; the values written are the same. Not under ``torch.compile`` (no data-dependent
    branch in a graph) nor on a GPU (a read would wait for the device)."""
    if (keep is not None and type(keep) is Tensor and keep.device.type == "cpu"
            and not torch.compiler.is_compiling() and bool(keep)):
        return None
    return keep


def apply(rule: Transform, p: Tensor, grad: Tensor, state: dict[str, Any], step: Tensor,
          gmul: Any, lazy: bool = False, keep: Tensor | None = None,
          advance: Tensor | None = None, block: int = Q.DEFAULT_BLOCK,
          rounding: tuple[int, int] | None = None) -> None:
    """One step of ``rule`` for parameter ``p``: updates ``p``, ``state`` and ``step`` in place.

    ``grad`` may be sparse (COO, coalesced): densified, or with ``lazy`` only the rows it
    touches (and their state) are updated. Under autograd (``differentiable=True``) the
    rule reads copies, since it may save its inputs for backward and the writes below are
    in place. ``keep`` (a 0-d bool tensor) writes the new values only where it holds, with
    no host synchronisation: the non-finite guard of this path (whole tensors). The step
    count advances by ``advance`` (default 1).

    State ``key`` with scales ``key + "_absmax"`` is in 8-bit blocks of ``block`` elements.
    ``rounding``: ``(tensor key, offset)`` rounds a bfloat16 ``p`` stochastically with the
    stream of that key (:func:`.quantize.tensor_key`), its elements numbered from ``offset``
    (the shard's first element in the whole tensor).
    """
    keep = _held(keep)
    if grad.is_sparse and not lazy:
        grad = grad.to_dense()
    if p.is_complex():
        # torch.optim's convention: a complex number is two real coordinates.
        grad = _real(grad.to_dense() if grad.is_sparse else grad)
        p = _real(p)
        state = {k: _real(v) for k, v in state.items()}
    stored = state
    _, state, coded, cd = _open(p, stored, block)
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
    if rounding is not None and p.dtype == torch.bfloat16:
        new[None] = _stochastic(p, new[None], rounding, step, rows)
    for key in coded & new.keys():
        _encode(stored, key, new.pop(key), block, keep)
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
               gmuls: list, keeps: list | None = None, advance: Tensor | None = None,
               block: int = Q.DEFAULT_BLOCK, roundings: list | None = None) -> None:
    """:func:`apply` for many tensors at once, through the rule's batched form ``rule.many``.

    For rules with whole-tensor transformations (Muon's Newton-Schulz iteration, Adafactor's
    row and column statistics; see :class:`~inertia.rules.transforms.Transform`), which
    batch their work over the tensors of a group. Conventions are :func:`apply`'s, per
    tensor (dense gradients only: such rules refuse sparse ones before the step), including
    8-bit state (decoded before, encoded after) and ``roundings`` (one per tensor, or None).
    """
    record = torch.is_grad_enabled()
    targets, currents, ps, gs, codeds = [], [], [], [], []
    for p, grad, state, counter, gmul in zip(params, grads, states, steps, gmuls):
        if p.is_complex():
            grad, p = _real(grad), _real(p)
            state = {k: _real(v) for k, v in state.items()}
        stored = state
        state, values, coded, cd = _open(p, stored, block)
        codeds.append((coded, stored))
        current = {k: v.to(cd, copy=record) for k, v in values.items()}
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
        keep = _held(keeps[i]) if keeps is not None else None
        rounding = roundings[i] if roundings is not None else None
        if param is p and not (rounding is not None and p.dtype == torch.bfloat16):
            # the parameter is its own compute copy: add the (kept) update in place, one
            # pass instead of a sum, a select and a copy (the same additions, bit for bit)
            p.add_(update if keep is None else torch.where(keep, update, 0))
            param = None
        new = {**changed} if param is None else {None: param + update, **changed}
        if keep is not None:
            old = {None: param, **{k: currents[i][k] for k in changed}}
            new = {k: torch.where(keep, v, old[k]) for k, v in new.items()}
        if rounding is not None and p.dtype == torch.bfloat16:
            new[None] = _stochastic(p, new[None], rounding, currents[i]["step"], None)
        coded, stored = codeds[i]
        for key in coded & new.keys():
            _encode(stored, key, new.pop(key), block, keep)
        if None in new:
            p.copy_(new.pop(None))
        for key, value in new.items():
            state[key].copy_(value)
        counter = steps[i]
        counter.add_(1 if advance is None else advance.to(counter.device, counter.dtype))


def _decode(state: dict, key: str, block: int) -> Tensor:
    codes = state[key]
    values = Q.dequantize(local(codes), local(state[Q.scale_key(key)]), key, block)
    return like(codes, values, tuple(codes.shape))


def _encode(state: dict, key: str, value: Tensor, block: int, keep: Tensor | None) -> None:
    """Store ``value`` as ``state[key]``'s codes and scales (only where ``keep`` holds)."""
    scale = Q.scale_key(key)
    codes, scales = Q.quantize(local(value).detach(), key, block)
    if keep is not None:
        codes = torch.where(local(keep), codes, local(state[key]))
        scales = torch.where(local(keep), scales, local(state[scale]))
    local(state[key]).copy_(codes)
    local(state[scale]).copy_(scales)


def _stochastic(p: Tensor, value: Tensor, rounding: tuple[int, int], step: Tensor,
                rows) -> Tensor:
    """``value`` (the new ``p``) rounded to bfloat16 stochastically: the bits of its
    elements from the stream of ``rounding``'s key at this step (see :mod:`.quantize`)."""
    key, offset = rounding
    o = Q.TorchOps
    part = local(value).to(torch.float32)
    index = positions(local(p)).to(part.device)
    if rows is not None:
        index = index[rows]
    index = index + offset
    k = Q.step_key(o, o.u32(torch.tensor(key)), o.u32(local(step).to(torch.int64).reshape(())))
    r = Q.random_bits(o, k, o.u32(index & Q.MASK32), o.u32(index >> 32))
    bits = Q.round_bf16_stochastic(o, part, r).t
    rounded = torch.where(bits >= 2 ** 15, bits - 2 ** 16, bits).to(torch.int16).view(torch.bfloat16)
    return like(value, rounded, tuple(value.shape)) if rows is None else rounded

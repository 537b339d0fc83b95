r"""Adafactor in one compiled sweep per tensor, on the CPU.

The rule (:func:`inertia.rules.matrix.adafactor`) is a chain of four whole-tensor
transformations on torch ops: factored second moment, update clipping, relative step,
decoupled weight decay. Run that way a step costs a dozen passes and as many operator
calls per tensor; the arithmetic is a handful of flops per element. Here the same chain,
for a gradient :math:`G` seen as :math:`B` matrices of :math:`n \times m` (a vector:
one full second moment), is three reads of :math:`G` (two of them of a tensor still in the
cache) and one read and write of the parameter:

1. row and column sums of :math:`G^2` (and :math:`\sum P^2` for the relative step, and
   a NaN probe of :math:`G` for the guard); nothing is written, so a non-finite gradient
   leaves the tensor untouched;
2. the new statistics :math:`R, C` (stored), then :math:`\sum U^2` of the unclipped update
   :math:`U = G / \sqrt{\max(R C / \bar R, \epsilon_1^2)}`;
3. :math:`P \leftarrow P + s\, U / \max(1, \mathrm{RMS}(U)/d) - \eta\lambda P` with the
   relative step :math:`s = -\max(\epsilon_2, \mathrm{RMS}(P)) \min(\eta, 1/\sqrt t)`.

Arithmetic is in the reference's compute dtype (float64 if the parameter or its state is,
else float32), with torch's ``lerp`` formula for the statistics; sums are partial sums in
the compute dtype (per row, and per block of rows for the columns) added up in float64. Two reorderings make the passes
cheap: :math:`1/\sqrt{R_i C_j / \bar R}` is taken as :math:`1/\sqrt{R_i/\bar R} \cdot
1/\sqrt{C_j}` (one root per row and per column, none per element, unless the clamp at
:math:`\epsilon_1^2` applies), and the step size is divided by the clipping factor once.
So the results equal the reference path's to a few ulps a step, not bit for bit
(``tests/test_kernels.py``; equal to ``torch.optim.Adafactor``: ``tests/test_new_optimizers.py``).
Tensors are spread over the kernel threads whole.

What this sweep does not take (sharded, non-contiguous, 8-bit state, stochastic rounding,
autograd, ``torch.compile``) runs the rule on torch ops (:func:`.reference.apply_many`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import carray, njit, types
from numba.extending import overload

from . import cpu, threads
from .numba_support import F32, F64, U16, address, ld, st

_STORAGE = {torch.float32: F32, torch.float64: F64, torch.bfloat16: U16}
#: hyperparameter slots of the kernel's float64 vector
_LR, _DECAY, _EPS1, _EPS2, _D, _WDC, _GMUL, _GUARD = range(8)
#: rows per partial column sum
_BLOCK = 64


def cast(x, like):
    """``x`` in the numba type of ``like`` (the compute dtype)."""


@overload(cast)
def _cast(x, like):
    if like == types.float32:
        return lambda x, like: np.float32(x)
    return lambda x, like: np.float64(x)


@njit(inline="always")
def _lerp(a, b, w):
    # torch's lerp: the formula that is exact at both ends
    return a + w * (b - a) if abs(w) < 0.5 else b - (b - a) * (1 - w)


@njit(inline="always")
def _max(a, b):
    return a if (a >= b or a != a) else b  # torch.clamp(min=) keeps NaN


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def _sweep(table, shapes, steps, hyper, lo, hi, bad, pmark, smark, cmark, zero):
    lr, c = hyper[_LR], hyper[_DECAY]
    gm = cast(hyper[_GMUL], zero)
    e1 = cast(hyper[_EPS1], zero)
    e1sq = e1 * e1
    d = cast(hyper[_D], zero)
    eps2 = cast(hyper[_EPS2], zero)
    wdc = cast(hyper[_WDC], zero)
    guard = hyper[_GUARD] != 0
    one = cast(1.0, zero)
    for t in range(lo, hi):
        B, n, m = shapes[t, 0], shapes[t, 1], shapes[t, 2]
        size = B * n * max(m, 1)
        p = carray(address(table[t, 0], pmark), size)
        g = carray(address(table[t, 1], pmark), size)
        step = steps[t]
        w = cast(step ** c, zero)  # 1 - beta2_t, as the reference: float64, then compute dtype
        rho = cast(min(1.0 / math.sqrt(step), lr), zero)
        probe = zero
        sp = 0.0
        su = 0.0
        if m == 0:  # a vector (or a scalar): the full second moment
            v = carray(address(table[t, 2], smark), size)
            for i in range(size):
                x = ld(g, i) * gm
                probe += x * zero
                nv = _lerp(cast(ld(v, i), zero), x * x, w)
                u = one / np.sqrt(_max(nv, e1sq)) * x
                su += np.float64(u) * u
                q = np.float64(ld(p, i))
                sp += q * q
            if guard and probe != probe:
                bad[t] = 1
                continue
            clip = _max(cast(math.sqrt(su / size), zero) / d, one)
            scale = _max(cast(math.sqrt(sp / size), zero), eps2) * rho * -one
            for i in range(size):
                x = ld(g, i) * gm
                nv = _lerp(cast(ld(v, i), zero), x * x, w)
                st(v, i, nv)
                u = one / np.sqrt(_max(nv, e1sq)) * x
                q = cast(ld(p, i), zero)
                st(p, i, q + (u / clip * scale + wdc * q))
            continue
        R = carray(address(table[t, 2], smark), B * n)
        C = carray(address(table[t, 3], smark), B * m)
        rows = np.zeros(B * n, np.float64)
        cols = np.zeros(B * m, np.float64)
        block = np.zeros(m, cmark.dtype)
        for b in range(B):
            for i in range(n):
                base = np.uint64((b * n + i) * m)
                rs = zero
                ps = zero
                for j in range(np.uint64(m)):
                    x = ld(g, base + j) * gm
                    probe += x * zero
                    x2 = x * x
                    rs += x2
                    block[j] += x2
                    q = ld(p, base + j)
                    ps += q * q
                rows[b * n + i] = rs
                sp += ps
                # column sums: partial sums of _BLOCK rows in the compute dtype (a loop
                # that vectorises), added up in float64
                if (i + 1) % _BLOCK == 0 or i == n - 1:
                    for j in range(m):
                        cols[b * m + j] += block[j]
                        block[j] = zero
        if guard and probe != probe:
            bad[t] = 1
            continue
        # the statistics: stored in the state's dtype, used unrounded (as the reference)
        col = np.empty(B * m, cmark.dtype)
        rcol = np.empty(B * m, cmark.dtype)
        rel = np.empty(B * n, cmark.dtype)
        for b in range(B):
            total = 0.0
            for i in range(n):
                r = _lerp(cast(ld(R, b * n + i), zero), cast(rows[b * n + i] / m, zero), w)
                st(R, b * n + i, r)
                rel[b * n + i] = r
                total += r
            den = _max(cast(total / n, zero), e1)
            for i in range(n):
                rel[b * n + i] = rel[b * n + i] / den
            for j in range(m):
                c_ = _lerp(cast(ld(C, b * m + j), zero), cast(cols[b * m + j] / n, zero), w)
                st(C, b * m + j, c_)
                col[b * m + j] = c_
                rcol[b * m + j] = one / np.sqrt(c_)
        # U = G rsqrt(max(R C / mean R, eps1^2)), as rsqrt(R / mean R) rsqrt(C) unless
        # clamped: no square root or division per element (rounding: a few ulps)
        floor = one / np.sqrt(e1sq)
        for b in range(B):
            for i in range(n):
                base = np.uint64((b * n + i) * m)
                a = rel[b * n + i]
                ra = one / np.sqrt(a)
                acc = zero
                for j in range(np.uint64(m)):
                    x = ld(g, base + j) * gm
                    k = b * m + j
                    u = x * (floor if a * col[k] < e1sq else ra * rcol[k])
                    acc += u * u
                su += acc
        clip = _max(cast(math.sqrt(su / size), zero) / d, one)
        scale = _max(cast(math.sqrt(sp / size), zero), eps2) * rho * -one / clip
        for b in range(B):
            for i in range(n):
                base = np.uint64((b * n + i) * m)
                a = rel[b * n + i]
                ra = one / np.sqrt(a)
                for j in range(np.uint64(m)):
                    x = ld(g, base + j) * gm
                    k = b * m + j
                    u = x * (floor if a * col[k] < e1sq else ra * rcol[k])
                    q = ld(p, base + j)
                    st(p, base + j, q + (u * scale + wdc * q))


def takes(p: torch.Tensor, g: torch.Tensor, state: dict, rounding) -> bool:
    """Whether the sweep can step ``p``: a dense contiguous real CPU tensor with a gradient
    of its dtype and plain (not 8-bit, not sharded) state of a storage dtype it reads."""
    if not (p.device.type == "cpu" and type(p) in (torch.Tensor, torch.nn.Parameter)
            and p.dtype in _STORAGE and p.numel() > 0 and p.is_contiguous()):
        return False
    if not (type(g) is torch.Tensor and g.layout == torch.strided and g.dtype == p.dtype
            and g.is_contiguous()):
        return False
    if rounding is not None and p.dtype == torch.bfloat16:
        return False
    keys = ("row_var", "col_var") if p.dim() > 1 else ("variance",)
    if set(state) - {"step"} != set(keys):
        return False  # also 8-bit state: its scales are entries of their own
    first = state[keys[0]]
    return all(type(state[k]) is torch.Tensor and state[k].dtype == first.dtype
               and state[k].dtype in _STORAGE and state[k].is_contiguous() for k in keys)


def step(ps: list, grads: list, states: list, steps: list, gmul: float, numbers: dict,
         guard: bool) -> list[int]:
    """One Adafactor step of every tensor in ``ps`` (all :func:`takes`-able, one dtype and one
    state dtype) with the rule's ``numbers`` (:func:`inertia.rules.matrix.adafactor`; CPU
    tensors or numbers); advances ``steps``; returns the positions the guard skipped."""
    count = len(ps)
    table = np.zeros((count, 4), np.int64)
    shapes = np.zeros((count, 3), np.int64)
    for k, (p, g, s) in enumerate(zip(ps, grads, states)):
        table[k, 0], table[k, 1] = p.data_ptr(), g.data_ptr()
        if p.dim() > 1:
            table[k, 2], table[k, 3] = s["row_var"].data_ptr(), s["col_var"].data_ptr()
            shapes[k] = (p.numel() // (p.shape[-2] * p.shape[-1]), p.shape[-2], p.shape[-1])
        else:
            table[k, 2] = s["variance"].data_ptr()
            shapes[k] = (1, p.numel(), 0)
    at = np.array([float(s) + 1 for s in steps], np.float64)
    hyper = np.zeros(8, np.float64)
    hyper[_LR] = float(numbers["lr"])
    hyper[_DECAY] = float(numbers["beta2_decay"])
    state_dtype = (states[0]["row_var"] if ps[0].dim() > 1 else states[0]["variance"]).dtype
    cd = torch.promote_types(torch.promote_types(torch.float32, ps[0].dtype), state_dtype)
    eps1 = numbers["eps1"]
    hyper[_EPS1] = torch.finfo(cd).eps if eps1 is None else float(eps1)
    hyper[_EPS2] = float(numbers["eps2"])
    hyper[_D] = float(numbers["d"])
    # the coefficient as the rule forms it (a float32 tensor lr gives a float32 product)
    hyper[_WDC] = float(-numbers["lr"] * numbers["weight_decay"])
    hyper[_GMUL] = gmul
    hyper[_GUARD] = guard
    bad = np.zeros(count, np.int64)
    zero = np.float64(0) if cd == torch.float64 else np.float32(0)
    sizes = shapes[:, 0] * shapes[:, 1] * np.maximum(shapes[:, 2], 1)
    parts = threads.count() if int(sizes.sum()) >= cpu.PARALLEL_MIN else 1
    threads.run(_sweep, [(table, shapes, at, hyper, lo, hi, bad, _STORAGE[ps[0].dtype],
                          _STORAGE[state_dtype], _STORAGE[cd], zero)
                         for lo, hi in threads.split(sizes, parts)])
    torch._foreach_add_(list(steps), 1.0)
    return bad.nonzero()[0].tolist()

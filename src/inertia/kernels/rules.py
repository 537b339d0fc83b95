r"""Every element-wise update rule, once, as scalar math on one coordinate.

Each rule is the fused form of an optimizer's reference chain
(:mod:`inertia.optim.transforms`), written with the same operation order so that float64
results agree to rounding and float32 ones to the last bit or two. A rule reads the
gradient ``g`` (already sign-flipped for ``maximize``), loads what it needs from the
parameter ``p`` and up to three state arrays ``s0..s2`` at index ``i``, and stores the new
values back: one read and one write of every array, which is the memory floor.

``h`` is the group's hyperparameters as a tuple in the compute dtype (a tuple, not an
array, so the compiler knows nothing aliases it and can hoist the flag branches out of
the loop); ``c`` holds per-tensor constants that depend on the tensor's step (bias
corrections) or on a norm (trust ratios). Flags are 0.0/1.0 entries of ``h``.

How a parameter group becomes ``h`` and ``c`` is in :mod:`inertia.kernels.algos`.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.core import types
from numba.extending import overload

from ._memory import ld, st
from .algos import (ADAGRAD, ADAM, AMSGRAD, CENTERED, HAS_MOMENTUM, LAMB_APPLY, LAMB_NORMS,
                    LARS_APPLY, LARS_NORMS, LION, MOMENTUM, NARROW, RMSPROP, SGD)

# ----------------------------------------------------------------------------- the math
# Flags that decide whether a state array is written at all (amsgrad, centered, momentum,
# ...) arrive as the compile-time bitmask ``v`` (see ``algos.Algo.variant``), so that LLVM
# folds them away: a store under a runtime condition stops the loop from vectorising.
# Flags that only pick between values stay runtime entries of ``h`` (they become selects).


@njit(error_model="numpy")
def _sign(x):
    return x if x != x else (x > 0) - (x < 0) + x * 0  # torch.sign: -1, 0, 1, NaN stays NaN


@njit(error_model="numpy")
def _maximum(a, b):
    return a if (a >= b or a != a) else b  # torch.maximum propagates NaN



@njit(error_model="numpy")
def _sgd(i, g, p, s0, s1, s2, h, c, v):
    # h = (sign, -lr, wd, mu, 1 - dampening, nesterov, has_momentum); c = (first_step,)
    w = ld(p, i)
    if h[2] != 0:
        g = g + h[2] * w
    u = g
    if v & HAS_MOMENTUM:
        b = g if c[0] != 0 else h[3] * ld(s0, i) + h[4] * g
        st(s0, i, b)
        u = g + h[3] * b if h[5] != 0 else b
    st(p, i, w + u * h[1])


@njit(error_model="numpy")
def _momentum(i, g, p, s0, s1, s2, h, c, v):
    # h = (sign, -lr, wd, beta, 1 - beta, nesterov)
    w = ld(p, i)
    if h[2] != 0:
        g = g + h[2] * w
    e = h[3] * ld(s0, i) + h[4] * g
    st(s0, i, e)
    u = h[3] * e + h[4] * g if h[5] != 0 else e
    st(p, i, w + u * h[1])


@njit(error_model="numpy")
def _rmsprop(i, g, p, s0, s1, s2, h, c, v):
    # h = (sign, -lr, wd, alpha, 1 - alpha, eps, centered, mu); slots: square_avg, grad_avg, buf
    w = ld(p, i)
    if h[2] != 0:
        g = g + h[2] * w
    sq = h[3] * ld(s0, i) + h[4] * g * g
    st(s0, i, sq)
    if v & CENTERED:
        a = h[3] * ld(s1, i) + h[4] * g
        st(s1, i, a)
        u = g / (np.sqrt(sq - a * a) + h[5])
    else:
        u = g / (np.sqrt(sq) + h[5])
    if v & HAS_MOMENTUM:
        u = h[7] * ld(s2, i) + u
        st(s2, i, u)
    st(p, i, w + u * h[1])


@njit(error_model="numpy")
def _adam_direction(i, g, w, s0, s1, s2, h, c, v, store):
    # h = (sign, -lr, b1, 1 - b1, b2, 1 - b2, eps, wd, amsgrad, decoupled);
    # c = (1 / (1-b1^t), 1 / sqrt(1-b2^t)): m_hat / (sqrt(v_hat) + eps) with one division
    # (the reference's three divisions made this rule compute-bound before memory-bound)
    if h[9] == 0 and h[7] != 0:
        g = g + h[7] * w
    m = h[2] * ld(s0, i) + h[3] * g
    vv = h[4] * ld(s1, i) + h[5] * g * g
    if store:
        st(s0, i, m)
        st(s1, i, vv)
    if v & AMSGRAD:
        vv = _maximum(ld(s2, i), vv)
        if store:
            st(s2, i, vv)
    u = (m * c[0]) / (np.sqrt(vv) * c[1] + h[6])
    if h[9] != 0 and h[7] != 0:
        u = u + h[7] * w
    return u


@njit(error_model="numpy")
def _adam(i, g, p, s0, s1, s2, h, c, v):
    w = ld(p, i)
    st(p, i, w + _adam_direction(i, g, w, s0, s1, s2, h, c, v, True) * h[1])


@njit(error_model="numpy")
def _adagrad(i, g, p, s0, s1, s2, h, c, v):
    # h = (sign, -lr, wd, eps); c = (1 + (t-1) * lr_decay,)
    w = ld(p, i)
    if h[2] != 0:
        g = g + h[2] * w
    s = ld(s0, i) + g * g
    st(s0, i, s)
    st(p, i, w + (g / (np.sqrt(s) + h[3])) / c[0] * h[1])


@njit(error_model="numpy")
def _lion(i, g, p, s0, s1, s2, h, c, v):
    # h = (sign, -lr, wd, b1, 1 - b1, b2, 1 - b2)
    w = ld(p, i)
    m = ld(s0, i)
    u = _sign(h[3] * m + h[4] * g)
    st(s0, i, h[5] * m + h[6] * g)
    if h[2] != 0:
        u = u + h[2] * w
    st(p, i, w + u * h[1])


# LAMB: pass 1 returns the squares of p and of the direction; pass 2 applies the direction
# times the trust ratio. Which pass writes the moments depends on the state dtype (NARROW):
# full-precision state is written in pass 1 and re-read exactly in pass 2 (40 B/param in
# float32); narrower state is only read in pass 1 and the moments recomputed and written in
# pass 2 from the unchanged gradient, because re-reading rounded moments would step along a
# rounded direction, unlike the reference.
@njit(error_model="numpy")
def _lamb_norms(i, g, p, s0, s1, s2, h, c, v):
    w = ld(p, i)
    u = _adam_direction(i, g, w, s0, s1, s2, h, c, v, (v & NARROW) == 0)
    return np.float64(w) * np.float64(w), np.float64(u) * np.float64(u)


@njit(error_model="numpy")
def _lamb_apply(i, g, p, s0, s1, s2, h, c, v):
    # c = (1 / (1-b1^t), 1 / sqrt(1-b2^t), trust ratio)
    w = ld(p, i)
    if v & NARROW:
        u = _adam_direction(i, g, w, s0, s1, s2, h, c, v, True)
    else:
        u = (ld(s0, i) * c[0]) / (np.sqrt(ld(s1, i)) * c[1] + h[6])
        if h[7] != 0:
            u = u + h[7] * w
    st(p, i, w + (u * c[2]) * h[1])


@njit(error_model="numpy")
def _lars_norms(i, g, p, s0, s1, s2, h, c, v):
    # h = (sign, lr, wd, mu, nesterov)
    w = ld(p, i)
    if h[2] != 0:
        g = g + h[2] * w
    return np.float64(w) * np.float64(w), np.float64(g) * np.float64(g)


@njit(error_model="numpy")
def _lars_apply(i, g, p, s0, s1, s2, h, c, v):
    # c = (trust ratio,); b <- mu b + lr r u;  p <- p - (b or, Nesterov, lr r u + mu b)
    w = ld(p, i)
    if h[2] != 0:
        g = g + h[2] * w
    u = g * c[0] * h[1]
    b = h[3] * ld(s0, i) + u
    st(s0, i, b)
    if h[4] != 0:
        u = u + h[3] * b
    else:
        u = b
    st(p, i, w + u * -1.0)


_RULES = {SGD: _sgd, MOMENTUM: _momentum, RMSPROP: _rmsprop, ADAM: _adam, ADAGRAD: _adagrad,
          LION: _lion, LAMB_NORMS: _lamb_norms, LAMB_APPLY: _lamb_apply,
          LARS_NORMS: _lars_norms, LARS_APPLY: _lars_apply}


def elem(kind, v, i, g, p, s0, s1, s2, h, c):
    """Apply rule number ``kind`` (a compile-time literal), variant ``v``, to coordinate ``i``."""


@overload(elem)
def _elem(kind, v, i, g, p, s0, s1, s2, h, c):
    if not isinstance(kind, types.IntegerLiteral):
        return None  # numba first tries without literal values, then with them
    rule = _RULES[kind.literal_value]
    return lambda kind, v, i, g, p, s0, s1, s2, h, c: rule(i, g, p, s0, s1, s2, h, c, v)



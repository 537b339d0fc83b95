"""The math: every update rule, written once (see :mod:`inertia.rules.expr`).

:mod:`~inertia.rules.transforms` holds the composable transformations each optimizer is
a chain of; :mod:`~inertia.rules.expr` the small language they are written in, which
makes the same source run as torch ops (the reference) and trace into fused kernels.
Nothing here imports the rest of inertia.
"""
from .expr import (Hyper, Sym, abs, exp, log, maximum, minimum, norm, round_f32, sign, sqrt,
                   where)
from .transforms import Transform, chain

__all__ = ["Transform", "chain", "Sym", "Hyper", "sqrt", "sign", "abs", "exp", "log",
           "maximum", "minimum", "where", "norm", "round_f32"]

r"""The one language every update rule is written in, and how a rule is traced.

A rule (:mod:`inertia.rules.transforms`) is ordinary Python arithmetic on its inputs plus
the few functions of this module (:func:`sqrt`, :func:`sign`, :func:`where`, :func:`norm`,
:func:`round_f32`, ...). Run it on tensors and it *is* the reference implementation (torch ops, readable,
differentiable). Run it on the symbolic values of this module and it records an expression
graph, from which :mod:`inertia.backends` writes the fused CPU (numba) and GPU (Triton)
kernels. So an algorithm is written once, and every fast path is derived from it.

Three kinds of value meet in a rule:

* **elementwise** values: the gradient, the parameter and the state, one number per
  coordinate (``Sym`` of kind ``"elem"`` when traced);
* **per-tensor scalars**: the step count and reductions over the whole tensor such as
  :func:`norm` (kind ``"scalar"``); kernels compute them once per tensor, in float64;
* **hyperparameters** (:class:`Hyper`): a group's ``lr``, ``betas``, ... Arithmetic on them
  is traced (the kernel reads their current values each step, so changing ``lr`` never
  recompiles anything), but *comparing* one with a number, as in ``if momentum != 0:``,
  is answered at once from its value and recorded as a guard: the traced graph is valid
  for groups where the answer is the same. That is how a rule says which state it keeps.

A traced value has no truth value of its own (``if step == 1`` cannot be decided when
the kernel is written): use ``where(step == 1, a, b)``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

_KINDS = {"const": 0, "scalar": 1, "elem": 2}


class Sym:
    """A traced value: an operation on other traced values or constants."""

    __slots__ = ("op", "args", "kind", "name")

    def __init__(self, op: str, args: tuple = (), kind: str | None = None, name: Any = None):
        self.op, self.args, self.name = op, args, name
        if kind is None:
            kind = max((a.kind for a in args if isinstance(a, Sym)), key=_KINDS.__getitem__,
                       default="const")
        self.kind = kind

    # Arithmetic builds graph nodes; Python numbers become constants.
    def __add__(self, o): return _node("add", self, o)
    def __radd__(self, o): return _node("add", o, self)
    def __sub__(self, o): return _node("sub", self, o)
    def __rsub__(self, o): return _node("sub", o, self)
    def __mul__(self, o): return _node("mul", self, o)
    def __rmul__(self, o): return _node("mul", o, self)
    def __truediv__(self, o): return _node("div", self, o)
    def __rtruediv__(self, o): return _node("div", o, self)
    def __pow__(self, o): return _node("pow", self, o)
    def __rpow__(self, o): return _node("pow", o, self)
    def __neg__(self): return _node("neg", self)
    def __lt__(self, o): return _node("lt", self, o)
    def __le__(self, o): return _node("le", self, o)
    def __gt__(self, o): return _node("gt", self, o)
    def __ge__(self, o): return _node("ge", self, o)
    def __eq__(self, o): return _node("eq", self, o)  # type: ignore[override]
    def __ne__(self, o): return _node("ne", self, o)  # type: ignore[override]
    def __and__(self, o): return _node("and", self, o)
    def __or__(self, o): return _node("or", self, o)
    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError(f"a traced {self.kind} value ({self.op}) has no truth value while the "
                        "kernel is written; use inertia.rules.where(cond, a, b)")

    def __repr__(self):
        inner = self.name if self.name is not None else ", ".join(map(repr, self.args))
        return f"{self.op}({inner})"


def _const(x: Any) -> Any:
    if isinstance(x, Sym):
        return x
    if isinstance(x, bool):
        return Sym("const", (), "const", float(x))
    if isinstance(x, numbers.Real):
        return Sym("const", (), "const", float(x))
    raise TypeError(f"cannot trace {type(x).__name__} {x!r} in an update rule")


def _node(op: str, *args: Any) -> Sym:
    return Sym(op, tuple(_const(a) for a in args))


class Hyper(Sym):
    """A hyperparameter of the group being traced: its arithmetic is traced, its comparisons
    with numbers are answered from ``value`` and recorded in ``guards``."""

    __slots__ = ("value", "guards")

    def __init__(self, name: str, value: Any, guards: list):
        super().__init__("hyper", (), "scalar", name)
        self.value, self.guards = value, guards

    def _decide(self, op: str, other: Any) -> bool:
        if isinstance(other, Sym) and not isinstance(other, Hyper):
            return _node(op, self, other)  # type: ignore[return-value]
        mine = _number(self.value)
        theirs = _number(other.value) if isinstance(other, Hyper) else float(other)
        result = {"lt": mine < theirs, "le": mine <= theirs, "gt": mine > theirs,
                  "ge": mine >= theirs, "eq": mine == theirs, "ne": mine != theirs}[op]
        self.guards.append((self.name, op, theirs if not isinstance(other, Hyper) else other.name,
                            result))
        return result

    def __lt__(self, o): return self._decide("lt", o)
    def __le__(self, o): return self._decide("le", o)
    def __gt__(self, o): return self._decide("gt", o)
    def __ge__(self, o): return self._decide("ge", o)
    def __eq__(self, o): return self._decide("eq", o)  # type: ignore[override]
    def __ne__(self, o): return self._decide("ne", o)  # type: ignore[override]
    __hash__ = object.__hash__

    def __bool__(self):
        result = _number(self.value) != 0
        self.guards.append((self.name, "ne", 0.0, result))
        return result

    def __float__(self):
        # a value used outside the traced update (an initial state value): not a guard,
        # since it never reaches the kernel
        return _number(self.value)


def _number(x: Any) -> float:
    if isinstance(x, Tensor):
        # Decided once, when the kernel is chosen (never per step): a tensor hyperparameter
        # a rule branches on must keep the answer (e.g. stay non-zero) for the run.
        return float(x.detach().reshape(()).item())
    return float(x)


def load(name: str) -> Sym:
    """An elementwise input: ``"grad"``, ``"param"`` or a state key."""
    return Sym("load", (), "elem", name)


def step() -> Sym:
    """The tensor's step count (1 on its first update)."""
    return Sym("step", (), "scalar", "step")


# ----------------------------------------------------------------------------- functions
# Each works on traced values, on tensors (torch) and on Python numbers.


def _unary(op: str, torch_fn, math_fn):
    def fn(x):
        if isinstance(x, Sym):
            return _node(op, x)
        if isinstance(x, Tensor):
            return torch_fn(x)
        return math_fn(x)

    fn.__name__ = op
    return fn


def _math_sign(x: float) -> float:
    return x if x != x else float((x > 0) - (x < 0))


sqrt = _unary("sqrt", torch.sqrt, math.sqrt)
sign = _unary("sign", torch.sign, _math_sign)  # NaN stays NaN, as torch.sign
abs = _unary("abs", torch.abs, math.fabs)  # noqa: A001 - the rule language's abs
exp = _unary("exp", torch.exp, math.exp)
log = _unary("log", torch.log, math.log)


def _math_round_f32(x: float) -> float:
    return float(np.float32(x))


def _torch_round_f32(x: Tensor) -> Tensor:
    return x.to(torch.float32).to(x.dtype)


#: ``x`` rounded to float32 (to nearest even) and widened back: a per-tensor scalar as
#: float32 storage holds it. Per-tensor scalar state is float32 (torch keeps NAdam's
#: ``mu_product`` so); a rule that must use the *stored* value within the same step, as
#: torch does, rounds with this.
_round_f32 = _unary("round_f32", _torch_round_f32, _math_round_f32)


def round_f32(x):
    if isinstance(x, Sym) and x.kind == "elem":
        raise TypeError("round_f32() rounds a per-tensor scalar, not an elementwise value")
    return _round_f32(x)


def maximum(a, b):
    """Elementwise maximum; NaN propagates (``torch.maximum``)."""
    if isinstance(a, Sym) or isinstance(b, Sym):
        return _node("max", a, b)
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.maximum(torch.as_tensor(a), torch.as_tensor(b))
    return a if (a >= b or a != a) else b


def minimum(a, b):
    """Elementwise minimum; NaN propagates (``torch.minimum``)."""
    if isinstance(a, Sym) or isinstance(b, Sym):
        return _node("min", a, b)
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.minimum(torch.as_tensor(a), torch.as_tensor(b))
    return a if (a <= b or a != a) else b


def where(cond, a, b):
    """``a`` where ``cond`` holds, else ``b`` (a select: both sides are computed)."""
    if isinstance(cond, Sym) or isinstance(a, Sym) or isinstance(b, Sym):
        return _node("where", cond, a, b)
    if isinstance(cond, Tensor):
        return torch.where(cond, a, b)
    return a if cond else b


def norm(x):
    r"""The Euclidean norm :math:`\|x\|` of a whole tensor, accumulated in float64.

    In a kernel this is a reduction: a first pass sums the squares per tensor, the second
    pass applies the rule with the result (see :mod:`inertia.backends.plan`)."""
    if isinstance(x, Sym):
        if x.kind != "elem":
            raise TypeError("norm() reduces an elementwise value over a tensor")
        return Sym("norm", (x,), "scalar")
    return torch.linalg.vector_norm(x, dtype=torch.float64)

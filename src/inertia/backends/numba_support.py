"""numba primitives for kernels that walk raw tensor memory.

A CPU kernel receives each tensor as an ``int64`` address (``Tensor.data_ptr()``) and
turns it into an array view inside compiled code, so one call can sweep any number of
tensors without a Python loop. Storage dtypes are told apart by *marker* arrays (empty
arrays of the storage dtype); numba specialises the kernel on their types.

bfloat16 has no numba type: it is stored as ``uint16`` (its bit pattern) and widened to
float32 by a 16-bit shift. Narrowing rounds to nearest-even exactly as torch does
(``c10::BFloat16``), so a state written here is bit-identical to one written by
``tensor.to(torch.bfloat16)``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

_I32 = ir.IntType(32)


@intrinsic
def address(typingctx, addr, marker):
    """``int64`` address -> typed pointer to elements of ``marker``'s dtype."""
    sig = types.CPointer(marker.dtype)(addr, marker)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@intrinsic
def _f32_from_bits(typingctx, bits):
    sig = types.float32(bits)

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width > 32:
            v = builder.trunc(v, _I32)
        return builder.bitcast(v, ir.FloatType())

    return sig, codegen


@intrinsic
def _bits_from_f32(typingctx, x):
    sig = types.uint32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _I32)

    return sig, codegen


@intrinsic
def _bf16_round(typingctx, x):
    """float32 -> bf16 bits, round-to-nearest-even; NaN becomes the canonical quiet NaN.

    Written as 32-bit LLVM integer ops: numba's own integer arithmetic widens to 64 bits,
    which halves the vector lanes of every bf16 store."""
    sig = types.uint16(types.float32)

    def codegen(context, builder, signature, args):
        value = args[0]
        bits = builder.bitcast(value, _I32)
        lsb = builder.and_(builder.lshr(bits, ir.Constant(_I32, 16)), ir.Constant(_I32, 1))
        rounded = builder.add(bits, builder.add(lsb, ir.Constant(_I32, 0x7FFF)))
        high = builder.trunc(builder.lshr(rounded, ir.Constant(_I32, 16)), ir.IntType(16))
        is_nan = builder.fcmp_unordered("uno", value, value)
        return builder.select(is_nan, ir.Constant(ir.IntType(16), 0x7FC0), high)

    return sig, codegen


def ld(a, i):
    """Element ``i`` of ``a``, widened to its compute type (bf16 bits -> float32)."""


def st(a, i, x):
    """Store ``x`` at ``a[i]`` in ``a``'s storage type (float32 -> bf16 bits rounds)."""


@overload(ld)
def _ld(a, i):
    if a.dtype == types.uint16:
        return lambda a, i: _f32_from_bits(np.uint32(a[i]) << np.uint32(16))
    return lambda a, i: a[i]


@overload(st)
def _st(a, i, x):
    if a.dtype == types.uint16:
        def store(a, i, x):
            a[i] = _bf16_round(np.float32(x))
        return store

    def plain(a, i, x):
        a[i] = x
    return plain


# ----------------------------------------------------------------------------- rule helpers
# The functions of the rule language (inertia.rules.expr) with torch's NaN semantics.

@njit(error_model="numpy", inline="always")
def sign_(x):
    return x if x != x else (x > 0) - (x < 0) + x * 0  # torch.sign: -1, 0, 1, NaN stays NaN


@njit(error_model="numpy", inline="always")
def max_(a, b):
    return a if (a >= b or a != a) else b  # torch.maximum propagates NaN


@njit(error_model="numpy", inline="always")
def min_(a, b):
    return a if (a <= b or a != a) else b  # torch.minimum propagates NaN


# Markers for ``address``: typed, empty arrays (numba freezes globals as constants).
I64 = np.empty(0, np.int64)
F64 = np.empty(0, np.float64)
F32 = np.empty(0, np.float32)
U16 = np.empty(0, np.uint16)
U32 = np.empty(0, np.uint32)
U64 = np.empty(0, np.uint64)


# ----------------------------------------------------------------------------- compact storage
# The algorithms of inertia.backends.quantize (8-bit codes, stochastic rounding), executed on
# LLVM values: each becomes an intrinsic of 32-bit integer instructions, so the kernels'
# loops stay 32 bits wide and vectorise (numba's own integer arithmetic widens to 64 bits).

from . import quantize as _Q  # noqa: E402

_F32 = ir.FloatType()


class _V:
    """An LLVM value (i32, i1 or float) while an algorithm of ``quantize`` is emitted."""

    __slots__ = ("b", "v")

    def __init__(self, b, v):
        self.b, self.v = b, v

    def _c(self, o):
        return o.v if isinstance(o, _V) else ir.Constant(_I32, o & 0xFFFFFFFF)

    def __add__(self, o): return _V(self.b, self.b.add(self.v, self._c(o)))
    def __radd__(self, o): return self + o
    def __sub__(self, o): return _V(self.b, self.b.sub(self.v, self._c(o)))
    def __and__(self, o): return _V(self.b, self.b.and_(self.v, self._c(o)))
    def __or__(self, o): return _V(self.b, self.b.or_(self.v, self._c(o)))
    def __xor__(self, o): return _V(self.b, self.b.xor(self.v, self._c(o)))
    def __rshift__(self, k): return _V(self.b, self.b.lshr(self.v, ir.Constant(_I32, k)))
    def __lshift__(self, k): return _V(self.b, self.b.shl(self.v, ir.Constant(_I32, k)))
    def __le__(self, o): return _V(self.b, self.b.icmp_unsigned("<=", self.v, self._c(o)))

    def __eq__(self, o):  # type: ignore[override]
        return _V(self.b, self.b.icmp_unsigned("==", self.v, self._c(o)))

    def __ne__(self, o):  # type: ignore[override]
        if isinstance(self.v.type, ir.FloatType):  # x != x: unordered, i.e. NaN
            return _V(self.b, self.b.fcmp_unordered("!=", self.v, o.v))
        return _V(self.b, self.b.icmp_unsigned("!=", self.v, self._c(o)))

    __hash__ = None  # type: ignore[assignment]


class _LLVMOps:
    """``quantize``'s operations as LLVM instructions."""

    def __init__(self, builder):
        self.b = builder

    def const(self, v):
        return _V(self.b, ir.Constant(_I32, v))

    def bits(self, x):
        return _V(self.b, self.b.bitcast(x.v, _I32))

    def float(self, x):
        return _V(self.b, self.b.bitcast(x.v, _F32))

    def where(self, cond, a, b):
        def value(x):
            return x.v if isinstance(x, _V) else ir.Constant(_I32, x)
        return _V(self.b, self.b.select(cond.v, value(a), value(b)))

    def minimum(self, a, k):
        kk = ir.Constant(_I32, k)
        return _V(self.b, self.b.select(self.b.icmp_unsigned("<", a.v, kk), a.v, kk))

    def maximum(self, a, b):
        bb = b.v if isinstance(b, _V) else ir.Constant(_I32, b)
        return _V(self.b, self.b.select(self.b.icmp_unsigned(">", a.v, bb), a.v, bb))

    def nonzero(self, a):
        return _V(self.b, self.b.zext(self.b.icmp_unsigned("!=", a.v, ir.Constant(_I32, 0)), _I32))

    def mul32(self, a, k):
        return _V(self.b, self.b.mul(a.v, ir.Constant(_I32, k)))


def _arg(builder, value, nbtype):
    """A numba argument as the algorithm's operand: floats as float, integers as i32 (an
    unsigned 64-bit one as its (low, high) halves)."""
    if nbtype == types.float32:
        return [_V(builder, value)]
    width = value.type.width
    if width < 32:
        return [_V(builder, builder.zext(value, _I32))]
    if width == 32:
        return [_V(builder, value)]
    lo = builder.trunc(value, _I32)
    hi = builder.trunc(builder.lshr(value, ir.Constant(value.type, 32)), _I32)
    return [_V(builder, lo), _V(builder, hi)]


def _result(builder, out, nbtype):
    v = out.v
    if nbtype == types.float32:
        return v if isinstance(v.type, ir.FloatType) else builder.bitcast(v, _F32)
    width = nbtype.bitwidth
    return builder.trunc(v, ir.IntType(width)) if width < 32 else v


def storage_intrinsic(algorithm, argtypes, restype):
    """A numba intrinsic that emits ``algorithm(ops, *operands)`` inline (see :mod:`.quantize`)."""
    n = len(argtypes)

    def codegen(context, builder, signature, args):
        ops = _LLVMOps(builder)
        operands = []
        for value, t in zip(args, argtypes):
            operands += _arg(builder, value, t)
        return _result(builder, algorithm(ops, *operands), restype)

    def typer(typingctx, *args):
        return restype(*argtypes), codegen

    # numba's @intrinsic needs named positional parameters
    params = ", ".join(f"x{i}" for i in range(n))
    scope = {"typer": typer}
    exec(f"def fn(typingctx, {params}):\n    return typer(typingctx, {params})", scope)
    return intrinsic(scope["fn"])


def _encoder(code):
    return storage_intrinsic(lambda o, y: _Q.encode(o, code, y), (types.float32,), types.uint8)


def _decoder(code):
    return storage_intrinsic(lambda o, c: _Q.decode(o, code, c), (types.uint8,), types.float32)


#: per code: ``enc_<name>(float32) -> uint8`` and ``dec_<name>(uint8) -> float32``
enc_signed, dec_signed = _encoder(_Q.SIGNED), _decoder(_Q.SIGNED)
enc_unsigned, dec_unsigned = _encoder(_Q.UNSIGNED), _decoder(_Q.UNSIGNED)
#: ``absbits(float32) -> uint32``: the bits of |x| (a block's absmax is their integer maximum)
absbits = storage_intrinsic(_Q.magnitude_bits, (types.float32,), types.uint32)
#: ``from_bits(uint32) -> float32``
from_bits = storage_intrinsic(lambda o, b: o.float(b), (types.uint32,), types.float32)
#: ``step_key(tensor key: uint32, step: uint32) -> uint32``
step_key = storage_intrinsic(_Q.step_key, (types.uint32, types.uint32), types.uint32)
#: ``bf16_stochastic(x: float32, step key: uint32, element: uint64) -> uint16``
bf16_stochastic = storage_intrinsic(
    lambda o, x, key, lo, hi: _Q.round_bf16_stochastic(o, x, _Q.random_bits(o, key, lo, hi)),
    (types.float32, types.uint32, types.uint64), types.uint16)

U8 = np.empty(0, np.uint8)
#: the value of each code's largest byte before scaling (the block factor is absmax / it)
FMAX_signed = np.float32(_Q.SIGNED.fmax)
FMAX_unsigned = np.float32(_Q.UNSIGNED.fmax)


@njit(inline="always")
def st_sr(a, i, x, key, index):
    """Store ``x`` at ``a[i]`` (bfloat16 bits) rounded stochastically with the random bits of
    element ``index`` of the stream ``key``."""
    a[i] = bf16_stochastic(np.float32(x), key, index)

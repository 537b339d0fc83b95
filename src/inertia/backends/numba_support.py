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

r"""Compact storage, written once: 8-bit blockwise optimizer state and stochastic rounding.

Everything here is *integer arithmetic on the bits of float32 numbers*, written once as
Python functions over a tiny set of operations (``+ - & | ^ << >>``, a 32-bit multiply,
``where``, ``minimum``, and the reinterpretations :meth:`Ops.bits` / :meth:`Ops.float`). The
same function is executed by three interpreters of those operations:

* :class:`TorchOps` on int64 tensors holding 32-bit values: the reference path;
* ``numba_support``'s LLVM interpreter, which turns each function into a numba intrinsic
  made of 32-bit LLVM instructions (so the CPU kernels vectorise it);
* :class:`TextOps`, which writes Triton source (the GPU kernels).

So a code, its rounding and its random stream are bit-identical on every path by
construction, and the tests check that they are.

**The 8-bit code** (:class:`Code`). A block of state values is stored as one float32
scale (its largest magnitude, ``absmax``) and one byte per value. The byte is a tiny
floating-point number: ``E`` exponent bits and ``M`` mantissa bits (and a sign bit for
signed state), so its *relative* precision is the same at every magnitude, over
:math:`2^E` binades below the block's largest value. Encoding is the rounding that
bfloat16 uses (add half a unit of the last kept bit, ties to even, shift), which carries
into the exponent by itself; code 0 is zero. Byte ``c`` of magnitude bits ``e, m`` means

.. math::
    x = \frac{\mathrm{absmax}}{2 - 2^{-M}}\; 2^{\,e - (2^E - 1)} \left(1 + \frac{m}{2^M}\right),

so the largest code is the block's absmax (to a float32 rounding). The two codes:

* first moments and any state of either sign: ``s1e3m4`` (sign, 8 binades, 4 mantissa
  bits: half a unit is 1.6-3.1 % of the value); a magnitude below :math:`2^{-8}` of the
  block's absmax becomes 0, so that coordinate does not move this step;
* non-negative state (second moments, Adagrad's sums): ``e4m4`` (16 binades, 4 bits). Its
  range is the *square* of the signed code's, as :math:`v` spans the square of the range
  of :math:`m`; and a positive value never rounds to 0 (it becomes the smallest code
  instead): Adam divides by :math:`\sqrt v`, and a second moment rounded to 0 under a
  first moment that is not would make a step of :math:`\hat m / \epsilon`. Overestimating a
  tiny :math:`v` only shortens that coordinate's step.

Why these: Adam's update (``m / (sqrt(v) + eps)``) computed from 8-bit state, against
float32 state fed the same gradients, over 300 steps of real training, with
bitsandbytes' dynamic map (the reference of 8-bit optimizers) and other splits of the
bits; ``benchmarks/memory.py codes`` reproduces the table of ``docs/memory.md``. These
codes err like the dynamic map (RMS relative error of the step 4.6-5.8 % against its
3.5-5.9 %, fewer coordinates off by half), where ``s1e4m3``/``e5m3`` (one mantissa bit
less, more range) doubles the error; and they are computed with a few integer
operations instead of a search in a table of 256 values.

**Blocks lie within rows.** A tensor of shape ``(R, ...)`` is ``R`` rows of
``W = numel / R`` elements (in memory order; the kernels require row-major memory); each
row is cut into blocks of ``block`` elements from its start (the last one shorter), so
block ``(r, b)`` covers elements ``r W + b B .. min(r W + (b+1) B, (r+1) W)`` and the
scales form an ``(R, ceil(W / B))`` float32 tensor. Sharding along the first dimension
(FSDP2) therefore splits whole rows of codes and scales, and a shard's state is exactly the
rows of the unsharded state.

**Stochastic rounding** of a float32 value to bfloat16 adds 16 random bits below the kept
ones and truncates: it rounds up with probability equal to the discarded fraction, so the
rounded value is unbiased and small updates accumulate in expectation instead of being
rounded away. The random bits come from a counter-based stream: a hash of (seed, the
parameter's position in the optimizer, step, element index), where the element index is
the element's position in the whole parameter (its shard's offset plus its position in the
shard). Nothing depends on threads, chunking, sharding or backend, and a run resumed from a
checkpoint draws the same bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

#: Block size of the 8-bit state when none is given (``state_block_size``), as bitsandbytes
#: and torchao use for their 8-bit optimizers: 4 bytes of scale per 256 bytes of codes.
DEFAULT_BLOCK = 256
#: Allowed block sizes: powers of two (a Triton vector is a power of two wide).
BLOCK_SIZES = tuple(2 ** k for k in range(5, 13))
#: Tensors with fewer elements keep float32 state (bitsandbytes' ``min_8bit_size``): their
#: state is a negligible share of the memory, and per-block scales would cost more.
MIN_SIZE = 4096
#: ... as do tensors whose rows hold fewer elements (a block never spans two rows, so a
#: narrow row would make a block of a few bytes carry a 4-byte scale).
MIN_ROW = 16

MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Blockwise:
    """The storage of a tensor's state in 8-bit blocks of ``block`` elements: what a kernel
    is generated for where others take a ``torch.dtype``."""

    block: int = DEFAULT_BLOCK

    def __repr__(self) -> str:
        return f"8bit(block={self.block})"


@dataclass(frozen=True)
class Code:
    """An 8-bit floating-point code: ``signed`` (a sign bit), ``E`` exponent and ``M``
    mantissa bits; ``E + M`` is 7 when signed, else 8."""

    name: str
    signed: bool
    E: int
    M: int
    #: a non-zero value never rounds to 0 (it becomes the smallest code instead)
    floor: bool = False

    def __post_init__(self):
        if self.E + self.M + int(self.signed) != 8:
            raise ValueError(f"Invalid code: {self.name} ({self.E}+{self.M} bits + sign "
                             "must be 8)")

    @property
    def shift(self) -> int:
        """float32 mantissa bits dropped by the rounding."""
        return 23 - self.M

    @property
    def offset(self) -> int:
        """Subtracted from the rounded float32 bits (biased exponent, M mantissa bits) to
        give the code: the top binade ``[1, 2)`` maps to exponent ``2^E - 1``."""
        return (127 - (2 ** self.E - 1)) << self.M

    @property
    def largest(self) -> int:
        """The largest magnitude code."""
        return 2 ** (self.E + self.M) - 1

    @property
    def fmax(self) -> float:
        """The value of the largest code before scaling: ``2 - 2^-M``."""
        return 2.0 - 2.0 ** -self.M

    @property
    def smallest(self) -> float:
        """The smallest non-zero magnitude, relative to the block's absmax."""
        return 2.0 ** -(2 ** self.E - 1) * (1 + 2.0 ** -self.M) / self.fmax

    def values(self) -> Tensor:
        """The 256 values of the code (before scaling), float32, indexed by the byte."""
        return decode(TorchOps, self, TorchOps.u32(torch.arange(256)))


#: The codes of the 8-bit state: any sign (first moments) and non-negative state.
SIGNED = Code("s1e3m4", True, 3, 4)
UNSIGNED = Code("e4m4", False, 4, 4, floor=True)
#: Alternatives measured by ``benchmarks/memory.py codes`` (not used by the kernels).
CANDIDATES = (SIGNED, UNSIGNED, Code("s1e4m3", True, 4, 3), Code("s1e5m2", True, 5, 2),
              Code("e5m3", False, 5, 3, floor=True), Code("e6m2", False, 6, 2, floor=True),
              Code("e4m4-flush", False, 4, 4))

#: State that is non-negative by construction (a running average or sum of squares, or a
#: maximum of such): stored with the unsigned code. Any other state uses the signed code,
#: which is always correct (a non-negative value loses one bit of precision, no more). A
#: rule whose state is non-negative adds its key here.
NONNEGATIVE = {"exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum"}


def code_for(key: str) -> Code:
    """The code state ``key`` is stored with."""
    return UNSIGNED if key in NONNEGATIVE else SIGNED


def scale_key(key: str) -> str:
    """The state key of ``key``'s per-block scales (``exp_avg`` -> ``exp_avg_absmax``)."""
    return key + "_absmax"


def is_scale(key: Any, state: dict) -> bool:
    """Whether ``key`` holds the scales of another entry of ``state``."""
    return isinstance(key, str) and key.endswith("_absmax") and key[:-7] in state


# ----------------------------------------------------------------------------- the algorithms
# Written once against ``o`` (an interpreter of the operations: TorchOps, the LLVM one in
# numba_support, TextOps). Integers are unsigned 32-bit values; no step relies on a
# wrap-around except ``o.mul32``.


def encode(o, code: Code, y):
    """The byte of float32 ``y`` (already scaled: ``|y| <= code.fmax``), as a 32-bit value.

    Round to ``M`` mantissa bits, to nearest (the carry moves into the exponent); a
    magnitude at or below the smallest binade's base becomes 0 (with ``code.floor``, only
    0 does, and the rest the smallest code)."""
    b = o.bits(y)
    mag = b & 0x7FFFFFFF
    s = code.shift
    r = (mag + (1 << (s - 1))) >> s  # to nearest (a tie, 1 in 2^19 values, rounds up)
    # below the smallest binade: 0, or with a floor the smallest code unless the value is 0
    low = code.offset + o.nonzero(mag) if code.floor else o.const(code.offset)
    # |y| <= fmax rounds to at most the largest code; NaN and infinity go beyond it, and are
    # kept by the block's absmax (NaN when any value is, so the block decodes to NaN)
    c = o.maximum(r, low) - code.offset
    if code.signed:  # sign and magnitude (so -0 is 0x80, decoded as -0.0)
        c = c | ((b >> 24) & 0x80)
    return c & 0xFF


def decode(o, code: Code, c):
    """The float32 value (before scaling) of byte ``c`` (a 32-bit value below 256)."""
    mag = (c & 0x7F) if code.signed else c
    b = o.where(mag == 0, o.const(0), (mag + code.offset) << code.shift)
    if code.signed:
        b = b | ((c & 0x80) << 24)
    return o.float(b)


def magnitude_bits(o, x):
    """The bits of ``|x|``: for non-negative floats, integer order is numeric order (NaN
    above infinity), so a block's absmax is an integer maximum, which vectorises."""
    return o.bits(x) & 0x7FFFFFFF


def hash32(o, x):
    """A 32-bit integer hash with full avalanche (Wellons' ``lowbias32``)."""
    x = x ^ (x >> 16)
    x = o.mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = o.mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def tensor_key(o, seed, position):
    """The key of one parameter's stream: from the seed and its position in the optimizer."""
    return hash32(o, seed ^ hash32(o, position))


def step_key(o, key, step):
    """The key of one step of a parameter's stream."""
    return hash32(o, key ^ hash32(o, step + 0x9E3779B9))


def random_bits(o, key, lo, hi):
    """32 random bits for the element at index ``hi * 2^32 + lo`` of a step's stream."""
    return hash32(o, lo ^ (key + o.mul32(hi, 0x9E3779B9)))


def round_bf16_stochastic(o, x, r):
    """float32 ``x`` to bfloat16 bits, rounding up with probability equal to the dropped
    fraction (``r``: 32 random bits, of which the low 16 are used); NaN stays a quiet NaN.
    The magnitude can round up to infinity, as a value that close to it should."""
    b = o.bits(x)
    t = (b + (r & 0xFFFF)) >> 16
    return o.where(x != x, o.const(0x7FC0), t & 0xFFFF)


# ----------------------------------------------------------------------------- interpreters


class _TorchU32:
    """A tensor of unsigned 32-bit values held in int64 (torch has no uint32 arithmetic)."""

    __slots__ = ("t",)

    def __init__(self, t: Tensor):
        self.t = t

    @staticmethod
    def _v(x):
        return x.t if isinstance(x, _TorchU32) else x

    def __add__(self, o): return _TorchU32((self.t + self._v(o)) & MASK32)
    def __radd__(self, o): return self + o
    def __sub__(self, o): return _TorchU32((self.t - self._v(o)) & MASK32)
    def __and__(self, o): return _TorchU32(self.t & self._v(o))
    def __or__(self, o): return _TorchU32(self.t | self._v(o))
    def __xor__(self, o): return _TorchU32(self.t ^ self._v(o))
    def __rshift__(self, k): return _TorchU32(self.t >> k)
    def __lshift__(self, k): return _TorchU32((self.t << k) & MASK32)
    def __le__(self, o): return self.t <= self._v(o)
    def __eq__(self, o): return self.t == self._v(o)  # type: ignore[override]
    __hash__ = None  # type: ignore[assignment]


class TorchOps:
    """The operations on tensors: the reference path (exact 32-bit semantics in int64)."""

    @staticmethod
    def u32(t: Tensor) -> _TorchU32:
        return _TorchU32(t.to(torch.int64) & MASK32)

    @staticmethod
    def const(v: int):
        return v

    @staticmethod
    def bits(x: Tensor) -> _TorchU32:
        return _TorchU32(x.to(torch.float32).view(torch.int32).to(torch.int64) & MASK32)

    @staticmethod
    def float(b) -> Tensor:
        t = b.t if isinstance(b, _TorchU32) else torch.as_tensor(b, dtype=torch.int64)
        # int64 values in [0, 2^32) as the int32 tensor with the same bits
        return torch.where(t >= 2 ** 31, t - 2 ** 32, t).to(torch.int32).view(torch.float32)

    @staticmethod
    def where(cond, a, b):
        va, vb = _TorchU32._v(a), _TorchU32._v(b)
        shape = cond.shape
        va = va if isinstance(va, Tensor) else torch.full(shape, va, dtype=torch.int64)
        vb = vb if isinstance(vb, Tensor) else torch.full(shape, vb, dtype=torch.int64)
        return _TorchU32(torch.where(cond, va, vb))

    @staticmethod
    def minimum(a, k: int):
        return _TorchU32(torch.clamp(_TorchU32._v(a), max=k))

    @staticmethod
    def maximum(a, b):
        va, vb = _TorchU32._v(a), _TorchU32._v(b)
        return _TorchU32(torch.maximum(va, vb) if isinstance(vb, Tensor) else torch.clamp(va, min=vb))

    @staticmethod
    def nonzero(a):
        return _TorchU32((_TorchU32._v(a) != 0).to(torch.int64))

    @staticmethod
    def mul32(a, k: int):
        # exact low 32 bits of a * k without overflowing int64: split k in 16-bit halves
        t = _TorchU32._v(a)
        lo, hi = k & 0xFFFF, k >> 16
        return _TorchU32((t * lo + (((t * hi) & 0xFFFF) << 16)) & MASK32)


class _Text:
    """A Triton expression (a ``tl.uint32`` tensor) as source text."""

    __slots__ = ("s",)

    def __init__(self, s: str):
        self.s = s

    @staticmethod
    def _v(x) -> str:
        return x.s if isinstance(x, _Text) else (f"{x}" if isinstance(x, int) else str(x))

    def _bin(self, op, o): return _Text(f"({self.s} {op} {self._v(o)})")
    def __add__(self, o): return self._bin("+", o)
    def __radd__(self, o): return _Text(f"({self._v(o)} + {self.s})")
    def __sub__(self, o): return self._bin("-", o)
    def __and__(self, o): return self._bin("&", o)
    def __or__(self, o): return self._bin("|", o)
    def __xor__(self, o): return self._bin("^", o)
    def __rshift__(self, k): return self._bin(">>", k)
    def __lshift__(self, k): return self._bin("<<", k)
    def __le__(self, o): return self._bin("<=", o)
    def __eq__(self, o): return self._bin("==", o)  # type: ignore[override]
    def __ne__(self, o): return self._bin("!=", o)  # type: ignore[override]
    __hash__ = None  # type: ignore[assignment]


class TextOps:
    """The operations as Triton source: each call returns the text of an expression."""

    @staticmethod
    def var(name: str) -> _Text:
        return _Text(name)

    @staticmethod
    def const(v: int) -> _Text:
        return _Text(f"tl.full([], {v}, tl.uint32)")

    @staticmethod
    def bits(x) -> _Text:
        return _Text(f"({_Text._v(x)}).to(tl.float32).to(tl.uint32, bitcast=True)")

    @staticmethod
    def float(b) -> _Text:
        return _Text(f"({_Text._v(b)}).to(tl.uint32).to(tl.float32, bitcast=True)")

    @staticmethod
    def where(cond, a, b) -> _Text:
        return _Text(f"tl.where({_Text._v(cond)}, {_Text._v(a)}, {_Text._v(b)})")

    @staticmethod
    def minimum(a, k: int) -> _Text:
        return _Text(f"tl.minimum({_Text._v(a)}, tl.full([], {k}, tl.uint32))")

    @staticmethod
    def maximum(a, b) -> _Text:
        vb = _Text._v(b) if isinstance(b, _Text) else f"tl.full([], {b}, tl.uint32)"
        return _Text(f"tl.maximum({_Text._v(a)}, {vb})")

    @staticmethod
    def nonzero(a) -> _Text:
        return _Text(f"({_Text._v(a)} != 0).to(tl.uint32)")

    @staticmethod
    def mul32(a, k: int) -> _Text:
        return _Text(f"({_Text._v(a)} * tl.full([], {k}, tl.uint32))")


# ----------------------------------------------------------------------------- blocks (torch)


def layout(shape: tuple[int, ...], block: int) -> tuple[int, int, int]:
    """``(rows, width, blocks per row)`` of a tensor of ``shape``: rows along the first
    dimension (a 0-d or 1-d tensor is one row)."""
    numel = math.prod(shape)
    rows = shape[0] if len(shape) >= 2 else 1
    width = numel // rows if rows else 0
    return rows, width, -(-width // block) if width else 0


def eligible(shape: tuple[int, ...], min_size: int = MIN_SIZE) -> bool:
    """Whether state of a tensor of ``shape`` is stored in 8 bits (else float32): at least
    two dimensions, ``min_size`` elements, and rows of at least :data:`MIN_ROW`."""
    if len(shape) < 2 or math.prod(shape) < max(min_size, 1):
        return False
    return layout(shape, 1)[1] >= MIN_ROW


def _blocks(x: Tensor, block: int) -> tuple[Tensor, int]:
    """``x`` (any shape, row-major) as ``(rows, blocks, block)``, zero-padded per row."""
    rows, width, nb = layout(tuple(x.shape), block)
    flat = x.reshape(rows, width)
    pad = nb * block - width
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    return flat.reshape(rows, nb, block), width


def quantize(x: Tensor, key: str, block: int) -> tuple[Tensor, Tensor]:
    """``(codes, absmax)`` of state ``x``: uint8 codes shaped like ``x`` and float32 scales
    shaped ``(rows, blocks per row)``, exactly as the kernels write them."""
    code = code_for(key)
    x32 = x.detach().to(torch.float32)
    blocks, width = _blocks(x32, block)
    absmax = TorchOps.float(magnitude_bits(TorchOps, blocks).t.amax(dim=2))
    fmax = torch.tensor(code.fmax, dtype=torch.float32)
    inv = torch.where(absmax > 0, fmax / absmax, torch.zeros((), dtype=torch.float32))
    y = blocks * inv.unsqueeze(2)
    codes = encode(TorchOps, code, y).t
    rows = codes.shape[0]
    codes = codes.reshape(rows, -1)[:, :width].reshape(x.shape).to(torch.uint8).contiguous()
    return codes, absmax


def dequantize(codes: Tensor, absmax: Tensor, key: str, block: int) -> Tensor:
    """The float32 values of ``(codes, absmax)`` (the inverse of :func:`quantize`, up to
    its rounding)."""
    code = code_for(key)
    blocks, width = _blocks(codes.to(torch.int64), block)
    fmax = torch.tensor(code.fmax, dtype=torch.float32)
    scale = (absmax.to(torch.float32) / fmax).unsqueeze(2)
    values = decode(TorchOps, code, TorchOps.u32(blocks)) * scale
    rows = values.shape[0]
    return values.reshape(rows, -1)[:, :width].reshape(codes.shape).contiguous()


def check_blocks(kernel, t: int, p: Tensor, tensors, meta: Tensor | None) -> None:
    """Refuse 8-bit state of tensor ``t`` (codes and scales of each slot, ``tensors``) that
    does not fit ``p`` and the kernel's blocks, and a ``meta`` row (when given: on a GPU
    reading it would synchronise) that does not give ``p``'s row width: a kernel would index
    past the scales."""
    if not p.is_contiguous():
        raise TypeError(f"Invalid parameter {t}: 8-bit state needs row-major parameters")
    rows, width, nb = layout(tuple(p.shape), kernel.block)
    if meta is not None and (meta.dtype != torch.int64 or tuple(meta.shape[1:]) != (3,)
                             or int(meta[t, 0]) != max(width, 1)):
        raise ValueError(f"Invalid meta for tensor {t}: its row width is {width}")
    for j in range(0, len(tensors), 2):
        codes, scales = tensors[j], tensors[j + 1]
        if codes.dtype != torch.uint8 or codes.numel() != p.numel() or \
                not codes.is_contiguous() or codes.device != p.device:
            raise ValueError(f"Invalid state {kernel.slots[j]!r} of tensor {t}: {codes.dtype} "
                             f"{tuple(codes.shape)}; the kernel needs uint8 codes shaped "
                             f"{tuple(p.shape)}")
        if scales.dtype != torch.float32 or scales.numel() != rows * nb or \
                not scales.is_contiguous() or scales.device != p.device:
            raise ValueError(f"Invalid state {kernel.slots[j + 1]!r} of tensor {t}: "
                             f"{scales.dtype} {tuple(scales.shape)}; the kernel needs float32 "
                             f"scales of shape {(rows, nb)}")

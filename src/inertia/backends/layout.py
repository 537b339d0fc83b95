"""Which tensors a fused kernel can sweep as flat memory."""
from __future__ import annotations

from torch import Tensor


def dense(x: Tensor) -> bool:
    """Whether ``x``'s elements fill its memory exactly (no gaps, no overlaps), in any
    order of dimensions: contiguous, channels_last, a transposed contiguous tensor..."""
    if x.is_contiguous():
        return True
    expected = 1
    dims = sorted((st, s) for s, st in zip(x.shape, x.stride()) if s != 1)
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def flat(x: Tensor, p: Tensor) -> bool:
    """Whether ``x`` can be swept element by element alongside parameter ``p``: the same
    strides (so element ``i`` of each array is the same coordinate) and dense memory."""
    return x.stride() == p.stride() and dense(x)

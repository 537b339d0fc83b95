"""Which tensors a fused kernel can sweep as flat memory, and shards of sharded tensors."""
from __future__ import annotations

import torch
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


def local(t: Tensor) -> Tensor:
    """The part of ``t`` this rank holds (``t`` itself for a plain tensor)."""
    return getattr(t, "_local_tensor", t)


def like(p: Tensor, part: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``part`` as this rank's shard of a tensor of global ``shape``, sharded with ``p``'s
    placements (along the first dimension): a DTensor when ``p`` is one, else ``part``."""
    if not hasattr(p, "_local_tensor"):
        return part
    from torch.distributed.tensor import DTensor

    stride = tuple(int(s) for s in torch.empty(shape, device="meta").stride())
    return DTensor.from_local(part, p.device_mesh, p.placements, run_check=False, shape=shape,
                              stride=stride)


def positions(x: Tensor) -> Tensor:
    """Each element's position in ``x``'s memory (int64, shaped like ``x``): the index a
    kernel sweeping the memory from ``x``'s first element gives it."""
    if not x.numel():
        return torch.zeros(x.shape, dtype=torch.int64, device=x.device)
    extent = sum((size - 1) * stride for size, stride in zip(x.shape, x.stride())) + 1
    return torch.arange(extent, device=x.device).as_strided(x.shape, x.stride())

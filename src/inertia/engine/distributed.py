"""Sharded and partitioned parameters: what the step needs from torch.distributed.

**FSDP2 / DTensor.** ``fully_shard`` turns every parameter into a ``DTensor``; its gradient
and the state created from it (``zeros_like`` of a DTensor is a DTensor with the same
placements) are DTensors too. The kernels run on the local shards (:func:`local`), which is
all an elementwise rule needs. A rule with norms (LAMB, LARS) needs the norm of the *whole*
tensor: each rank sums the squares over its shard, and the sums of every sharded tensor of
a step are added across the mesh dimensions along which it is sharded, in one
``all_reduce`` per process group (:func:`all_reduce_rows`), in float64, never over
dimensions where it is replicated (which would count it twice). Global gradient clipping
adds the same way. Bytes per step for those reductions: 8 per norm per sharded tensor.

**ZeRO** (``torch.distributed.optim.ZeroRedundancyOptimizer``). Each rank's optimizer sees
only its partition of the parameters, with plain tensors. Element-wise rules and per-tensor
norms are exact as they are (a whole tensor lives on one rank); the global gradient norm of
``max_grad_norm`` is not, so an optimizer built by ZeRO remembers ZeRO's process group
(:func:`partition_group`) and adds the partitions' squared norms across it.

DDP needs nothing: every rank holds every parameter and the same averaged gradients.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch without distributed support
        return None
    return DTensor


_DT = _dtensor_type()


def is_dtensor(t: Any) -> bool:
    return _DT is not None and isinstance(t, _DT)


def local(t: Tensor) -> Tensor:
    """The part of ``t`` this rank holds (``t`` itself for a plain tensor)."""
    return t._local_tensor if is_dtensor(t) else t


def reduction_groups(p: Tensor) -> tuple:
    """The process groups over which a sum over ``p``'s elements must be added: the mesh
    dimensions along which ``p`` is sharded (``()`` for a plain or replicated tensor)."""
    if not is_dtensor(p):
        return ()
    mesh = p.device_mesh
    return tuple(mesh.get_group(dim) for dim, placement in enumerate(p.placements)
                 if placement.is_shard() or placement.is_partial())


def all_reduce_rows(sums: list[Tensor], groups: list[tuple]) -> None:
    """Add each row ``sums[i]`` (a per-tensor vector) over ``groups[i]``, in place, with one
    ``all_reduce`` per distinct process group for the whole step."""
    import torch.distributed as dist

    by_groups: dict[tuple, list[int]] = {}
    for i, g in enumerate(groups):
        if g:
            by_groups.setdefault(g, []).append(i)
    for gs, rows in by_groups.items():
        packed = torch.stack([sums[i] for i in rows])
        for group in gs:
            dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=group)
        for k, i in enumerate(rows):
            sums[i].copy_(packed[k])


def partition_group(depth: int = 8) -> Any:
    """ZeRO's process group when this optimizer is being built by a
    ``ZeroRedundancyOptimizer`` (it sees one partition of the parameters), else None."""
    try:
        from torch.distributed.optim import ZeroRedundancyOptimizer
    except ImportError:
        return None
    frame = inspect.currentframe()
    try:
        for _ in range(depth):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                return None
            owner = frame.f_locals.get("self")
            if isinstance(owner, ZeroRedundancyOptimizer):
                return owner.process_group
    finally:
        del frame
    return None


def add_partitions(total_sq: Tensor, group: Any) -> Tensor:
    """``total_sq`` summed over ZeRO's ranks (each holds the squares of its partition)."""
    import torch.distributed as dist

    dist.all_reduce(total_sq, op=dist.ReduceOp.SUM, group=group)
    return total_sq

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

from ..backends.layout import like, local  # noqa: F401 - a rank's shard, and back


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch without distributed support
        return None
    return DTensor


_DT = _dtensor_type()


def is_dtensor(t: Any) -> bool:
    return _DT is not None and isinstance(t, _DT)


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


def whole_rows(p: Any) -> bool:
    """Whether each shard of ``p`` is a run of whole rows of the tensor (in row-major memory):
    a plain tensor, or a DTensor sharded only along its first dimension (FSDP2's
    ``Shard(0)``) and otherwise replicated. Blockwise state and stochastic rounding's element
    indices are defined on whole rows, so they then do not depend on the sharding."""
    if not is_dtensor(p):
        return True
    return all(pl.is_replicate() or (pl.is_shard() and pl.dim == 0 and type(pl).__name__ == "Shard")
               for pl in p.placements)


def global_offset(p: Any) -> int:
    """The index, in the whole tensor's row-major order, of the first element of this rank's
    shard of ``p`` (0 for a plain tensor). Only for shards of whole rows (:func:`whole_rows`)."""
    if not is_dtensor(p):
        return 0
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    row = 1
    for size in p.shape[1:]:
        row *= size
    return int(offset[0]) * row if offset else 0

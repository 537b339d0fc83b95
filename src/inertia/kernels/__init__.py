"""Fused implementations of the optimizer steps, chosen per parameter group by default.

Each path is tested equal to the reference transforms in :mod:`inertia.optim.transforms`
(``tests/test_kernels.py``). :func:`fused_step` sorts a group's parameters into buckets
that one kernel call can take, and sends the rest to the reference:

========================  ===============================================================
bucket                    path
========================  ===============================================================
CPU, Adam/AdamW/SGD/      torch's own fused multi-tensor kernel (``torch._fused_*_``),
Adagrad, state dtype ==   which computes exactly the same rule
param dtype (f32/f64)
CPU, anything else        numba: one parallel sweep over all tensors (:mod:`.cpu`),
(Momentum, RMSprop, Lion, LAMB/LARS in two sweeps; bf16 params or state stored as bf16
LAMB, LARS, bf16 state)   and computed in float32
CPU, ``sparse="lazy"``    numba: the touched rows only (element-wise algorithms)
CUDA                      Triton (:mod:`.cuda`), unverified on hardware; without triton,
                          the reference
anything else             the reference (complex, mixed devices, non-contiguous tensors,
                          foreign state dtypes, numba or triton missing)
========================  ===============================================================

``last_paths`` lists the paths the most recent call took (one entry per bucket) and
``path_counts`` counts them since import, so tests can prove a fast path really ran.
"""
from __future__ import annotations

from collections import Counter

import torch

from .algos import ALGOS, Algo

last_paths: list[str] = []
path_counts: Counter = Counter()

_FLOATS = (torch.float32, torch.float64, torch.bfloat16)
_TORCH_FUSED_DTYPES = (torch.float32, torch.float64)


def _numba_cpu():
    """The numba kernels module, or None when numba is not installed (optional dependency)."""
    global _cpu
    if _cpu is False:
        try:
            from . import cpu as module
        except ImportError:
            module = None
        _cpu = module
    return _cpu


_cpu = False
_rule_names: dict | None = None


def algorithm(optimizer) -> Algo | None:
    """The kernel description of ``optimizer``'s rule, or None if it is not one we fuse.

    Keyed on the ``rule`` function itself, so a subclass that changes the math falls back
    to the reference instead of silently running the parent's kernel.
    """
    global _rule_names
    if _rule_names is None:
        from .. import optim as o

        _rule_names = {o.SGD.rule: "sgd", o.Momentum.rule: "momentum", o.RMSprop.rule: "rmsprop",
                       o.Adam.rule: "adam", o.Adagrad.rule: "adagrad", o.Lion.rule: "lion",
                       o.LAMB.rule: "lamb", o.LARS.rule: "lars"}
    name = _rule_names.get(type(optimizer).rule)
    return ALGOS[name] if name else None


def _record(path: str) -> None:
    last_paths.append(path)
    path_counts[path] += 1


def fused_step(optimizer, group, params, grads) -> bool:
    """Run fused kernels for ``group``; return False to let the reference do all of it.

    ``grads`` are the parameters' gradients, already checked against them (shape, dtype,
    device) and coalesced when sparse. Parameters a kernel cannot take are stepped by
    ``optimizer._reference_update`` here, so a group is never split between "done" and
    "not done".
    """
    last_paths.clear()
    algo = algorithm(optimizer)
    devices = {p.device.type for p in params}
    if algo is None or len(devices) != 1:
        return False
    device = devices.pop()
    if device == "cuda":
        from . import cuda

        backend = cuda if cuda.available() else None
    else:
        backend = _numba_cpu() if device == "cpu" else None
    if backend is None and (device != "cpu" or algo.torch_fused is None):
        return False

    rule = None
    buckets: dict[tuple, tuple[list, list, list]] = {}
    lazy, leftover = [], []
    lazy_mode = group["sparse"] == "lazy"
    for p, g in zip(params, grads):
        state = optimizer.state[p]
        if "step" not in state:
            rule = rule or optimizer.rule(group)
            state = optimizer._state_for(p, rule, group)
        sdtype = group["state_dtype"] or p.dtype
        if g.is_sparse:
            if lazy_mode:
                if backend is None or device != "cpu" or not _lazy_ok(algo, p, g, state, sdtype):
                    leftover.append((p, g))
                else:
                    lazy.append((p, g, state, sdtype))
                continue
            g = g.to_dense()
        if not _dense_ok(p, g, state, sdtype):
            leftover.append((p, g))
            continue
        key = (p.dtype, sdtype)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = ([], [], [])
        bucket[0].append(p)
        bucket[1].append(g)
        bucket[2].append(state)

    for (pdtype, sdtype), (ps, gs, states) in buckets.items():
        if (algo.torch_fused and device == "cpu" and pdtype == sdtype
                and pdtype in _TORCH_FUSED_DTYPES):
            from .torch_fused import step as torch_step

            torch_step(algo, group, ps, gs, states,
                       bump=backend.bump_steps if device == "cpu" and backend else None)
            _record(f"{device}:torch_fused")
        elif backend is not None:
            backend.dense_step(algo, group, ps, gs, states, sdtype)
            _record(f"{device}:{'numba' if device == 'cpu' else 'triton'}")
        else:
            leftover.extend(zip(ps, gs))
    for p, g, state, sdtype in lazy:
        backend.lazy_rows_step(algo, group, p, g, state, sdtype)
        _record("cpu:numba_lazy")
    if leftover:
        optimizer._reference_update(group, [p for p, _ in leftover], [g for _, g in leftover])
        _record("reference")
    return True


def all_finite(tensors) -> bool:
    """Whether every element of every tensor is finite, read at memory speed.

    Contiguous CPU tensors of a kernel dtype go to one numba sweep per dtype, on the same
    threads as the update kernels (alone it read 22M float32 gradients in 0.85 ms where
    torch's per-tensor sums took 1.35 ms). The rest, or everything without numba, is summed
    by torch per tensor: a sum is non-finite whenever an element is; a non-finite sum may
    also be the overflow of huge finite values, so that rare case is confirmed element by
    element.
    """
    tensors = [t for t in tensors if t.numel()]
    cpu = _numba_cpu()
    by_dtype: dict = {}
    rest = []
    for t in tensors:
        if cpu is not None and t.device.type == "cpu" and t.dtype in _FLOATS and t.is_contiguous():
            by_dtype.setdefault(t.dtype, []).append(t)
        else:
            rest.append(t)
    if not all(cpu.all_finite(group) for group in by_dtype.values()):
        return False
    if not rest:
        return True
    sums = torch.stack([t.sum(dtype=torch.promote_types(t.dtype, torch.float32)) for t in rest])
    if bool(torch.isfinite(sums).all()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in rest)


def _dense_ok(p, g, state, sdtype) -> bool:
    # Kernels see flat memory: every array must be contiguous, of a float dtype we know, and
    # the state must be in the dtype the group asks for (a hand-edited state may not be).
    if p.dtype not in _FLOATS or g.dtype != p.dtype or sdtype not in _FLOATS:
        return False
    if g.shape != p.shape:  # never read past the end of a gradient
        return False
    if not (p.is_contiguous() and g.is_contiguous()) or g.device != p.device:
        return False
    step = state["step"]
    if step.dtype != torch.float32 or step.device.type != "cpu" or step.numel() != 1:
        return False
    for key, value in state.items():
        if key != "step" and (value.dtype != sdtype or not value.is_contiguous()
                              or value.shape != p.shape):
            return False
    return True


def _lazy_ok(algo, p, g, state, sdtype) -> bool:
    # Row kernel: element-wise rules only (a trust ratio over touched rows stays reference),
    # and a gradient that indexes whole rows of the parameter.
    if algo.norms_kind is not None or p.dim() == 0:
        return False
    if g.sparse_dim() != 1 or g.dense_dim() != p.dim() - 1 or g.shape != p.shape:
        return False
    return _dense_ok(p, p, state, sdtype)

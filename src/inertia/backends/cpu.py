"""The CPU operators without a compiler: Python threads over the generated numba kernels.

This is the fallback of :mod:`.native` (used when the C++ runner cannot be built, or with
``INERTIA_NATIVE=0``): the same kernels, the same checks and the same results, with the
bookkeeping (address tables, chunk tables, step counters) done in Python and the chunks
run on :mod:`.threads`. It is also the only implementation of the lazy sparse row update.
"""
from __future__ import annotations

import numpy as np
import torch

from . import threads
from .layout import flat
from .numba_cpu import ARGS, CHUNK
from .ops import KERNELS
from .quantize import check_blocks

_A = {name: i for i, name in enumerate(ARGS)}
_CODE = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2}
# Below this many elements a step takes microseconds and handing work to other threads
# costs more than it saves: run on the calling thread.
PARALLEL_MIN = 1 << 18

_chunk_tables: dict[tuple[int, ...], np.ndarray] = {}


def chunk_table(sizes: tuple[int, ...]) -> np.ndarray:
    """``(tensor, start, stop)`` for pieces of at most ``CHUNK`` elements of every tensor
    (an empty tensor gets one empty piece), cached by the sizes."""
    hit = _chunk_tables.get(sizes)
    if hit is None:
        n = np.asarray(sizes, dtype=np.int64)
        per = np.maximum(1, -(-n // CHUNK))
        t = np.repeat(np.arange(len(n)), per)
        first = np.cumsum(per) - per
        start = (np.arange(len(t)) - first[t]) * CHUNK
        hit = np.stack([t, start, np.minimum(start + CHUNK, n[t])], axis=1).astype(np.int64)
        if len(_chunk_tables) > 256:
            _chunk_tables.clear()
        _chunk_tables[sizes] = hit
    return hit


def check(kernel, params, grads, states, steps, meta=None) -> None:
    """Refuse, before anything is written, any tensor a kernel would read out of bounds."""
    T = len(params)
    K = len(kernel.slots)
    if len(grads) != T or len(steps) != T or len(states) != T * K:
        raise ValueError(f"inertia::fused_apply: {T} params, {len(grads)} grads, "
                         f"{len(steps)} steps and {len(states)} states for {K} slots")
    for t, (p, g, s) in enumerate(zip(params, grads, steps)):
        if g.numel() != p.numel():
            raise ValueError(f"Invalid gradient shape: {tuple(g.shape)} for a parameter of "
                             f"shape {tuple(p.shape)} (tensor {t})")
        for what, x, dtype in (("parameter", p, kernel.pdtype), ("gradient", g, kernel.pdtype)):
            if x.dtype != dtype or x.device.type != "cpu" or not flat(x, p):
                raise TypeError(f"Invalid {what} {t}: {x.dtype} on {x.device} with strides "
                                f"{x.stride()}; the kernel takes {dtype} CPU tensors laid "
                                f"out like the parameter, without gaps")
        if s.dtype != torch.float32 or s.numel() != 1 or s.device.type != "cpu":
            raise TypeError(f"Invalid step {t}: a float32 CPU scalar is needed, got {s.dtype}")
        if kernel.block:
            check_blocks(kernel, t, p, states[t * K:(t + 1) * K - kernel.scalar_slots], meta)
        for k in range(K):
            x = states[t * K + k]
            if kernel.block and k < K - kernel.scalar_slots:
                continue  # checked above
            if k >= K - kernel.scalar_slots:  # per-tensor scalar state: one float32
                if x.numel() != 1 or x.dtype != torch.float32 or x.device.type != "cpu":
                    raise ValueError(f"Invalid state {kernel.slots[k]!r} of tensor {t}: "
                                     f"{x.dtype} {tuple(x.shape)}; a float32 CPU scalar is "
                                     "needed")
                continue
            if x.numel() != p.numel() or x.dtype != kernel.sdtype or not flat(x, p):
                raise ValueError(f"Invalid state {kernel.slots[k]!r} of tensor {t}: "
                                 f"{x.dtype} {tuple(x.shape)}; the kernel needs contiguous "
                                 f"{kernel.sdtype} {tuple(p.shape)}")


def _table(params, grads, states, steps, K: int) -> np.ndarray:
    table = np.empty((len(params), 3 + K), dtype=np.int64)
    for t, (p, g, s) in enumerate(zip(params, grads, steps)):
        table[t, 0] = p.data_ptr()
        table[t, 1] = g.data_ptr()
        table[t, 2] = s.data_ptr()
        for k in range(K):
            table[t, 3 + k] = states[t * K + k].data_ptr()
    return table


def _launch(kernel, params, grads, states, steps, hyper, gmul, inputs=None, skip=None,
            out=None, rows=None, width=0, meta=None):
    K = len(kernel.slots)
    table = _table(params, grads, states, steps, K)
    sizes = np.array([p.numel() for p in params], dtype=np.int64)
    chunks = rows if rows is not None else chunk_table(tuple(sizes.tolist()))
    hyper = hyper.contiguous()
    gm = np.array([float(gmul)], dtype=np.float64)
    args = np.zeros(len(ARGS), dtype=np.int64)
    args[_A["tensors"]] = len(params)
    args[_A["table"]] = table.ctypes.data
    args[_A["sizes"]] = sizes.ctypes.data
    args[_A["chunks"]] = chunks.ctypes.data
    args[_A["n_chunks"]] = len(chunks)
    args[_A["hyper"]] = hyper.data_ptr()
    args[_A["inputs"]] = 0 if inputs is None else inputs.data_ptr()
    args[_A["out"]] = out.ctypes.data
    args[_A["gmul"]] = gm.ctypes.data
    args[_A["skip"]] = 0 if skip is None else skip.data_ptr()
    args[_A["width"]] = width
    if kernel.needs_meta:
        meta = meta.contiguous()
        args[_A["meta"]] = meta.data_ptr()
    total = int(sizes.sum()) if rows is None else len(rows) * width
    parts = threads.count() if total >= PARALLEL_MIN else 1
    weights = (chunks[:, 2] - chunks[:, 1]) if rows is None else np.ones(len(chunks))
    ranges = threads.split(weights, parts)
    # keep every buffer alive until the threads are done
    threads.run(kernel.run, [(args, lo, hi) for lo, hi in ranges])
    if kernel.finish is not None and kernel.phase != "reduce":
        kernel.finish(args)  # per-tensor scalar state, once per tensor, after the sweep
    del table, sizes, gm
    return chunks


def fused_apply(kernel, params, grads, states, steps, hyper, inputs, skip, gmul, found_inf, bad,
                met, meta=None):
    k = KERNELS[kernel]
    check(k, params, grads, states, steps, meta)
    if k.needs_meta and (meta is None or meta.shape != (len(params), 3)):
        raise ValueError(f"inertia::fused_apply: kernel {kernel} needs meta, one row per tensor")
    if found_inf is not None and float(found_inf) != 0:
        return  # AMP found an inf: nothing changes, not even the step counts
    if not params:
        return
    inputs = None if inputs is None else inputs.to(torch.float64).contiguous()
    skip = None if skip is None else skip.to(torch.int64).contiguous()
    out = np.zeros(len(chunk_table(tuple(p.numel() for p in params))), dtype=np.int64)
    chunks = _launch(k, params, grads, states, steps, hyper, gmul, inputs, skip, out,
                     meta=meta)
    torch._foreach_add_(list(steps), 1.0)
    counts = np.zeros(len(params), dtype=np.int64)
    np.add.at(counts, chunks[:, 0], out)
    if skip is not None:
        counts += skip.numpy()  # tensors the reduce pass refused: skipped whole
    bad.copy_(torch.from_numpy(counts))
    if counts.any():
        met.fill_(1)


def fused_check(kernel, params, grads, states, steps):
    check(KERNELS[kernel], params, grads, states, steps)


def fused_reduce(kernel, params, grads, states, steps, hyper, gmul, meta=None):
    k = KERNELS[kernel]
    check(k, params, grads, states, steps, meta)
    if k.needs_meta and (meta is None or meta.shape != (len(params), 3)):
        raise ValueError(f"inertia::fused_reduce: kernel {kernel} needs meta, one row per tensor")
    R = k.reductions
    chunks = chunk_table(tuple(p.numel() for p in params))
    out = np.zeros((len(chunks), R + 1), dtype=np.float64)
    if params:
        _launch(k, params, grads, states, steps, hyper, gmul, out=out, meta=meta)
    sums = np.zeros((len(params), R + 1), dtype=np.float64)
    np.add.at(sums, chunks[:, 0], out)
    return torch.from_numpy(sums)


def rows_apply(kernel, p, values, rows, states, step, hyper, gmul) -> int:
    """``sparse="lazy"``: the update of the rows ``rows`` of ``p`` (a coalesced COO gradient
    whose values are ``values``) and of their state; returns the rows the guard skipped."""
    width = p.numel() // p.shape[0] if p.shape[0] else 0
    table_rows = np.zeros((len(rows), 3), dtype=np.int64)
    table_rows[:, 0] = rows
    out = np.zeros(max(1, len(rows)), dtype=np.int64)  # one count per thread's first row
    if len(rows) and width:
        _launch(kernel, [p], [values], list(states), [step], hyper, gmul, out=out,
                rows=table_rows, width=width)
    step += 1
    return int(out.sum())


# ----------------------------------------------------------------------------- all finite

def _make_count_nonfinite():
    from numba import carray, njit

    from .numba_support import address, ld

    @njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
    def count(ptrs, sizes, chunks, lo, hi, marker, zero):
        # x * 0 is 0 for every finite x and NaN for inf or NaN, and never overflows, so a sum
        # of them is NaN exactly when some element is not finite: no false alarm from huge
        # values. reassoc lets LLVM keep partial sums per vector lane; it cannot fold x * 0.
        bad = 0
        for k in range(lo, hi):
            t = chunks[k, 0]
            g = carray(address(ptrs[t], marker), sizes[t])
            acc = zero
            for i in range(np.uint64(chunks[k, 1]), np.uint64(chunks[k, 2])):
                acc += ld(g, i) * zero
            bad += acc != acc
        return bad

    return count


_count_nonfinite = None
_MARKERS = {torch.float32: np.empty(0, np.float32), torch.float64: np.empty(0, np.float64),
            torch.bfloat16: np.empty(0, np.uint16)}


def all_finite(tensors) -> bool:
    """Whether every element of these contiguous CPU tensors (one dtype: float32, float64 or
    bfloat16) is finite: one read of each, on the kernel threads."""
    global _count_nonfinite
    if _count_nonfinite is None:
        _count_nonfinite = _make_count_nonfinite()
    ptrs = np.array([t.data_ptr() for t in tensors], dtype=np.int64)
    sizes = np.array([t.numel() for t in tensors], dtype=np.int64)
    chunks = chunk_table(tuple(sizes.tolist()))
    dtype = tensors[0].dtype
    zero = np.float64(0) if dtype == torch.float64 else np.float32(0)
    parts = threads.count() if int(sizes.sum()) >= PARALLEL_MIN else 1
    ranges = threads.split(chunks[:, 2] - chunks[:, 1], parts)
    bad = threads.run(_count_nonfinite, [(ptrs, sizes, chunks, lo, hi, _MARKERS[dtype], zero)
                                         for lo, hi in ranges])
    return sum(bad) == 0

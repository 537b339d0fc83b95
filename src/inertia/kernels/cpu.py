"""numba CPU kernels: one sweep over every tensor of a parameter group, on every core.

Design. A group's tensors are cut into chunks of at most ``CHUNK`` elements; the table
``(tensor, start, stop)`` of all chunks is cut into one contiguous range per thread
(:mod:`inertia.kernels.threads`), so the cores split the group's memory evenly whatever
the tensor sizes, and each core streams contiguous runs of every array. Tensors arrive as a ``(T, 5)`` table of addresses (param,
grad, three state slots); the kernel turns row ``t`` into array views, and the inner loop
calls the algorithm's scalar rule (:mod:`inertia.kernels.rules`), which LLVM inlines and
vectorises. The rule number is a compile-time constant of each driver (see
:func:`drivers`), so each algorithm gets its own machine code while there is one driver
source to read.

Specialisations: one per (rule, variant bits, parameter storage, state storage, compute
dtype). Variant bits are the flags that decide whether a state array is written (amsgrad,
centered, momentum, narrow state); flags that only choose values (nesterov, maximize)
stay runtime selects. Everything is ``cache=True``: the first process pays the JIT (see
``docs/kernels.md``), later ones load machine code from ``__pycache__``.

Only the chunk table is cached between steps (keyed by the tensor sizes); addresses are
re-read every step, since ``zero_grad(set_to_none=True)``, ``load_state_dict`` or
``p.data = ...`` may move any tensor.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from numba import carray, njit

from . import threads
from ._memory import address, ld
from .algos import NARROW, Algo, chunks, trust_ratio
from .rules import elem

CHUNK = 1 << 15  # elements: 128 KiB of float32, a few arrays' worth fits in L2
_F32 = np.empty(0, np.float32)
_MARKERS = {torch.float32: _F32, torch.float64: np.empty(0, np.float64),
            torch.bfloat16: np.empty(0, np.uint16)}
DTYPES = tuple(_MARKERS)

def _source_salt() -> int:
    # numba's cache is invalidated by edits to the file of the cached function only, not to
    # the rules it calls; a hash of those files, as a closure constant of every driver, is
    # part of the cache key, so editing a rule can never load stale machine code.
    import hashlib

    here = os.path.dirname(__file__)
    digest = hashlib.sha256()
    for name in ("rules.py", "_memory.py", "algos.py"):
        with open(os.path.join(here, name), "rb") as f:
            digest.update(f.read())
    return int.from_bytes(digest.digest()[:7], "little")


_SALT = _source_salt()


@njit(cache=True)
def _views(ptrs, sizes, t, pm, sm):
    # Tensor t's parameter, gradient and three state slots as arrays over their memory
    # (once per chunk, so the call is nothing next to the chunk's loop).
    n = sizes[t]
    return (carray(address(ptrs[t, 0], pm), n), carray(address(ptrs[t, 1], pm), n),
            carray(address(ptrs[t, 2], sm), n), carray(address(ptrs[t, 3], sm), n),
            carray(address(ptrs[t, 4], sm), n))


def _make_drivers(kind: int, variant: int, salt: int = _SALT):
    # ``kind`` is a closure constant, so numba types it as a literal: ``elem`` resolves to
    # one rule at compile time. ``variant`` is a constant LLVM folds into the inlined rule.
    # Both (and ``salt``) are part of numba's cache key. Each driver does the chunks
    # ``lo:hi`` (or rows) serially without the GIL; :mod:`.threads` runs ranges side by side.

    @njit(nogil=True, cache=True, error_model="numpy")
    def sweep(ptrs, sizes, chunks, lo, hi, pm, sm, h, c):
        _ = salt
        for k in range(lo, hi):
            t = chunks[k, 0]
            p, g, s0, s1, s2 = _views(ptrs, sizes, t, pm, sm)
            ct = (c[t, 0], c[t, 1], c[t, 2])
            sign = h[0]
            for i in range(np.uint64(chunks[k, 1]), np.uint64(chunks[k, 2])):
                elem(kind, variant, i, ld(g, i) * sign, p, s0, s1, s2, h, ct)

    # reassoc lets LLVM vectorise the two sums (as partial sums per lane); it applies to the
    # driver's additions only: the inlined rule keeps its own strict float semantics.
    @njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
    def sweep_norms(ptrs, sizes, chunks, lo, hi, pm, sm, h, c, out):
        # The same sweep for a rule that returns two squares; out[k] = their sums on chunk k.
        _ = salt
        for k in range(lo, hi):
            t = chunks[k, 0]
            p, g, s0, s1, s2 = _views(ptrs, sizes, t, pm, sm)
            ct = (c[t, 0], c[t, 1], c[t, 2])
            sign = h[0]
            a = 0.0
            b = 0.0
            for i in range(np.uint64(chunks[k, 1]), np.uint64(chunks[k, 2])):
                x, y = elem(kind, variant, i, ld(g, i) * sign, p, s0, s1, s2, h, ct)
                a += x
                b += y
            out[k, 0] = a
            out[k, 1] = b

    @njit(nogil=True, cache=True, error_model="numpy")
    def sweep_rows(ptrs, n, rows, lo, hi, width, values, pm, sm, h, c):
        # Lazy sparse update: only the rows a coalesced COO gradient touches, and their state.
        _ = salt
        p = carray(address(ptrs[0], pm), n)
        s0 = carray(address(ptrs[2], sm), n)
        s1 = carray(address(ptrs[3], sm), n)
        s2 = carray(address(ptrs[4], sm), n)
        gv = carray(address(values, pm), rows.shape[0] * width)
        ct = (c[0], c[1], c[2])
        sign = h[0]
        for r in range(lo, hi):
            base = np.uint64(rows[r] * width)
            src = np.uint64(r * width)
            for j in range(np.uint64(width)):
                elem(kind, variant, base + j, ld(gv, src + j) * sign, p, s0, s1, s2, h, ct)

    return sweep, sweep_norms, sweep_rows


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def _count_nonfinite(ptrs, sizes, chunks, lo, hi, marker, zero):
    # x * 0 is 0 for every finite x and NaN for inf or NaN, and never overflows, so a sum of
    # them is NaN exactly when some element is not finite: no false alarm from huge values.
    # reassoc lets LLVM keep several partial sums per vector lane (a single running sum is a
    # dependency chain that reads at a fraction of memory speed); it cannot fold x * 0 away.
    bad = 0
    for k in range(lo, hi):
        t = chunks[k, 0]
        g = carray(address(ptrs[t], marker), sizes[t])
        acc = zero
        for i in range(np.uint64(chunks[k, 1]), np.uint64(chunks[k, 2])):
            acc += ld(g, i) * zero
        bad += acc != acc
    return bad


_drivers_by_kind: dict[tuple[int, int], tuple] = {}
# Below this many elements a step takes microseconds and handing work to other threads
# costs more than it saves: run on the calling thread.
PARALLEL_MIN = 1 << 18


def drivers(kind: int, variant: int = 0) -> tuple:
    """``(sweep, sweep_norms, sweep_rows)`` for rule ``kind`` and ``variant`` (made once per process)."""
    key = (kind, variant)
    if key not in _drivers_by_kind:
        _drivers_by_kind[key] = _make_drivers(kind, variant)
    return _drivers_by_kind[key]


def _over_chunks(fn, head: tuple, chunks: np.ndarray, total: int, tail: tuple) -> list:
    # fn(*head, lo, hi, *tail) for ranges of chunks of about equal size, one per thread.
    parts = threads.count() if total >= PARALLEL_MIN else 1
    ranges = threads.split(chunks[:, 2] - chunks[:, 1], parts)
    return threads.run(fn, [(*head, lo, hi, *tail) for lo, hi in ranges])


def _variant(algo: Algo, group, sdtype) -> int:
    narrow = NARROW if algo.narrow_matters and sdtype == torch.bfloat16 else 0
    return algo.variant(group) | narrow


@njit(cache=True)
def _bump(ptrs, marker):
    # state["step"] += 1 for every tensor (float32 0-d CPU tensors); returns the new steps.
    out = np.empty(ptrs.shape[0])
    for t in range(ptrs.shape[0]):
        s = carray(address(ptrs[t], marker), 1)
        s[0] += np.float32(1.0)
        out[t] = s[0]
    return out


_chunk_tables: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}


def _chunks(sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    hit = _chunk_tables.get(sizes)
    if hit is None:
        n, t, start, stop = chunks(sizes, CHUNK)
        hit = (n, np.stack([t, start, stop], axis=1).astype(np.int64))
        if len(_chunk_tables) > 256:
            _chunk_tables.clear()
        _chunk_tables[sizes] = hit
    return hit


def _hyper(algo: Algo, group, cdt, sdtype):
    return tuple(cdt(x) for x in algo.hyper(group))


def _addresses(params, grads, states, slots) -> np.ndarray:
    # Unused slots point at the parameter: never read, but always a valid address.
    return np.array([[p.data_ptr(), g.data_ptr(),
                      *(s[k].data_ptr() if k else p.data_ptr() for k in slots)]
                     for p, g, s in zip(params, grads, states)], dtype=np.int64).reshape(-1, 5)


def _slots(algo: Algo, group) -> tuple:
    return (tuple(algo.slots(group)) + (None, None, None))[:3]


def compute_dtype(pdtype, sdtype):
    return np.float64 if torch.float64 in (pdtype, sdtype) else np.float32


def bump_steps(states) -> np.ndarray:
    """``state["step"] += 1`` for every state (float32 CPU scalars); returns the new values."""
    return _bump(np.array([s["step"].data_ptr() for s in states], dtype=np.int64), _F32)


def dense_step(algo: Algo, group, params, grads, states, sdtype) -> None:
    """One step of ``algo`` for same-dtype contiguous CPU tensors with existing state."""
    pm, sm = _MARKERS[params[0].dtype], _MARKERS[sdtype]
    cdt = compute_dtype(params[0].dtype, sdtype)
    ptrs = _addresses(params, grads, states, _slots(algo, group))
    sizes, chunks = _chunks(tuple(p.numel() for p in params))
    total = int(sizes.sum())
    steps = bump_steps(states)
    var = _variant(algo, group, sdtype)
    h = _hyper(algo, group, cdt, sdtype)
    c = algo.consts(steps, group)
    if algo.norms_kind is not None:
        part = np.empty((len(chunks), 2))
        _over_chunks(drivers(algo.norms_kind, var)[1], (ptrs, sizes, chunks), chunks, total,
                     (pm, sm, h, c.astype(cdt), part))
        sums = np.zeros((len(params), 2))
        np.add.at(sums, chunks[:, 0], part)
        c[:, algo.ratio_slot] = trust_ratio(sums[:, 0], sums[:, 1], *algo.trust(group))
    _over_chunks(drivers(algo.kind, var)[0], (ptrs, sizes, chunks), chunks, total,
                 (pm, sm, h, c.astype(cdt)))


def lazy_rows_step(algo: Algo, group, p, grad, state, sdtype) -> None:
    """``sparse="lazy"`` for one parameter whose COO gradient indexes its first dimension."""
    grad = grad.coalesce()
    rows = grad.indices()[0].numpy().astype(np.int64, copy=False)
    if len(rows) and (rows.min() < 0 or rows.max() >= p.shape[0]):
        # COO tensors are not validated on construction; raw addresses must never go past p.
        raise IndexError(f"sparse gradient row index out of range for a parameter of "
                         f"{p.shape[0]} rows")
    values = grad.values().to(p.dtype).contiguous()
    cdt = compute_dtype(p.dtype, sdtype)
    ptrs = _addresses([p], [p], [state], _slots(algo, group))[0]
    c = algo.consts(bump_steps([state]), group).astype(cdt)[0]
    width = p.numel() // p.shape[0] if p.shape[0] else 0
    parts = threads.count() if len(rows) * width >= PARALLEL_MIN else 1
    ranges = threads.split(np.ones(len(rows)), parts)
    tail = (width, values.data_ptr(), _MARKERS[p.dtype], _MARKERS[sdtype],
            _hyper(algo, group, cdt, sdtype), c)
    threads.run(drivers(algo.kind, _variant(algo, group, sdtype))[2],
                [(ptrs, p.numel(), rows, lo, hi, *tail) for lo, hi in ranges])


def all_finite(tensors) -> bool:
    """Whether every element of these contiguous CPU tensors (one dtype of ``DTYPES``) is
    finite: one read of each, on the same threads as the update that follows."""
    ptrs = np.array([t.data_ptr() for t in tensors], dtype=np.int64)
    sizes, chunks = _chunks(tuple(t.numel() for t in tensors))
    dtype = tensors[0].dtype
    zero = np.float64(0) if dtype == torch.float64 else np.float32(0)
    bad = _over_chunks(_count_nonfinite, (ptrs, sizes, chunks), chunks, int(sizes.sum()),
                       (_MARKERS[dtype], zero))
    return sum(bad) == 0

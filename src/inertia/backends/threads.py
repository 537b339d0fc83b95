"""The threads the numba CPU kernels run on: the caller plus a few sleeping workers.

Why not numba's own ``parallel=True``: its thread pools do not share cores well with
torch. The OpenMP pool spin-waits against torch's own OpenMP runtime after every parallel
region (each step became 10-100x slower on two cores), and the ``workqueue`` pool, which
sleeps instead, measured 100 µs per region and kept a second core busy for only a fraction
of a 2 ms sweep (``cpu time / wall time`` 1.0-1.4 on two cores). So the kernels are plain
serial ``nogil`` functions over a range of chunks, and this module runs one range on the
calling thread and the others on worker threads that block (not spin) between steps: a
sweep then keeps every core busy (``cpu / wall`` 1.8-2.0) and a round trip costs 20-70 µs.

The number of threads follows ``torch.get_num_threads()``, so ``torch.set_num_threads(1)``
makes inertia's kernels single-threaded too. Calls are serialised by a lock, and a child
process made by ``fork`` starts with a fresh pool (threads do not survive a fork).
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Sequence

import numpy as np
import torch

_lock = threading.Lock()
_workers: list[queue.SimpleQueue] = []
_results: queue.SimpleQueue = queue.SimpleQueue()


def _work(jobs: queue.SimpleQueue) -> None:
    while True:
        fn, args, slot = jobs.get()
        try:
            _results.put((slot, fn(*args), None))
        except BaseException as error:  # handed to the caller, which re-raises it
            _results.put((slot, None, error))


def _reset_after_fork() -> None:
    global _lock, _workers, _results
    _lock, _workers, _results = threading.Lock(), [], queue.SimpleQueue()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def count() -> int:
    """How many threads a parallel call uses: torch's intra-op thread count."""
    return max(1, torch.get_num_threads())


def split(weights: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Cut ``range(len(weights))`` into at most ``parts`` contiguous ranges of about equal weight."""
    if parts <= 1 or len(weights) <= 1:
        return [(0, len(weights))]
    cumulative = np.cumsum(weights, dtype=np.float64)
    targets = cumulative[-1] * np.arange(1, parts) / parts
    bounds = [0, *np.searchsorted(cumulative, targets, side="left").tolist(), len(weights)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def run(fn: Callable[..., Any], calls: Sequence[tuple]) -> list[Any]:
    """``[fn(*args) for args in calls]``, the first on this thread and the rest on workers.

    ``fn`` must release the GIL (numba ``nogil=True``) for the calls to overlap. An
    exception in any call is raised here after all of them have finished.
    """
    with _lock:
        if len(calls) == 1:
            return [fn(*calls[0])]
        while len(_workers) < len(calls) - 1:
            jobs: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=_work, args=(jobs,), name="inertia-kernel", daemon=True).start()
            _workers.append(jobs)
        for slot, args in enumerate(calls[1:], start=1):
            _workers[slot - 1].put((fn, args, slot))
        out: list[Any] = [None] * len(calls)
        error = None
        try:
            out[0] = fn(*calls[0])
        except BaseException as e:
            error = e
        for _ in range(len(calls) - 1):
            slot, value, failed = _results.get()
            out[slot] = value
            error = error or failed
        if error is not None:
            raise error
        return out

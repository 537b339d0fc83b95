"""The worker threads the Python CPU runner uses (inertia.backends.threads)."""
import os
import signal
import threading

import numpy as np
import pytest

pytest.importorskip("numba")
from inertia.backends import threads  # noqa: E402


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_split_covers_everything_once_in_balanced_ranges(parts):
    weights = np.array([5, 1, 1, 1, 9, 2, 2, 2, 2, 3, 1])
    ranges = threads.split(weights, parts)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(weights)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, no overlap
    assert all(hi > lo for lo, hi in ranges) and len(ranges) <= parts
    if parts == 2:  # the heaviest range is within one item of an even share
        assert max(weights[lo:hi].sum() for lo, hi in ranges) <= weights.sum() / 2 + weights.max()


def test_split_of_nothing_and_of_one():
    assert threads.split(np.zeros(0), 4) == [(0, 0)]
    assert threads.split(np.ones(1), 4) == [(0, 1)]


def test_run_returns_results_in_call_order_from_several_threads():
    seen = []

    def fn(i):
        seen.append(threading.get_ident())
        return i * i

    assert threads.run(fn, [(i,) for i in range(5)]) == [0, 1, 4, 9, 16]
    assert threading.get_ident() in seen and len(set(seen)) == 5


def test_an_error_in_a_worker_is_raised_in_the_caller_after_all_calls_finish():
    done = []

    def fn(i):
        if i == 2:
            raise ZeroDivisionError("worker 2")
        done.append(i)
        return i

    with pytest.raises(ZeroDivisionError, match="worker 2"):
        threads.run(fn, [(i,) for i in range(4)])
    assert sorted(done) == [0, 1, 3]
    assert threads.run(fn, [(0,), (1,)]) == [0, 1]  # the pool still works


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_fresh_pool():
    threads.run(lambda i: i, [(0,), (1,)])  # the parent has workers
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: workers did not survive the fork; run must start new ones
        signal.alarm(30)  # a hang kills the child, and the parent reads no "1"
        try:
            ok = threads.run(lambda i: i + 1, [(0,), (1,), (2,)]) == [1, 2, 3]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"

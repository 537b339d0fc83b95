"""Small models train several at a time in worker processes, with the same results as one by one."""
from __future__ import annotations

import warnings

import pandas as pd
import torch

from inertia.lab import OptimizerSpec, api, workloads
from inertia.lab.running import pool
from inertia.lab.workloads.tensors import LabNote


def _user_workload():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(300, 6, generator=gen)
    Y = (X[:, :3].sum(1) > 0).long()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabNote)
        # a closure over local tensors and a lambda: only cloudpickle can send this to a worker
        return api.Workload.from_tensors("closure", model=lambda: torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(),
                                                                                     torch.nn.Linear(8, 2)),
                                         X=X, Y=Y, target=0.8, steps=20, batch_size=32)


def test_parallel_runs_equal_sequential_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(pool, "POOL_WORTH_S", 0.0)  # these runs are too short to be worth a pool otherwise
    work = _user_workload()
    entries, seeds = ["adam:lr=0.01", "sgd:lr=0.1"], [0, 1]
    one = api.compare([work, "valley"], entries, seeds=seeds, out=tmp_path / "one", jobs=1, steps=20)
    two = api.compare([work, "valley"], entries, seeds=seeds, out=tmp_path / "two", jobs=2, steps=20)
    a, b = api.load_runs(tmp_path / "one" / "runs.sqlite"), api.load_runs(tmp_path / "two" / "runs.sqlite")
    key = ["workload", "optimizer", "seed"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    for col in ("final_metric", "val_final", "final_loss", "steps_to_target", "outcome"):
        pd.testing.assert_series_equal(a[col], b[col])  # single-threaded either way: identical numbers
    assert set(a["concurrency"]) == {1}
    # the first run of each workload trains alone (measured, clean timing), the rest two at a time
    assert sorted(b["concurrency"]) == [1, 1] + [2] * (len(b) - 2)
    assert list(one["optimizer"]) == list(two["optimizer"])
    md = (tmp_path / "two" / "report.md").read_text()
    assert "shared the machine" in md


def test_what_goes_to_the_pool():
    valley, minibatch = workloads.get("valley"), workloads.get("minibatch")
    assert pool.parallel_ok(valley, None, None)
    assert not pool.parallel_ok(minibatch, None, None)  # ranked by seconds: timed one run at a time
    assert not pool.parallel_ok(valley, None, 2)  # two threads per run use the cores themselves
    tasks = [pool.Task(valley, OptimizerSpec("sgd"), s) for s in range(3)] + [pool.Task(minibatch, OptimizerSpec("sgd"), 0)]
    pooled, here, jobs = pool.split(tasks, None, None, 2)
    assert len(pooled) == 3 and len(here) == 1 and jobs == 2
    assert pool.split(tasks, None, None, 1)[2] == 1
    assert pool.split(tasks[:1], None, None, 4)[0] == []  # a pool for one run is not worth starting


def test_a_pool_is_started_only_when_worth_it(monkeypatch):
    started = []
    monkeypatch.setattr(pool, "_pooled", lambda tasks, n, device, threads: started.append(len(tasks)) or iter(()))
    valley = workloads.get("valley").with_budget(5)
    tasks = [pool.Task(valley, OptimizerSpec("sgd"), s) for s in range(4)]
    recs = list(pool.run_all(tasks, jobs=2))
    assert started == [] and len(recs) == 4  # four runs of a few milliseconds: all here
    monkeypatch.setattr(pool, "POOL_WORTH_S", 0.0)
    recs = list(pool.run_all(tasks, jobs=2))
    assert started == [3] and len(recs) == 1  # the first measured here, the other three sent to the pool


def _children(pid: int) -> set[int]:
    out = set()
    for stat in __import__("glob").glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.split("/")[2]))
    return out


def test_workers_end_when_the_comparison_is_killed(tmp_path):
    """After kill -9 of the main process, no worker keeps training runs nobody will store."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pytest

    if not os.path.exists("/proc"):
        pytest.skip("needs /proc to find the worker processes")
    script = tmp_path / "pooled.py"
    script.write_text(
        "from inertia.lab import workloads\n"
        "from inertia.lab.specs import parse_optimizer\n"
        "from inertia.lab.running import pool\n"
        "w = workloads.get('rosenbrock').with_budget(10 ** 6)\n"
        "tasks = [pool.Task(w, parse_optimizer('sgd'), s) for s in range(4)]\n"
        "print('pool', flush=True)\n"
        "for rec in pool._pooled(tasks, 2, None, None):\n"
        "    print('run done', flush=True)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "pool"
    deadline, workers = time.time() + 60, set()
    while time.time() < deadline and len(workers) < 3:  # two workers and loky's resource tracker
        workers = _children(proc.pid)
        time.sleep(0.2)
    time.sleep(1.0)  # let the workers start their runs
    assert workers, "no worker processes started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}")]
    for w in alive:  # clean up before failing, so a failure leaves nothing running
        os.kill(w, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived the killed comparison"


def test_by_default_a_busy_machine_gets_no_pool(monkeypatch):
    started = []
    monkeypatch.setattr(pool, "_pooled", lambda tasks, n, device, threads: started.append((len(tasks), n)) or iter(()))
    monkeypatch.setattr(pool, "POOL_WORTH_S", 0.0)
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    valley = workloads.get("valley").with_budget(5)
    tasks = [pool.Task(valley, OptimizerSpec("sgd"), s) for s in range(4)]
    monkeypatch.setattr(pool, "idle_cores", lambda sample=0.3: 0.3)  # other work holds the cores
    assert len(list(pool.run_all(tasks))) == 4 and started == []
    assert len(list(pool.run_all(tasks, jobs=2))) == 1 and started == [(3, 2)]  # asked for explicitly
    monkeypatch.setattr(pool, "idle_cores", lambda sample=0.3: 1.9)
    list(pool.run_all(tasks))
    assert started[-1] == (3, 2)


def test_idle_cores_is_a_share_of_the_cores():
    assert 0.0 <= pool.idle_cores(0.05) <= pool.cpus() + 1e-9

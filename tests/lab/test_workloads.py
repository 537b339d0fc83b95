"""Every built-in workload trains on a tiny budget; users' own workloads run the same way."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from inertia.lab import OptimizerSpec, Workload, custom_workload, runner, workloads

BUILT_IN = ["valley", "valley-noisy", "rosenbrock", "rosenbrock-noisy", "minibatch", "mnist-mlp", "mnist-cnn"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_smoke_every_workload(name):
    w = workloads.get(name).with_budget(4, eval_every=2)
    rec = runner.train(w, OptimizerSpec("adam"), seed=0)
    assert rec.status == "ok" and rec.steps_done == 4
    assert len(rec.losses) == len(rec.lrs) == len(rec.times) == 4
    assert all(math.isfinite(x) for x in rec.losses)
    assert [e[0] for e in rec.evals] == [0, 2, 4]
    assert rec.state_bytes > 0 and rec.peak_memory > 0 and rec.time_per_step > 0
    on_cpu = w.device == "cpu" or not torch.cuda.is_available()
    assert rec.device == ("cpu (1 thread)" if on_cpu else "cuda")
    if w.trajectory:
        assert len(rec.trajectory) == 5 and "contour" in w.extras


def test_same_seed_same_run_and_seeds_differ():
    w = workloads.get("valley-noisy").with_budget(5)
    a, b = (runner.train(w, OptimizerSpec("sgd"), seed=1) for _ in range(2))
    c = runner.train(w, OptimizerSpec("sgd"), seed=2)
    assert a.losses == b.losses and a.losses != c.losses
    assert a.key == b.key != c.key


def test_mnist_split_is_stratified_and_fixed():
    from inertia.lab.workloads.mnist import load_digits

    d = load_digits()
    assert len(d["y_train"]) == 4000 and len(d["y_test"]) == 1000
    assert torch.bincount(d["y_test"]).tolist() == [100] * 10
    load_digits.cache_clear()
    assert torch.equal(load_digits()["y_test"], d["y_test"])


def test_user_workload_from_tensors():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(256, 4, generator=gen)
    Y = (X[:, 0] + X[:, 1] > 0).long()
    w = custom_workload("mine", model=lambda: torch.nn.Linear(4, 2), X=X, Y=Y,
                        loss="cross_entropy", metric="accuracy", target=0.8, steps=30, batch_size=32)
    assert isinstance(w, Workload) and w.higher_is_better
    rec = runner.train(w, OptimizerSpec("adam", {"lr": 0.05}), seed=0)
    assert rec.evals[-1][2] > 0.8
    w2 = custom_workload("mine", model=lambda: torch.nn.Linear(4, 2), X=X + 1, Y=Y, target=0.8, steps=30)
    assert runner.run_key(w, OptimizerSpec("adam"), 0) != runner.run_key(w2, OptimizerSpec("adam"), 0)


def test_listing_workloads_imports_no_optional_dependency():
    code = ("import sys; from inertia.lab.workloads import describe; names = [n for n, _ in describe()]; "
            "assert 'reviews' in names and 'movielens' in names; "
            "assert 'transformers' not in sys.modules and 'inertia.lab.workloads.reviews' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_unknown_workload_lists_valid_names():
    with pytest.raises(workloads.UnknownWorkloadError, match="valid names: valley"):
        workloads.get("nope")


def test_thread_count_is_restored_after_a_run():
    before = torch.get_num_threads()
    runner.train(workloads.get("valley").with_budget(2), OptimizerSpec("sgd"), seed=0)
    assert torch.get_num_threads() == before

"""Every built-in workload trains on a tiny budget; users' own workloads are checked before training."""
from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from inertia.lab import OptimizerSpec, Workload, custom_workload, workloads
from inertia.lab.running import runner
from inertia.lab.workloads.tensors import LabNote

BUILT_IN = ["valley", "valley-noisy", "rosenbrock", "rosenbrock-noisy", "minibatch", "mnist-mlp", "mnist-cnn"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_smoke_every_workload(name):
    w = workloads.get(name).with_budget(4, eval_every=2)
    rec = runner.train(w, OptimizerSpec("adam"), seed=0)
    assert rec.status == "completed" and rec.steps_done == 4
    assert len(rec.losses) == len(rec.lrs) == len(rec.times) == 4
    assert all(math.isfinite(x) for x in rec.losses)
    assert [e[0] for e in rec.evals] == [0, 2, 4]
    assert rec.test_metric is not None and math.isfinite(rec.test_metric)
    assert rec.state_bytes > 0 and rec.peak_memory > 0 and rec.time_per_step > 0
    assert rec.hparams["lr"] == rec.lr and "betas" in rec.hparams and "eps" in rec.hparams  # defaults recorded
    assert rec.lr_source == "workload" and w.source == (name, {})
    on_cpu = w.device == "cpu" or not torch.cuda.is_available()
    assert rec.device == ("cpu (1 thread)" if on_cpu else "cuda") and rec.threads == 1
    if w.trajectory:
        assert len(rec.trajectory) == 5 and "contour" in w.extras


def test_same_seed_same_run_and_seeds_differ():
    w = workloads.get("valley-noisy").with_budget(5)
    a, b = (runner.train(w, OptimizerSpec("sgd"), seed=1) for _ in range(2))
    c = runner.train(w, OptimizerSpec("sgd"), seed=2)
    assert a.losses == b.losses and a.losses != c.losses
    assert a.key == b.key != c.key


def test_mnist_split_is_stratified_fixed_and_three_way():
    from inertia.lab.workloads.mnist import load_digits

    d = load_digits()
    assert len(d["y_train"]) == 3500 and len(d["y_validation"]) == 500 and len(d["y_test"]) == 1000
    assert torch.bincount(d["y_test"]).tolist() == [100] * 10
    assert torch.bincount(d["y_validation"]).tolist() == [50] * 10
    load_digits.cache_clear()
    assert torch.equal(load_digits()["y_test"], d["y_test"])


def _data(n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=gen)
    return X, (X[:, 0] + X[:, 1] > 0).long()


def test_user_workload_from_tensors_holds_out_validation_and_test():
    X, Y = _data()
    with pytest.warns(LabNote, match="held out 51 examples as validation, 51 examples as test"):
        w = custom_workload("mine", model=lambda: torch.nn.Linear(4, 2), X=X, Y=Y,
                            loss="cross_entropy", metric="accuracy", target=0.8, steps=30, batch_size=32)
    assert isinstance(w, Workload) and w.higher_is_better and w.cpu_threads == 1
    assert (w.extras["n_train"], w.extras["n_validation"], w.extras["n_test"]) == (154, 51, 51)
    rec = runner.train(w, OptimizerSpec("adam", {"lr": 0.05}), seed=0)
    assert rec.evals[-1][2] > 0.8 and rec.test_metric > 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabNote)
        w2 = custom_workload("mine", model=lambda: torch.nn.Linear(4, 2), X=X + 1, Y=Y, target=0.8, steps=30)
    assert runner.run_key(w, OptimizerSpec("adam"), 0) != runner.run_key(w2, OptimizerSpec("adam"), 0)


def test_numpy_and_float64_are_converted_and_said_once():
    X, Y = _data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = custom_workload("np", model=lambda: torch.nn.Linear(4, 2), X=X.double().numpy(), Y=Y.numpy(),
                            X_val=X[:50].numpy(), Y_val=Y[:50].numpy(), X_test=X[50:100].double(),
                            Y_test=Y[50:100].float(), target=0.6, steps=5)
    notes = [c for c in caught if issubclass(c.category, LabNote)]
    assert len(notes) == 1  # one warning listing every conversion
    text = str(notes[0].message)
    assert "X: NumPy float64 array converted to a tensor" in text and "torch.float64 converted to the model's torch.float32" in text
    assert "Y_test: whole-number torch.float32 labels converted to class indices" in text
    assert runner.train(w, OptimizerSpec("sgd", {"lr": 0.1}), 0).status == "completed"


@pytest.mark.parametrize("kwargs, message", [
    (dict(model=torch.nn.Linear(4, 2)), "Invalid model: got a Linear instance; pass a factory"),
    (dict(model="linear"), "Invalid model: expected a zero-argument factory"),
    (dict(model=lambda: 3), "Invalid model: the factory returned a int"),
    (dict(model=lambda: torch.nn.Linear(5, 2)), "Invalid model: calling it on 2 rows of X (shape (2, 4), torch.float32) failed"),
    (dict(Y=torch.zeros(255, dtype=torch.long)), "Invalid Y: 255 rows, but X has 256"),
    (dict(Y=torch.full((256,), 5)), "Invalid Y: labels must be in [0, 2) for a model with 2 outputs, got 5"),
    (dict(Y=torch.full((256,), -1)), "Invalid Y: labels must be in [0, 2) for a model with 2 outputs, got -1"),
    (dict(Y=torch.rand(256)), "Invalid Y: class labels must be whole numbers"),
    (dict(X=torch.zeros(0, 4), Y=torch.zeros(0)), "Invalid X: no examples"),
    (dict(X=torch.zeros(2, 4), Y=torch.zeros(2)), "Invalid X: 2 examples are too few to hold out validation and test"),
    (dict(X="data"), "Invalid X: expected a tensor or NumPy array, got str"),
    (dict(X_val=torch.zeros(3, 4)), "Invalid Y_val: None while X_val is given"),
    (dict(target=float("nan")), "Invalid target: nan"),
    (dict(target=90), "Invalid target: 90 (accuracy targets lie in (0, 1])"),
    (dict(steps=0), "Invalid steps: 0"),
    (dict(batch_size=2.5), "Invalid batch_size: 2.5"),
    (dict(loss="hinge"), "Invalid loss: 'hinge'"),
    (dict(metric=lambda o, y: 1.0), "Invalid higher_is_better: None"),
    (dict(val_fraction=1.5), "Invalid val_fraction: 1.5"),
])
def test_bad_user_input_is_named_before_training(kwargs, message):
    X, Y = _data()
    args = {"model": lambda: torch.nn.Linear(4, 2), "X": X, "Y": Y, "target": 0.8, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabNote)
        with pytest.raises(ValueError) as err:
            custom_workload("bad", **args)
    assert message in str(err.value)


def test_regression_workload_and_custom_threads():
    X = torch.randn(200, 3)
    Y = X @ torch.tensor([1.0, -2.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabNote)
        w = custom_workload("reg", model=lambda: torch.nn.Linear(3, 1), X=X, Y=Y, loss="mse", metric="rmse",
                            target=0.5, steps=50, cpu_threads=2, min_difference=0.01)
    assert w.cpu_threads == 2 and w.min_difference == 0.01 and not w.higher_is_better
    rec = runner.train(w, OptimizerSpec("adam", {"lr": 0.1}), 0)
    assert rec.threads == 2 and rec.test_metric < 1.0


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


def test_numpy_integers_are_valid_seeds():
    from inertia.lab.api import resolve_seeds

    assert resolve_seeds(np.arange(3)) == [0, 1, 2]

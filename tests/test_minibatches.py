import numpy as np
import pytest
import torch

from inertia import minibatches


def _data(n=130, backend="torch"):
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    Y = np.arange(n)
    return (torch.from_numpy(X), torch.from_numpy(Y)) if backend == "torch" else (X, Y)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("batch_size,sizes", [(64, [64, 64, 2]), (130, [130]), (1, [1] * 130), (200, [130])])
def test_batches_cover_the_data_once_and_stay_aligned(backend, batch_size, sizes):
    X, Y = _data(backend=backend)
    batches = list(minibatches(X, Y, batch_size=batch_size, seed=3))
    assert [len(y) for _, y in batches] == sizes
    seen = np.concatenate([np.asarray(y) for _, y in batches])
    assert sorted(seen.tolist()) == list(range(130))
    for xb, yb in batches:
        assert np.array_equal(np.asarray(xb)[:, 0], np.asarray(yb) * 3)  # rows stayed with labels


def test_drop_last_and_no_shuffle():
    X, Y = _data()
    batches = list(minibatches(X, Y, batch_size=64, drop_last=True, shuffle=False))
    assert [len(y) for _, y in batches] == [64, 64]
    assert batches[0][1].tolist() == list(range(64))
    assert batches[0][0].data_ptr() == X.data_ptr()  # unshuffled batches are views, not copies


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_seed_makes_it_reproducible(backend):
    X, Y = _data(backend=backend)
    first = [np.asarray(y).tolist() for _, y in minibatches(X, Y, 32, seed=7)]
    again = [np.asarray(y).tolist() for _, y in minibatches(X, Y, 32, seed=7)]
    other = [np.asarray(y).tolist() for _, y in minibatches(X, Y, 32, seed=8)]
    assert first == again and first != other


def test_batches_stay_on_the_data_device():
    X, Y = _data()
    xb, yb = next(iter(minibatches(X.to(torch.float64), Y, 16, seed=0)))
    assert xb.device == X.device and xb.dtype == torch.float64


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_non_positive_batch_size(bad):
    X, Y = _data()
    with pytest.raises(ValueError, match=f"Invalid batch_size: {bad!r}"):
        next(minibatches(X, Y, batch_size=bad))


def test_mismatched_lengths():
    X, Y = _data()
    with pytest.raises(ValueError, match="Invalid Y: 129 examples, but X has 130"):
        next(minibatches(X, Y[:-1]))

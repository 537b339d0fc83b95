"""Mini-batches: the first step from batch gradient descent to something fast."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch


def _length(x: Any) -> int:
    return int(x.shape[0])


def minibatches(X: Any, Y: Any, batch_size: int = 64, shuffle: bool = True,
                seed: int | None = None, drop_last: bool = False) -> Iterator[tuple[Any, Any]]:
    """Yield aligned ``(X_batch, Y_batch)`` pairs covering the data once (one epoch).

    Examples are rows (the first dimension), as in PyTorch. ``batch_size == len(X)`` is
    batch gradient descent, ``1`` is stochastic gradient descent, 64-512 is mini-batch.
    The last, smaller batch is kept unless ``drop_last``. Works on torch tensors (batches
    stay on the data's device; only the batch is gathered, never a shuffled copy of the
    whole data set) and on NumPy arrays. ``seed`` makes the order reproducible.

    Example:
        >>> import torch
        >>> from inertia import minibatches
        >>> X, Y = torch.arange(10.).reshape(5, 2), torch.arange(5)
        >>> [len(y) for _, y in minibatches(X, Y, batch_size=2, seed=0)]
        [2, 2, 1]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"Invalid batch_size: {batch_size!r} (must be a positive integer)")
    n = _length(X)
    if _length(Y) != n:
        raise ValueError(f"Invalid Y: {_length(Y)} examples, but X has {n} (lengths must match)")
    if isinstance(X, torch.Tensor):
        if shuffle:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(seed if seed is not None else int(torch.seed()) % (2**63))
            order = torch.randperm(n, generator=gen).to(X.device)
        else:
            order = None
    else:
        order = np.random.default_rng(seed).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            yield X[start:end], Y[start:end]
        else:
            idx = order[start:end]
            yield X[idx], _take(Y, idx)


def _take(Y: Any, idx: Any) -> Any:
    if isinstance(Y, torch.Tensor) and not isinstance(idx, torch.Tensor):
        idx = torch.as_tensor(idx)
    if isinstance(Y, torch.Tensor) and idx.device != Y.device:
        idx = idx.to(Y.device)
    return Y[idx]

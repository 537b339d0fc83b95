"""Pieces the built-in and user workloads share: batching, named losses and metrics."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from ...data import minibatches


def tensor_batches(X: torch.Tensor, Y: torch.Tensor, batch_size: int, seed: int) -> Iterator[tuple]:
    """Mini-batches of ``(X, Y)`` forever: epoch after epoch, each shuffled by ``(seed, epoch)``.

    Workloads must be infinite so that the runner, not the data, decides when training
    stops; each epoch's order is reproducible from the seed. ``batch_size >= len(X)`` is
    batch gradient descent (the same full batch every step).
    """
    if batch_size >= len(X):
        while True:
            yield X, Y
    epoch = 0
    while True:
        yield from minibatches(X, Y, batch_size=batch_size, shuffle=True,
                               seed=seed * 100_003 + epoch, drop_last=False)
        epoch += 1


@dataclass(frozen=True)
class Accumulated:
    """One optimizer step made of several micro-batches (gradient accumulation).

    A workload's ``batches`` may yield these: the runner back-propagates each part's loss
    times its weight (the part's share of the examples), so the step's gradient is that of
    the mean loss over the whole batch while only one part's activations are in memory.
    """

    parts: Sequence[Any]
    weights: Sequence[float]


def accumulated(X: torch.Tensor, Y: torch.Tensor, batch_size: int, micro_batch: int, seed: int) -> Iterator[Accumulated]:
    """Batches of ``batch_size`` examples, each as micro-batches of at most ``micro_batch`` rows."""
    for xb, yb in tensor_batches(X, Y, batch_size, seed):
        n = len(xb)
        parts = [(xb[i:i + micro_batch], yb[i:i + micro_batch]) for i in range(0, n, micro_batch)]
        yield Accumulated(parts, [len(p[1]) / n for p in parts])


def loss_fn(loss: str | Callable) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A named loss (``cross_entropy``, ``mse``) or the callable itself."""
    if callable(loss):
        return loss
    named = {"cross_entropy": F.cross_entropy,
             "mse": lambda out, y: F.mse_loss(out.reshape(y.shape), y)}
    if loss not in named:
        raise ValueError(f"Invalid loss: {loss!r} (choose from {', '.join(named)} or pass a callable)")
    return named[loss]


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose arg-max is the label."""
    return float((out.argmax(dim=1) == y).float().mean())


def metric_fn(metric: str | Callable, loss: Callable) -> tuple[Callable, bool | None]:
    """A named metric and its direction, or a callable (direction unknown: None)."""
    if callable(metric):
        return metric, None
    named = {
        "accuracy": (accuracy, True),
        "loss": (lambda out, y: float(loss(out, y)), False),
        "rmse": (lambda out, y: float(torch.sqrt(F.mse_loss(out.reshape(y.shape), y))), False),
    }
    if metric not in named:
        raise ValueError(f"Invalid metric: {metric!r} (choose from {', '.join(named)} or pass a callable)")
    return named[metric]


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

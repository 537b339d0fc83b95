"""2-D test surfaces: the seed's narrow valley and Rosenbrock's banana, exact or noisy.

The model is one 2-vector ``p = (x, y)``; the loss is the surface itself, so the run's
trajectory can be drawn over the contour plot. This is where the lesson's picture lives:
plain gradient descent zig-zags across a narrow valley (the steep direction limits the
step size, the shallow one then crawls), momentum averages the zig-zag away, and
RMSprop/Adam rescale each coordinate.

``noise > 0`` adds zero-mean Gaussian noise of that scale to every gradient (the loss
gets the matching linear term ``noise * xi . p``): the gradient a mini-batch would give.
The metric is always the exact surface value at the current point (lower is better); with
no data, the validation and test "splits" are that same value.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..workload import Workload


class Point(torch.nn.Module):
    """A single trainable point in the plane."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(start.clone())


def valley_fn(p):
    """``(x^2 + 50 y^2) / 2``: a quadratic valley with condition number 50."""
    return 0.5 * (p[0] ** 2 + 50.0 * p[1] ** 2)


def rosenbrock_fn(p):
    """``(1 - x)^2 + 100 (y - x^2)^2``: the curved valley with its minimum at (1, 1)."""
    return (1 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def _contour(fn: Callable, xlim, ylim, minimum, log: bool, n: int = 120) -> dict:
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = fn(np.stack([X, Y]))
    return {"x": xs.round(5).tolist(), "y": ys.round(5).tolist(),
            "z": np.asarray(Z).round(6).tolist(), "minimum": list(minimum), "log": log}


def _surface(name: str, fn: Callable, start: tuple[float, float], noise: float, *, target: float,
             steps: int, eval_every: int, default_lr: dict, xlim, ylim, minimum, log: bool,
             description: str) -> Workload:
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"Invalid noise: {noise!r} (must be a finite number >= 0)")
    def init_model(seed: int, device: torch.device) -> torch.nn.Module:
        # each seed starts a little apart, so exact-gradient seeds are not identical runs
        gen = torch.Generator().manual_seed(seed)
        jitter = 0.05 * torch.randn(2, generator=gen, dtype=torch.float64)
        return Point(torch.tensor(start, dtype=torch.float64) + jitter).to(device)

    def batches(seed: int, device: torch.device):
        gen = torch.Generator().manual_seed(10_000 + seed)
        while True:
            yield noise * torch.randn(2, generator=gen, dtype=torch.float64) if noise else None

    def loss(model: Point, xi) -> torch.Tensor:
        value = fn(model.p)
        return value if xi is None else value + torch.dot(xi.to(model.p.device), model.p)

    @torch.no_grad()
    def evaluate(model: Point, device: torch.device, split: str = "validation") -> float:
        return float(fn(model.p))  # no data: validation and test are the same exact surface value

    suffix = "-noisy" if noise else ""
    return Workload(
        name=name + suffix, description=description + (f", noisy gradients (sd {noise})" if noise else ", exact gradients"),
        init_model=init_model, batches=batches, loss=loss, evaluate=evaluate,
        metric="f(x, y)", higher_is_better=False, target=target, steps=steps, eval_every=eval_every,
        default_lr=default_lr, trajectory=True, options={"noise": noise, "start": list(start)},
        extras={"contour": _contour(fn, xlim, ylim, minimum, log), "dimension": 2}, device="cpu", cpu_threads=1,
    )


def valley(noise: float = 0.0, steps: int = 150) -> Workload:
    """The seed's narrow valley: zig-zag for plain GD, damped by momentum."""
    return _surface(
        "valley", valley_fn, (-4.5, 1.0), noise, target=1e-2, steps=steps, eval_every=5,
        default_lr={"sgd": 0.036, "momentum": 0.05, "rmsprop": 0.05, "adam": 0.2, "adamw": 0.2,
                    "adagrad": 1.0, "lion": 0.05, "lamb": 0.05, "lars": 1.0},
        xlim=(-5.5, 1.5), ylim=(-1.6, 1.6), minimum=(0.0, 0.0), log=False,
        description="narrow 2-D quadratic valley (condition number 50)")


def rosenbrock(noise: float = 0.0, steps: int = 1000) -> Workload:
    """Rosenbrock's function from (-1.5, 2): a curved, flat-bottomed valley."""
    return _surface(
        "rosenbrock", rosenbrock_fn, (-1.5, 2.0), noise, target=1e-2, steps=steps, eval_every=20,
        default_lr={"sgd": 1e-3, "momentum": 1e-2, "rmsprop": 1e-2, "adam": 5e-2, "adamw": 5e-2,
                    "adagrad": 0.5, "lion": 1e-2, "lamb": 1e-2, "lars": 1.0},
        xlim=(-2.0, 2.0), ylim=(-1.0, 3.0), minimum=(1.0, 1.0), log=True,
        description="Rosenbrock's banana valley from (-1.5, 2)")


def valley_noisy(noise: float = 2.0, steps: int = 150) -> Workload:
    return valley(noise=noise, steps=steps)


def rosenbrock_noisy(noise: float = 1.0, steps: int = 1000) -> Workload:
    return rosenbrock(noise=noise, steps=steps)

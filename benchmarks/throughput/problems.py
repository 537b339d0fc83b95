"""The problems every section steps: transformer-shaped parameters with fixed gradients,
the bandwidth probes, the bytes per parameter at the memory floor (see
``step_throughput.py``'s docstring) and inertia's contenders of the main table."""
from __future__ import annotations

import math
from typing import Callable

import torch

import inertia

from .timing import Builder, Step

# Bytes moved per float32 parameter by one step at the memory floor (see
# ``step_throughput.py``'s docstring).
BYTES = {"SGD": 20, "Momentum": 20, "RMSprop": 20, "Adam": 28, "AdamW": 28, "Adagrad": 20,
         "Lion": 20, "LAMB": 40, "LARS": 28, "Adam bf16 state": 20}
CLIP_BYTES = {"inertia": 32, "torch": 40}
#: Optimizers the issue asks to beat the best peer by 2x (peers have no fused kernel).
TWO_X = ("Lion", "LAMB", "LARS", "RMSprop")

# Each optimizer's default step, as a user writes it (the row's name says the settings).
INERTIA: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "SGD": lambda ps, **o: inertia.SGD(ps, lr=1e-3, momentum=0.9, **o),
    "Momentum": lambda ps, **o: inertia.Momentum(ps, lr=1e-3, beta=0.9, **o),
    "RMSprop": lambda ps, **o: inertia.RMSprop(ps, lr=1e-3, **o),
    "Adam": lambda ps, **o: inertia.Adam(ps, lr=1e-3, **o),
    "AdamW": lambda ps, **o: inertia.AdamW(ps, lr=1e-3, **o),
    "Adagrad": lambda ps, **o: inertia.Adagrad(ps, lr=1e-3, **o),
    "Lion": lambda ps, **o: inertia.Lion(ps, lr=1e-4, weight_decay=0.01, **o),
    "LAMB": lambda ps, **o: inertia.LAMB(ps, lr=1e-3, weight_decay=0.01, **o),
    "LARS": lambda ps, **o: inertia.LARS(ps, lr=1e-3, weight_decay=1e-4, **o),
    "Adam bf16 state": lambda ps, **o: inertia.Adam(ps, lr=1e-3, state_dtype=torch.bfloat16,
                                                    **o),
}


def transformer_shapes(total: float, width: int = 512) -> list[tuple[int, ...]]:
    """Whole layers of a transformer of width ``width`` until there are ``total`` parameters."""
    d, shapes = width, []
    while sum(math.prod(s) for s in shapes) < total:
        shapes += [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)] + [(d,)] * 4 + [(4 * d,)]
    return shapes


def make_params(shapes, device, seed: int = 0) -> list[torch.nn.Parameter]:
    """Parameters (std 0.02) with fixed gradients (std 1e-3), the same for every contender."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.nn.Parameter((torch.randn(s, generator=gen) * 0.02).to(device))
        p.grad = (torch.randn(s, generator=gen) * 1e-3).to(device)
        params.append(p)
    return params


def optimizer(make: Callable, shapes, device, regrad: bool = False) -> Builder:
    """A contender stepping ``make(params)``. ``regrad``: give the gradients back before
    every step (heavyball sets ``p.grad = None`` after its step; an assignment, no copy)."""
    def build() -> Step:
        params = make_params(shapes, device)
        opt = make(params)
        if not regrad:
            return opt.step
        grads = [p.grad for p in params]

        def step():
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        return step
    return build


def bandwidth_probe(kind: str, n: int, device) -> Builder:
    """``add``: ``a += 0.5 * b`` (12 B/element); ``copy``: ``b.copy_(a)`` (8 B counted)."""
    def build() -> Step:
        a, b = torch.randn(n, device=device), torch.randn(n, device=device)

        def step():
            if kind == "add":
                a.add_(b, alpha=0.5)
            else:
                b.copy_(a)
        return step
    return build


PROBE_BYTES = {"stream a+=s*b": 12, "copy": 8}


def probes(n: int, device) -> dict[str, Builder]:
    return {"stream a+=s*b": bandwidth_probe("add", n, device),
            "copy": bandwidth_probe("copy", n, device)}


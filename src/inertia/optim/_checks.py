"""Argument checks with one message format: ``Invalid <what>: <value>`` (as torch.optim)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch


def _value(x: Any) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def _fail(what: str, value: Any, why: str = "") -> None:
    raise ValueError(f"Invalid {what}: {value!r}" + (f" ({why})" if why else ""))


def learning_rate(lr: Any) -> None:
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        _fail("learning rate", lr, "a tensor learning rate must have one element")
    if not math.isfinite(_value(lr)) or _value(lr) < 0:
        _fail("learning rate", lr, "must be a finite number >= 0")


def non_negative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        _fail(f"{name} value", value, "must be a finite number >= 0")


def positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        _fail(f"{name} value", value, "must be > 0")


def unit_interval(name: str, value: float) -> None:
    """``value`` in [0, 1)."""
    if not 0.0 <= value < 1.0:
        _fail(f"{name} value", value, "must be in [0, 1)")


def betas(values: Sequence[float], count: int = 2) -> None:
    if len(values) != count:
        _fail("betas", tuple(values), f"expected {count} values")
    for i, b in enumerate(values):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b!r} (must be in [0, 1))")


def choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        _fail(name, value, "expected one of " + ", ".join(repr(a) for a in allowed))

"""Argument checks with one message format: ``Invalid <what>: <value> (<why>)``, as torch.optim.

Every check names the argument and the value it got. A value of the wrong *type* (a string
learning rate, a list for ``eps``) raises ``TypeError``; a number out of range raises
``ValueError``. Hyperparameters may be Python numbers or one-element tensors.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch


def _fail(what: str, value: Any, why: str = "", error: type[Exception] = ValueError) -> None:
    raise error(f"Invalid {what}: {value!r}" + (f" ({why})" if why else ""))


def number(what: str, value: Any) -> float:
    """``value`` as a float, if it is a real number or a one-element real tensor."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            _fail(what, value, "a tensor must have exactly one element")
        if value.is_complex() or value.dtype == torch.bool:
            _fail(what, value, "must be a real number", TypeError)
        if value.device.type == "meta":
            return 0.0  # nothing to check on a shape-only tensor
        return float(value.detach().reshape(()).item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(what, value, "must be a real number or a one-element tensor", TypeError)
    return float(value)


def learning_rate(lr: Any) -> None:
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        _fail("learning rate", lr, "Tensor lr must be 1-element")  # torch's words, for its tests
    x = number("learning rate", lr)
    if not math.isfinite(x) or x < 0:
        _fail("learning rate", lr, "must be a finite number >= 0")


def non_negative(name: str, value: Any) -> None:
    x = number(f"{name} value", value)
    if not math.isfinite(x) or x < 0:
        _fail(f"{name} value", value, "must be a finite number >= 0")


def positive(name: str, value: Any) -> None:
    x = number(f"{name} value", value)
    if not math.isfinite(x) or x <= 0:
        _fail(f"{name} value", value, "must be > 0")


def unit_interval(name: str, value: Any) -> None:
    """``value`` in [0, 1)."""
    x = number(f"{name} value", value)
    if not 0.0 <= x < 1.0:
        _fail(f"{name} value", value, "must be in [0, 1)")


def flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(f"{name} value", value, "must be True or False", TypeError)


def betas(values: Any, count: int = 2) -> None:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        _fail("betas", values, f"expected a tuple of {count} numbers", TypeError)
    if len(values) != count:
        _fail("betas", tuple(values), f"expected {count} values")
    for i, b in enumerate(values):
        x = number(f"beta parameter at index {i}", b)
        if not 0.0 <= x < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b!r} (must be in [0, 1))")


def choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        _fail(name, value, "expected one of " + ", ".join(repr(a) for a in allowed))


#: ``state_dtype`` given by name (text: the lab's entries, the CLI) is that torch dtype.
_DTYPE_NAMES = ("float32", "bfloat16", "float64", "float16")


def state_storage(group: dict[str, Any]) -> None:
    """``state_dtype`` and the options of compact storage, and the combinations that have no
    implementation (refused here, at construction, not at the first step). A dtype's name
    (``"bfloat16"``) is replaced in ``group`` by the dtype itself."""
    from ..backends import quantize

    sd = group["state_dtype"]
    if isinstance(sd, str) and sd in _DTYPE_NAMES:  # "bfloat16" (the lab's and CLI's text)
        sd = group["state_dtype"] = getattr(torch, sd)
    if sd is not None and sd != "8bit" and not (isinstance(sd, torch.dtype)
                                               and sd.is_floating_point):
        _fail("state_dtype", sd, "must be a floating-point torch.dtype (or its name, such as "
              "'bfloat16'), '8bit' or None")
    block = group["state_block_size"]
    if isinstance(block, bool) or block not in quantize.BLOCK_SIZES:
        _fail("state_block_size", block, "must be a power of two from "
              f"{quantize.BLOCK_SIZES[0]} to {quantize.BLOCK_SIZES[-1]}")
    size = group["state_min_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        _fail("state_min_size", size, "must be an integer >= 0")
    flag("stochastic_rounding", group["stochastic_rounding"])
    seed = group["rounding_seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        _fail("rounding_seed", seed, "must be an integer in [0, 2**32)")
    if sd == "8bit" and group["sparse"] == "lazy":
        _fail("state_dtype", sd, "8-bit state has no lazy sparse update, which rewrites "
              "single rows inside blocks: use sparse='dense' or another state_dtype")
    if sd == "8bit" and group["differentiable"]:
        _fail("state_dtype", sd, "8-bit state rounds to codes, which has no derivative: "
              "differentiable=True needs a floating-point state_dtype")

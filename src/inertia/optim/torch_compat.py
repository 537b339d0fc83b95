"""Where inertia deliberately differs from ``torch.optim``: the one list of intended deviations.

inertia's optimizers are drop-in replacements for torch's, and ``tests/test_torch_optim_db.py``
holds them to torch's own test data (``optim_db`` in ``torch.testing._internal.common_optimizers``):
every input torch refuses, inertia must refuse with the same exception type and a message naming
the same argument, *unless* the input matches an entry below. An entry says that inertia accepts
that input on purpose; the test then requires inertia to accept it and to compute what torch
computes for the same configuration written in a form torch accepts (tensor hyperparameters
as Python floats, ``foreach``/``fused`` off).

Each entry names the optimizers it applies to, how to recognise the refused input (the
``desc`` of the ``ErrorOptimizerInput`` in ``optim_db``, and/or a pattern over its keyword
arguments) and why the deviation is intended. A ``kwargs`` pattern maps an argument to a
type (the value must be an instance: ``Tensor``, ``float``), a tuple of patterns (matched
element by element) or a plain value (matched by equality). An entry matches an input when
every given part matches. The test also fails on an entry that matches no error input of
torch, so that the list cannot go stale silently.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor


class Deviation(NamedTuple):
    optimizers: tuple[str, ...]
    desc: str | None
    kwargs: dict[str, Any] | None
    reason: str


INTENDED_DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        optimizers=("Adam", "AdamW"),
        desc="lr as Tensor doesn't work with foreach & not capturable",
        kwargs={"lr": Tensor, "foreach": True},
        reason=(
            "a tensor lr with foreach=True: torch refuses it unless capturable=True, because "
            "its foreach kernels take the learning rate as a Python scalar; inertia's tensor "
            "hyperparameters are read by every implementation (reference and fused kernels), "
            "so a tensor lr works whatever foreach/fused say."
        ),
    ),
    Deviation(
        optimizers=("Adam", "AdamW"),
        desc=r"betas\[0\] as a Tensor is not supported for capturable=False and foreach=True",
        kwargs={"betas": (Tensor, Tensor), "foreach": True},
        reason=(
            "tensor betas with foreach=True: refused by torch for the same reason as a tensor "
            "lr; inertia reads one-element tensor betas on every implementation."
        ),
    ),
    Deviation(
        optimizers=("Adam", "AdamW"),
        desc="betas must be either both floats or both Tensors",
        kwargs={"betas": (float, Tensor)},
        reason=(
            "mixed float/tensor betas: torch requires both or neither to be tensors (its "
            "foreach/fused kernels need one kind); inertia treats each beta independently, so "
            "(0.9, torch.tensor(0.99)) means what it says."
        ),
    ),
    Deviation(
        optimizers=("Adam", "AdamW"),
        desc="betas must be either both floats or both Tensors",
        kwargs={"betas": (Tensor, float)},
        reason="mixed tensor/float betas: as (float, Tensor) above, the other way round.",
    ),
)

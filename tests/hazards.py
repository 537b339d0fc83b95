"""Inputs that must never corrupt a run: each with the error it must raise.

A registry of step-time hazards (the constructor's bad inputs live in
``inertia.optim.registry``). Each hazard prepares an optimizer and parameters whose next
``step()`` must raise ``error`` matching ``match`` and leave parameters and state exactly
as they were. ``tests/test_safety.py`` runs every hazard against every optimizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from inertia import NonFiniteGradientError


@dataclass(frozen=True)
class Hazard:
    name: str
    #: (params) -> None: spoil the gradients after a clean one has been set
    spoil: Callable[[list[torch.nn.Parameter]], None]
    error: type[Exception]
    match: str
    options: dict = None  # extra optimizer options
    sparse: bool = False  # the hazard is a sparse gradient (for optimizers that take them)


def _shorter(params):
    # reachable through ``.data``: the kernels must not read past the gradient's end
    params[0].grad.data = torch.ones(params[0].numel() // 2, dtype=params[0].dtype)


def _wrong_dtype(params):
    params[1].grad.data = params[1].grad.data.to(torch.float16)


def _sparse_out_of_range(params):
    p = params[0]
    p.grad = torch.sparse_coo_tensor(torch.tensor([[p.shape[0] + 3]]), torch.ones(1, *p.shape[1:],
                                     dtype=p.dtype), p.shape, check_invariants=False)


def _sparse_duplicates_overflow(params):
    # each value is finite; the two entries for row 1 sum to inf when coalesced
    p = params[0]
    big = torch.finfo(p.dtype).max
    values = torch.full((2, *p.shape[1:]), big, dtype=p.dtype)
    p.grad = torch.sparse_coo_tensor(torch.tensor([[1, 1]]), values, p.shape)


def _nan(params):
    params[2].grad.view(-1)[0] = float("nan")


HAZARDS = [
    Hazard("gradient shorter than its parameter", _shorter, ValueError,
           r"Invalid gradient shape: \(17,\) for a parameter of shape \(7, 5\)"),
    Hazard("gradient of another dtype", _wrong_dtype, TypeError,
           r"Invalid gradient dtype: torch\.float16 for a parameter of dtype torch\.float32"),
    Hazard("sparse index past the last row", _sparse_out_of_range, IndexError,
           r"sparse gradient index out of range for a parameter of shape \(7, 5\)", sparse=True),
    Hazard("sparse duplicates that overflow when summed", _sparse_duplicates_overflow,
           NonFiniteGradientError, r"non-finite gradient in parameter group 0",
           {"nonfinite": "raise"}, sparse=True),
    Hazard("NaN gradient (raise policy)", _nan, NonFiniteGradientError,
           # (group 1 for Muon, whose registry groups put the 3-D tensor in its AdamW group)
           r"non-finite gradient in parameter group [01]", {"nonfinite": "raise"}),
]

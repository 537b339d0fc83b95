"""Adagrad (Duchi, Hazan & Singer, 2011)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from . import _checks
from ..rules import transforms as T
from .base import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad; the same as ``torch.optim.Adagrad``.

    .. math::
        g \leftarrow g + \lambda p,\quad s \leftarrow s + g^2,\quad
        p \leftarrow p - \frac{\eta}{1 + (t-1)\,d}\;\frac{g}{\sqrt{s} + \epsilon}

    Each coordinate's step shrinks with the total squared gradient it has seen, which
    suits sparse features: rare ones keep large steps.

    Args:
        lr: :math:`\eta` (default 1e-2). lr_decay: :math:`d` (default 0).
        weight_decay: :math:`\lambda` (default 0).
        initial_accumulator_value: starting :math:`s` (default 0). eps: default 1e-10.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = inertia.Adagrad([w], lr=0.5)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)  # 1 - 0.5 * 2 / sqrt(4)
        0.5
    """

    torch_group_keys = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps",
                        "foreach", "maximize", "differentiable", "fused")

    def __init__(self, params, lr: float | Tensor = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 **options: Any) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults, **options)
        # torch's Adagrad creates its state with the optimizer (the accumulator starts at
        # initial_accumulator_value); so does this one, so checkpoints match from step 0.
        for group in self.param_groups:
            for p in group["params"]:
                self._state_for(p, group)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.non_negative("lr_decay", group["lr_decay"])
        _checks.non_negative("weight_decay", group["weight_decay"])
        _checks.non_negative("initial_accumulator_value", group["initial_accumulator_value"])
        _checks.positive("eps", group["eps"])

    @staticmethod
    def rule(group):
        return T.chain(
            T.add_decayed_weights(group["weight_decay"]),
            T.scale_by_adagrad(group["eps"], group["initial_accumulator_value"]),
            T.scale_by_inverse_time(group["lr_decay"]),
            T.scale_by_learning_rate(group["lr"]),
        )

"""Lion: EvoLved Sign Momentum (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms")."""
from __future__ import annotations

from typing import Any

from . import _checks
from ..rules import transforms as T
from .base import Optimizer


class Lion(Optimizer):
    r"""Lion: the sign of an interpolated momentum, with decoupled weight decay.

    .. math::
        u = \operatorname{sign}(\beta_1 m + (1-\beta_1) g),\quad
        m \leftarrow \beta_2 m + (1-\beta_2) g,\quad
        p \leftarrow p - \eta\,(u + \lambda p)

    Every coordinate moves by exactly :math:`\eta` (before decay), so Lion wants a learning
    rate 3-10x smaller than AdamW's and a weight decay 3-10x larger. It keeps one moment
    instead of Adam's two.

    Args:
        lr: :math:`\eta` (default 1e-4). betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.99)).
        weight_decay: :math:`\lambda` (default 0).

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -3.0]))
        >>> opt = inertia.Lion([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data
        tensor([ 0.9000, -2.9000])
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, **options: Any) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.betas(group["betas"])
        _checks.non_negative("weight_decay", group["weight_decay"])

    @staticmethod
    def rule(group):
        return T.chain(
            T.scale_by_lion(*group["betas"]),
            T.add_decayed_weights(group["weight_decay"]),
            T.scale_by_learning_rate(group["lr"]),
        )

"""Layer-wise adaptive optimizers for large batches: LARS (You et al., 2017) and LAMB (You et al., 2020)."""
from __future__ import annotations

from typing import Any

from . import _checks
from ..rules import transforms as T
from .base import Optimizer


class LAMB(Optimizer):
    r"""LAMB: Adam's direction, scaled per tensor by a trust ratio (You et al., 2020,
    "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes").

    .. math::
        u = \frac{\hat m}{\sqrt{\hat v} + \epsilon} + \lambda p,\quad
        r = \frac{\|p\|}{\|u\|}\ (1 \text{ if either norm is } 0),\quad
        p \leftarrow p - \eta\, r\, u

    :math:`\hat m, \hat v` are Adam's bias-corrected moments. The trust ratio makes each
    layer's step proportional to its weight norm, which keeps large-batch training stable.

    Args:
        lr: :math:`\eta` (default 1e-3). betas: default (0.9, 0.999). eps: default 1e-6.
        weight_decay: decoupled :math:`\lambda` (default 0).

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = inertia.LAMB([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data  # u = (1, 1), r = 5 / sqrt(2): each coordinate moves by 0.1 * 5 / sqrt(2)
        tensor([2.6464, 3.6464])
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, **options: Any) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.betas(group["betas"])
        _checks.positive("eps", group["eps"])
        _checks.non_negative("weight_decay", group["weight_decay"])

    @staticmethod
    def rule(group):
        return T.chain(
            T.scale_by_adam(*group["betas"], group["eps"]),
            T.add_decayed_weights(group["weight_decay"]),
            T.scale_by_trust_ratio(),
            T.scale_by_learning_rate(group["lr"]),
        )


class LARS(Optimizer):
    r"""LARS: SGD with momentum whose step is scaled per tensor by a trust ratio
    (You, Gitman & Ginsburg, 2017, "Large Batch Training of Convolutional Networks").

    .. math::
        u = g + \lambda p,\quad
        r = c\,\frac{\|p\|}{\|u\| + \epsilon}\ (1 \text{ if either norm is } 0),\quad
        b \leftarrow \eta r u + \mu b,\quad
        p \leftarrow p - b\ \ (\text{Nesterov: } p - (\eta r u + \mu b))

    Args:
        lr: :math:`\eta` (required). momentum: :math:`\mu` (default 0.9).
        weight_decay: :math:`\lambda` (default 0). trust_coefficient: :math:`c` (default 0.001).
        eps: :math:`\epsilon` (default 0). nesterov: default False.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = inertia.LARS([w], lr=1.0, trust_coefficient=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data  # r = 0.1 * 5 / 10: the step is 5% of the gradient
        tensor([2.7000, 3.6000])
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 0.0, nesterov: bool = False,
                 **options: Any) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, eps=eps, nesterov=nesterov)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.non_negative("momentum", group["momentum"])
        _checks.non_negative("weight_decay", group["weight_decay"])
        _checks.positive("trust_coefficient", group["trust_coefficient"])
        _checks.non_negative("eps", group["eps"])
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError(
                f"Invalid nesterov value: True (Nesterov momentum requires momentum > 0; "
                f"got momentum={group['momentum']!r})"
            )

    @staticmethod
    def rule(group):
        return T.chain(
            T.add_decayed_weights(group["weight_decay"]),
            T.scale_by_trust_ratio(group["trust_coefficient"], group["eps"]),
            T.scale_by_learning_rate(group["lr"], flip_sign=False),
            T.trace(group["momentum"], group["nesterov"]),
            T.scale(-1.0),
        )

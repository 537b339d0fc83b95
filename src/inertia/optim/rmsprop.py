"""RMSprop (Hinton, Coursera lecture 6e, 2012)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from . import _checks
from ..rules import transforms as T
from .base import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop; the same as ``torch.optim.RMSprop``.

    .. math::
        g \leftarrow g + \lambda p,\quad
        s \leftarrow \alpha s + (1-\alpha) g^2,\quad
        u = \frac{g}{\sqrt{s} + \epsilon},\quad
        b \leftarrow \mu b + u,\quad p \leftarrow p - \eta b

    Centered RMSprop also tracks :math:`a \leftarrow \alpha a + (1-\alpha) g` and divides by
    :math:`\sqrt{s - a^2} + \epsilon` (Graves, 2013). Without momentum, :math:`b = u`.

    Args:
        lr: :math:`\eta` (default 0.01). alpha: :math:`\alpha` (default 0.99).
        eps: :math:`\epsilon` (default 1e-8). weight_decay: :math:`\lambda` (default 0).
        momentum: :math:`\mu` (default 0). centered: default False.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = inertia.RMSprop([w], lr=0.01)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)  # 1 - 0.01 * 2 / sqrt(0.01 * 4)
        0.9
    """

    torch_group_keys = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered",
                        "capturable", "foreach", "maximize", "differentiable")

    def __init__(self, params, lr: float | Tensor = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False, **options: Any) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, capturable=capturable,
                        foreach=foreach, maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.positive("eps", group["eps"])
        _checks.unit_interval("alpha", group["alpha"])
        _checks.non_negative("momentum", group["momentum"])
        _checks.non_negative("weight_decay", group["weight_decay"])
        _checks.flag("centered", group["centered"])

    @staticmethod
    def rule(group):
        steps = [
            T.add_decayed_weights(group["weight_decay"]),
            T.scale_by_rms(group["alpha"], group["eps"], group["centered"]),
        ]
        if group["momentum"] > 0:
            steps.append(T.trace(group["momentum"]))
        steps.append(T.scale_by_learning_rate(group["lr"]))
        return T.chain(*steps)

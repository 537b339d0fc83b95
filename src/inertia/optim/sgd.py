"""Stochastic gradient descent: torch's SGD and the seed's exponentially-weighted Momentum."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from . import _checks
from ..rules import transforms as T
from .base import Optimizer


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum; the same as ``torch.optim.SGD``.

    .. math::
        g \leftarrow g + \lambda p,\quad
        b_1 = g_1,\; b_t = \mu b_{t-1} + (1-\tau) g_t,\quad
        p \leftarrow p - \eta\,(b_t \text{ or, Nesterov, } g_t + \mu b_t)

    Args:
        lr: learning rate :math:`\eta` (default 1e-3, as torch).
        momentum: :math:`\mu` (default 0: plain gradient descent).
        dampening: :math:`\tau` (default 0).
        weight_decay: L2 penalty :math:`\lambda` (default 0).
        nesterov: Nesterov momentum (Sutskever et al., 2013); needs momentum > 0 and no dampening.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = inertia.SGD([w], lr=0.1, momentum=0.9)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data
        tensor([ 0.8000, -1.6000])
    """

    torch_group_keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize",
                        "foreach", "differentiable", "fused")
    # torch's SGD keeps no step counter in its state: it knows the first step by the
    # missing buffer. So does this one (the engine keeps the count beside the state).
    step_in_state = False

    def __init__(self, params, lr: float | Tensor = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None,
                 **options: Any) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.non_negative("momentum", group["momentum"])
        _checks.non_negative("dampening", group["dampening"])
        _checks.non_negative("weight_decay", group["weight_decay"])
        _checks.flag("nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"Invalid nesterov value: True (Nesterov momentum requires momentum > 0 and zero "
                f"dampening; got momentum={group['momentum']!r}, dampening={group['dampening']!r})"
            )

    @staticmethod
    def rule(group):
        return T.chain(
            T.add_decayed_weights(group["weight_decay"]),
            T.sgd_momentum(group["momentum"], group["dampening"], group["nesterov"]),
            T.scale_by_learning_rate(group["lr"]),
        )


class Momentum(Optimizer):
    r"""Gradient descent with momentum as the seed lesson writes it: an exponentially
    weighted average of gradients.

    .. math::
        v \leftarrow \beta v + (1-\beta) g,\qquad p \leftarrow p - \alpha v

    ``v`` starts at zero, so unlike ``torch.optim.SGD`` (whose first step takes the gradient
    whole and whose steady-state step is :math:`1/(1-\beta)` times larger) the first steps are
    short. Nesterov uses the look-ahead :math:`p \leftarrow p - \alpha(\beta v + (1-\beta) g)`
    with the new ``v``. ``weight_decay`` adds :math:`\lambda p` to the gradient first.

    Args:
        lr: :math:`\alpha` (default 0.01, the seed's).
        beta: :math:`\beta` (default 0.9, the seed's).
        nesterov: look-ahead variant (default False).
        weight_decay: L2 penalty (default 0).

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = inertia.Momentum([w], lr=0.1, beta=0.9)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data  # v = 0.1 * 2.0 = 0.2, w = 1 - 0.1 * 0.2
        tensor([0.9800])
    """

    def __init__(self, params, lr: float = 0.01, beta: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0, **options: Any) -> None:
        defaults = dict(lr=lr, beta=beta, nesterov=nesterov, weight_decay=weight_decay)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.unit_interval("beta", group["beta"])
        _checks.non_negative("weight_decay", group["weight_decay"])

    @staticmethod
    def rule(group):
        return T.chain(
            T.add_decayed_weights(group["weight_decay"]),
            T.ema_velocity(group["beta"], group["nesterov"]),
            T.scale_by_learning_rate(group["lr"]),
        )

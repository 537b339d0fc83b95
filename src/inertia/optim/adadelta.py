"""Adadelta (Zeiler, 2012, "ADADELTA: An Adaptive Learning Rate Method")."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from . import _checks
from ..rules import transforms as T
from .base import Optimizer


class Adadelta(Optimizer):
    r"""Adadelta; the same as ``torch.optim.Adadelta``.

    Zeiler (2012), "ADADELTA: An Adaptive Learning Rate Method".

    .. math::
        g \leftarrow g + \lambda p,\quad
        s \leftarrow \rho s + (1-\rho) g^2,\quad
        \Delta = \frac{\sqrt{a + \epsilon}}{\sqrt{s + \epsilon}}\, g,\quad
        a \leftarrow \rho a + (1-\rho) \Delta^2,\quad
        p \leftarrow p - \eta \Delta

    The step is the gradient in units of recent steps: the ratio of two running RMS values
    (of the updates, :math:`a`, and of the gradients, :math:`s`) gives every coordinate the
    units of the parameter, which is why the paper needs no learning rate
    (:math:`\eta = 1`, torch's default). Sparse gradients: ``sparse="dense"`` or ``"lazy"``.

    Args:
        lr: :math:`\eta` (default 1.0). rho: :math:`\rho` (default 0.9).
        eps: :math:`\epsilon` (default 1e-6). weight_decay: L2 penalty :math:`\lambda` (default 0).

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = inertia.Adadelta([w])
        >>> (w ** 2).sum().backward(); opt.step()
        >>> round(w.item(), 6)  # the first step is tiny: sqrt(eps) / sqrt(0.1 * 4 + eps) * 2
        0.996838
    """

    torch_group_keys = ("lr", "rho", "eps", "weight_decay", "maximize", "capturable",
                        "foreach", "differentiable")

    def __init__(self, params, lr: float | Tensor = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False, **options: Any) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        rho = _checks.number("rho value", group["rho"])
        if not 0.0 <= rho <= 1.0:
            _checks._fail("rho value", group["rho"], "must be in [0, 1]")
        _checks.non_negative("eps", group["eps"])
        _checks.non_negative("weight_decay", group["weight_decay"])

    @staticmethod
    def rule(group):
        return T.chain(
            T.add_decayed_weights(group["weight_decay"]),
            T.scale_by_adadelta(group["rho"], group["eps"]),
            T.scale_by_learning_rate(group["lr"]),
        )

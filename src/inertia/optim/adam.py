"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from . import _checks
from ..rules import transforms as T
from .base import Optimizer


def _tuple(values):
    # a tuple whatever sequence was given, so checkpoints compare equal; anything else is
    # left for the check to refuse with its message
    return tuple(values) if isinstance(values, (list, tuple)) else values


def _check_adam(group) -> None:
    _checks.learning_rate(group["lr"])
    _checks.betas(group["betas"])
    _checks.positive("eps", group["eps"])
    _checks.non_negative("weight_decay", group["weight_decay"])
    _checks.flag("amsgrad", group.get("amsgrad", False))


class Adam(Optimizer):
    r"""Adam with bias correction; the same as ``torch.optim.Adam``.

    .. math::
        g \leftarrow g + \lambda p,\quad
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        p \leftarrow p - \eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}

    The bias correction undoes the pull toward zero of moments that start at zero.
    ``amsgrad`` divides by the running maximum of :math:`v` (Reddi et al., 2018).
    ``decoupled_weight_decay=True`` turns it into :class:`AdamW`.

    Args:
        lr: :math:`\eta` (default 1e-3). betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-8). weight_decay: L2 penalty :math:`\lambda` (default 0).
        amsgrad: default False.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
        >>> opt = inertia.Adam([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data  # the first Adam step has length lr in every coordinate
        tensor([ 0.9000, -0.9000])
    """

    torch_group_keys = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach",
                        "capturable", "differentiable", "fused", "decoupled_weight_decay")

    def __init__(self, params, lr: float | Tensor = 1e-3,
                 betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False, **options: Any) -> None:
        defaults = dict(lr=lr, betas=_tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _check_adam(group)

    @staticmethod
    def rule(group):
        moments = T.scale_by_adam(*group["betas"], group["eps"], group["amsgrad"])
        decay = T.add_decayed_weights(group["weight_decay"])
        lr = T.scale_by_learning_rate(group["lr"])
        if group["decoupled_weight_decay"]:
            return T.chain(moments, decay, lr)
        return T.chain(decay, moments, lr)


class AdamW(Adam):
    r"""Adam with decoupled weight decay; the same as ``torch.optim.AdamW``.

    .. math::
        p \leftarrow p - \eta\left(\frac{\hat m}{\sqrt{\hat v} + \epsilon} + \lambda p\right)

    The decay acts on the weights directly instead of passing through Adam's
    normalisation, so it shrinks every weight at the same relative rate.

    Args: as :class:`Adam`, with ``weight_decay`` default 1e-2.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = inertia.AdamW([w], lr=0.1, weight_decay=0.5)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)  # 1 - 0.1 * (1 + 0.5 * 1)
        0.85
    """

    def __init__(self, params, lr: float | Tensor = 1e-3,
                 betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 **options: Any) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True, **options)

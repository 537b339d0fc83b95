"""Adam's relatives in torch.optim: NAdam (Dozat, 2016), RAdam (Liu et al., 2020) and
Adamax (Kingma & Ba, 2015).

Each is a chain of the transformations of :mod:`inertia.rules.transforms`, so each runs on
the fused kernels generated from that chain, and equals torch's optimizer of the same name
(same arguments, state keys and checkpoints). ``decoupled_weight_decay=True`` turns NAdam
into NAdamW and RAdam into RAdamW: the same chain with the decay moved after the adaptive
scaling, as :class:`~inertia.optim.adam.AdamW` is Adam's.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from . import _checks
from ..rules import transforms as T
from .adam import _tuple
from .base import Optimizer


def _check_common(group) -> None:
    _checks.learning_rate(group["lr"])
    _checks.betas(group["betas"])
    _checks.non_negative("eps", group["eps"])
    _checks.non_negative("weight_decay", group["weight_decay"])


def _decayed(moments: T.Transform, group) -> T.Transform:
    """``moments`` with L2 decay before them, or decoupled decay after them."""
    decay = T.add_decayed_weights(group["weight_decay"])
    lr = T.scale_by_learning_rate(group["lr"])
    if group.get("decoupled_weight_decay", False):
        return T.chain(moments, decay, lr)
    return T.chain(decay, moments, lr)


class NAdam(Optimizer):
    r"""NAdam: Adam with Nesterov momentum; the same as ``torch.optim.NAdam``.

    Dozat (2016), "Incorporating Nesterov Momentum into Adam". With
    :math:`\mu_t = \beta_1(1 - \frac12 0.96^{t\psi})` and :math:`\Pi_t = \prod_{i \le t} \mu_i`:

    .. math::
        g \leftarrow g + \lambda p,\quad
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,

        p \leftarrow p - \frac{\eta}{\sqrt{v/(1-\beta_2^t)} + \epsilon}
            \Bigl(\frac{1-\mu_t}{1-\Pi_t}\, g + \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\, m\Bigr)

    The gradient and the momentum each get the weight they will have one step later, which
    is Nesterov's look-ahead; :math:`\psi` (``momentum_decay``) warms the momentum up.
    ``decoupled_weight_decay=True`` is NAdamW: :math:`p \leftarrow p - \eta\lambda p` beside the
    update instead of :math:`\lambda p` in the gradient. State: ``exp_avg``, ``exp_avg_sq``
    and the per-tensor scalar ``mu_product`` (float32, as torch keeps it). Sparse gradients:
    ``sparse="dense"`` (the densified gradient) or ``"lazy"`` (touched rows only).

    Args:
        lr: :math:`\eta` (default 2e-3). betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-8). weight_decay: :math:`\lambda` (default 0).
        momentum_decay: :math:`\psi` (default 4e-3). decoupled_weight_decay: default False.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
        >>> opt = inertia.NAdam([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data  # about lr per coordinate, as Adam's first step
        tensor([ 0.8944, -0.8944])
    """

    torch_group_keys = ("lr", "betas", "eps", "weight_decay", "momentum_decay",
                        "decoupled_weight_decay", "maximize", "foreach", "capturable",
                        "differentiable")

    def __init__(self, params, lr: float | Tensor = 2e-3,
                 betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 **options: Any) -> None:
        defaults = dict(lr=lr, betas=_tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _check_common(group)
        _checks.non_negative("momentum_decay", group["momentum_decay"])
        _checks.flag("decoupled_weight_decay", group["decoupled_weight_decay"])

    @staticmethod
    def rule(group):
        return _decayed(T.scale_by_nadam(*group["betas"], group["eps"], group["momentum_decay"]),
                        group)


class RAdam(Optimizer):
    r"""RAdam: Adam with its variance rectified; the same as ``torch.optim.RAdam``.

    Liu et al. (2020), "On the Variance of the Adaptive Learning Rate and Beyond". Early on,
    Adam's :math:`\sqrt{v}` is estimated from a handful of gradients and its variance is
    large (the reason Adam needs warm-up). RAdam measures that: with
    :math:`\rho_\infty = 2/(1-\beta_2) - 1` and
    :math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`,

    .. math::
        p \leftarrow p - \eta\, \hat m \cdot \begin{cases}
            r_t \sqrt{1-\beta_2^t} / (\sqrt{v} + \epsilon) & \rho_t > 5 \\
            1 & \text{otherwise} \end{cases},\qquad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

    i.e. SGD with (bias-corrected) momentum for the first steps (5 with the default
    :math:`\beta_2`), then Adam scaled by :math:`r_t \to 1`. ``decoupled_weight_decay=True``
    is RAdamW. Sparse gradients: as :class:`NAdam`.

    Args:
        lr: :math:`\eta` (default 1e-3). betas: default (0.9, 0.999). eps: default 1e-8.
        weight_decay: :math:`\lambda` (default 0). decoupled_weight_decay: default False.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
        >>> opt = inertia.RAdam([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data  # the first steps are SGD with momentum: 1 - 0.1 * 2
        tensor([ 0.8000, -0.8000])
    """

    torch_group_keys = ("lr", "betas", "eps", "weight_decay", "maximize", "foreach",
                        "capturable", "decoupled_weight_decay", "differentiable")

    def __init__(self, params, lr: float | Tensor = 1e-3,
                 betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, **options: Any) -> None:
        defaults = dict(lr=lr, betas=_tuple(betas), eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _check_common(group)
        _checks.flag("decoupled_weight_decay", group["decoupled_weight_decay"])

    @staticmethod
    def rule(group):
        return _decayed(T.scale_by_radam(*group["betas"], group["eps"]), group)


class Adamax(Optimizer):
    r"""Adamax: Adam with the infinity norm; the same as ``torch.optim.Adamax``.

    Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", section 7.1. The
    second moment :math:`\sqrt{v}` (an :math:`L^2` average) becomes an exponentially
    weighted :math:`L^\infty` norm, which needs no bias correction:

    .. math::
        g \leftarrow g + \lambda p,\quad
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        e \leftarrow \max(\beta_2 e,\ |g| + \epsilon),\quad
        p \leftarrow p - \frac{\eta}{1-\beta_1^t}\,\frac{m}{e}

    A step is at most :math:`\eta/(1-\beta_1^t)` per coordinate. Sparse gradients: as
    :class:`NAdam`.

    Args:
        lr: :math:`\eta` (default 2e-3). betas: default (0.9, 0.999). eps: default 1e-8.
        weight_decay: L2 penalty :math:`\lambda` (default 0).

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
        >>> opt = inertia.Adamax([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> w.data
        tensor([ 0.9000, -0.9000])
    """

    torch_group_keys = ("lr", "betas", "eps", "weight_decay", "foreach", "maximize",
                        "differentiable", "capturable")

    def __init__(self, params, lr: float | Tensor = 2e-3,
                 betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, capturable: bool = False,
                 **options: Any) -> None:
        defaults = dict(lr=lr, betas=_tuple(betas), eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _check_common(group)

    @staticmethod
    def rule(group):
        return _decayed(T.scale_by_adamax(*group["betas"], group["eps"]), group)

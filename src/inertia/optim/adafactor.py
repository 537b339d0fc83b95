"""Adafactor (Shazeer & Stern, 2018), as torch.optim.Adafactor defines it."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from . import _checks
from ..rules import matrix as M
from .base import Optimizer
from .muon import refuse_unsupported


class Adafactor(Optimizer):
    r"""Adafactor with factored second moments; the same as ``torch.optim.Adafactor``.

    Shazeer & Stern (2018), "Adafactor: Adaptive Learning Rates with Sublinear Memory
    Cost". For a matrix gradient :math:`G` (the last two dimensions of a tensor), with
    :math:`\hat\beta_{2,t} = 1 - t^{c}` (``beta2_decay`` :math:`c \le 0`):

    .. math::
        R \leftarrow \hat\beta_{2,t} R + (1-\hat\beta_{2,t})\operatorname{mean}_j G^2_{ij},\quad
        C \leftarrow \hat\beta_{2,t} C + (1-\hat\beta_{2,t})\operatorname{mean}_i G^2_{ij},\quad
        U = \frac{G}{\sqrt{\max(R C / \max(\bar R, \epsilon_1), \epsilon_1^2)}}

        \rho_t = \min(\eta, 1/\sqrt t),\quad
        \alpha_t = \max(\epsilon_2, \mathrm{RMS}(W))\,\rho_t,\quad
        W \leftarrow W - \eta\lambda W - \frac{\alpha_t}{\max(1, \mathrm{RMS}(U)/d)}\, U

    The second moment of an :math:`n \times m` matrix is estimated from its row and column
    means, :math:`n + m` numbers (``row_var``, ``col_var``) instead of Adam's :math:`2nm`,
    and there is no first moment: optimizer state is :math:`O(n + m)` per matrix (a vector
    keeps its full ``variance``). The step is relative to the parameter's own RMS and
    clipped when the update's RMS exceeds :math:`d`. These are the options of torch's
    Adafactor (no first moment, no relative-step schedule).

    Runs on torch ops over whole tensors (the row and column means are not elementwise),
    with no host synchronisation. Under FSDP2 the statistics are reductions on the sharded
    tensors, added across shards. Sparse gradients and complex parameters are refused at
    the step, as torch does. ``eps1=None`` is the machine epsilon of the compute dtype
    (float32 for bfloat16 parameters, where torch takes bfloat16's).

    Args:
        lr: :math:`\eta` (default 1e-2). beta2_decay: :math:`c` (default -0.8).
        eps: :math:`(\epsilon_1, \epsilon_2)` (default (None, 1e-3)).
        d: clipping threshold (default 1.0). weight_decay: decoupled :math:`\lambda` (default 0).

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.ones(4, 3))
        >>> opt = inertia.Adafactor([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> sorted(opt.state[w])  # 4 + 3 numbers of second moment for 12 weights
        ['col_var', 'row_var', 'step']
        >>> w[0, 0].item()  # RMS(W) = 1, rho = 0.1: a step of 0.1
        0.8999999761581421
    """

    torch_group_keys = ("lr", "beta2_decay", "eps", "d", "weight_decay", "foreach", "maximize")

    def __init__(self, params, lr: float | Tensor = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, *, foreach: bool | None = None,
                 maximize: bool = False, **options: Any) -> None:
        defaults = dict(lr=lr, beta2_decay=beta2_decay,
                        eps=tuple(eps) if isinstance(eps, list) else eps, d=d,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        decay = _checks.number("beta2_decay value", group["beta2_decay"])
        if not decay <= 0:
            _checks._fail("beta2_decay value", group["beta2_decay"], "beta2_decay should be <= 0")
        eps = group["eps"]
        if not (isinstance(eps, tuple) and len(eps) == 2):
            _checks._fail("eps", eps, "expected a tuple (eps1 or None, eps2)", TypeError)
        if eps[0] is not None and not _checks.number("eps", eps[0]) >= 0:
            _checks._fail("eps", eps, "epsilon1 should be >= 0")
        if not _checks.number("eps", eps[1]) >= 0:
            _checks._fail("eps", eps, "epsilon2 should be >= 0")
        if not _checks.number("d value", group["d"]) >= 1:
            _checks._fail("d value", group["d"], "Clipping threshold d should be >= 1")
        _checks.non_negative("weight_decay", group["weight_decay"])

    @staticmethod
    def rule(group):
        eps1, eps2 = group["eps"]
        return M.adafactor(group["lr"], group["beta2_decay"], eps1, eps2, group["d"],
                           group["weight_decay"])

    def _init_group(self, group, *args):
        refuse_unsupported("Adafactor", group["params"])
        return super()._init_group(group, *args)

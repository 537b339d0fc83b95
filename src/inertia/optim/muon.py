"""Muon: momentum orthogonalised by Newton-Schulz (Keller Jordan et al., 2024), with AdamW for
the parameters that are not hidden matrices."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _checks, checkpoint
from ..rules import matrix as M
from ..rules import transforms as T
from .adam import _tuple
from .base import Optimizer

#: Muon's own group keys (torch's Muon has none of them): written to a checkpoint only when
#: they differ from these defaults, so checkpoints keep torch's keys exactly.
MUON_OPTIONS: dict[str, Any] = dict(ns_dtype=torch.bfloat16, use_muon=None, adamw_lr=None,
                                    adamw_betas=(0.9, 0.95), adamw_eps=1e-10)


def refuse_unsupported(name: str, params) -> None:
    """torch's step-time refusals of complex parameters and sparse gradients, raised
    before anything is written (the batched path takes dense real tensors)."""
    for p in params:
        if p.is_complex():
            raise RuntimeError(f"{name} does not support complex parameters")
        if p.grad is not None and p.grad.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients (parameter of "
                               f"shape {tuple(p.shape)}; use torch.nn.Embedding(sparse=False) "
                               "or another optimizer for it)")


class Muon(Optimizer):
    r"""Muon: MomentUm Orthogonalized by Newton-Schulz; the same as ``torch.optim.Muon``.

    Keller Jordan et al. (2024), "Muon: An optimizer for hidden layers in neural networks"
    (https://kellerjordan.github.io/posts/muon/); Liu et al. (2025), "Muon is Scalable for
    LLM Training" (the ``match_rms_adamw`` scale). For a weight matrix :math:`W`:

    .. math::
        B \leftarrow \mu B + (1-\mu) G,\quad
        \tilde B = \begin{cases} \mu B + (1-\mu) G & \text{nesterov} \\ B \end{cases},\quad
        O = \mathrm{NS}_k(\tilde B),\quad
        W \leftarrow W - \eta\lambda W - \eta\, s(W)\, O

    :math:`\mathrm{NS}_k` is ``ns_steps`` iterations of the quintic Newton-Schulz map
    :math:`X \leftarrow aX + (bXX^\top + c(XX^\top)^2)X` from
    :math:`X_0 = \tilde B/\max(\|\tilde B\|_F, \epsilon)` (:func:`inertia.rules.matrix.newton_schulz`),
    which replaces every singular value of :math:`\tilde B` by roughly 1: the update keeps the
    directions of the momentum and drops their scales, so rare directions learn as fast as
    common ones. :math:`s(W)` is the shape scale (``adjust_lr_fn``): ``"original"`` /
    None :math:`\sqrt{\max(1, m/n)}`, ``"match_rms_adamw"`` :math:`0.2\sqrt{\max(m, n)}`
    (then AdamW's lr and weight decay carry over).

    **Which parameters.** Muon is for the 2-D weights of hidden layers. Embeddings, the
    output head, biases and normalisation gains belong to AdamW, in the same optimizer:

    * a group with ``use_muon=False`` runs AdamW (:math:`\beta` = ``adamw_betas``,
      :math:`\epsilon` = ``adamw_eps``, the group's ``lr`` and ``weight_decay``) on the fused
      AdamW kernels;
    * in a group with ``use_muon=None`` (the default), 2-D parameters get Muon and 0-D/1-D
      ones (biases, gains) AdamW with ``adamw_lr`` (default: the group's lr); tensors with
      more dimensions are refused, as torch refuses them (flatten conv filters yourself, or
      give them ``use_muon=False``); ``use_muon=True`` refuses anything but matrices;
    * :func:`inertia.param_groups_muon` builds both groups from a model, sending embeddings
      and the output layer to AdamW by name and type.

    The AdamW part keeps its own step count (``adamw_step``) since torch's Muon keeps none.

    **Fast path.** Matrices of one shape are orthogonalised together, each iteration one
    batched matmul (``bmm``), bit for bit the per-matrix result; the iteration runs in ``ns_dtype`` (bfloat16, as torch;
    float32 or float64 for more precision). Under FSDP2 each matrix is gathered whole
    (one all-gather per matrix), orthogonalised, and each rank keeps its shard.

    Sparse gradients and complex parameters are refused at the step, as torch does. The
    non-finite guard skips a whole matrix.

    Args:
        lr: :math:`\eta` (default 1e-3, torch's; 0.02 is Keller Jordan's for
            ``"original"``). weight_decay: decoupled :math:`\lambda` (default 0.1).
        momentum: :math:`\mu` (default 0.95). nesterov: default True.
        ns_coefficients: :math:`(a, b, c)` (default (3.4445, -4.775, 2.0315)).
        eps: :math:`\epsilon` (default 1e-7). ns_steps: :math:`k` (default 5).
        adjust_lr_fn: None/"original" or "match_rms_adamw".
        ns_dtype: dtype of the iteration (default torch.bfloat16).
        use_muon, adamw_lr, adamw_betas (default (0.9, 0.95)), adamw_eps (default 1e-10):
            the AdamW part, see above.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.zeros(2, 2))
        >>> opt = inertia.Muon([w], lr=0.1, weight_decay=0.0)
        >>> w.grad = torch.tensor([[3.0, 0.0], [0.0, 0.01]]); opt.step()
        >>> (-w.detach().diag() / 0.1).gt(0.5).tolist()  # both directions move about lr
        [True, True]
    """

    torch_group_keys = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps",
                        "ns_steps", "adjust_lr_fn")
    # torch's Muon keeps no step count (the AdamW part keeps its own, see with_own_step)
    step_in_state = False

    def __init__(self, params, lr: float | Tensor = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = M.NS_COEFFICIENTS,
                 eps: float = M.NS_EPS, ns_steps: int = M.NS_STEPS,
                 adjust_lr_fn: str | None = None, *, ns_dtype: torch.dtype = torch.bfloat16,
                 use_muon: bool | None = None, adamw_lr: float | Tensor | None = None,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-10,
                 maximize: bool = False, **options: Any) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=_tuple(ns_coefficients), eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn, ns_dtype=ns_dtype, use_muon=use_muon,
                        adamw_lr=adamw_lr, adamw_betas=_tuple(adamw_betas),
                        adamw_eps=adamw_eps, maximize=maximize)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.non_negative("weight_decay", group["weight_decay"])
        _checks.non_negative("momentum", group["momentum"])
        _checks.flag("nesterov", group["nesterov"])
        _checks.non_negative("eps", group["eps"])
        coefficients = group["ns_coefficients"]
        if not (isinstance(coefficients, tuple) and len(coefficients) == 3):
            _checks._fail("ns_coefficients", coefficients, "expected a tuple of 3 numbers (a, b, c)")
        for c in coefficients:
            _checks.number("ns_coefficients", c)
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps < 100:
            _checks._fail("ns_steps", steps, "must be an integer in [0, 100)")
        if group["adjust_lr_fn"] not in (None, "original", "match_rms_adamw"):
            # "learning rate" first: torch's message ("Adjust learning rate function ... is
            # not supported") is about the learning rate too
            # torch's own sentence in the reason, so code matching torch's message still does
            _checks._fail("learning rate adjustment adjust_lr_fn", group["adjust_lr_fn"],
                          f"Adjust learning rate function {group['adjust_lr_fn']} is not supported;"
                          " expected None, 'original' or 'match_rms_adamw'")
        dtype = group["ns_dtype"]
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            _checks._fail("ns_dtype", dtype, "must be a floating-point torch.dtype")
        if group["use_muon"] not in (None, True, False):
            _checks._fail("use_muon", group["use_muon"], "must be None, True or False")
        if group["adamw_lr"] is not None:
            _checks.learning_rate(group["adamw_lr"])
        _checks.betas(group["adamw_betas"])
        _checks.non_negative("adamw_eps", group["adamw_eps"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group["use_muon"] is False:
            return
        for p in group["params"]:
            if p.dim() != 2 and (group["use_muon"] or p.dim() > 2):
                raise ValueError(
                    f"Muon only supports 2D parameters whereas we found a parameter with size: "
                    f"{tuple(p.size())} (Invalid parameter shape: give it a group with "
                    "use_muon=False, which runs AdamW, or see inertia.param_groups_muon)")

    @staticmethod
    def rule(group):
        lr = group["lr"]
        adamw = M.with_own_step(T.chain(
            T.scale_by_adam(*group["adamw_betas"], group["adamw_eps"]),
            T.add_decayed_weights(group["weight_decay"]),
            T.scale_by_learning_rate(group["adamw_lr"] if group["adamw_lr"] is not None else lr),
        ), "adamw_step")
        if group["use_muon"] is False:
            return adamw
        muon = T.chain(
            M.ema_lerp(group["momentum"], group["nesterov"]),
            M.orthogonalize(group["ns_coefficients"], group["ns_steps"], group["eps"],
                            group["ns_dtype"]),
            M.muon_step(lr, group["weight_decay"], group["adjust_lr_fn"]),
        )
        return muon if group["use_muon"] else M.by_shape(muon, adamw)

    def _init_group(self, group, *args):
        if group["use_muon"] is not False:  # AdamW groups take what AdamW takes
            refuse_unsupported("Muon", group["params"])
        return super()._init_group(group, *args)

    def state_dict(self) -> dict[str, Any]:
        """torch's format (see :class:`~inertia.optim.base.Optimizer`); Muon's own options
        only where they differ from their defaults."""
        packed = super().state_dict()
        for group in packed["param_groups"]:
            for key, default in MUON_OPTIONS.items():
                if key in group and checkpoint._same(group[key], default):
                    del group[key]
        return packed

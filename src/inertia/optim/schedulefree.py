"""Schedule-Free AdamW and SGD (Defazio et al., 2024), as the ``schedulefree`` package defines them."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from . import _checks
from ..rules import transforms as T
from ..rules.expr import Sym, maximum, minimum, where
from .adam import _tuple
from .base import Optimizer

#: The group's running numbers, as the schedulefree package keeps them in its param groups:
#: steps taken (``k``), the largest scheduled lr so far, the sum of the averaging weights,
#: the last scheduled lr, and whether the parameters hold ``y`` (train) or ``x`` (eval).
RUNNING = dict(k=0, train_mode=True, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0)


def averaging_weight(group) -> Any:
    r"""This step's averaging weight :math:`c_{t+1} = w_t / \sum_{i \le t} w_i` with
    :math:`w_t = (t+1)^r \gamma_{\max}^{p}`, from the group's running numbers (updated
    before the step); 0 while every weight is 0. Written in the rule language, so kernels
    compute it on the device from the hyperparameter vector, once per tensor."""
    weight = (group["k"] + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"]
    total = group["weight_sum"]
    if isinstance(total, (Tensor, Sym)):
        # a device tensor or a traced kernel: a select, no branch on its value (a kernel
        # chosen while torch.compile traces sees the sum before this step's update).
        # c = 0 while the sum is 0 (lr = 0 so far), as the package's
        positive = maximum(total, 0.0) > 0
        return where(positive, weight / where(positive, total, 1.0), 0.0)
    return weight / total if total > 0 else 0.0


def _running(group) -> None:
    """The running numbers a new group starts with: Python numbers as the package keeps
    them, or, when the learning rate is a tensor (for ``torch.compile`` and CUDA graphs),
    float64 0-d tensors on its device, updated in place: no host work, no recompilation."""
    lr = group["lr"]
    for key, value in RUNNING.items():
        if key not in group:
            if isinstance(lr, Tensor) and key != "train_mode":
                value = torch.tensor(float(value), dtype=torch.float64, device=lr.device)
            group[key] = value


def _set(group, key: str, value) -> None:
    current = group[key]
    if isinstance(current, Tensor):
        current.copy_(value)  # in place: the kernels and compiled graphs hold this tensor
    else:
        group[key] = value


def _advance(group) -> None:
    """Before a step, the package's bookkeeping: warm-up, the largest lr, the weight sum."""
    _running(group)  # (a checkpoint written without them)
    k, warmup = group["k"], group["warmup_steps"]
    # (k+1)/warmup while k < warmup, then 1: the package's schedule, without a branch on k
    lr = group["lr"] * (minimum(1.0, (k + 1) / warmup) if warmup > 0 else 1.0)
    _set(group, "scheduled_lr", lr)
    _set(group, "lr_max", maximum(lr, group["lr_max"]))
    _set(group, "weight_sum", group["weight_sum"]
         + (k + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"])


class _ScheduleFree(Optimizer):
    """What both Schedule-Free optimizers share: the running numbers, warm-up, train/eval."""

    #: the package's param-group keys (its checkpoints load into these optimizers as they are)
    torch_group_keys = ("lr", "r", "k", "warmup_steps", "train_mode", "weight_sum", "lr_max",
                        "scheduled_lr", "weight_lr_power", "weight_decay", "foreach")
    # the package keeps no per-parameter count (its bias correction uses the group's k)
    step_in_state = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _running(group)
        if group is not self.param_groups[0]:
            group["train_mode"] = self.param_groups[0]["train_mode"]

    @classmethod
    def check(cls, group):
        _checks.learning_rate(group["lr"])
        _checks.non_negative("weight_decay", group["weight_decay"])
        steps = group["warmup_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            _checks._fail("warmup_steps", steps, "must be an integer >= 0")
        for key in ("r", "weight_lr_power"):
            if not math.isfinite(_checks.number(f"{key} value", group[key])):
                _checks._fail(f"{key} value", group[key], "must be finite")

    @staticmethod
    def _beta(group) -> Any:
        raise NotImplementedError

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step: the group's running numbers first (warm-up, averaging weight), then
        the update; ``k`` advances after it, as in the package."""
        if torch.compiler.is_compiling() and not all(
                isinstance(group["weight_sum"], Tensor) for group in self.param_groups):
            # the running numbers would be Python numbers frozen into the graph
            raise RuntimeError(f"inertia.{type(self).__name__}: torch.compile needs the "
                               "learning rate as a tensor (lr=torch.tensor(...)), which keeps "
                               "the running numbers (k, lr_max, weight_sum) on the device")
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(f"inertia.{type(self).__name__}.step() in eval mode: the "
                               "parameters hold the average x; call optimizer.train() "
                               "before training steps and optimizer.eval() before evaluating")
        saved = [{k: (v.clone() if isinstance(v, Tensor) else v) for k, v in group.items()
                  if k in RUNNING} for group in self.param_groups]
        skip = any(group["nonfinite"] == "skip" for group in self.param_groups)
        skipped = int(self.nonfinite_counter()) if skip else 0  # ("skip" reads every gradient)
        for group in self.param_groups:
            _advance(group)
        try:
            loss = super().step(closure)
        except BaseException:  # nonfinite="raise" and other refusals: nothing changes
            self._restore(saved)
            raise
        if skip and int(self.nonfinite_counter()) > skipped:
            self._restore(saved)  # a skipped step is not a step
            return loss
        for group in self.param_groups:
            _set(group, "k", group["k"] + 1)
        return loss

    def _restore(self, saved: list) -> None:
        for group, numbers in zip(self.param_groups, saved):
            for key, value in numbers.items():
                _set(group, key, value)

    @torch.no_grad()
    def eval(self) -> None:
        r"""Put the average :math:`x` in the parameters (before evaluating or saving):
        :math:`x = y + (1 - 1/\beta)(z - y)`. Does nothing in eval mode."""
        self._move(lambda beta: 1 - 1 / beta, train=False)

    @torch.no_grad()
    def train(self) -> None:
        r"""Put the training point :math:`y = x + (1-\beta)(z - x)` back in the parameters.
        Does nothing in train mode (where a new optimizer starts)."""
        self._move(lambda beta: 1 - beta, train=True)

    def _move(self, weight: Callable[[Any], Any], train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train:
                continue
            w = weight(self._beta(group))
            pairs = [(p, self.state[p]["z"]) for p in group["params"]
                     if "z" in self.state.get(p, {})]
            same = [(p, z) for p, z in pairs if p.dtype == z.dtype and p.device == z.device]
            if same:
                torch._foreach_lerp_([p for p, _ in same], [z for _, z in same], w)
            for p, z in pairs:
                if p.dtype != z.dtype or p.device != z.device:  # bf16 state, say
                    p.lerp_(z.to(p.device, p.dtype), w)
            group["train_mode"] = train


class AdamWScheduleFree(_ScheduleFree):
    r"""Schedule-Free AdamW; the same as ``schedulefree.AdamWScheduleFree`` (1.4).

    Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky (2024), "The Road Less Scheduled"
    (NeurIPS 2024; the self-tuning track winner of MLCommons AlgoPerf). No learning-rate
    schedule, and no need to know the training length: three sequences replace it,

    .. math::
        y_t = (1-\beta_1) z_t + \beta_1 x_t,\quad
        z_{t+1} = z_t - \gamma_t \Bigl(\frac{\nabla f(y_t)}{\sqrt{\hat v_t} + \epsilon}
                  + \lambda y_t\Bigr),\quad
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}

    the gradient is taken at :math:`y` (the parameters while training), :math:`z` takes
    plain steps, and :math:`x`, their running average with weights
    :math:`w_t = (t+1)^r\gamma_{\max}^{p}` (:math:`c_{t+1} = w_t/\sum_i w_i`), is the model
    to evaluate. :math:`\hat v` is Adam's bias-corrected second moment (no first moment:
    :math:`\beta_1` is the interpolation). ``warmup_steps`` ramps :math:`\gamma_t` linearly.
    State: ``z`` and ``exp_avg_sq`` (:math:`x` is not stored: it follows from :math:`y, z`).

    **train() and eval().** The parameters hold :math:`y` while training. Call
    ``opt.eval()`` before evaluating or saving a model (the parameters then hold :math:`x`)
    and ``opt.train()`` before training again. Unlike the package's, a new optimizer starts
    in train mode (its first ``train()`` is then a no-op); ``step()`` in eval mode raises.
    BatchNorm statistics follow the training point: recompute them at :math:`x` if needed.

    The update is fused like every elementwise rule. The per-step numbers (warm-up,
    :math:`\gamma_{\max}`, :math:`\sum w`) are the group's, updated on the host with a few
    float operations per group (or tensor operations on the device, for a tensor ``lr``);
    :math:`c_{t+1}`, the step sizes and the bias correction are computed from them by the
    kernels on the device. The group keeps the package's keys (``k``, ``lr_max``,
    ``weight_sum``, ``scheduled_lr``, ``train_mode``), so checkpoints move both ways.
    Sparse gradients: ``sparse="dense"`` or ``"lazy"`` (rows present only; the averaging
    weight is still the group's).

    Args:
        lr: :math:`\gamma` (default 0.0025). betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-8). weight_decay: :math:`\lambda`, at :math:`y` (default 0).
        warmup_steps: default 0. r: :math:`r` (default 0). weight_lr_power: :math:`p` (default 2).

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = inertia.AdamWScheduleFree([w], lr=0.1)
        >>> for _ in range(2):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)  # y, where the gradient is taken
        0.848
        >>> opt.eval(); round(w.item(), 4)  # x, the average of z_1 and z_2 (equal weights)
        0.8527
        >>> opt.train(); round(w.item(), 4)
        0.848
    """

    torch_group_keys = ("betas", "eps") + _ScheduleFree.torch_group_keys

    def __init__(self, params, lr: float | Tensor = 0.0025,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, foreach: bool | None = None, *,
                 maximize: bool = False, **options: Any) -> None:
        defaults = dict(lr=lr, betas=_tuple(betas), eps=eps, r=r, warmup_steps=warmup_steps,
                        weight_lr_power=weight_lr_power, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        super().check(group)
        _checks.betas(group["betas"])
        _checks.non_negative("eps", group["eps"])
        if _checks.number("beta parameter at index 0", group["betas"][0]) <= 0:
            raise ValueError(f"Invalid beta parameter at index 0: {group['betas'][0]!r} (must be "
                             "in (0, 1): eval() extrapolates by 1/beta1)")

    @staticmethod
    def _beta(group):
        return group["betas"][0]

    @staticmethod
    def rule(group):
        beta1, beta2 = group["betas"]
        return T.chain(
            T.scale_by_second_moment(beta2, group["eps"], group["k"] + 1),
            T.add_decayed_weights(group["weight_decay"]),
            T.schedule_free(averaging_weight(group), group["scheduled_lr"], beta1),
        )


class SGDScheduleFree(_ScheduleFree):
    r"""Schedule-Free SGD; the same as ``schedulefree.SGDScheduleFree`` (1.4).

    Defazio et al. (2024), "The Road Less Scheduled": the three sequences of
    :class:`AdamWScheduleFree` with a plain gradient step for :math:`z`,

    .. math::
        z_{t+1} = z_t - \gamma_t (\nabla f(y_t) + \lambda y_t),\quad
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},\quad
        y_{t+1} = (1-\beta) z_{t+1} + \beta x_{t+1}

    with :math:`\beta` the ``momentum``: the interpolation plays the part of momentum, and
    the average replaces the schedule. Everything else (``train()``/``eval()``, warm-up,
    the running numbers, sparse gradients) is as in :class:`AdamWScheduleFree`.

    Args:
        lr: :math:`\gamma` (default 1.0). momentum: :math:`\beta` in (0, 1) (default 0.9).
        weight_decay: default 0. warmup_steps: default 0. r: default 0.
        weight_lr_power: default 2.

    Example:
        >>> import torch, inertia
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = inertia.SGDScheduleFree([w], lr=0.1)
        >>> for _ in range(2):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)  # y
        0.712
        >>> opt.eval(); round(w.item(), 4)  # x: the average of z_1 = 0.8 and z_2 = 0.64
        0.72
    """

    torch_group_keys = ("momentum",) + _ScheduleFree.torch_group_keys

    def __init__(self, params, lr: float | Tensor = 1.0, momentum: float = 0.9,
                 weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, foreach: bool | None = None, *,
                 maximize: bool = False, **options: Any) -> None:
        defaults = dict(lr=lr, momentum=momentum, r=r, warmup_steps=warmup_steps,
                        weight_lr_power=weight_lr_power, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize)
        super().__init__(params, defaults, **options)

    @classmethod
    def check(cls, group):
        super().check(group)
        momentum = _checks.number("momentum value", group["momentum"])
        if not 0 < momentum < 1:
            _checks._fail("momentum value", group["momentum"], "must be in (0, 1)")

    @staticmethod
    def _beta(group):
        return group["momentum"]

    @staticmethod
    def rule(group):
        return T.chain(
            T.add_decayed_weights(group["weight_decay"]),
            T.schedule_free(averaging_weight(group), group["scheduled_lr"], group["momentum"]),
        )

r"""Gradient transformations: the one definition of every inertia optimizer.

Each optimizer is a *chain* of small transformations applied to one parameter's
gradient, in the spirit of optax. A transformation is a pair of pure functions:

* ``init(p) -> state``: the zero state it needs for parameter ``p``;
* ``update(u, state, p) -> (u', changed)``: turns the incoming update ``u`` into
  ``u'`` and returns the state entries it changed, without touching its inputs.

The chain's output is the *delta* added to the parameter: ``p <- p + u'``. So
plain gradient descent is ``chain(scale_by_learning_rate(lr))`` and AdamW is
``chain(scale_by_adam(...), add_decayed_weights(wd), scale_by_learning_rate(lr))``.

``update`` is written in the rule language of :mod:`inertia.rules.expr`: arithmetic plus
:func:`~inertia.rules.expr.sqrt`, :func:`~inertia.rules.expr.where`,
:func:`~inertia.rules.expr.norm`, ... Called on tensors it is the reference implementation;
traced, it is the source every fused kernel is generated from. Hyperparameters are
whatever the caller passes (numbers, tensors, or traced :class:`~inertia.rules.expr.Hyper`
values), so the same chain serves every path.

State is a flat dict of tensors with descriptive keys (``exp_avg``,
``momentum_buffer`` ..., the same names torch.optim uses where the algorithm is
the same, so checkpoints are interchangeable). The optimizer owns the step
counter ``state["step"]``, incremented *before* the chain runs, so the first
update sees ``step == 1`` (as in the Adam paper's bias correction).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from .expr import abs, maximum, norm, round_f32, sign, sqrt, where

State = dict[str, Tensor]


class Transform(NamedTuple):
    """A gradient transformation: ``init(p)`` and ``update(u, state, p)``.

    ``many`` (optional) marks a transformation that needs whole tensors, not coordinates
    (Muon's Newton-Schulz iteration, Adafactor's row and column statistics): the same
    update for a list of tensors at once, ``many(us, states, ps) -> (us', changed)``, so
    that work can be batched over a group (tensors of one shape in one ``bmm``). A chain
    holding such a transformation is not traced into elementwise kernels: its groups run
    ``many`` on torch ops (see :func:`inertia.backends.reference.apply_many`).

    ``kernel`` (optional) names a hand-fused sweep that computes exactly this
    transformation, with its numbers: ``(name, {hyperparameter: value})``. A backend that
    has that sweep may run it instead of ``many`` (Adafactor's, in
    :mod:`inertia.backends.factored_cpu`); the tests hold the two equal.
    """

    init: Callable[[Tensor], State]
    update: Callable[[Tensor, State, Tensor], tuple[Tensor, State]]
    many: Callable[[list, list, list], tuple[list, list]] | None = None
    kernel: tuple[str, dict] | None = None


def _no_state(p: Tensor) -> State:
    return {}


def each(t: Transform, us: list, states: list, ps: list) -> tuple[list, list]:
    """``t`` applied to many tensors: its ``many`` if it has one, else ``update`` on each."""
    if t.many is not None:
        return t.many(us, states, ps)
    out = [t.update(u, s, p) for u, s, p in zip(us, states, ps)]
    return [u for u, _ in out], [c for _, c in out]


def chain(*transforms: Transform) -> Transform:
    """Apply ``transforms`` one after the other; their states are merged (keys must differ)."""

    def init(p: Tensor) -> State:
        state: State = {}
        for t in transforms:
            part = t.init(p)
            clash = state.keys() & part.keys()
            if clash:
                raise ValueError(f"chained transforms share state keys {sorted(clash)}")
            state.update(part)
        return state

    def update(u: Tensor, state: State, p: Tensor) -> tuple[Tensor, State]:
        changed: State = {}
        for t in transforms:
            u, part = t.update(u, {**state, **changed}, p)
            changed.update(part)
        return u, changed

    def many(us: list, states: list, ps: list) -> tuple[list, list]:
        changed: list[State] = [{} for _ in us]
        for t in transforms:
            us, parts = each(t, us, [{**s, **c} for s, c in zip(states, changed)], ps)
            for c, part in zip(changed, parts):
                c.update(part)
        return us, changed

    whole = any(t.many is not None for t in transforms)
    return Transform(init, update, many if whole else None)


def _zeros(key: str, initial: float = 0.0) -> Callable[[Tensor], State]:
    def init(p: Tensor) -> State:
        # a complex parameter is two real coordinates: both start at ``initial``
        value = complex(initial, initial) if p.is_complex() else initial
        return {key: torch.full_like(p, value, memory_format=torch.preserve_format)}

    return init


def _zeros_for(*keys: str) -> Callable[[Tensor], State]:
    def init(p: Tensor) -> State:
        return {k: torch.zeros_like(p, memory_format=torch.preserve_format) for k in keys}

    return init


# --------------------------------------------------------------------------- scaling


def scale(factor) -> Transform:
    """``u <- factor * u``."""
    return Transform(_no_state, lambda u, state, p: (u * factor, {}))


def scale_by_learning_rate(lr, flip_sign: bool = True) -> Transform:
    """``u <- -lr * u`` (descent), or ``lr * u`` when ``flip_sign`` is False."""
    return scale(-lr if flip_sign else lr)


def add_decayed_weights(weight_decay) -> Transform:
    r"""``u <- u + \lambda p``.

    Before an adaptive scaling this is L2 regularisation (torch's ``weight_decay``
    for SGD/Adam/RMSprop/Adagrad); after it, decoupled weight decay (AdamW, Lion, LAMB).
    """

    def update(u, state, p):
        # No branch on ``weight_decay == 0``: groups with and without decay then share one
        # kernel (one multiply-add per element is free in a memory-bound step).
        return u + weight_decay * p, {}

    return Transform(_no_state, update)


def scale_by_inverse_time(decay) -> Transform:
    r"""``u <- u / (1 + (t-1) * decay)``: Adagrad's ``lr_decay``."""

    def update(u, state, p):
        return u / (1 + (state["step"] - 1) * decay), {}

    return Transform(_no_state, update)


# --------------------------------------------------------------------------- momentum


def trace(momentum, nesterov: bool = False, key: str = "momentum_buffer") -> Transform:
    r"""Heavy-ball trace without dampening: ``b <- \mu b + u``; ``u <- b`` (Nesterov: ``u + \mu b``)."""

    def update(u, state, p):
        buf = momentum * state[key] + u
        return (u + momentum * buf if nesterov else buf), {key: buf}

    return Transform(_zeros(key), update)


def sgd_momentum(momentum, dampening=0.0, nesterov: bool = False) -> Transform:
    r"""torch.optim.SGD's momentum: the first step takes the gradient whole (``b_1 = g_1``),
    then ``b <- \mu b + (1 - \tau) g``; ``u <- b`` (Nesterov: ``g + \mu b``)."""

    def update(u, state, p):
        buf = where(state["step"] == 1, u,
                    momentum * state["momentum_buffer"] + (1 - dampening) * u)
        return (u + momentum * buf if nesterov else buf), {"momentum_buffer": buf}

    if momentum == 0:  # no buffer at all, as torch keeps none
        return Transform(_no_state, lambda u, state, p: (u, {}))
    return Transform(_zeros("momentum_buffer"), update)


def ema_velocity(beta, nesterov: bool = False, key: str = "velocity") -> Transform:
    r"""The seed's Momentum: ``v <- \beta v + (1-\beta) g``; ``u <- v``.

    Nesterov looks one step ahead with the new velocity: ``u <- \beta v + (1-\beta) g``.
    (Muon's momentum is this, kept under ``key="momentum_buffer"``.)
    """

    def update(u, state, p):
        v = ema(beta, state[key], u)
        return (ema(beta, v, u) if nesterov else v), {key: v}

    return Transform(_zeros(key), update)


def ema(beta, average, value):
    r"""``\beta a + (1-\beta) x``: the exponential moving average every moment is."""
    return beta * average + (1 - beta) * value


# --------------------------------------------------------------------------- adaptive


def scale_by_rms(alpha, eps, centered: bool = False) -> Transform:
    r"""RMSprop: ``s <- \alpha s + (1-\alpha) g^2``; ``u <- g / (\sqrt{s} + \epsilon)``.

    Centered: also ``a <- \alpha a + (1-\alpha) g`` and divide by ``\sqrt{s - a^2} + \epsilon``.
    """

    def update(u, state, p):
        sq = alpha * state["square_avg"] + (1 - alpha) * u * u
        changed = {"square_avg": sq}
        if centered:
            ga = alpha * state["grad_avg"] + (1 - alpha) * u
            changed["grad_avg"] = ga
            denom = sqrt(sq - ga * ga) + eps
        else:
            denom = sqrt(sq) + eps
        return u / denom, changed

    return Transform(_zeros_for("square_avg", *(("grad_avg",) if centered else ())), update)


def scale_by_adam(beta1, beta2, eps, amsgrad: bool = False) -> Transform:
    r"""Adam's moments with bias correction (Kingma & Ba, 2015):

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        u = \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    AMSGrad divides by the running maximum of ``v`` instead (Reddi et al., 2018).
    """

    def update(u, state, p):
        t = state["step"]
        m = beta1 * state["exp_avg"] + (1 - beta1) * u
        v = beta2 * state["exp_avg_sq"] + (1 - beta2) * u * u
        changed = {"exp_avg": m, "exp_avg_sq": v}
        if amsgrad:
            v = maximum(state["max_exp_avg_sq"], v)
            changed["max_exp_avg_sq"] = v
        # As the fused kernels compute it: the bias corrections are per-tensor factors
        # (one division per element, not three), and they are exact in float64.
        return (m * (1 / bias_correction(beta1, t))) / (
            sqrt(v) * (1 / sqrt(bias_correction(beta2, t))) + eps), changed

    keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
    return Transform(_zeros_for(*keys), update)


def scale_by_adagrad(eps, initial_accumulator_value=0.0) -> Transform:
    r"""Adagrad (Duchi et al., 2011): ``s <- s + g^2``; ``u <- g / (\sqrt{s} + \epsilon)``."""

    def update(u, state, p):
        s = state["sum"] + u * u
        return u / (sqrt(s) + eps), {"sum": s}

    return Transform(_zeros("sum", float(initial_accumulator_value)), update)


def scale_by_lion(beta1, beta2) -> Transform:
    r"""Lion (Chen et al., 2023): ``u <- sign(\beta_1 m + (1-\beta_1) g)``; ``m <- \beta_2 m + (1-\beta_2) g``."""

    def update(u, state, p):
        m = state["exp_avg"]
        direction = sign(beta1 * m + (1 - beta1) * u)
        return direction, {"exp_avg": beta2 * m + (1 - beta2) * u}

    return Transform(_zeros("exp_avg"), update)


def scale_by_nadam(beta1, beta2, eps, momentum_decay) -> Transform:
    r"""NAdam (Dozat, 2016, "Incorporating Nesterov Momentum into Adam"): Adam's moments,
    with the momentum applied one step ahead through a decaying schedule :math:`\mu_t`.

    .. math::
        \mu_t = \beta_1 \bigl(1 - \tfrac12\, 0.96^{t \psi}\bigr),\quad
        \Pi_t = \Pi_{t-1} \mu_t,\quad
        u = \frac{1}{\sqrt{v / (1-\beta_2^t)} + \epsilon}
            \Bigl(\frac{1-\mu_t}{1-\Pi_t}\, g + \frac{\mu_{t+1}}{1-\Pi_t \mu_{t+1}}\, m\Bigr)

    with ``m``, ``v`` Adam's moments and :math:`\psi` the ``momentum_decay``. The product
    :math:`\Pi_t` is per-tensor state (``mu_product``, a float32 scalar as torch keeps it,
    used as stored: rounded to float32).
    """

    def init(p):
        return {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                "mu_product": torch.ones((), dtype=torch.float32, device=p.device)}

    def update(u, state, p):
        t = state["step"]
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        # as torch's float32 state computes it: mu rounded to float32, then the product
        product = round_f32(state["mu_product"] * round_f32(mu))
        m = ema(beta1, state["exp_avg"], u)
        v = ema(beta2, state["exp_avg_sq"], u * u)
        denom = sqrt(v / bias_correction(beta2, t)) + eps
        direction = ((1 - mu) / (1 - product)) * u + (mu_next / (1 - product * mu_next)) * m
        return direction / denom, {"exp_avg": m, "exp_avg_sq": v, "mu_product": product}

    return Transform(init, update)


def scale_by_radam(beta1, beta2, eps) -> Transform:
    r"""RAdam (Liu et al., 2020, "On the Variance of the Adaptive Learning Rate and Beyond"):
    Adam whose adaptive denominator is switched on only once its variance is tractable,
    and then rectified.

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1,\quad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t},\quad
        u = \hat m \cdot \begin{cases}
            r_t\, \dfrac{\sqrt{1-\beta_2^t}}{\sqrt{v} + \epsilon} & \rho_t > 5 \\
            1 & \text{otherwise (SGD with momentum)} \end{cases},\quad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}
    """

    def update(u, state, p):
        t = state["step"]
        m = ema(beta1, state["exp_avg"], u)
        v = ema(beta2, state["exp_avg_sq"], u * u)
        bc2 = bias_correction(beta2, t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2 ** t / bc2
        # clamped at 0: the branch that uses it is taken only for rho_t > 5
        rect = sqrt(maximum((rho_t - 4) * (rho_t - 2) * rho_inf
                            / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.0))
        m_hat = m / bias_correction(beta1, t)
        adaptive = sqrt(bc2) / (sqrt(v) + eps)
        return where(rho_t > 5, m_hat * adaptive * rect, m_hat), {"exp_avg": m, "exp_avg_sq": v}

    return Transform(_zeros_for("exp_avg", "exp_avg_sq"), update)


def scale_by_adamax(beta1, beta2, eps) -> Transform:
    r"""Adamax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm in place of the
    second moment: ``e <- max(b2 e, |g| + eps)``; ``u <- m / ((1 - b1^t) e)``."""

    def update(u, state, p):
        m = ema(beta1, state["exp_avg"], u)
        e = maximum(beta2 * state["exp_inf"], abs(u) + eps)
        return (1 / bias_correction(beta1, state["step"])) * m / e, {"exp_avg": m, "exp_inf": e}

    return Transform(_zeros_for("exp_avg", "exp_inf"), update)


def scale_by_adadelta(rho, eps) -> Transform:
    r"""Adadelta (Zeiler, 2012): each step's size in units of the recent updates' RMS.

    .. math::
        s \leftarrow \rho s + (1-\rho) g^2,\quad
        u = \frac{\sqrt{a + \epsilon}}{\sqrt{s + \epsilon}}\, g,\quad
        a \leftarrow \rho a + (1-\rho) u^2
    """

    def update(u, state, p):
        s = ema(rho, state["square_avg"], u * u)
        delta = sqrt(state["acc_delta"] + eps) / sqrt(s + eps) * u
        return delta, {"square_avg": s, "acc_delta": ema(rho, state["acc_delta"], delta * delta)}

    return Transform(_zeros_for("square_avg", "acc_delta"), update)


def scale_by_second_moment(beta2, eps, t) -> Transform:
    r"""Adam's denominator alone: ``v <- b2 v + (1-b2) g^2``;
    ``u <- g / (sqrt(v / (1 - b2^t)) + eps)``, at step ``t`` (Schedule-Free AdamW's
    normalisation; it keeps no first moment)."""

    def update(u, state, p):
        v = ema(beta2, state["exp_avg_sq"], u * u)
        return u / (sqrt(v / bias_correction(beta2, t)) + eps), {"exp_avg_sq": v}

    return Transform(_zeros_for("exp_avg_sq"), update)


def schedule_free(c, lr, beta) -> Transform:
    r"""Schedule-Free averaging (Defazio et al., 2024, "The Road Less Scheduled").

    Three sequences: the base iterate ``z`` takes plain steps, ``x`` is their weighted
    average and the gradient is taken at their interpolation ``y``, which is the parameter:

    .. math::
        z_{t+1} = z_t - \gamma_t u_t,\quad
        x_{t+1} = (1-c_{t+1}) x_t + c_{t+1} z_{t+1},\quad
        y_{t+1} = (1-\beta) z_{t+1} + \beta x_{t+1}

    Only ``y`` and ``z`` are stored (``x`` follows from them); written as an update of
    ``y``: ``y <- y + c (z - y) + \gamma (\beta (1 - c) - 1) u``. ``c`` is the averaging
    weight of this step and ``\gamma`` its learning rate (warm-up included).
    """

    def init(p):
        return {"z": p.clone(memory_format=torch.preserve_format)}

    def update(u, state, p):
        z = state["z"]
        return c * (z - p) + lr * (beta * (1 - c) - 1) * u, {"z": z - lr * u}

    return Transform(init, update)


# --------------------------------------------------------------------------- layer-wise


def scale_by_trust_ratio(coefficient=1.0, eps=0.0) -> Transform:
    r"""Layer-wise trust ratio (LARS, LAMB): ``u <- r u`` with
    ``r = c \|p\| / (\|u\| + \epsilon)``, and ``r = 1`` when either norm is zero.

    The norms are reductions over the whole tensor, accumulated in float64 on every path:
    squares of 1e-24 gradients or 1e38 weights neither vanish nor overflow, so every path
    gives the same ratio. Fused kernels compute them in a first pass over the tensors (and,
    for sharded tensors, over all shards) before the pass that applies the ratio."""

    def update(u, state, p):
        p_norm, u_norm = norm(p), norm(u)
        ratio = where((p_norm > 0) & (u_norm > 0), coefficient * p_norm / (u_norm + eps), 1.0)
        return u * ratio, {}

    return Transform(_no_state, update)


def bias_correction(beta, step):
    """``1 - beta**step``: the factor Adam divides its zero-initialised moments by."""
    return 1 - beta ** step

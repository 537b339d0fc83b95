"""Two optimizers that exist only here: the acceptance test of "a rule is written once".

Neither has a kernel written by hand. Defining the rule is all it takes: the engine traces
it and generates the CPU (numba) and GPU (Triton) kernels; ``tests/test_rules.py`` and
``tests/test_triton.py`` check every path equal to the reference (the rule run on tensors).
"""
from __future__ import annotations

from inertia.optim import Optimizer
from inertia.rules import Transform, chain, norm, sqrt, where
from inertia.rules import transforms as T


def scale_by_belief(beta1, beta2, eps) -> Transform:
    r"""AdaBelief (Zhuang et al., 2020): Adam with the variance of the gradient around its
    mean, ``s <- b2 s + (1-b2)(g - m)^2 + eps``, in place of the raw second moment."""

    def update(u, state, p):
        t = state["step"]
        m = beta1 * state["exp_avg"] + (1 - beta1) * u
        s = beta2 * state["exp_avg_var"] + (1 - beta2) * (u - m) * (u - m) + eps
        m_hat = m / (1 - beta1 ** t)
        s_hat = s / (1 - beta2 ** t)
        return m_hat / (sqrt(s_hat) + eps), {"exp_avg": m, "exp_avg_var": s}

    return Transform(T._zeros_for("exp_avg", "exp_avg_var"), update)


def normalize_by_norm(eps) -> Transform:
    """Normalised gradient descent: ``u <- u / (||u|| + eps)`` per tensor (a reduction)."""
    def update(u, state, p):
        n = norm(u)
        return u / where(n > 0, n + eps, 1.0), {}

    return Transform(T._no_state, update)


def scale_by_running_weight(decay) -> Transform:
    """A per-tensor scalar state (as NAdam's ``mu_product``): ``w <- decay w + 1``;
    ``u <- u / w``. Kernels read ``w`` during the sweep and write it once per tensor after."""
    def init(p):
        import torch

        return {"weight": torch.zeros((), dtype=torch.float32, device=p.device)}

    def update(u, state, p):
        w = decay * state["weight"] + 1
        return u / w, {"weight": w}

    return Transform(init, update)


class AdaBelief(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0,
                 **options):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay), **options)

    @staticmethod
    def rule(group):
        return chain(scale_by_belief(*group["betas"], group["eps"]),
                     T.add_decayed_weights(group["weight_decay"]),
                     T.scale_by_learning_rate(group["lr"]))


class NormalizedSGD(Optimizer):
    def __init__(self, params, lr=1e-2, momentum=0.9, eps=1e-8, **options):
        super().__init__(params, dict(lr=lr, momentum=momentum, eps=eps), **options)

    @staticmethod
    def rule(group):
        return chain(normalize_by_norm(group["eps"]), T.trace(group["momentum"]),
                     T.scale_by_learning_rate(group["lr"]))


class RunningWeightSGD(Optimizer):
    def __init__(self, params, lr=1e-2, decay=0.9, **options):
        super().__init__(params, dict(lr=lr, decay=decay), **options)

    @staticmethod
    def rule(group):
        return chain(scale_by_running_weight(group["decay"]), T.trace(0.5),
                     T.scale_by_learning_rate(group["lr"]))


CUSTOM = {"adabelief": (AdaBelief, dict(lr=0.01, weight_decay=0.01)),
          "normalized-sgd": (NormalizedSGD, dict(lr=0.05)),
          "scalar-state": (RunningWeightSGD, dict(lr=0.05))}

"""How each inertia optimizer maps onto the fused kernels (no numba needed to import).

For every algorithm: the rule number its kernel runs, its state keys in the kernel's slot
order, and how a parameter group becomes the hyperparameter tuple ``h`` and the per-tensor
constants ``c`` that the rules in :mod:`inertia.kernels.rules` read. Layouts of ``h`` are
documented next to each rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

SGD, MOMENTUM, RMSPROP, ADAM, ADAGRAD, LION, LAMB_NORMS, LAMB_APPLY, LARS_NORMS, LARS_APPLY = range(10)
# Variant bits: compile-time flags of a kernel (those that decide which arrays are written).
HAS_MOMENTUM, CENTERED, AMSGRAD, NARROW = 1, 2, 4, 8



def _lr(group) -> float:
    return float(group["lr"])  # a tensor lr is read once per step


def _sign(group) -> float:
    return -1.0 if group["maximize"] else 1.0


def _no_consts(steps, group):
    return np.zeros((len(steps), 3))


def _sgd_hyper(group):
    return (_sign(group), -_lr(group), group["weight_decay"], group["momentum"],
            1 - group["dampening"], float(group["nesterov"]), float(group["momentum"] != 0))


def _sgd_consts(steps, group):
    c = np.zeros((len(steps), 3))
    c[:, 0] = steps == 1
    return c


def _adam_hyper(group, amsgrad=None, decoupled=None):
    b1, b2 = group["betas"]
    ams = group.get("amsgrad", False) if amsgrad is None else amsgrad
    dec = group.get("decoupled_weight_decay", True) if decoupled is None else decoupled
    return (_sign(group), -_lr(group), b1, 1 - b1, b2, 1 - b2, group["eps"],
            group["weight_decay"], float(ams), float(dec))


def _adam_consts(steps, group):
    b1, b2 = group["betas"]
    c = np.zeros((len(steps), 3))
    # math.pow, as the reference's bias_correction; stored as the factors the rule multiplies by
    c[:, 0] = [1 / (1 - math.pow(b1, t)) for t in steps]
    c[:, 1] = [1 / math.sqrt(1 - math.pow(b2, t)) for t in steps]
    return c


def _adagrad_consts(steps, group):
    c = np.zeros((len(steps), 3))
    c[:, 0] = 1 + (steps - 1) * group["lr_decay"]
    return c


@dataclass(frozen=True)
class Algo:
    """How one optimizer maps onto the kernels."""

    name: str
    kind: int                      # rule number (for two-pass algorithms: the apply pass)
    slots: Callable                # group -> state keys in slot order (None: unused slot)
    hyper: Callable                # group -> tuple of floats (``h``)
    consts: Callable = _no_consts  # (steps float64 array, group) -> (T, 3) array (``c``)
    norms_kind: int | None = None  # the first pass of LAMB/LARS
    trust: Callable | None = None  # group -> (coefficient, eps) of the trust ratio
    ratio_slot: int = 0            # where the apply pass reads the ratio in ``c``
    torch_fused: str | None = None  # the aten op that computes exactly this rule, if any
    variant: Callable = lambda group: 0  # group -> variant bits
    narrow_matters: bool = False   # whether bf16 state changes the kernel (LAMB: NARROW)


ALGOS = {
    "sgd": Algo("sgd", SGD, lambda g: ("momentum_buffer" if g["momentum"] != 0 else None,),
                _sgd_hyper, _sgd_consts, torch_fused="sgd",
                variant=lambda g: HAS_MOMENTUM if g["momentum"] != 0 else 0),
    "momentum": Algo("momentum", MOMENTUM, lambda g: ("velocity",),
                     lambda g: (_sign(g), -_lr(g), g["weight_decay"], g["beta"], 1 - g["beta"],
                                float(g["nesterov"]))),
    "rmsprop": Algo("rmsprop", RMSPROP,
                    lambda g: ("square_avg", "grad_avg" if g["centered"] else None,
                               "momentum_buffer" if g["momentum"] > 0 else None),
                    lambda g: (_sign(g), -_lr(g), g["weight_decay"], g["alpha"], 1 - g["alpha"],
                               g["eps"], float(g["centered"]), g["momentum"]),
                    variant=lambda g: (CENTERED if g["centered"] else 0)
                    | (HAS_MOMENTUM if g["momentum"] > 0 else 0)),
    "adam": Algo("adam", ADAM,
                 lambda g: ("exp_avg", "exp_avg_sq", "max_exp_avg_sq" if g["amsgrad"] else None),
                 _adam_hyper, _adam_consts, torch_fused="adam",
                 variant=lambda g: AMSGRAD if g["amsgrad"] else 0),
    "adagrad": Algo("adagrad", ADAGRAD, lambda g: ("sum",),
                    lambda g: (_sign(g), -_lr(g), g["weight_decay"], g["eps"]),
                    _adagrad_consts, torch_fused="adagrad"),
    "lion": Algo("lion", LION, lambda g: ("exp_avg",),
                 lambda g: (_sign(g), -_lr(g), g["weight_decay"], g["betas"][0], 1 - g["betas"][0],
                            g["betas"][1], 1 - g["betas"][1])),
    "lamb": Algo("lamb", LAMB_APPLY, lambda g: ("exp_avg", "exp_avg_sq"),
                 lambda g: _adam_hyper(g, amsgrad=False, decoupled=True), _adam_consts,
                 norms_kind=LAMB_NORMS, trust=lambda g: (1.0, 0.0), ratio_slot=2,
                 narrow_matters=True),
    "lars": Algo("lars", LARS_APPLY, lambda g: ("momentum_buffer",),
                 lambda g: (_sign(g), _lr(g), g["weight_decay"], g["momentum"],
                            float(g["nesterov"])),
                 norms_kind=LARS_NORMS, trust=lambda g: (g["trust_coefficient"], g["eps"])),
}


def trust_ratio(p_sq, u_sq, coefficient: float, eps: float) -> np.ndarray:
    """``c ||p|| / (||u|| + eps)``, or 1 where either norm is zero (``scale_by_trust_ratio``)."""
    pn, un = np.sqrt(p_sq), np.sqrt(u_sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = coefficient * pn / (un + eps)
    return np.where((pn > 0) & (un > 0), r, 1.0)


def chunks(sizes, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut tensors of ``sizes`` elements into pieces of at most ``chunk``, for one parallel
    sweep over all of them: ``(sizes, tensor index, start, stop)`` per piece (an empty tensor
    gets one empty piece, so every tensor appears)."""
    n = np.asarray(sizes, dtype=np.int64)
    per = np.maximum(1, -(-n // chunk))
    t = np.repeat(np.arange(len(n)), per)
    first = np.cumsum(per) - per
    start = (np.arange(len(t)) - first[t]) * chunk
    return n, t, start, np.minimum(start + chunk, n[t])

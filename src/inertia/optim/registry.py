"""What each optimizer is, how to configure it, and which inputs it must refuse.

The registry drives the parameterized tests (every named configuration against an
independent implementation, every bad input against its message) and the lab's
``inertia optimizers`` listing. Adding an optimizer means adding one entry here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adam_variants import Adamax, NAdam, RAdam
from .base import Optimizer
from .layerwise import LAMB, LARS
from .lion import Lion
from .muon import Muon
from .rmsprop import RMSprop
from .schedulefree import AdamWScheduleFree, SGDScheduleFree
from .sgd import SGD, Momentum


@dataclass(frozen=True)
class BadInput:
    """Constructor arguments that must raise ``error`` with a message matching ``match``."""

    kwargs: dict[str, Any]
    match: str
    error: type[Exception] = ValueError


@dataclass(frozen=True)
class OptimizerInfo:
    name: str
    cls: type[Optimizer]
    summary: str
    configs: dict[str, dict[str, Any]]
    bad_inputs: tuple[BadInput, ...]
    #: builds the torch.optim optimizer with the same algorithm, or None if torch has none
    torch_equivalent: Callable[..., torch.optim.Optimizer] | None = None
    #: configuration names whose torch equivalent differs (not compared against torch)
    torch_skip: tuple[str, ...] = field(default_factory=tuple)
    #: the param groups this optimizer wants for a flat list of parameters (Muon: the
    #: matrices, and the rest in an AdamW group), or None for one group
    groups: Callable[[list], list] | None = None
    #: each coordinate is updated from its own values: the fused elementwise kernels, a
    #: non-finite guard per block, lazy sparse rows. False: whole tensors (Muon, Adafactor)
    elementwise: bool = True
    #: sparse gradients work (``sparse="dense"``/``"lazy"``); False: refused at the step
    sparse: bool = True
    #: complex parameters work (as real views); False: refused at the step, as torch does
    complex: bool = True

    def make(self, params, config: str = "default", **overrides: Any) -> Optimizer:
        if self.groups is not None:
            params = self.groups(list(params))
        return self.cls(params, **{**self.configs[config], **overrides})


def _common_bad(lr_ok: dict[str, Any]) -> tuple[BadInput, ...]:
    return (
        BadInput({**lr_ok, "lr": -1.0}, r"Invalid learning rate: -1\.0"),
        BadInput({**lr_ok, "lr": float("nan")}, r"Invalid learning rate: nan"),
        BadInput({**lr_ok, "nonfinite": "ignore"}, r"Invalid nonfinite policy: 'ignore'"),
        BadInput({**lr_ok, "sparse": "rows"}, r"Invalid sparse mode: 'rows'"),
        BadInput({**lr_ok, "state_dtype": torch.int8}, r"Invalid state_dtype: torch\.int8"),
        BadInput({**lr_ok, "lr": "0.1"}, r"Invalid learning rate: '0\.1' \(must be a real number",
                 TypeError),
        BadInput({**lr_ok, "lr": torch.tensor([0.1, 0.2])},
                 r"Invalid learning rate: tensor\(\[0\.1000, 0\.2000\]\) \(Tensor lr must be 1-element"),
        BadInput({**lr_ok, "maximize": "yes"}, r"Invalid maximize value: 'yes'", TypeError),
        BadInput({**lr_ok, "differentiable": True, "fused": True},
                 r"`fused` does not support `differentiable`", RuntimeError),
    )


def _adam_bad(extra: dict[str, Any]) -> tuple[BadInput, ...]:
    return (
        BadInput({**extra, "betas": (1.0, 0.999)}, r"Invalid beta parameter at index 0: 1\.0"),
        BadInput({**extra, "betas": (0.9, -0.1)}, r"Invalid beta parameter at index 1: -0\.1"),
        BadInput({**extra, "weight_decay": -0.1}, r"Invalid weight_decay value: -0\.1"),
    )


REGISTRY: dict[str, OptimizerInfo] = {}


def _register(info: OptimizerInfo) -> None:
    REGISTRY[info.name] = info


_register(OptimizerInfo(
    "sgd", SGD, "stochastic gradient descent, optionally with (Nesterov) momentum; as torch.optim.SGD",
    configs={
        "default": dict(lr=0.05),
        "momentum": dict(lr=0.05, momentum=0.9),
        "dampening_wd": dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
        "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
        "maximize": dict(lr=0.05, momentum=0.5, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "momentum": -0.5}, r"Invalid momentum value: -0\.5"),
        BadInput({"lr": 0.1, "weight_decay": -1e-4}, r"Invalid weight_decay value: -0\.0001"),
        BadInput({"lr": 0.1, "nesterov": True}, r"Invalid nesterov value: True .*momentum=0\.0"),
        BadInput({"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
                 r"Invalid nesterov value: True .*dampening=0\.1"),
    ),
    torch_equivalent=lambda params, **kw: torch.optim.SGD(params, **kw),
))

_register(OptimizerInfo(
    "momentum", Momentum, "the seed's momentum: v = beta*v + (1-beta)*g, p -= lr*v",
    configs={
        "default": dict(lr=0.05),
        "nesterov_wd": dict(lr=0.05, beta=0.8, nesterov=True, weight_decay=0.01),
        "maximize": dict(lr=0.05, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "beta": 1.0}, r"Invalid beta value: 1\.0"),
        BadInput({"lr": 0.1, "weight_decay": -1.0}, r"Invalid weight_decay value: -1\.0"),
    ),
))

_register(OptimizerInfo(
    "rmsprop", RMSprop, "RMSprop: divide by a running root mean square; as torch.optim.RMSprop",
    configs={
        "default": dict(lr=0.01),
        "centered_momentum": dict(lr=0.01, alpha=0.9, momentum=0.9, centered=True),
        "weight_decay": dict(lr=0.01, weight_decay=0.01, eps=1e-6),
        "maximize": dict(lr=0.01, momentum=0.5, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "eps": 0.0}, r"Invalid eps value: 0\.0"),
        BadInput({"lr": 0.1, "alpha": 1.5}, r"Invalid alpha value: 1\.5"),
        BadInput({"lr": 0.1, "momentum": -0.9}, r"Invalid momentum value: -0\.9"),
        BadInput({"lr": 0.1, "weight_decay": -1.0}, r"Invalid weight_decay value: -1\.0"),
    ),
    torch_equivalent=lambda params, **kw: torch.optim.RMSprop(params, **kw),
))

_register(OptimizerInfo(
    "adam", Adam, "Adam with bias correction (L2 weight decay); as torch.optim.Adam",
    configs={
        "default": dict(lr=0.01),
        "amsgrad_wd": dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01, amsgrad=True),
        "decoupled": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        "maximize": dict(lr=0.01, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + _adam_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "eps": -1e-8}, r"Invalid eps value: -1e-08"),
    ),
    torch_equivalent=lambda params, **kw: torch.optim.Adam(params, **kw),
))

_register(OptimizerInfo(
    "adamw", AdamW, "Adam with decoupled weight decay; as torch.optim.AdamW",
    configs={
        "default": dict(lr=0.01),
        "amsgrad": dict(lr=0.01, weight_decay=0.1, amsgrad=True),
        "maximize": dict(lr=0.01, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + _adam_bad({"lr": 0.1}),
    torch_equivalent=lambda params, **kw: torch.optim.AdamW(params, **kw),
))

_register(OptimizerInfo(
    "adagrad", Adagrad, "Adagrad: divide by the root of all squared gradients so far; as torch.optim.Adagrad",
    configs={
        "default": dict(lr=0.1),
        "decay_wd": dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
        "maximize": dict(lr=0.1, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "lr_decay": -1.0}, r"Invalid lr_decay value: -1\.0"),
        BadInput({"lr": 0.1, "eps": 0.0}, r"Invalid eps value: 0\.0"),
        BadInput({"lr": 0.1, "initial_accumulator_value": -1.0},
                 r"Invalid initial_accumulator_value value: -1\.0"),
    ),
    torch_equivalent=lambda params, **kw: torch.optim.Adagrad(params, **kw),
))

_register(OptimizerInfo(
    "lion", Lion, "Lion: sign of an interpolated momentum, decoupled weight decay (Chen et al. 2023)",
    configs={
        "default": dict(lr=0.001),
        "weight_decay": dict(lr=0.001, betas=(0.95, 0.98), weight_decay=0.1),
        "maximize": dict(lr=0.001, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + _adam_bad({"lr": 0.1}),
))

_register(OptimizerInfo(
    "lamb", LAMB, "LAMB: Adam direction times a per-tensor trust ratio (You et al. 2020)",
    configs={
        "default": dict(lr=0.01),
        "weight_decay": dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05),
        "maximize": dict(lr=0.01, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + _adam_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "eps": 0.0}, r"Invalid eps value: 0\.0"),
    ),
))

_register(OptimizerInfo(
    "lars", LARS, "LARS: momentum SGD with a per-tensor trust ratio (You et al. 2017)",
    configs={
        "default": dict(lr=1.0),
        "weight_decay_eps": dict(lr=1.0, momentum=0.8, weight_decay=0.01, trust_coefficient=0.01, eps=1e-8),
        "nesterov": dict(lr=1.0, nesterov=True, trust_coefficient=0.01),
        "maximize": dict(lr=1.0, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "momentum": -0.9}, r"Invalid momentum value: -0\.9"),
        BadInput({"lr": 0.1, "trust_coefficient": 0.0}, r"Invalid trust_coefficient value: 0\.0"),
        BadInput({"lr": 0.1, "momentum": 0.0, "nesterov": True}, r"Invalid nesterov value: True"),
        BadInput({"lr": 0.1, "weight_decay": -1.0}, r"Invalid weight_decay value: -1\.0"),
    ),
))


def _adam_family_bad(extra: dict[str, Any]) -> tuple[BadInput, ...]:
    return _common_bad(extra) + _adam_bad(extra) + (
        BadInput({**extra, "eps": -1e-8}, r"Invalid eps value: -1e-08"),
    )


_register(OptimizerInfo(
    "nadam", NAdam, "NAdam: Adam with Nesterov momentum (Dozat 2016); NAdamW with decoupled_weight_decay; as torch.optim.NAdam",
    configs={
        "default": dict(lr=0.01),
        "decoupled": dict(lr=0.01, weight_decay=0.1, momentum_decay=0.006,
                          decoupled_weight_decay=True),
        "wd_maximize": dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, maximize=True),
    },
    bad_inputs=_adam_family_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "momentum_decay": -0.2}, r"Invalid momentum_decay value: -0\.2"),
    ),
    torch_equivalent=lambda params, **kw: torch.optim.NAdam(params, **kw),
))

_register(OptimizerInfo(
    "radam", RAdam, "RAdam: Adam with a rectified adaptive lr (Liu et al. 2020); as torch.optim.RAdam",
    configs={
        "default": dict(lr=0.01),
        "decoupled": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        "wd_maximize": dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.05, maximize=True),
    },
    bad_inputs=_adam_family_bad({"lr": 0.1}),
    torch_equivalent=lambda params, **kw: torch.optim.RAdam(params, **kw),
))

_register(OptimizerInfo(
    "adamax", Adamax, "Adamax: Adam with an infinity norm (Kingma & Ba 2015); as torch.optim.Adamax",
    configs={
        "default": dict(lr=0.01),
        "wd_maximize": dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, maximize=True),
    },
    bad_inputs=_adam_family_bad({"lr": 0.1}),
    torch_equivalent=lambda params, **kw: torch.optim.Adamax(params, **kw),
))

_register(OptimizerInfo(
    "adadelta", Adadelta, "Adadelta: steps in units of recent steps (Zeiler 2012); as torch.optim.Adadelta",
    configs={
        "default": dict(lr=1.0),
        "rho_wd_maximize": dict(lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.05, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "rho": 1.5}, r"Invalid rho value: 1\.5"),
        BadInput({"lr": 0.1, "eps": -1.0}, r"Invalid eps value: -1\.0"),
        BadInput({"lr": 0.1, "weight_decay": -1.0}, r"Invalid weight_decay value: -1\.0"),
    ),
    torch_equivalent=lambda params, **kw: torch.optim.Adadelta(params, **kw),
))


def _matrices_and_the_rest(params: list) -> list:
    """Muon's groups for a flat parameter list: the matrices, and the rest with AdamW."""
    matrices = [p for p in params if p.dim() == 2]
    rest = [p for p in params if p.dim() != 2]
    groups = [{"params": matrices}] if matrices else []
    if rest:
        groups.append({"params": rest, "use_muon": False})
    return groups


_register(OptimizerInfo(
    "muon", Muon, "Muon: momentum orthogonalised by Newton-Schulz, AdamW for non-matrices (Jordan et al. 2024); as torch.optim.Muon",
    configs={
        "default": dict(lr=0.02),
        "rms_adamw": dict(lr=0.01, weight_decay=0.01, momentum=0.9, nesterov=False,
                          adjust_lr_fn="match_rms_adamw", adamw_betas=(0.8, 0.99)),
        "float32_maximize": dict(lr=0.02, ns_dtype=torch.float32, ns_steps=6, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "momentum": -0.5}, r"Invalid momentum value: -0\.5"),
        BadInput({"lr": 0.1, "weight_decay": -1.0}, r"Invalid weight_decay value: -1\.0"),
        BadInput({"lr": 0.1, "adjust_lr_fn": "arbitrary"},
                 r"Invalid learning rate adjustment adjust_lr_fn: 'arbitrary'"),
        BadInput({"lr": 0.1, "ns_steps": 100}, r"Invalid ns_steps: 100"),
        BadInput({"lr": 0.1, "ns_coefficients": (1.0, 2.0)}, r"Invalid ns_coefficients: \(1\.0, 2\.0\)"),
        BadInput({"lr": 0.1, "ns_dtype": torch.int32}, r"Invalid ns_dtype: torch\.int32"),
        BadInput({"lr": 0.1, "adamw_betas": (0.9, 1.0)}, r"Invalid beta parameter at index 1: 1\.0"),
    ),
    groups=_matrices_and_the_rest, elementwise=False, sparse=False, complex=False,
))

_register(OptimizerInfo(
    "adafactor", Adafactor, "Adafactor: factored second moments, O(rows + cols) state (Shazeer & Stern 2018); as torch.optim.Adafactor",
    configs={
        "default": dict(lr=0.01),
        "wd_maximize": dict(lr=0.01, weight_decay=0.1, maximize=True),
        "decay_clip": dict(lr=0.05, beta2_decay=-1.0, d=1.5, eps=(1e-30, 1e-3)),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "beta2_decay": 0.8}, r"Invalid beta2_decay value: 0\.8"),
        BadInput({"lr": 0.1, "eps": (-1e-30, 1e-3)}, r"Invalid eps: .*epsilon1 should be >= 0"),
        BadInput({"lr": 0.1, "d": 0.5}, r"Invalid d value: 0\.5"),
        BadInput({"lr": 0.1, "weight_decay": -1.0}, r"Invalid weight_decay value: -1\.0"),
    ),
    torch_equivalent=lambda params, **kw: torch.optim.Adafactor(params, **kw),
    elementwise=False, sparse=False, complex=False,
))

_register(OptimizerInfo(
    "adamw-schedulefree", AdamWScheduleFree, "Schedule-Free AdamW: no lr schedule, an average x evaluated (Defazio et al. 2024); as schedulefree.AdamWScheduleFree",
    configs={
        "default": dict(lr=0.01),
        "warmup_wd": dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, warmup_steps=5, r=1.0),
        "maximize": dict(lr=0.01, maximize=True),
    },
    bad_inputs=_adam_family_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "warmup_steps": -1}, r"Invalid warmup_steps: -1"),
        BadInput({"lr": 0.1, "betas": (0.0, 0.999)}, r"Invalid beta parameter at index 0: 0\.0"),
    ),
))

_register(OptimizerInfo(
    "sgd-schedulefree", SGDScheduleFree, "Schedule-Free SGD: interpolation and averaging instead of momentum and a schedule (Defazio et al. 2024); as schedulefree.SGDScheduleFree",
    configs={
        "default": dict(lr=0.05),
        "warmup_wd": dict(lr=0.05, momentum=0.8, weight_decay=0.01, warmup_steps=4),
        "maximize": dict(lr=0.05, maximize=True),
    },
    bad_inputs=_common_bad({"lr": 0.1}) + (
        BadInput({"lr": 0.1, "momentum": 1.0}, r"Invalid momentum value: 1\.0"),
        BadInput({"lr": 0.1, "weight_decay": -1.0}, r"Invalid weight_decay value: -1\.0"),
        BadInput({"lr": 0.1, "warmup_steps": 1.5}, r"Invalid warmup_steps: 1\.5"),
    ),
))

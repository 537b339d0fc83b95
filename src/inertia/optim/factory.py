"""``inertia.create``: an optimizer by name, for a model or for parameters."""
from __future__ import annotations

import inspect
from typing import Any, Iterable

from torch import nn

from . import groups as G
from .base import Optimizer


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def resolve(name: str) -> str:
    """The registry name for ``name``: a registry name (``"adamw-schedulefree"``), with
    underscores or capitals (``"AdamW_ScheduleFree"``), or a class name (``"NAdam"``)."""
    from .registry import REGISTRY

    key = _normalise(name) if isinstance(name, str) else name
    if key in REGISTRY:
        return key
    for registered, info in REGISTRY.items():
        if isinstance(name, str) and _normalise(info.cls.__name__) == key:
            return registered
    raise ValueError(f"Invalid optimizer name: {name!r} (valid names: {', '.join(REGISTRY)})")


def _default_lr(cls: type[Optimizer]) -> float | None:
    default = inspect.signature(cls.__init__).parameters["lr"].default
    return None if default is inspect.Parameter.empty else default


def create(name: str, params_or_model: nn.Module | Iterable, *,
           weight_decay: float | None = None, filter_bias_and_norm: bool = True,
           layer_decay: float | None = None, **kwargs: Any) -> Optimizer:
    """The optimizer ``name`` (any of :data:`inertia.optim.registry.REGISTRY`, or its class
    name) for a model or for parameters, as timm's ``create_optimizer_v2``.

    Given a ``torch.nn.Module``, the parameter groups are built for you:

    * ``"muon"``: :func:`~inertia.optim.groups.param_groups_muon` (hidden matrices with
      Muon, embeddings, head and vectors with AdamW at ``adamw_lr``, default 3e-4);
    * ``layer_decay``: :func:`~inertia.optim.groups.param_groups_layer_decay`;
    * ``weight_decay`` with ``filter_bias_and_norm`` (the default):
      :func:`~inertia.optim.groups.param_groups_weight_decay` (no decay on biases and norms);
    * otherwise its trainable parameters.

    Parameters or param-group dicts are passed as they are. Every other keyword goes to the
    optimizer's constructor (``lr``, ``betas``, ``nonfinite``, ...).

    Example:
        >>> import torch, inertia
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
        >>> opt = inertia.create("adamw", model, lr=1e-3, weight_decay=0.05)
        >>> [g["weight_decay"] for g in opt.param_groups]
        [0.0, 0.05]
        >>> inertia.create("adamw-schedulefree", model.parameters()).defaults["lr"]
        0.0025
    """
    from .registry import REGISTRY

    info = REGISTRY[resolve(name)]
    cls = info.cls
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    if not isinstance(params_or_model, nn.Module):
        return cls(params_or_model, **kwargs)
    model = params_or_model
    if cls.__name__ == "Muon":
        muon = {k: kwargs.pop(k) for k in ("adamw_lr", "adamw_weight_decay", "exclude")
                if k in kwargs}
        params = G.param_groups_muon(model, weight_decay=kwargs.get("weight_decay", 0.1),
                                     **muon)
    elif layer_decay is not None:
        lr = kwargs.get("lr", _default_lr(cls))
        if lr is None:
            raise ValueError(f"Invalid learning rate: None ({name} has no default lr: give "
                             "lr= for layer_decay)")
        params = G.param_groups_layer_decay(model, lr=lr, weight_decay=kwargs.pop(
            "weight_decay", 0.0), layer_decay=layer_decay)
    elif filter_bias_and_norm and kwargs.get("weight_decay"):
        params = G.param_groups_weight_decay(model, kwargs.pop("weight_decay"))
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    return cls(params, **kwargs)

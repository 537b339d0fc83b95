"""Parameter groups from a model: weight decay only where it belongs, layer-wise lr decay,
and Muon's split between hidden matrices and the rest.

Each helper takes a ``torch.nn.Module`` and returns a list of param-group dicts for any
optimizer (torch's or inertia's). Parameters with ``requires_grad=False`` are left out; a
parameter shared by two modules (tied embeddings) appears once. Groups that would be empty
are dropped.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import torch
from torch import nn

#: Modules whose weights are normalisation gains: never decayed.
NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
         *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))


def _named(model: nn.Module):
    """``(name, parameter, owning module)`` once per trainable parameter, in registration order."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            yield (f"{module_name}.{name}" if module_name else name), p, module


def _model_no_decay(model: nn.Module) -> set[str]:
    # timm's convention: a model may name the parameters it never decays (position embeddings)
    method = getattr(model, "no_weight_decay", None)
    return set(method()) if callable(method) else set()


def no_decay(name: str, p: torch.Tensor, module: nn.Module, names: set[str]) -> bool:
    """Whether ``p`` stays out of weight decay: biases, normalisation weights, every tensor of
    fewer than 2 dimensions (gains, scales, scalars), and the ``names`` given (exactly, or as
    a parent module's name)."""
    listed = name in names or any(name.startswith(n + ".") for n in names)
    return p.dim() <= 1 or name.endswith("bias") or isinstance(module, NORMS) or listed


def param_groups_weight_decay(model: nn.Module, weight_decay: float = 1e-5,
                              no_weight_decay: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Two groups: decayed weights (matrices, convolution filters, embeddings) and the rest
    with ``weight_decay=0`` (biases, normalisation weights, 1-D and 0-D tensors, the names
    in ``no_weight_decay`` or in ``model.no_weight_decay()``), as timm's function of the
    same name. Decay on a bias or a LayerNorm gain only pulls it toward 0, which is not a
    regularisation of the function the model computes.

    Example:
        >>> import torch, inertia
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
        >>> groups = inertia.param_groups_weight_decay(model, weight_decay=0.05)
        >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
        [(3, 0.0), (1, 0.05)]
    """
    names = set(no_weight_decay) | _model_no_decay(model)
    plain, decayed = [], []
    for name, p, module in _named(model):
        (plain if no_decay(name, p, module, names) else decayed).append(p)
    groups = [{"params": plain, "weight_decay": 0.0},
              {"params": decayed, "weight_decay": weight_decay}]
    return [g for g in groups if g["params"]]


_INDEX = re.compile(r"\.(\d+)(?:\.|$)")


def layer_ids(model: nn.Module) -> dict[str, int]:
    """A depth for every trainable parameter, by name: ``1 + i`` for the ``i``-th block of
    the model's repeated blocks (the first index in a name, ``blocks.3.mlp.fc1.weight`` or
    ``encoder.layer.3...``), ``0`` for what comes before the first block (embeddings, a
    stem), and ``L + 1`` for what comes after the last (final norm, head), where ``L`` is
    the number of blocks. A model without blocks puts everything at depth 0."""
    order = [(name, _INDEX.search(name)) for name, _, _ in _named(model)]
    indexed = [int(m.group(1)) for _, m in order if m]
    if not indexed:
        return {name: 0 for name, _ in order}
    last = max(indexed) + 1
    ids, seen_block = {}, False
    for name, m in order:
        if m:
            seen_block = True
            ids[name] = int(m.group(1)) + 1
        else:
            ids[name] = last + 1 if seen_block else 0
    return ids


def param_groups_layer_decay(model: nn.Module, lr: float, weight_decay: float = 0.05,
                             layer_decay: float = 0.75, no_weight_decay: Iterable[str] = (),
                             layer_of: Callable[[str], int] | None = None) -> list[dict[str, Any]]:
    r"""Layer-wise learning-rate decay (LLRD, as timm's ``param_groups_layer_decay``): the
    head trains at ``lr`` and every layer below it at ``layer_decay`` times the lr of the
    layer above, :math:`\eta_i = \eta\,\delta^{D - i}` for depth :math:`i` of :math:`D`
    (see :func:`layer_ids`, or give ``layer_of(name) -> depth``). Used to fine-tune
    pretrained transformers: the lower layers, which hold general features, move least.
    Weight decay is split as in :func:`param_groups_weight_decay`. Each group carries its
    ``lr`` and its ``lr_scale`` (for schedulers that rescale a base lr, as timm's do).

    Example:
        >>> import torch, inertia
        >>> blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
        >>> model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(10, 4), "blocks": blocks,
        ...                              "head": torch.nn.Linear(4, 2)})
        >>> groups = inertia.param_groups_layer_decay(model, lr=1.0, layer_decay=0.5)
        >>> sorted({g["lr"] for g in groups})  # embed, block 0, block 1, head
        [0.125, 0.25, 0.5, 1.0]
    """
    names = set(no_weight_decay) | _model_no_decay(model)
    ids = layer_ids(model) if layer_of is None else None
    entries = [(name, p, module, layer_of(name) if layer_of else ids[name])
               for name, p, module in _named(model)]
    depth = max((d for *_, d in entries), default=0)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p, module, d in entries:
        plain = no_decay(name, p, module, names)
        scale = layer_decay ** (depth - d)
        group = groups.setdefault((d, plain), {
            "params": [], "lr": lr * scale, "lr_scale": scale,
            "weight_decay": 0.0 if plain else weight_decay})
        group["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def output_layers(model: nn.Module) -> set[str]:
    """The names of the modules that read the input or write the output: every
    ``nn.Embedding``, and the last ``nn.Linear`` registered (the head)."""
    out = {name for name, m in model.named_modules() if isinstance(m, nn.Embedding)}
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linears:
        out.add(linears[-1])
    return out


def param_groups_muon(model: nn.Module, weight_decay: float = 0.1, adamw_lr: float | None = 3e-4,
                      adamw_weight_decay: float = 0.0, exclude: Iterable[str] | None = None
                      ) -> list[dict[str, Any]]:
    """Groups for :class:`inertia.Muon`: the 2-D weights of hidden layers get Muon; the
    input embeddings and the output head (:func:`output_layers`, or the module names in
    ``exclude``), and every tensor that is not a matrix, get AdamW (``use_muon=False``,
    ``lr=adamw_lr``), as Keller Jordan's Muon recipe says. Biases and normalisation
    weights get no decay; the embeddings and head ``adamw_weight_decay``. Convolution
    filters (4-D) go to AdamW too: flatten them into a matrix yourself to give them Muon.

    Example:
        >>> import torch, inertia
        >>> model = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 8),
        ...                             torch.nn.LayerNorm(8), torch.nn.Linear(8, 10))
        >>> groups = inertia.param_groups_muon(model)
        >>> [(len(g["params"]), g.get("use_muon", True)) for g in groups]
        [(1, True), (2, False), (4, False)]
        >>> opt = inertia.Muon(groups, lr=0.02)
    """
    outer = output_layers(model) if exclude is None else set(exclude)
    hidden, ends, plain = [], [], []
    for name, p, module in _named(model):
        owner = name.rpartition(".")[0]
        at_the_ends = any(owner == n or owner.startswith(n + ".") for n in outer)
        if p.dim() == 2 and not at_the_ends:
            hidden.append(p)
        elif no_decay(name, p, module, set()):
            plain.append(p)
        else:
            ends.append(p)
    adamw = {"use_muon": False, **({"lr": adamw_lr} if adamw_lr is not None else {})}
    groups = [{"params": hidden, "weight_decay": weight_decay},
              {"params": ends, "weight_decay": adamw_weight_decay, **adamw},
              {"params": plain, "weight_decay": 0.0, **adamw}]
    return [g for g in groups if g["params"]]

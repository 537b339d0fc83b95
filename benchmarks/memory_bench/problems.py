"""What the sections measure: the state policies (torch fused AdamW, inertia's float32,
bfloat16 and 8-bit state) and the peers' 8-bit optimizers (torchao, bitsandbytes), the bytes
of an optimizer's state, and the models (transformer-shaped tensors, MiniLM-L6)."""
from __future__ import annotations

import os
import warnings

import torch

import inertia
from throughput.problems import transformer_shapes  # noqa: F401  (the same problem shapes)

POLICIES = {
    "torch AdamW (float32 state)": None,
    "inertia float32 state": dict(),
    "inertia bfloat16 state": dict(state_dtype=torch.bfloat16),
    "inertia 8-bit state": dict(state_dtype="8bit"),
    "inertia 8-bit state, every tensor with 16+ wide rows": dict(state_dtype="8bit", state_min_size=0),
}


def state_bytes(opt) -> int:
    total = 0
    for state in opt.state.values():
        for key, value in state.items():
            if key == "step" or not isinstance(value, torch.Tensor):
                continue
            inner = [getattr(value, name) for name in ("codes", "scale", "qmap")
                     if isinstance(getattr(value, name, None), torch.Tensor)]
            for t in inner or [value]:
                total += t.numel() * t.element_size()
    return total


def peers():
    out = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.optim import AdamW8bit

        out["torchao AdamW8bit"] = lambda ps, lr: AdamW8bit(ps, lr=lr)
    except Exception as error:  # noqa: BLE001
        out["torchao AdamW8bit"] = f"not run: {type(error).__name__}: {str(error)[:120]}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import bitsandbytes as bnb

        out["bitsandbytes AdamW8bit"] = lambda ps, lr: bnb.optim.AdamW8bit(ps, lr=lr)
    except Exception as error:  # noqa: BLE001
        out["bitsandbytes AdamW8bit"] = f"not run: {type(error).__name__}: {str(error)[:120]}"
    return out


def make_optimizer(name: str, params, lr: float = 1e-3):
    if name in POLICIES:
        options = POLICIES[name]
        if options is None:
            return torch.optim.AdamW(params, lr=lr, fused=True)
        return inertia.AdamW(params, lr=lr, **options)
    made = peers()[name]
    if isinstance(made, str):
        raise RuntimeError(made)
    return made(params, lr)


def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from inertia.lab.workloads.reviews import pretrained

    _, bert = pretrained()
    import copy

    model = copy.deepcopy(bert)
    for p in model.parameters():
        p.requires_grad_(True)
    return model

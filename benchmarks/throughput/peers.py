"""The other libraries' steps of the main table: torch.optim (fused, foreach, for-loop),
pytorch_optimizer, heavyball (``compile_step=True``) and optax (jax on the CPU)."""
from __future__ import annotations

import importlib.metadata
from typing import Callable

import torch

from .problems import make_params, optimizer
from .timing import Builder, Step


def torch_peers(name: str, device) -> dict[str, Callable]:
    o = torch.optim
    make = {
        "SGD": lambda ps, **k: o.SGD(ps, lr=1e-3, momentum=0.9, **k),
        # The same traffic and rule: an EMA is SGD's momentum with dampening = momentum.
        "Momentum": lambda ps, **k: o.SGD(ps, lr=1e-3, momentum=0.9, dampening=0.9, **k),
        "RMSprop": lambda ps, **k: o.RMSprop(ps, lr=1e-3, **k),
        "Adam": lambda ps, **k: o.Adam(ps, lr=1e-3, **k),
        "AdamW": lambda ps, **k: o.AdamW(ps, lr=1e-3, **k),
        "Adagrad": lambda ps, **k: o.Adagrad(ps, lr=1e-3, **k),
        # torch has no bfloat16 state: its Adam with float32 state does the same job
        "Adam bf16 state": lambda ps, **k: o.Adam(ps, lr=1e-3, **k),
    }.get(name)
    if make is None:
        return {}
    peers = {"torch foreach": lambda ps: make(ps, foreach=True),
             "torch for-loop": lambda ps: make(ps, foreach=False)}
    if name != "RMSprop":  # torch 2.13 has no fused RMSprop
        peers["torch fused"] = lambda ps: make(ps, fused=True)
    if name == "Adam bf16 state":
        peers = {f"{k} (f32 state)": v for k, v in peers.items()}
    return peers


def pytorch_optimizer_peers(name: str) -> dict[str, Callable]:
    try:
        import pytorch_optimizer as po
    except ImportError:
        return {}
    make = {"Lion": lambda ps, **k: po.Lion(ps, lr=1e-4, weight_decay=0.01, **k),
            "LAMB": lambda ps, **k: po.Lamb(ps, lr=1e-3, weight_decay=0.01, **k),
            "LARS": lambda ps, **k: po.LARS(ps, lr=1e-3, weight_decay=1e-4, **k)}.get(name)
    if make is None:
        return {}
    return {"pytorch_optimizer foreach": lambda ps: make(ps, foreach=True),
            "pytorch_optimizer for-loop": lambda ps: make(ps, foreach=False)}


def heavyball_peers(name: str) -> dict[str, Callable]:
    try:
        import heavyball as hb
    except ImportError:
        return {}
    kw = dict(lr=1e-3, compile_step=True)
    make = {
        "SGD": lambda ps: hb.SGD(ps, beta=0.9, **kw),
        "RMSprop": lambda ps: hb.RMSprop(ps, betas=(0.9, 0.99), eps=1e-8, **kw),  # debiased
        "Adam": lambda ps: hb.AdamW(ps, betas=(0.9, 0.999), weight_decay=0.0, **kw),
        "AdamW": lambda ps: hb.AdamW(ps, betas=(0.9, 0.999), weight_decay=0.01, **kw),
        "Adam bf16 state": lambda ps: hb.AdamW(ps, betas=(0.9, 0.999), weight_decay=0.0,
                                               storage_dtype="bfloat16", **kw),
    }.get(name)
    return {"heavyball": make} if make else {}


def optax_transform(name: str):
    import jax.numpy as jnp
    import optax

    return {
        "SGD": lambda: optax.sgd(1e-3, momentum=0.9),
        "Momentum": lambda: optax.chain(optax.ema(0.9, debias=False), optax.scale(-1e-3)),
        "RMSprop": lambda: optax.rmsprop(1e-3, decay=0.99, eps=1e-8),
        "Adam": lambda: optax.adam(1e-3),
        "AdamW": lambda: optax.adamw(1e-3, weight_decay=0.01),
        "Adagrad": lambda: optax.adagrad(1e-3, initial_accumulator_value=0.0, eps=1e-10),
        "Lion": lambda: optax.lion(1e-4, b1=0.9, b2=0.99, weight_decay=0.01),
        "LAMB": lambda: optax.lamb(1e-3, weight_decay=0.01),
        "LARS": lambda: optax.lars(1e-3, weight_decay=1e-4, trust_coefficient=0.001,
                                   momentum=0.9),
        "Adam bf16 state": lambda: optax.adam(1e-3, mu_dtype=jnp.bfloat16),  # m only
    }[name]()


def optax_peer(name: str, shapes) -> Builder:
    """optax under ``jax.jit`` with the parameters and state donated (updated in place)."""
    def build() -> Step:
        import jax
        import optax

        params = make_params(shapes, "cpu")
        x = [jax.numpy.asarray(p.detach().numpy()) for p in params]
        g = [jax.numpy.asarray(p.grad.numpy()) for p in params]
        del params
        tx = optax_transform(name)
        box = {"p": x, "s": tx.init(x)}

        def update(p, s, grads):
            u, s = tx.update(grads, s, p)
            return optax.apply_updates(p, u), s

        fn = jax.jit(update, donate_argnums=(0, 1))

        def step():
            box["p"], box["s"] = fn(box["p"], box["s"], g)
            jax.block_until_ready(box["p"])
        return step
    return build


def optax_label(name: str) -> str:
    return "optax (m bf16)" if name == "Adam bf16 state" else "optax"


def peers(name: str, shapes, device) -> dict[str, Builder]:
    out = {k: optimizer(v, shapes, device) for k, v in torch_peers(name, device).items()}
    out.update({k: optimizer(v, shapes, device) for k, v in pytorch_optimizer_peers(name).items()})
    out.update({k: optimizer(v, shapes, device, regrad=True)
                for k, v in heavyball_peers(name).items()})
    if torch.device(device).type == "cpu" and _installed("optax") and _installed("jax"):
        out[optax_label(name)] = optax_peer(name, shapes)
    return out


def _installed(package: str) -> bool:
    try:
        importlib.metadata.version(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


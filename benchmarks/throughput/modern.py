"""The "modern" section: the newer optimizers against torch.optim and the packages they replace.

Contenders, each optimizer's default step as a user writes it, in the same rounds:

* **Muon** on the 2-D weights of a transformer (per layer of width d: four d x d, d x 4d,
  4d x d) against ``torch.optim.Muon`` (a loop over matrices) and heavyball's ``Muon``
  (``compile_step=True``); inertia batches the Newton-Schulz matmuls of equal shapes.
* **Adafactor** on the whole transformer (matrices and vectors) against
  ``torch.optim.Adafactor`` (for-loop and foreach).
* **AdamWScheduleFree / SGDScheduleFree** against the ``schedulefree`` package's (foreach)
  and heavyball's ``SFAdamW``.
* **NAdam, RAdam, Adamax, Adadelta** against torch.optim's foreach and for-loop steps (torch
  has no fused CPU kernel for them).

Each in float32 and in bfloat16 parameters (optimizer state in the parameter's dtype for
every library, as torch keeps it), on the CPU. Also reported, not timed: bytes of optimizer
state per parameter.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

import inertia

from .problems import make_params, transformer_shapes
from .timing import Builder, Step, interleaved, inverse, section

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MODERN = ("Muon", "Adafactor", "AdamWScheduleFree", "SGDScheduleFree", "NAdam", "RAdam",
          "Adamax", "Adadelta")
TARGET = {"Muon": 2.0, "Adafactor": 2.0, "AdamWScheduleFree": 2.0, "SGDScheduleFree": 2.0,
          "NAdam": 1.5, "RAdam": 1.5, "Adamax": 1.5, "Adadelta": 1.5}


@dataclass
class ModernConfig:
    """The section's problem and rounds: a transformer of width ``width`` with about
    ``params`` parameters, ``rounds`` rounds of ``block``-second blocks, ``threads`` torch
    threads (the section's own defaults: see ``make``)."""

    names: list[str]
    params: float
    width: int
    rounds: int
    block: float
    threads: int

    @classmethod
    def make(cls, names, quick: bool, rounds=None, block=None, params=None, width=None,
             threads=None) -> ModernConfig:
        """The run's settings where given, else 7 rounds of 0.3 s blocks, 2M parameters of
        width 256 and one torch thread (quick: 3 rounds of 0.1 s, 0.2M of width 128)."""
        return cls(names=list(names), rounds=rounds or (3 if quick else 7),
                   block=block or (0.1 if quick else 0.3),
                   params=params or (2e5 if quick else 2e6),
                   width=width or (128 if quick else 256), threads=threads or 1)


def _peer(module: str, attr: str) -> Callable | None:
    try:
        return getattr(__import__(module), attr)
    except (ImportError, AttributeError):
        return None


def _train(opt):
    opt.train()  # schedule-free optimizers step in train mode
    return opt


def contenders(name: str) -> dict[str, Callable]:
    """``label -> make(params)`` for one optimizer: inertia first, then its peers."""
    sf = _peer("schedulefree", "AdamWScheduleFree"), _peer("schedulefree", "SGDScheduleFree")
    hb_muon, hb_sf = _peer("heavyball", "Muon"), _peer("heavyball", "SFAdamW")
    torch_cls = getattr(torch.optim, name, None)
    kw = {"Muon": dict(lr=0.02), "Adafactor": dict(lr=1e-2), "NAdam": dict(lr=2e-3),
          "RAdam": dict(lr=1e-3), "Adamax": dict(lr=2e-3), "Adadelta": dict(lr=1.0),
          "AdamWScheduleFree": dict(lr=2.5e-3, weight_decay=0.01),
          "SGDScheduleFree": dict(lr=1.0, weight_decay=0.01)}[name]
    out: dict[str, Callable] = {"inertia": lambda ps: getattr(inertia, name)(ps, **kw)}
    if name == "Muon":
        out["torch"] = lambda ps: torch.optim.Muon(ps, **kw)
        if hb_muon is not None:
            out["heavyball"] = lambda ps: hb_muon(ps, lr=0.02, betas=(0.95, 0.95),
                                                  weight_decay=0.1, compile_step=True)
    elif name == "AdamWScheduleFree":
        if sf[0] is not None:
            out["schedulefree"] = lambda ps: _train(sf[0](ps, **kw, foreach=True))
        if hb_sf is not None:
            out["heavyball"] = lambda ps: hb_sf(ps, **kw, betas=(0.9, 0.999), eps=1e-8,
                                                compile_step=True)
    elif name == "SGDScheduleFree":
        if sf[1] is not None:
            out["schedulefree"] = lambda ps: _train(sf[1](ps, **kw, foreach=True))
    else:
        out["torch foreach"] = lambda ps: torch_cls(ps, **kw, foreach=True)
        out["torch for-loop"] = lambda ps: torch_cls(ps, **kw, foreach=False)
    return out


def muon_shapes(total: float, width: int) -> list[tuple[int, int]]:
    return [s for s in transformer_shapes(total, width) if len(s) == 2]


def builder(make: Callable, shapes, dtype, regrad: bool) -> Builder:
    """A contender on parameters of ``dtype`` (with ``make_params``' fixed gradients);
    ``regrad``: the gradients given back before each step (heavyball clears them)."""
    def build() -> Step:
        params = make_params(shapes, "cpu")
        for p in params:
            p.data, p.grad = p.data.to(dtype), p.grad.to(dtype)
        opt = make(params)
        grads = [p.grad for p in params]

        def step():
            if regrad:
                for p, g in zip(params, grads):
                    p.grad = g
            opt.step()
        step.opt, step.params = opt, params  # type: ignore[attr-defined]
        return step
    return build


def state_bytes(make: Callable, shapes) -> float:
    """Bytes of optimizer state per parameter after one float32 step (tensors only)."""
    params = make_params(shapes, "cpu")
    opt = make(params)
    for p in params:  # heavyball clears gradients; give them each time
        p.grad = p.grad if p.grad is not None else torch.zeros_like(p)
    opt.step()
    seen, total = set(), 0
    for state in opt.state.values():
        for v in state.values() if isinstance(state, dict) else ():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and id(v) not in seen:
                seen.add(id(v))
                total += v.numel() * v.element_size()
    return total / sum(math.prod(s) for s in shapes)


def run(cfg: ModernConfig) -> dict:
    """Every optimizer of ``cfg.names`` in both dtypes, with ``cfg.threads`` torch threads
    (the count in use before is restored at the end)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    report: dict = {"threads": cfg.threads, "params": cfg.params, "width": cfg.width,
                    "rounds": cfg.rounds, "block": cfg.block, "results": {},
                    "state_bytes": {}}
    try:
        for name in cfg.names:
            shapes = (muon_shapes if name == "Muon" else transformer_shapes)(cfg.params,
                                                                             cfg.width)
            makes = contenders(name)
            report["state_bytes"][name] = {}
            for label, make in makes.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        report["state_bytes"][name][label] = state_bytes(make, shapes)
                    except Exception as error:  # noqa: BLE001 - reported, the rest goes on
                        report["state_bytes"][name][label] = f"{type(error).__name__}"
            for dname, dtype in DTYPES.items():
                key = f"{name} {dname}"
                with section(report, key):
                    builders = {label: builder(make, shapes, dtype,
                                               regrad=label == "heavyball")
                                for label, make in makes.items()}
                    t = interleaved(builders, cfg.rounds, cfg.block, "cpu")
                row = {"n": sum(math.prod(s) for s in shapes), "tensors": len(shapes),
                       "median_s": {c: t.median(c) for c in t.samples},
                       "samples": t.samples, "skipped": t.skipped}
                if "inertia" in t.samples:
                    row["speedup"] = {c: inverse(t.ratio("inertia", c)) for c in t.samples
                                      if c != "inertia"}
                report["results"][key] = row
                print(f"   {key}: " + ", ".join(f"{c} {1e3 * m:.2f} ms"
                                                 for c, m in row["median_s"].items()),
                      flush=True)
    finally:
        torch.set_num_threads(previous)
    return report

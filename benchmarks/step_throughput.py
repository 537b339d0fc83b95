"""Optimizer step throughput: inertia's default step against its peers and the memory roofline.

    python benchmarks/step_throughput.py [--quick] [--device cpu|cuda] [--params N]
                                         [--rounds R] [--only NAME ...] [--threads T]

What is measured (every comparison inside one process, at the same time):

* **main**: each optimizer's *default* step (``nonfinite="guard"``) on transformer-shaped
  float32 tensors (per layer of width d: four d x d, d x 4d, 4d x d, four d-vectors, one
  4d-vector), against the same step with ``nonfinite=None`` (the guard's cost) and against
  every peer that runs here: torch.optim fused / foreach / for-loop, pytorch_optimizer,
  optax (jax on the CPU) and heavyball (with ``compile_step=True``, its fastest CPU
  setting). Two bandwidth probes run in the same rounds: an in-place ``a += s * b`` (12
  bytes per element: read a, read b, write a, the access pattern of an optimizer, which
  writes only what it has read) and ``b.copy_(a)`` (8 bytes counted; on a CPU the write
  also reads ``b`` into the cache first). The higher of the two is the roofline.
* **small**: 100 tensors of 1k elements, where the step's fixed costs (Python, operator
  dispatch, threads) dominate; SGD and Adam against torch fused (on CUDA also
  ``capturable=True`` and CUDA-graph replays of both).
* **loop**: a small MLP trained as usual (``zero_grad``, forward, backward, ``step``): the
  step right after backward, when torch's OpenMP threads may still hold the cores, against
  the same step alone (fixed gradients), inertia and torch fused, SGD and Adam.
* **clip**: AdamW with ``max_grad_norm=1.0`` (the norm and the clipping fused into the step)
  against ``torch.nn.utils.clip_grad_norm_(foreach=True)`` + ``torch.optim.AdamW(fused=True)``.
* **first step**: a fresh process with empty caches (native runner build on the full run,
  numba compilation), then a second fresh process that finds them filled.
* **threads**: on the CPU the main table and the loop again, in a child process with
  ``INERTIA_NATIVE=0`` (the Python-threads runner instead of the C++ one).

Method. Every contender builds its own tensors (same seed) and takes a few warm-up steps.
Then the contenders are timed in *rounds*: each round times every contender once, for a
block of steps lasting about ``--block`` seconds, in an order rotated by one each round,
so a busy spell of a shared machine falls on all of them alike. On a CPU each step is
timed alone and a round's sample is the median step of its block (a parallel region whose
second thread has lost its core to another job can stall one step for milliseconds, up to
a second under heavy load; the block means, stalls included, are kept in the JSON); on a
GPU a block is timed between two synchronisations. Reported: the median over rounds with
its interquartile range, and ratios of medians with the interquartile range of the
per-round ratios (each round pairs the contenders). The load average is recorded before
and after every section. ``--threads 1`` gives figures that such stalls cannot touch.

Bytes per parameter at the memory floor (float32 parameters; a step reads each array it
needs once and writes what changes once; ``r`` read, ``w`` written, 4 bytes each):

    SGD (momentum), Momentum, RMSprop, Adagrad, Lion: p rw, g r, one state rw   = 20
    Adam, AdamW:                                      p rw, g r, two states rw  = 28
    Adam with bfloat16 state:                         p rw, g r, 2 x 2-byte rw  = 20
    LARS (norms of p and g + wd p first):             pass 1 p, g r; pass 2 p rw, g r,
                                                      buffer rw                 = 28
    LAMB (norms of p and of Adam's direction first):  pass 1 p, g, m, v r and m, v w;
                                                      pass 2 p rw, m, v r       = 40
    AdamW + clipping (the global norm reads g once): 28 + 4                     = 32
    (torch's clipping: norm 4, in-place scale 8, then AdamW 28                  = 40)

(inertia's LAMB keeps the moments unwritten in its first pass and recomputes them in the
second: 44 bytes; the table uses the floor, 40.) Achieved GB/s = bytes x parameters / time.

Writes ``benchmarks/results/step_throughput[_cuda][_quick].md`` with a PNG chart and the raw
samples as JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import inertia

RESULTS = Path(__file__).resolve().parent / "results"

# Bytes moved per float32 parameter by one step at the memory floor (see the docstring).
BYTES = {"SGD": 20, "Momentum": 20, "RMSprop": 20, "Adam": 28, "AdamW": 28, "Adagrad": 20,
         "Lion": 20, "LAMB": 40, "LARS": 28, "Adam bf16 state": 20}
CLIP_BYTES = {"inertia": 32, "torch": 40}
#: Optimizers the issue asks to beat the best peer by 2x (peers have no fused kernel).
TWO_X = ("Lion", "LAMB", "LARS", "RMSprop")

# Each optimizer's default step, as a user writes it (the row's name says the settings).
INERTIA: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "SGD": lambda ps, **o: inertia.SGD(ps, lr=1e-3, momentum=0.9, **o),
    "Momentum": lambda ps, **o: inertia.Momentum(ps, lr=1e-3, beta=0.9, **o),
    "RMSprop": lambda ps, **o: inertia.RMSprop(ps, lr=1e-3, **o),
    "Adam": lambda ps, **o: inertia.Adam(ps, lr=1e-3, **o),
    "AdamW": lambda ps, **o: inertia.AdamW(ps, lr=1e-3, **o),
    "Adagrad": lambda ps, **o: inertia.Adagrad(ps, lr=1e-3, **o),
    "Lion": lambda ps, **o: inertia.Lion(ps, lr=1e-4, weight_decay=0.01, **o),
    "LAMB": lambda ps, **o: inertia.LAMB(ps, lr=1e-3, weight_decay=0.01, **o),
    "LARS": lambda ps, **o: inertia.LARS(ps, lr=1e-3, weight_decay=1e-4, **o),
    "Adam bf16 state": lambda ps, **o: inertia.Adam(ps, lr=1e-3, state_dtype=torch.bfloat16,
                                                    **o),
}

Step = Callable[[], Any]          # one step; may return the seconds of its timed part
Builder = Callable[[], Step]      # makes a contender's tensors and returns its step


# ============================================================================ problems

def transformer_shapes(total: float, width: int = 512) -> list[tuple[int, ...]]:
    """Whole layers of a transformer of width ``width`` until there are ``total`` parameters."""
    d, shapes = width, []
    while sum(math.prod(s) for s in shapes) < total:
        shapes += [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)] + [(d,)] * 4 + [(4 * d,)]
    return shapes


def make_params(shapes, device, seed: int = 0) -> list[torch.nn.Parameter]:
    """Parameters (std 0.02) with fixed gradients (std 1e-3), the same for every contender."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.nn.Parameter((torch.randn(s, generator=gen) * 0.02).to(device))
        p.grad = (torch.randn(s, generator=gen) * 1e-3).to(device)
        params.append(p)
    return params


def optimizer(make: Callable, shapes, device, regrad: bool = False) -> Builder:
    """A contender stepping ``make(params)``. ``regrad``: give the gradients back before
    every step (heavyball sets ``p.grad = None`` after its step; an assignment, no copy)."""
    def build() -> Step:
        params = make_params(shapes, device)
        opt = make(params)
        if not regrad:
            return opt.step
        grads = [p.grad for p in params]

        def step():
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        return step
    return build


def bandwidth_probe(kind: str, n: int, device) -> Builder:
    """``add``: ``a += 0.5 * b`` (12 B/element); ``copy``: ``b.copy_(a)`` (8 B counted)."""
    def build() -> Step:
        a, b = torch.randn(n, device=device), torch.randn(n, device=device)

        def step():
            if kind == "add":
                a.add_(b, alpha=0.5)
            else:
                b.copy_(a)
        return step
    return build


PROBE_BYTES = {"stream a+=s*b": 12, "copy": 8}


def probes(n: int, device) -> dict[str, Builder]:
    return {"stream a+=s*b": bandwidth_probe("add", n, device),
            "copy": bandwidth_probe("copy", n, device)}


# ============================================================================ peers

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


# ============================================================================ timing

@dataclass
class Timings:
    """Seconds per step of each contender, one sample per round: on a CPU the median of the
    block's step times (each step timed alone), on a GPU the block's time over its steps.
    ``mean`` keeps every block's mean (stalls included); ``inner`` the part a contender's
    step timed itself (the optimizer step of a training iteration)."""

    samples: dict[str, list[float]]
    mean: dict[str, list[float]]
    inner: dict[str, list[float]]
    steps_per_block: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)

    def median(self, name: str, inner: bool = False) -> float:
        return statistics.median((self.inner if inner else self.samples)[name])

    def ratio(self, a: str, b: str, inner: bool = False) -> tuple[float, float, float]:
        """time(a) / time(b): ratio of the medians, and the quartiles of per-round ratios."""
        xs = self.inner if inner else self.samples
        per_round = [x / y for x, y in zip(xs[a], xs[b])]
        q1, q3 = quartiles(per_round)
        return statistics.median(xs[a]) / statistics.median(xs[b]), q1, q3


def quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 4:
        return min(xs), max(xs)
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def _sync_for(device) -> Callable[[], None]:
    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def interleaved(builders: dict[str, Builder], rounds: int, block_s: float, device,
                warmup: int = 4, max_block: int = 500) -> Timings:
    """Time every contender once per round, in an order rotated each round (see the
    module docstring). A contender that fails to build or step is reported as skipped.

    On a CPU every step is timed alone and a round's sample is the median of its block:
    on a machine shared with other jobs, a thread of a parallel region that loses its core
    can stall one step for milliseconds to a second, whichever optimizer it is (the block's
    mean, stalls included, is kept in ``mean``). On a GPU a block is timed between two
    synchronisations, so that launches overlap as they do in training."""
    sync = _sync_for(device)
    per_step = torch.device(device).type == "cpu"
    steps: dict[str, Step] = {}
    skipped: dict[str, str] = {}
    per_block = {}
    for name, build in builders.items():
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", module="heavyball")
                step = build()
                times = []
                for _ in range(warmup):  # the first compiles, plans, makes state
                    t = time.perf_counter()
                    step()
                    sync()
                    times.append(time.perf_counter() - t)
            steps[name] = step
            # blocks of about block_s seconds, from the fastest warm-up step after the first
            fastest = max(min(times[1:] or times), 1e-7)
            per_block[name] = max(1, min(max_block, round(block_s / fastest)))
        except Exception as error:  # a peer that cannot run here: say so, go on
            skipped[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            print(f"    {name}: skipped ({skipped[name]})", flush=True)
    names = list(steps)
    samples: dict[str, list[float]] = {n: [] for n in names}
    mean: dict[str, list[float]] = {n: [] for n in names}
    inner: dict[str, list[float]] = {n: [] for n in names}
    clock = time.perf_counter
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(names) if names else 0
            for name in names[k:] + names[:k]:
                step, count = steps[name], per_block[name]
                times, parts = [], []
                sync()
                start = clock()
                for _ in range(count):
                    t = clock() if per_step else 0.0
                    got = step()
                    if per_step:
                        times.append(clock() - t)
                    parts.append(got if isinstance(got, float) else 0.0)
                sync()
                mean[name].append((clock() - start) / count)
                samples[name].append(statistics.median(times) if per_step else mean[name][-1])
                inner[name].append(statistics.median(parts))
    finally:
        if gc_was_enabled:
            gc.enable()
    del steps
    gc.collect()
    return Timings(samples, mean, inner, per_block, skipped)


def load() -> tuple[float, float, float]:
    return os.getloadavg()


@contextlib.contextmanager
def section(report: dict, name: str):
    """Record the load average before and after a section, and its duration."""
    before, t = load(), time.perf_counter()
    print(f"\n== {name} (load {before[0]:.2f} {before[1]:.2f} {before[2]:.2f})", flush=True)
    yield
    after = load()
    report.setdefault("load", {})[name] = {"before": before, "after": after,
                                           "seconds": time.perf_counter() - t}
    print(f"   {name}: {time.perf_counter() - t:.0f} s, load after {after[0]:.2f}", flush=True)


# ============================================================================ sections

def path_counts() -> Counter:
    """How often each step path ran (the engine counts them, so a fallback is visible)."""
    from inertia.engine.step import path_counts as counts

    return Counter(counts)


def main_table(cfg) -> list[dict]:
    """Each optimizer's default step against peers, unchecked and the bandwidth probes."""
    shapes, n, device = cfg.shapes, cfg.n, cfg.device
    rows = []
    for name in cfg.names:
        print(f"  {name}", flush=True)
        before = path_counts()
        rivals = peers(name, shapes, device)
        if cfg.keep_peers is not None:  # the threads child: only the parent's best peer
            rivals = {k: v for k, v in rivals.items() if k in cfg.keep_peers.get(name, ())}
        builders = {"inertia": optimizer(INERTIA[name], shapes, device),
                    "inertia unchecked": optimizer(
                        lambda ps, make=INERTIA[name]: make(ps, nonfinite=None), shapes, device),
                    **rivals, **probes(n, device)}
        t = interleaved(builders, cfg.rounds, cfg.block, device)
        paths = path_counts() - before
        peer_names = [k for k in t.samples if not k.startswith("inertia") and k not in PROBE_BYTES]
        best = min(peer_names, key=t.median) if peer_names else None
        bw = {k: PROBE_BYTES[k] * n / t.median(k) for k in PROBE_BYTES if k in t.samples}
        row = dict(name=name, bytes=BYTES[name], timings=t, best=best, bandwidth=bw,
                   paths=dict(paths),
                   guard=t.ratio("inertia", "inertia unchecked"),
                   vs_best=_inverse(t.ratio("inertia", best)) if best else None)
        rows.append(row)
        ratio = f"{row['vs_best'][0]:.2f}x {best}" if best else "no peer"
        print(f"    inertia {n / t.median('inertia') / 1e6:.0f} Mparam/s, guard "
              f"{row['guard'][0]:.3f}x, vs best peer {ratio}; "
              + ", ".join(f"{k} {n / t.median(k) / 1e6:.0f}" for k in peer_names), flush=True)
    return rows


def _inverse(r: tuple[float, float, float]) -> tuple[float, float, float]:
    """A time ratio turned into a speed ratio (quartiles swap)."""
    return 1 / r[0], 1 / r[2], 1 / r[1]


def small_model(cfg) -> dict[str, Timings]:
    """100 tensors of 1k elements: the fixed cost of a step."""
    shapes = [(1000,)] * 100
    device = cfg.device
    cuda = torch.device(device).type == "cuda"
    out = {}
    for name in ("SGD", "Adam"):
        if name not in cfg.names:
            continue
        o = torch.optim
        ctor = {"SGD": lambda ps, **k: o.SGD(ps, lr=1e-3, momentum=0.9, **k),
                "Adam": lambda ps, **k: o.Adam(ps, lr=1e-3, **k)}[name]
        builders = {
            "inertia": optimizer(INERTIA[name], shapes, device),
            "inertia unchecked": optimizer(
                lambda ps, make=INERTIA[name]: make(ps, nonfinite=None), shapes, device),
            "torch fused": optimizer(lambda ps: ctor(ps, fused=True), shapes, device),
            "torch foreach": optimizer(lambda ps: ctor(ps, foreach=True), shapes, device),
        }
        if cuda:
            if name == "Adam":
                graphable = lambda ps: ctor(ps, fused=True, capturable=True)  # noqa: E731
                builders["torch fused capturable"] = optimizer(graphable, shapes, device)
                label = "torch fused capturable, CUDA graph"
            else:  # torch's SGD keeps no step count: its fused step is capturable as it is
                graphable = lambda ps: ctor(ps, fused=True)  # noqa: E731
                label = "torch fused, CUDA graph"
            builders["inertia, CUDA graph"] = captured(INERTIA[name], shapes, device)
            builders[label] = captured(graphable, shapes, device)
        print(f"  {name}", flush=True)
        out[name] = interleaved(builders, cfg.rounds, cfg.block, device)
        t = out[name]
        print("    " + ", ".join(f"{k} {t.median(k) * 1e6:.0f} us" for k in t.samples), flush=True)
    return out


def captured(make: Callable, shapes, device) -> Builder:
    """The step captured in a CUDA graph after warm-up steps on a side stream; replayed."""
    def build() -> Step:
        params = make_params(shapes, device)
        opt = make(params)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            opt.step()
        return graph.replay
    return build


def mlp(device, seed: int = 0) -> torch.nn.Module:
    """1024 -> 2048 -> 1024 -> 1024 with GELUs: 5.25M parameters in 6 tensors."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.GELU(),
                               torch.nn.Linear(2048, 1024), torch.nn.GELU(),
                               torch.nn.Linear(1024, 1024)).to(device)


LOOP_BATCH = 32


def training(make: Callable, device, after_backward: bool) -> Builder:
    """A training iteration (zero_grad, forward, backward, step) returning the step's own
    seconds; or, with ``after_backward=False``, the step alone on fixed gradients."""
    sync = _sync_for(device)

    def build() -> Step:
        model = mlp(device)
        opt = make(list(model.parameters()))
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(LOOP_BATCH, 1024, generator=gen).to(device)
        y = torch.randn(LOOP_BATCH, 1024, generator=gen).to(device)
        if not after_backward:
            torch.nn.functional.mse_loss(model(x), y).backward()

        def step() -> float:
            if after_backward:
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.mse_loss(model(x), y).backward()
            sync()
            t = time.perf_counter()
            opt.step()
            sync()
            return time.perf_counter() - t
        return step
    return build


def training_loop(cfg) -> dict[str, Timings]:
    device = cfg.device
    out = {}
    o = torch.optim
    for name, theirs in (("SGD", lambda ps: o.SGD(ps, lr=1e-3, momentum=0.9, fused=True)),
                         ("Adam", lambda ps: o.Adam(ps, lr=1e-3, fused=True))):
        if name not in cfg.names:
            continue
        print(f"  {name}", flush=True)
        builders = {"inertia": training(INERTIA[name], device, True),
                    "torch fused": training(theirs, device, True),
                    "inertia, step alone": training(INERTIA[name], device, False),
                    "torch fused, step alone": training(theirs, device, False)}
        t = interleaved(builders, cfg.rounds, cfg.block * 4, device)
        out[name] = t
        print("    step: " + ", ".join(f"{k} {t.median(k, inner=True) * 1e3:.2f} ms"
                                       for k in t.samples)
              + "; iteration: " + ", ".join(f"{k} {t.median(k) * 1e3:.1f} ms"
                                            for k in t.samples if "alone" not in k), flush=True)
    return out


def clipping(cfg) -> tuple[Timings, int]:
    shapes = transformer_shapes(cfg.clip_params, cfg.width)
    n = sum(math.prod(s) for s in shapes)
    device = cfg.device

    def torch_clipped(ps):
        opt = torch.optim.AdamW(ps, lr=1e-3, fused=True)
        step = opt.step

        def clip_then_step(closure=None):
            torch.nn.utils.clip_grad_norm_(ps, 1.0, foreach=True)
            return step()
        opt.step = clip_then_step
        return opt

    builders = {
        "inertia max_grad_norm=1.0": optimizer(
            lambda ps: inertia.AdamW(ps, lr=1e-3, max_grad_norm=1.0), shapes, device),
        "torch clip_grad_norm_ + fused AdamW": optimizer(torch_clipped, shapes, device),
        "inertia, no clipping": optimizer(lambda ps: inertia.AdamW(ps, lr=1e-3), shapes, device),
        "torch fused AdamW, no clipping": optimizer(
            lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True), shapes, device),
        **probes(n, device),
    }
    t = interleaved(builders, cfg.rounds, cfg.block, device)
    r = _inverse(t.ratio("inertia max_grad_norm=1.0", "torch clip_grad_norm_ + fused AdamW"))
    print(f"    {n / 1e6:.1f}M params: inertia clipped {r[0]:.2f}x faster than torch's "
          f"clip + fused AdamW", flush=True)
    return t, n


# The first step in a fresh process: ``python -c PROBE device names``; prints JSON.
_FIRST_STEP = r"""
import json, os, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import inertia
from inertia.backends import ops
t2 = time.perf_counter()
sys.path.insert(0, os.path.dirname(sys.argv[3]))
import step_throughput as bench
device = torch.device(sys.argv[1])
out = {"import torch": t1 - t0, "import inertia": t2 - t1}
if device.type == "cpu":
    t = time.perf_counter()
    out["runner"] = ops.cpu_implementation()
    out["runner load"] = time.perf_counter() - t
steps = {}
for name in json.loads(sys.argv[2]):
    ps = bench.make_params([(4096,), (64, 64)], device)
    opt = bench.INERTIA[name](ps)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    steps[name] = times
out["steps"] = steps
print("RESULT " + json.dumps(out))
"""


def first_step(cfg) -> dict:
    """Two fresh processes sharing new cache directories: cold (compiles), then warm."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="inertia-bench-") as tmp:
        env = dict(os.environ, INERTIA_CACHE_DIR=os.path.join(tmp, "kernels"),
                   TRITON_CACHE_DIR=os.path.join(tmp, "triton"))
        if cfg.cold_native:
            env["TORCH_EXTENSIONS_DIR"] = os.path.join(tmp, "torch_extensions")
        for run in ("cold", "warm"):
            print(f"  {run} process", flush=True)
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", _FIRST_STEP, str(cfg.device), json.dumps(cfg.names),
                 str(Path(__file__).resolve())],
                env=env, capture_output=True, text=True, timeout=900)
            wall = time.perf_counter() - t
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                out[run] = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
                print(f"    failed: {out[run]['error']}", flush=True)
                continue
            out[run] = json.loads(line[-1][len("RESULT "):])
            out[run]["process"] = wall
            print(f"    {wall:.1f} s in all; runner {out[run].get('runner')} "
                  f"{out[run].get('runner load', 0):.2f} s", flush=True)
    return out


def threads_runner(argv: list[str], best: dict[str, list[str]] | None) -> dict | None:
    """The main table and the loop again with INERTIA_NATIVE=0, in a child process, against
    the best peer of each row of this process's table (``best``; all peers if None)."""
    with tempfile.TemporaryDirectory(prefix="inertia-bench-") as tmp:
        path = os.path.join(tmp, "threads.json")
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv,
               "--sections", "main", "loop", "--json", path]
        if best is not None:
            cmd += ["--keep-peers", json.dumps(best)]
        proc = subprocess.run(cmd, env=dict(os.environ, INERTIA_NATIVE="0"), timeout=3600)
        if proc.returncode or not os.path.exists(path):
            print("  the threads run failed", flush=True)
            return None
        with open(path) as f:
            return json.load(f)


# ============================================================================ serialising

def timings_json(t: Timings) -> dict:
    return {"samples": t.samples, "mean": t.mean, "inner": t.inner,
            "steps_per_block": t.steps_per_block, "skipped": t.skipped}


def timings_from(d: dict) -> Timings:
    return Timings(d["samples"], d["mean"], d["inner"], d["steps_per_block"],
                   d.get("skipped", {}))


def to_json(report: dict) -> dict:
    out = {k: v for k, v in report.items() if k not in ("main", "small", "loop", "clip")}
    if "main" in report:
        out["main"] = [{**{k: v for k, v in r.items() if k != "timings"},
                        "timings": timings_json(r["timings"])} for r in report["main"]]
    for key in ("small", "loop"):
        if key in report:
            out[key] = {k: timings_json(v) for k, v in report[key].items()}
    if "clip" in report:
        out["clip"] = {"timings": timings_json(report["clip"][0]), "n": report["clip"][1]}
    if report.get("threads"):
        out["threads"] = to_json(report["threads"])
    return out


def from_json(d: dict) -> dict:
    out = dict(d)
    if "main" in d:
        out["main"] = [{**r, "timings": timings_from(r["timings"])} for r in d["main"]]
    for key in ("small", "loop"):
        if key in d:
            out[key] = {k: timings_from(v) for k, v in d[key].items()}
    if "clip" in d:
        out["clip"] = (timings_from(d["clip"]["timings"]), d["clip"]["n"])
    if d.get("threads"):
        out["threads"] = from_json(d["threads"])
    return out


def render(path: Path) -> None:
    """Write the Markdown and the chart again from a run's JSON (no new measurement)."""
    report = from_json(json.loads(path.read_text()))
    cmd = report["config"]["command"]
    if report["config"].get("note") and report["config"]["note"] in cmd:
        report["config"]["command"] = cmd.replace(report["config"]["note"], '"..."')
    write_markdown(report, path.with_suffix(".md"))
    if "main" in report:
        chart(report, path.with_suffix(".png"))


# ============================================================================ report

def _rate(t: Timings, name: str, n: int) -> str:
    """Mparam/s as 'median (q1-q3)'."""
    q1, q3 = quartiles(t.samples[name])
    return f"{n / t.median(name) / 1e6:.0f} ({n / q3 / 1e6:.0f}-{n / q1 / 1e6:.0f})"


def _us(t: Timings, name: str, inner: bool = False, scale: float = 1e6, digits: int = 0) -> str:
    xs = (t.inner if inner else t.samples)[name]
    q1, q3 = quartiles(xs)
    return (f"{statistics.median(xs) * scale:.{digits}f} "
            f"({q1 * scale:.{digits}f}-{q3 * scale:.{digits}f})")


def _x(r, digits: int = 2) -> str:
    def f(v):
        return f"{v:.{digits}f}" if v >= 0.1 else f"{v:.2g}"
    return f"{f(r[0])}x ({f(r[1])}-{f(r[2])})"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _load(report: dict, name: str) -> str:
    d = report.get("load", {}).get(name)
    if not d:
        return ""
    b, a = d["before"], d["after"]
    return (f"Load average (1/5/15 min) before {b[0]:.2f}/{b[1]:.2f}/{b[2]:.2f}, after "
            f"{a[0]:.2f}/{a[1]:.2f}/{a[2]:.2f}; {d['seconds']:.0f} s.")


def write_markdown(report: dict, path: Path) -> str:
    cfg = report["config"]
    n = cfg["n"]
    cuda = cfg["device"] == "cuda"
    L = [f"# Optimizer step throughput ({'quick' if cfg['quick'] else 'full'} run, "
         f"{cfg['device']})", "",
         f"Machine: {cfg['machine']}. torch {cfg['torch']}, {cfg['threads']} torch threads; "
         f"inertia's CPU runner: **{cfg['runner']}**. Peers: {cfg['peers']}. "
         f"{cfg['rounds']} interleaved rounds per table, blocks of about {cfg['block']:g} s. "
         f"Started {cfg['started']} (load {cfg['load_start']}), finished {report['finished']} "
         f"(load {report['load_end']}); command `{cfg['command']}`.", "",
         *([cfg["note"], ""] if cfg.get("note") else []),
         "Medians over rounds with the interquartile range in brackets; ratios are ratios of "
         "medians with the interquartile range of the per-round ratios. Every number below "
         "was measured in this run; ratios only compare contenders of the same table.", ""]
    if not cuda:
        L += ["GPU: **not run** (no GPU on this machine). `--device cuda` measures the same "
              "tables on a GPU (100M parameters by default, torch fused with "
              "`capturable=True` and CUDA-graph replays on the small model, a copy roofline) "
              "and writes `step_throughput_cuda.md`.", ""]
    if "main" in report:
        L += _main_markdown(report, n, cuda)
    if "small" in report:
        L += _small_markdown(report)
    if "loop" in report:
        L += _loop_markdown(report)
    if "clip" in report:
        L += _clip_markdown(report)
    if "first_step" in report:
        L += _first_step_markdown(report)
    text = "\n".join(L) + "\n"
    path.write_text(text)
    return text


def _main_markdown(report, n, cuda) -> list[str]:
    cfg = report["config"]
    rows = report["main"]
    L = [f"## Default step, {n / 1e6:.1f}M float32 parameters in {cfg['tensors']} "
         "transformer-shaped tensors", "",
         _load(report, "main"), "",
         "*inertia* is the default step (`nonfinite=\"guard\"`); *unchecked* is "
         "`nonfinite=None`; *guard cost* = time(default) / time(unchecked). *vs best peer* = "
         "time(best peer) / time(inertia), higher is better. GB/s = bytes per parameter at "
         "the memory floor x parameters / time; *of roofline* = that over the higher of the "
         "two bandwidth probes of the same rounds.", "",
         "| optimizer | B/param | inertia Mparam/s | unchecked Mparam/s | guard cost "
         "(target <= 1.05x) | best peer, Mparam/s | vs best peer | target | GB/s | "
         "of roofline | path |",
         "|---|---:|---:|---:|---:|---|---:|---|---:|---:|---|"]
    for r in rows:
        t = r["timings"]
        roof = max(r["bandwidth"].values())
        gbs = r["bytes"] * n / t.median("inertia") / 1e9
        best = f"{r['best']} {_rate(t, r['best'], n)}" if r["best"] else "-"
        need = 2.0 if r["name"] in TWO_X else 0.95
        vs = _x(r["vs_best"]) if r["vs_best"] else "-"
        met = _met(r["vs_best"][0] >= need) if r["vs_best"] else "-"
        if cuda and r["name"] in ("SGD", "Adam", "AdamW") and "torch fused" in t.samples:
            # the GPU targets: >= 1.0x torch fused and >= 0.85x the copy roofline
            fused = _inverse(t.ratio("inertia", "torch fused"))
            of_copy = r["bytes"] * n / t.median("inertia") / r["bandwidth"]["copy"]
            met += (f"; >= 1.0x torch fused: {_met(fused[0] >= 1.0)} ({_x(fused)}); >= 0.85x "
                    f"copy: {_met(of_copy >= 0.85)} ({of_copy:.2f})")
        paths = ", ".join(f"{k} {v}" for k, v in sorted(r["paths"].items()))
        L.append(f"| {r['name']} | {r['bytes']} | {_rate(t, 'inertia', n)} | "
                 f"{_rate(t, 'inertia unchecked', n)} | {_x(r['guard'], 3)} "
                 f"{_met(r['guard'][0] <= 1.05)} | {best} | {vs} | >= {need:g}x: {met} | "
                 f"{gbs:.1f} | {gbs * 1e9 / roof:.2f} | {paths} |")
    bws = [r["bandwidth"] for r in rows]
    L += ["", "Bandwidth probes in the same rounds (GB/s, median per table, range over the "
          "tables): " + "; ".join(
              f"{k} {min(b[k] for b in bws) / 1e9:.1f}-{max(b[k] for b in bws) / 1e9:.1f}"
              for k in PROBE_BYTES if all(k in b for b in bws)) + ".", "",
          "### Every contender, Mparam/s", "",
          "| optimizer | contenders (median, interquartile range) | skipped |", "|---|---|---|"]
    for r in rows:
        t = r["timings"]
        L.append(f"| {r['name']} | " + "; ".join(
            f"{k} {_rate(t, k, n)}" for k in t.samples if k not in PROBE_BYTES)
            + " | " + ("; ".join(f"{k}: {v}" for k, v in t.skipped.items()) or "-") + " |")
    threads = report.get("threads")
    if threads and "main" in threads:
        L += ["", "### What the C++ runner buys: the same table with `INERTIA_NATIVE=0` "
              "(Python threads)", "",
              "A child process of this run, after the table above. "
              + _load(threads, "main") + " The child times the best peer of each row above again: each "
              "ratio is within its own process; the absolute rates of two processes on a "
              "shared machine compare only roughly.",
              "", "| optimizer | native: vs best peer | threads: vs the same peer | native: "
              "inertia Mparam/s | threads: inertia Mparam/s | threads: guard cost |",
              "|---|---:|---:|---:|---:|---:|"]
        theirs = {r["name"]: r for r in threads["main"]}
        for r in rows:
            o = theirs.get(r["name"])
            if o is None:
                continue
            L.append(f"| {r['name']} | {_x(r['vs_best']) if r['vs_best'] else '-'} "
                     f"({r['best']}) | {_x(o['vs_best']) if o['vs_best'] else '-'} "
                     f"({o['best']}) | {_rate(r['timings'], 'inertia', n)} | "
                     f"{_rate(o['timings'], 'inertia', n)} | {_x(o['guard'], 3)} |")
    L.append("")
    return L


def _small_markdown(report) -> list[str]:
    L = ["## Small model: 100 tensors x 1k float32 elements, microseconds per step", "",
         _load(report, "small"), "",
         "| optimizer | contender | us per step | time / torch's (target for inertia's "
         "default: <= 1.2x) |",
         "|---|---|---:|---:|"]
    for name, t in report["small"].items():
        for k in t.samples:
            base = _small_baseline(k, t)
            ratio = t.ratio(k, base) if base else None
            mine = k == "inertia" or k == "inertia, CUDA graph"
            target = f" {_met(ratio[0] <= 1.2)}" if ratio and mine else ""
            L.append(f"| {name} | {k} | {_us(t, k)} | "
                     + (f"{_x(ratio)} {base}{target}" if ratio else "-") + " |")
    L.append("")
    return L


def _small_baseline(contender: str, t: Timings) -> str | None:
    """What a small-model contender is compared with: torch fused (``capturable=True`` where
    it exists, on CUDA), a CUDA-graph replay with torch's graph replay."""
    if contender.endswith(", CUDA graph"):
        return next((k for k in t.samples if k.startswith("torch") and k.endswith("graph")),
                    None)
    return next((k for k in ("torch fused capturable", "torch fused") if k in t.samples), None)


def _loop_markdown(report) -> list[str]:
    L = ["## Training loop: a 5.25M-parameter MLP (batch 32), the step right after backward",
         "", _load(report, "loop"), "",
         "Each iteration: `zero_grad(set_to_none=True)`, forward, backward, `step()`; the step "
         "is timed on its own. *step alone* is the same optimizer on fixed gradients with no "
         "backward before it: the difference is what the backward pass's threads cost the "
         "step. Milliseconds.", "",
         "| optimizer | contender | step after backward | step alone | iteration | "
         "step vs torch fused's step |", "|---|---|---:|---:|---:|---:|"]
    L += _loop_rows(report["loop"])
    threads = report.get("threads")
    if threads and "loop" in threads:
        L += ["", "With `INERTIA_NATIVE=0` (Python threads), in the child process. "
              + _load(threads, "loop"), "",
              "| optimizer | contender | step after backward | step alone | iteration | "
              "step vs torch fused's step |", "|---|---|---:|---:|---:|---:|"]
        L += _loop_rows(threads["loop"])
    L.append("")
    return L


def _loop_rows(loop) -> list[str]:
    L = []
    for name, t in loop.items():
        for who in ("inertia", "torch fused"):
            vs = _inverse(t.ratio(who, "torch fused", inner=True))
            L.append(f"| {name} | {who} | {_us(t, who, True, 1e3, 2)} | "
                     f"{_us(t, who + ', step alone', True, 1e3, 2)} | "
                     f"{_us(t, who, False, 1e3, 1)} | {_x(vs)} |")
    return L


def _clip_markdown(report) -> list[str]:
    t, n = report["clip"]
    ours, theirs = "inertia max_grad_norm=1.0", "torch clip_grad_norm_ + fused AdamW"
    vs = _inverse(t.ratio(ours, theirs))
    roof = max(PROBE_BYTES[k] * n / t.median(k) for k in PROBE_BYTES)
    L = [f"## Clipping: AdamW, global norm 1.0, {n / 1e6:.1f}M parameters", "",
         _load(report, "clip"), "",
         f"inertia clipped is **{_x(vs)}** faster than `clip_grad_norm_(foreach=True)` + "
         f"`torch.optim.AdamW(fused=True)`: target >= 1.15x, {_met(vs[0] >= 1.15)} (the limit "
         f"is 40/32 = 1.25x: one read of the gradients saved out of eight arrays of traffic)."
         + (" A ratio above that limit does not come from memory traffic: torch's passes "
            "stalled on this machine (see the note above)." if vs[0] > 1.3 else ""),
         "", "| contender | Mparam/s (probes: Melem/s) | B/param | GB/s | of roofline |",
         "|---|---:|---:|---:|---:|"]
    nbytes = {ours: CLIP_BYTES["inertia"], theirs: CLIP_BYTES["torch"],
              "inertia, no clipping": 28, "torch fused AdamW, no clipping": 28}
    for k in t.samples:
        b = nbytes.get(k) or PROBE_BYTES[k]
        gbs = b * n / t.median(k) / 1e9
        L.append(f"| {k} | {_rate(t, k, n)} | {b} | {gbs:.1f} | {gbs * 1e9 / roof:.2f} |")
    L += ["", f"Clipping's own cost: inertia {_x(t.ratio(ours, 'inertia, no clipping'))}, "
          f"torch {_x(t.ratio(theirs, 'torch fused AdamW, no clipping'))} (time with / "
          "without).", ""]
    return L


def _first_step_markdown(report) -> list[str]:
    fs = report["first_step"]
    cfg = report["config"]
    L = ["## The first step in a fresh process (seconds)", "", _load(report, "first step"), "",
         "Two fresh processes share new, empty cache directories: *cold* compiles every kernel"
         + (" and builds the native runner (empty `TORCH_EXTENSIONS_DIR`)" if cfg["cold_native"]
            else " (the native runner was already built: `--quick` does not rebuild it)")
         + "; *warm* loads them. Each optimizer's first step is taken on two small tensors, "
         "one optimizer after the other in the same process.", ""]
    if any("error" in fs.get(k, {}) for k in ("cold", "warm")):
        L += [f"Failed: {fs}", ""]
        return L
    cold, warm = fs["cold"], fs["warm"]
    L += ["| | cold | warm |", "|---|---:|---:|"]
    for key in ("import torch", "import inertia", "runner load", "process"):
        if key in cold:
            L.append(f"| {key} | {cold[key]:.2f} | {warm[key]:.2f} |")
    for name in cold["steps"]:
        c, w = cold["steps"][name], warm["steps"][name]
        L.append(f"| {name}: first step (second) | {c[0]:.2f} ({c[1] * 1e3:.2f} ms) | "
                 f"{w[0]:.2f} ({w[1] * 1e3:.2f} ms) |")
    L += ["", f"Runner: {cold.get('runner', '-')} (cold), {warm.get('runner', '-')} (warm).", ""]
    return L


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, n = report["main"], report["config"]["n"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    x = list(range(len(rows)))
    w = 0.27

    def bar(offset, key_of, label, **kw):
        meds, lo, hi = [], [], []
        for r in rows:
            key = key_of(r)
            if key is None:
                meds.append(0), lo.append(0), hi.append(0)
                continue
            t = r["timings"]
            q1, q3 = quartiles(t.samples[key])
            m = n / t.median(key) / 1e6
            meds.append(m), lo.append(m - n / q3 / 1e6), hi.append(n / q1 / 1e6 - m)
        ax.bar([i + offset for i in x], meds, w, yerr=[lo, hi], label=label, capsize=2, **kw)

    bar(-w, lambda r: "inertia", "inertia (default)")
    bar(0, lambda r: "inertia unchecked", "inertia, nonfinite=None")
    bar(w, lambda r: r["best"], "best peer")
    for i, r in enumerate(rows):
        roof = max(r["bandwidth"].values()) / r["bytes"] / 1e6
        ax.hlines(roof, i - 1.5 * w, i + 1.5 * w, colors="k", linestyles="dashed",
                  label="roofline" if i == 0 else None)
    ax.set_xticks(x, [r["name"] for r in rows], rotation=25, ha="right")
    ax.set_ylabel("Mparam/s (median, IQR)")
    ax.set_title(f"Step throughput, {n / 1e6:.1f}M float32 params, "
                 f"{report['config']['device']}, {report['config']['threads']} torch thread(s)")
    ax.legend(fontsize=8)

    threads = {r["name"]: r for r in (report.get("threads") or {}).get("main", [])}
    bx.bar([i - w / 2 for i in x], [r["vs_best"][0] if r["vs_best"] else 0 for r in rows], w,
           label=f"inertia ({report['config']['runner']} runner)")
    if threads:
        bx.bar([i + w / 2 for i in x],
               [threads[r["name"]]["vs_best"][0] if r["name"] in threads
                and threads[r["name"]]["vs_best"] else 0 for r in rows], w,
               label="inertia (Python threads, INERTIA_NATIVE=0)")
    bx.axhline(0.95, color="r", lw=0.8, ls="--", label="target 0.95x")
    bx.axhline(2.0, color="g", lw=0.8, ls="--", label="target 2x (Lion, LAMB, LARS, RMSprop)")
    bx.set_xticks(x, [r["name"] for r in rows], rotation=25, ha="right")
    bx.set_ylabel("speed vs best peer (same process)")
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ============================================================================ main

@dataclass
class Config:
    device: str
    quick: bool
    names: list[str]
    shapes: list
    n: int
    width: int
    rounds: int
    block: float
    clip_params: float
    cold_native: bool
    keep_peers: dict[str, list[str]] | None = None


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def _versions() -> str:
    out = []
    for pkg in ("numba", "pytorch_optimizer", "heavyball", "optax", "jax"):
        try:
            out.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{pkg} not installed")
    return ", ".join(out) + " (timm: not installed, it needs torchvision, which has no wheel " \
        "for this torch)"


SECTIONS = ("main", "small", "loop", "clip", "first", "threads")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="about 8M params, 5 rounds")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--params", type=float, default=None,
                    help="parameters of the main table (default: 12e6 CPU, 100e6 CUDA; "
                         "quick: 8e6)")
    ap.add_argument("--clip-params", type=float, default=8e6)
    ap.add_argument("--rounds", type=int, default=None, help="default 15 (quick: 5)")
    ap.add_argument("--block", type=float, default=None,
                    help="seconds per timed block (default 0.05; quick 0.03)")
    ap.add_argument("--only", nargs="*", default=None, help="optimizer names to run")
    ap.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's, all cores)")
    ap.add_argument("--tag", default="", help="suffix for the result files")
    ap.add_argument("--note", default="", help="a sentence for the results' header (why "
                    "this run's settings)")
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)  # the threads child
    ap.add_argument("--keep-peers", default=None, help=argparse.SUPPRESS)  # the same
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="write the Markdown and chart of a finished run again from its JSON")
    args = ap.parse_args(argv)
    if args.render:
        render(Path(args.render))
        return

    if args.threads:
        torch.set_num_threads(args.threads)  # inertia's kernel threads follow torch's count
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                              f"intra_op_parallelism_threads={args.threads}")
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")
    width = 1024 if cuda else 512
    total = args.params or (8e6 if args.quick else (100e6 if cuda else 12e6))
    shapes = transformer_shapes(total, width)
    cfg = Config(device=args.device, quick=args.quick, names=args.only or list(INERTIA),
                 shapes=shapes, n=sum(math.prod(s) for s in shapes), width=width,
                 rounds=args.rounds or (5 if args.quick else 15),
                 block=args.block or (0.03 if args.quick else 0.05),
                 clip_params=args.clip_params, cold_native=not args.quick,
                 keep_peers=json.loads(args.keep_peers) if args.keep_peers else None)
    unknown = set(cfg.names) - set(INERTIA)
    if unknown:
        sys.exit(f"unknown optimizer(s) {sorted(unknown)}; choose from {list(INERTIA)}")
    from inertia.backends import ops

    runner = ops.cpu_implementation() if not cuda else "triton (CUDA)"
    report: dict[str, Any] = {"config": {
        "device": args.device, "quick": args.quick, "n": cfg.n, "tensors": len(shapes),
        "rounds": cfg.rounds, "block": cfg.block, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "runner": runner, "machine": _machine()
        + (f", {torch.cuda.get_device_name()}" if cuda else ""), "peers": _versions(),
        "started": time.strftime("%Y-%m-%d %H:%M"), "load_start": _load_text(),
        "command": "python benchmarks/step_throughput.py " + " ".join(
            '--note "..."' if a == args.note and i and argv[i - 1] == "--note" else a
            for i, a in enumerate(argv) if a != "--note"),
        "cold_native": cfg.cold_native, "names": cfg.names, "note": args.note}}
    print(f"{cfg.n / 1e6:.1f}M params in {len(shapes)} tensors on {args.device}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; runner {runner}", flush=True)

    if "main" in args.sections:
        with section(report, "main"):
            report["main"] = main_table(cfg)
    if "small" in args.sections:
        with section(report, "small"):
            report["small"] = small_model(cfg)
    if "loop" in args.sections:
        with section(report, "loop"):
            report["loop"] = training_loop(cfg)
    if "clip" in args.sections:
        with section(report, "clip"):
            report["clip"] = clipping(cfg)
    if "first" in args.sections:
        with section(report, "first step"):
            report["first_step"] = first_step(cfg)
    if "threads" in args.sections and not cuda and args.json is None:
        with section(report, "threads"):
            child = [a for a in argv if a not in ("--sections", *SECTIONS)]
            best = {r["name"]: [r["best"]] for r in report["main"]} if "main" in report \
                else None
            got = threads_runner(child, best)
            report["threads"] = from_json(got) if got else None
    report["finished"] = time.strftime("%Y-%m-%d %H:%M")
    report["load_end"] = _load_text()

    if args.json:  # the threads child hands its tables to the parent
        with open(args.json, "w") as f:
            json.dump(to_json(report), f)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = ("step_throughput" + ("_cuda" if cuda else "") + ("_quick" if args.quick else "")
            + args.tag)
    text = write_markdown(report, RESULTS / f"{stem}.md")
    with open(RESULTS / f"{stem}.json", "w") as f:
        json.dump(to_json(report), f)
    if "main" in report:
        chart(report, RESULTS / f"{stem}.png")
    print("\n" + text)


def _load_text() -> str:
    a, b, c = load()
    return f"{a:.2f}/{b:.2f}/{c:.2f}"


if __name__ == "__main__":
    main()

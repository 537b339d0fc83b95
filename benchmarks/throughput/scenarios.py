"""The sections that time the main optimizers: the main table, the small model, the
training loop, clipping, the first step in a fresh process and the child process with
Python threads (``INERTIA_NATIVE=0``). Each takes the run's ``Config``."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable

import torch

import inertia

from . import BENCHMARKS, SCRIPT
from .peers import peers
from .problems import BYTES, INERTIA, PROBE_BYTES, make_params, optimizer, probes, \
    transformer_shapes
from .timing import Builder, Step, Timings, interleaved, inverse, path_counts, sync_for


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
                   vs_best=inverse(t.ratio("inertia", best)) if best else None)
        rows.append(row)
        ratio = f"{row['vs_best'][0]:.2f}x {best}" if best else "no peer"
        print(f"    inertia {n / t.median('inertia') / 1e6:.0f} Mparam/s, guard "
              f"{row['guard'][0]:.3f}x, vs best peer {ratio}; "
              + ", ".join(f"{k} {n / t.median(k) / 1e6:.0f}" for k in peer_names), flush=True)
    return rows


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
    sync = sync_for(device)

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
    r = inverse(t.ratio("inertia max_grad_norm=1.0", "torch clip_grad_norm_ + fused AdamW"))
    print(f"    {n / 1e6:.1f}M params: inertia clipped {r[0]:.2f}x faster than torch's "
          f"clip + fused AdamW", flush=True)
    return t, n


# The first step in a fresh process: ``python -c PROBE device names benchmarks_folder``;
# prints JSON.
_FIRST_STEP = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import inertia
from inertia.backends import ops
t2 = time.perf_counter()
sys.path.insert(0, sys.argv[3])
from throughput import problems as bench
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
                 str(BENCHMARKS)],
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
        cmd = [sys.executable, str(SCRIPT), *argv,
               "--sections", "main", "loop", "--json", path]
        if best is not None:
            cmd += ["--keep-peers", json.dumps(best)]
        proc = subprocess.run(cmd, env=dict(os.environ, INERTIA_NATIVE="0"), timeout=3600)
        if proc.returncode or not os.path.exists(path):
            print("  the threads run failed", flush=True)
            return None
        with open(path) as f:
            return json.load(f)


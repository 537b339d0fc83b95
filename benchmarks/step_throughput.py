"""Optimizer step throughput: inertia's default step against its peers and the roofline.

    python benchmarks/step_throughput.py [--quick] [--params 8e6] [--repeats 7]

A step of an element-wise optimizer is memory-bound: it reads and writes a few arrays
once each. So the ceiling is ``stream bandwidth / bytes per parameter``; we measure the
bandwidth here (an in-place ``a += s * b`` over arrays as large as the model: 12 bytes per
element, read a, read b, write a) and report every optimizer against it and against the
best peer measured in the same run (torch.optim fused / foreach / for-loop, and
pytorch_optimizer and timm when installed).

The tensors are transformer-shaped (per layer: four d x d, one d x 4d, one 4d x d, and
vectors), float32, gradients fixed. Times are medians over ``--repeats`` timed blocks of
several steps. Also measured: a launch-bound small model (100 tensors x 1k), the bf16-state
rows against torch fused Adam, the cost of the base class's non-finite gradient check, and
the one-time numba JIT/cache-load cost (in fresh subprocesses).

Writes ``benchmarks/results/step_throughput.md`` (or ``..._quick.md``) and a PNG chart.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import inertia
from inertia.optim import base as inertia_base

RESULTS = Path(__file__).resolve().parent / "results"

# Bytes moved per float32 parameter by one step at the memory floor (reads + writes).
BYTES = {"SGD": 20, "Momentum": 20, "RMSprop": 20, "Adam": 28, "AdamW": 28, "Adagrad": 20,
         "Lion": 20, "LAMB": 40, "LARS": 28, "Adam bf16 state": 20}

INERTIA = {
    "SGD": lambda ps: inertia.SGD(ps, lr=1e-3, momentum=0.9),
    "Momentum": lambda ps: inertia.Momentum(ps, lr=1e-3, beta=0.9),
    "RMSprop": lambda ps: inertia.RMSprop(ps, lr=1e-3),
    "Adam": lambda ps: inertia.Adam(ps, lr=1e-3),
    "AdamW": lambda ps: inertia.AdamW(ps, lr=1e-3),
    "Adagrad": lambda ps: inertia.Adagrad(ps, lr=1e-3),
    "Lion": lambda ps: inertia.Lion(ps, lr=1e-4, weight_decay=0.01),
    "LAMB": lambda ps: inertia.LAMB(ps, lr=1e-3, weight_decay=0.01),
    "LARS": lambda ps: inertia.LARS(ps, lr=1e-3, weight_decay=1e-4),
    "Adam bf16 state": lambda ps: inertia.Adam(ps, lr=1e-3, state_dtype=torch.bfloat16),
}


def _torch_peers(name):
    o = torch.optim
    make = {
        "SGD": lambda ps, **k: o.SGD(ps, lr=1e-3, momentum=0.9, **k),
        # The same traffic and nearly the same rule (EMA = SGD with dampening = momentum).
        "Momentum": lambda ps, **k: o.SGD(ps, lr=1e-3, momentum=0.9, dampening=0.9, **k),
        "RMSprop": lambda ps, **k: o.RMSprop(ps, lr=1e-3, **k),
        "Adam": lambda ps, **k: o.Adam(ps, lr=1e-3, **k),
        "AdamW": lambda ps, **k: o.AdamW(ps, lr=1e-3, **k),
        "Adagrad": lambda ps, **k: o.Adagrad(ps, lr=1e-3, **k),
        "Adam bf16 state": lambda ps, **k: o.Adam(ps, lr=1e-3, **k),
    }.get(name)
    if make is None:
        return {}
    peers = {"torch foreach": lambda ps: make(ps, foreach=True),
             "torch for-loop": lambda ps: make(ps, foreach=False)}
    if name in ("SGD", "Momentum", "Adam", "AdamW", "Adagrad", "Adam bf16 state"):
        peers["torch fused"] = lambda ps: make(ps, fused=True)
    return peers


def _third_party_peers(name):
    peers = {}
    try:
        import pytorch_optimizer as po
        make = {"Lion": lambda ps: po.Lion(ps, lr=1e-4, weight_decay=0.01),
                "LAMB": lambda ps: po.Lamb(ps, lr=1e-3, weight_decay=0.01),
                "LARS": lambda ps: po.LARS(ps, lr=1e-3, weight_decay=1e-4)}.get(name)
        if make:
            peers["pytorch_optimizer"] = make
    except Exception:  # not installed, or an incompatible version
        pass
    try:
        import timm.optim as to
        make = {"Lion": lambda ps: to.Lion(ps, lr=1e-4, weight_decay=0.01),
                "LAMB": lambda ps: to.Lamb(ps, lr=1e-3, weight_decay=0.01),
                "LARS": lambda ps: to.Lars(ps, lr=1e-3, weight_decay=1e-4),
                }.get(name)
        if make:
            peers["timm"] = make
    except Exception:
        pass
    return peers


def transformer_shapes(total: float) -> list[tuple[int, ...]]:
    """Layers of (4 d x d, d x 4d, 4d x d, 4 d-vectors, a 4d-vector) with d = 512 until ``total``."""
    d, shapes = 512, []
    while sum(math.prod(s) for s in shapes) < total:
        shapes += [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)] + [(d,)] * 4 + [(4 * d,)]
    return shapes


def _problem(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.02) for s in shapes]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    return ps


def time_steps(makers: dict, shapes, repeats, steps_per_block, warmup=2,
               before=None) -> dict[str, float]:
    """Median seconds per step of each optimizer. The contenders are timed round-robin, one
    block each per round, so a slow spell of a shared machine hits all of them alike.
    ``before()``, if given, runs untimed before every step (see :func:`training_loop`)."""
    opts = {}
    for name, make in makers.items():
        try:
            opts[name] = make(_problem(shapes))
            for _ in range(warmup):
                opts[name].step()
        except Exception as e:  # a peer that cannot run this configuration
            print(f"  {name}: skipped ({type(e).__name__}: {e})")
            opts.pop(name, None)
    times = {name: [] for name in opts}
    for _ in range(repeats):
        for name, opt in opts.items():
            if before is None:
                t = time.perf_counter()
                for _ in range(steps_per_block):
                    opt.step()
                times[name].append((time.perf_counter() - t) / steps_per_block)
                continue
            for _ in range(steps_per_block):
                before()
                t = time.perf_counter()
                opt.step()
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def training_loop(names, shapes, repeats) -> dict[str, dict[str, float]]:
    """Seconds per step when each step follows a torch operation, as it follows backward in
    training. torch's OpenMP threads keep spinning for a while after their work, so a kernel
    on other threads (inertia's numba kernels) shares the cores with them; torch's own fused
    kernels run on the spinning threads themselves."""
    a, b = torch.randn(1 << 22), torch.randn(1 << 22)
    out = {}
    for name in names:
        peers = {k: v for k, v in _torch_peers(name).items() if k == "torch fused"}
        peers.update(_third_party_peers(name))
        out[name] = time_steps({"inertia": INERTIA[name], **peers}, shapes, repeats, 3,
                               before=lambda: a.add_(b, alpha=1e-3))
    return out


def _without_check(make):
    """``make``, with the base class's non-finite gradient check switched off."""
    def made(ps):
        opt = make(ps)
        opt._gradients_finite = lambda work: True
        return opt
    return made


def stream_bandwidth(n: int, repeats: int) -> float:
    """Bytes/s of ``a += 0.5 * b`` (read a, read b, write a: 12 bytes per float32 element)."""
    a, b = torch.randn(n), torch.randn(n)
    for _ in range(2):
        a.add_(b, alpha=0.5)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a.add_(b, alpha=0.5)
        times.append(time.perf_counter() - t)
    return 12 * n / statistics.median(times)


def nonfinite_check_cost(shapes, repeats, check=None) -> float:
    """Seconds per call of the base class's check (or of ``check``) over all gradients."""
    check = check or inertia_base._all_finite
    ps = _problem(shapes)
    grads = [p.grad for p in ps]
    check(grads)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        check(grads)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


_JIT_PROBE = """
import time, torch, inertia
t0 = time.perf_counter()
for make in [lambda p: inertia.{name}(p, {kw})]:
    p = [torch.nn.Parameter(torch.randn(1000))]; p[0].grad = torch.randn(1000)
    make(p).step()
print(time.perf_counter() - t0)
"""


def jit_costs(names) -> dict[str, tuple[float, float]]:
    """Seconds for the first step in a fresh process: (cold: empty numba cache, warm: cached)."""
    kws = {"SGD": "lr=0.1, momentum=0.9", "Momentum": "lr=0.1", "RMSprop": "lr=0.1",
           "Adam": "lr=0.1", "AdamW": "lr=0.1", "Adagrad": "lr=0.1", "Lion": "lr=0.1",
           "LAMB": "lr=0.1", "LARS": "lr=0.1",
           "Adam bf16 state": "lr=0.1, state_dtype=torch.bfloat16"}
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for name in names:
            code = _JIT_PROBE.format(name=name.split()[0], kw=kws[name])
            runs = []
            for _ in range(2):  # cold (compiles into the empty cache dir), then warm
                r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                   text=True, check=True)
                runs.append(float(r.stdout.strip().splitlines()[-1]))
            out[name] = (runs[0], runs[1])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8M params, fewer repeats, no peers' for-loops")
    ap.add_argument("--params", type=float, default=None, help="total parameters (default 20e6)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--only", nargs="*", default=None, help="optimizer names to run")
    ap.add_argument("--tag", default="", help="suffix for the result files (e.g. a focused rerun)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for torch and numba (default: all cores); 1 gives stable "
                         "figures on a machine shared with other jobs")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # inertia's kernel threads follow torch's count
    total = args.params or (8e6 if args.quick else 20e6)
    repeats = args.repeats or (3 if args.quick else 7)
    spb = 2 if args.quick else 3
    shapes = transformer_shapes(total)
    n = sum(math.prod(s) for s in shapes)
    names = args.only or list(INERTIA)
    threads = torch.get_num_threads()
    print(f"{n / 1e6:.1f}M float32 params in {len(shapes)} tensors; torch threads {threads}; "
          f"torch {torch.__version__}")

    bw = max(stream_bandwidth(n, repeats), stream_bandwidth(n, repeats))
    print(f"stream bandwidth (a += s*b, 12 B/elem): {bw / 1e9:.1f} GB/s")

    rows = []
    for name in names:
        peers = {**_torch_peers(name), **_third_party_peers(name)}
        if args.quick:
            peers.pop("torch for-loop", None)
        got = time_steps({"inertia": INERTIA[name], "no check": _without_check(INERTIA[name]),
                          **peers}, shapes, repeats, spb)
        t_inertia, t_nocheck = got.pop("inertia"), got.pop("no check")
        peer_times = got
        best = min(peer_times.items(), key=lambda kv: kv[1]) if peer_times else (None, None)
        roof = bw / BYTES[name]
        row = dict(name=name, bytes=BYTES[name], inertia=n / t_inertia, nocheck=n / t_nocheck,
                   peers={k: n / v for k, v in peer_times.items()}, best=best[0],
                   best_rate=(n / best[1]) if best[1] else None, roof=roof)
        rows.append(row)
        vs = f"{row['inertia'] / row['best_rate']:.2f}x {best[0]}" if best[1] else "no peer"
        print(f"{name:16s} {row['inertia'] / 1e6:8.0f} Mparam/s  (no check {row['nocheck'] / 1e6:6.0f})"
              f"  vs best peer {vs:28s}  roofline {row['inertia'] / roof:.2f}  "
              + "  ".join(f"{k} {v / 1e6:.0f}" for k, v in row["peers"].items()))


    check = nonfinite_check_cost(shapes, repeats)
    small = [(1000,)] * 100
    small_rows = {}
    for name in ("Adam", "SGD", "Lion", "LAMB"):
        if name not in names:
            continue
        small_rows[name] = time_steps({"inertia": INERTIA[name], **_torch_peers(name)},
                                      small, repeats, 50)
    loop = training_loop([nm for nm in names if nm in ("SGD", "Momentum", "Adam", "Lion", "LAMB")],
                         shapes, repeats)
    jit = jit_costs([nm for nm in names if nm in ("Momentum", "RMSprop", "Lion", "LAMB", "LARS",
                                                   "Adam bf16 state", "Adam")])
    _write(args, n, len(shapes), threads, bw, rows, check, small_rows, loop, jit)


def _write(args, n, count, threads, bw, rows, check, small_rows, loop, jit) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = ("step_throughput_quick" if args.quick else "step_throughput") + args.tag
    lines = [f"# Optimizer step throughput ({'quick' if args.quick else 'full'} run)", "",
             f"{n / 1e6:.1f}M float32 params in {count} transformer-shaped tensors; "
             f"{threads} torch threads on {os.cpu_count()} cores; torch {torch.__version__}. "
             f"Medians. Stream bandwidth (in-place `a += s*b`, 12 B/elem): **{bw / 1e9:.1f} GB/s**.",
             "", "Mparam/s (higher is better). *roofline* = bandwidth / bytes per param; "
             "*no check* = inertia without the base class's non-finite gradient check; "
             "*vs peer + check* = against the best peer's time plus the time of the same check "
             "(the guarantee inertia gives and peers do not; a sum of two measured times).", "",
             "| optimizer | B/param | inertia | no check | best peer | vs best peer | "
             "vs best peer (no check) | vs peer + check | vs roofline | vs roofline (no check) "
             "| all peers |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        best = f"{r['best']} {r['best_rate'] / 1e6:.0f}" if r["best"] else "-"
        ratio = f"{r['inertia'] / r['best_rate']:.2f}x" if r["best"] else "-"
        peers = ", ".join(f"{k} {v / 1e6:.0f}" for k, v in r["peers"].items())
        ratio2 = f"{r['nocheck'] / r['best_rate']:.2f}x" if r["best"] else "-"
        ratio3 = (f"{r['inertia'] * (1 / r['best_rate'] + check / n):.2f}x" if r["best"] else "-")
        lines.append(f"| {r['name']} | {r['bytes']} | {r['inertia'] / 1e6:.0f} | {r['nocheck'] / 1e6:.0f} "
                     f"| {best} | {ratio} | {ratio2} | {ratio3} | {r['inertia'] / r['roof']:.2f} "
                     f"| {r['nocheck'] / r['roof']:.2f} | {peers} |")
    lines += ["", f"Non-finite gradient check over all grads (one read of each, on the kernel threads), per step: "
              f"{check * 1e3:.2f} ms = {n / check / 1e6:.0f} Mparam/s.", ""]
    if small_rows:
        lines += ["## Small model: 100 tensors x 1k elements (launch-bound), microseconds per step", "",
                  "| optimizer | " + " | ".join(next(iter(small_rows.values()))) + " |",
                  "|---|" + "---:|" * len(next(iter(small_rows.values())))]
        for name, d in small_rows.items():
            lines.append(f"| {name} | " + " | ".join(f"{v * 1e6:.0f}" for v in d.values()) + " |")
        lines.append("")
    if loop:
        lines += ["## In a training loop: each step right after a torch operation, Mparam/s", "",
                  "Same problem; an untimed `a += s*b` over 4M floats before every step stands for "
                  "backward. torch's OpenMP threads spin for a while after it, on the cores "
                  "inertia's numba kernels need (torch's fused kernels run on those threads).", "",
                  "| optimizer | inertia (default) | best peer | vs best peer |", "|---|---:|---|---:|"]
        for name, d in loop.items():
            d = dict(d)
            mine = d.pop("inertia")
            best = min(d.items(), key=lambda kv: kv[1]) if d else None
            lines.append(f"| {name} | {n / mine / 1e6:.0f} | "
                         + (f"{best[0]} {n / best[1] / 1e6:.0f} | {best[1] / mine:.2f}x |"
                            if best else "- | - |"))
        lines.append("")
    if jit:
        lines += ["## One-time cost of the first step in a fresh process (seconds)", "",
                  "cold = empty numba cache (compiles); warm = cache filled by the cold run.", "",
                  "| optimizer | cold | warm |", "|---|---:|---:|"]
        lines += [f"| {k} | {c:.2f} | {w:.2f} |" for k, (c, w) in jit.items()]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    _chart(rows, RESULTS / f"{stem}.png")
    print("\n".join(lines))


def _chart(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    x = range(len(rows))
    w = 0.2
    ax.bar([i - 1.5 * w for i in x], [r["inertia"] / 1e6 for r in rows], w, label="inertia (default)")
    ax.bar([i - 0.5 * w for i in x], [r["nocheck"] / 1e6 for r in rows], w,
           label="inertia without the base class's non-finite check")
    ax.bar([i + 0.5 * w for i in x], [(r["best_rate"] or 0) / 1e6 for r in rows], w, label="best peer")
    ax.bar([i + 1.5 * w for i in x], [r["roof"] / 1e6 for r in rows], w, label="roofline", alpha=0.5)
    ax.set_xticks(list(x), [r["name"] for r in rows], rotation=20)
    ax.set_ylabel("Mparam/s")
    ax.set_title("Optimizer step throughput, float32, CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

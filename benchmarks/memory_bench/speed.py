"""``speed``: the optimizer step alone on ~12.6M transformer-shaped float32 parameters,
the contenders interleaved in rounds, against torch fused AdamW (wall and CPU time)."""
from __future__ import annotations

import math
import statistics
import time
import warnings

import torch

import inertia

from .problems import POLICIES, make_optimizer, peers, transformer_shapes
from .report import header, load, write


def speed_section(args) -> None:
    torch.set_num_threads(args.threads)
    shapes = transformer_shapes(12_000_000)
    n = sum(math.prod(s) for s in shapes)
    names = list(POLICIES)[:4] + ["inertia 8-bit state, unchecked"] + list(peers())
    contenders, skipped = {}, {}
    for name in names:
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.02) for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        try:
            if name == "inertia 8-bit state, unchecked":
                opt = inertia.AdamW(params, lr=1e-3, state_dtype="8bit", nonfinite=None)
            else:
                opt = make_optimizer(name, params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(3):
                    opt.step()
        except Exception as error:  # noqa: BLE001
            skipped[name] = f"{type(error).__name__}: {str(error)[:150]}"
            continue
        contenders[name] = opt
    samples = {name: [] for name in contenders}
    cpu_samples = {name: [] for name in contenders}
    before = load()
    order = list(contenders)
    for r in range(args.rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:
            opt = contenders[name]
            steps, cpu = [], []
            t_end = time.perf_counter() + args.block
            while time.perf_counter() < t_end or len(steps) < 3:
                t0, c0 = time.perf_counter(), time.thread_time()
                opt.step()
                steps.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
            samples[name].append(statistics.median(steps))
            cpu_samples[name].append(statistics.median(cpu))
    after = load()
    base = "torch AdamW (float32 state)"
    lines = header("Optimizer step time: compact state against torch fused AdamW",
                   f"python benchmarks/memory.py speed --threads {args.threads} --rounds {args.rounds}")
    lines += [f"AdamW step on {n / 1e6:.1f}M float32 parameters in {len(shapes)} transformer-shaped "
              f"tensors (width 512), {args.threads} torch thread(s), {args.rounds} interleaved "
              f"rounds of about {args.block} s per contender; load average before {before}, "
              f"after {after}. *ms/step*: median over rounds of each round's median step, with "
              "the interquartile range; *CPU ms*: the same for the thread's CPU time (what the "
              "step costs when the shared cores are busy); *vs torch fused*: the ratio of "
              "medians (higher is faster).", "",
              "| optimizer | ms/step | CPU ms/step | vs torch fused (wall) | vs torch fused (CPU) |",
              "|---|---:|---:|---:|---:|"]

    def q(xs):
        xs = sorted(xs)
        k = len(xs)
        return statistics.median(xs), xs[k // 4], xs[(3 * k) // 4]

    data = {"params": n, "threads": args.threads, "samples": samples, "cpu": cpu_samples,
            "skipped": skipped, "load": [before, after]}
    for name in contenders:
        m, lo, hi = q(samples[name])
        c, clo, chi = q(cpu_samples[name])
        vs = statistics.median(samples[base]) / m
        vc = statistics.median(cpu_samples[base]) / c
        lines.append(f"| {name} | {m * 1e3:.2f} ({lo * 1e3:.2f}-{hi * 1e3:.2f}) | "
                     f"{c * 1e3:.2f} ({clo * 1e3:.2f}-{chi * 1e3:.2f}) | {vs:.2f}x | {vc:.2f}x |")
    for name, why in skipped.items():
        lines.append(f"| {name} | not run: {why} | | | |")
    suffix = "" if args.threads == 1 else f"_{args.threads}threads"
    write("speed" + suffix, lines, data)

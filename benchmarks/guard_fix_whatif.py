"""What the proposed fix of the guard's exponent reduction would buy, measured in one process.

    python benchmarks/guard_fix_whatif.py [--threads 1] [--params 8e6] [--rounds 9]

The CPU kernels (``inertia.backends.numba_cpu.source``) start the non-finite test of a
gradient block with ``worst = np.uint32(0x7F800000) * 0``. numba types a ``uint32 * int``
product as ``int64`` (``uint64 * int`` as ``float64``), so the running maximum
``worst = max(worst, gb[i] & marker)`` is a 64-bit reduction over widened integers, which
LLVM does not vectorise: the guarded apply pass, the reduce pass of LAMB/LARS and the
clipping norm all crawl through the gradient. ``worst = np.uint32(0)`` (the storage's own
unsigned type) keeps the reduction in 32 bits, and it vectorises.

This script builds each "fixed" contender with that one-line change patched into the
generated source (so its kernels differ from the others' and are compiled apart), and
times it against the unchanged default, the unchecked step and torch's fused step in the
same interleaved rounds (the harness of ``step_throughput.py``). It changes nothing on disk
but the kernel cache, and writes what it prints to ``results/guard_fix_whatif.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from pathlib import Path

import torch

import inertia

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import RESULTS  # noqa: E402  (the harness of step_throughput.py)
from throughput.problems import INERTIA, optimizer, transformer_shapes  # noqa: E402
from throughput.timing import Builder, interleaved, inverse, load_text, machine  # noqa: E402

_WORST = re.compile(r"worst = np\.(uint\d+)\(0x[0-9A-F]+\) \* 0")


@contextlib.contextmanager
def fixed_guard():
    """Generate kernels with ``worst = np.uintN(0)`` while the block runs."""
    from inertia.backends import numba_cpu

    original = numba_cpu.source

    def source(*args, **kwargs):
        return _WORST.sub(r"worst = np.\1(0)", original(*args, **kwargs))

    numba_cpu.source = source
    try:
        yield
    finally:
        numba_cpu.source = original


def with_fix(builder: Builder) -> Builder:
    def build():
        with fixed_guard():
            step = builder()
            step()  # plans and kernels are made at the first step
        return step
    return build


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--params", type=float, default=8e6)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--block", type=float, default=0.05)
    ap.add_argument("--only", nargs="*", default=["SGD", "Adam", "LAMB", "LARS"])
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = transformer_shapes(args.params)
    n = sum(torch.Size(s).numel() for s in shapes)
    lines = ["# The guard's exponent reduction: as it is and fixed, in the same rounds", "",
             f"`python benchmarks/guard_fix_whatif.py {' '.join(argv or sys.argv[1:])}`: "
             f"{n / 1e6:.1f}M float32 params (transformer-shaped) and 100 x 1k; "
             f"{torch.get_num_threads()} torch thread(s), {machine()}, torch "
             f"{torch.__version__}; {args.rounds} interleaved rounds, medians. *fixed* = "
             "kernels generated with `worst = np.uint32(0)` (see the script's docstring). "
             "Started " + time.strftime("%Y-%m-%d %H:%M") + f", load {load_text()}.", "",
             "| problem | optimizer | ms per step | guard cost | torch fused / inertia |",
             "|---|---|---|---|---|"]
    print(lines[2], flush=True)
    o = torch.optim
    fused = {"SGD": lambda ps: o.SGD(ps, lr=1e-3, momentum=0.9, fused=True),
             "Adam": lambda ps: o.Adam(ps, lr=1e-3, fused=True),
             "AdamW": lambda ps: o.AdamW(ps, lr=1e-3, fused=True)}

    def clipped(ps):
        opt = o.AdamW(ps, lr=1e-3, fused=True)
        step = opt.step
        opt.step = lambda: (torch.nn.utils.clip_grad_norm_(ps, 1.0, foreach=True), step())
        return opt

    cases = {name: (INERTIA[name], fused.get(name)) for name in args.only}
    cases["AdamW max_grad_norm=1.0"] = (
        lambda ps, **k: inertia.AdamW(ps, lr=1e-3, max_grad_norm=1.0, **k), clipped)
    for label, problem in (("large", shapes), ("small (100 x 1k)", [(1000,)] * 100)):
        for name, (make, theirs) in cases.items():
            default = optimizer(make, problem, "cpu")
            unchecked = optimizer(lambda ps, m=make: m(ps, nonfinite=None), problem,
                                        "cpu")
            builders = {"default": default, "default, fixed": with_fix(default),
                        "unchecked": unchecked, "unchecked, fixed": with_fix(unchecked)}
            if theirs is not None:
                builders["torch fused"] = optimizer(theirs, problem, "cpu")
            t = interleaved(builders, args.rounds, args.block, "cpu")
            cells = "; ".join(f"{k} {t.median(k) * 1e3:.3f}" for k in t.samples)
            guard = (f"as is {_x(t.ratio('default', 'unchecked'))}, fixed "
                     f"{_x(t.ratio('default, fixed', 'unchecked, fixed'))}")
            speed = "-"
            if "torch fused" in t.samples:
                speed = ", ".join(f"{k} {_x(inverse(t.ratio(k, 'torch fused')))}"
                                  for k in ("default", "default, fixed"))
            lines.append(f"| {label} | {name} | {cells} | {guard} | {speed} |")
            print(lines[-1] + f" (load {os.getloadavg()[0]:.2f})", flush=True)
    lines += ["", "Ratios: ratio of medians (interquartile range of the per-round ratios). "
              f"Finished {time.strftime('%Y-%m-%d %H:%M')}, load {load_text()}."]
    (RESULTS / "guard_fix_whatif.md").write_text("\n".join(lines) + "\n")


def _x(r) -> str:
    return f"{r[0]:.2f}x ({r[1]:.2f}-{r[2]:.2f})"


if __name__ == "__main__":
    main()

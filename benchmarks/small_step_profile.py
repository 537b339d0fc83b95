"""Where the time of a small-model step goes: 100 tensors of 1k float32 elements.

    python benchmarks/small_step_profile.py [--threads 1] [--rounds 15] [--profile]

A step of a small model is all fixed costs. This script takes inertia's default step apart,
layer by layer, and times each layer against torch's fused step in interleaved rounds
(each round times every contender once, in a rotated order; medians, interquartile range):

* ``inertia step``: ``opt.step()``, the default (``nonfinite="guard"``), and unchecked;
* ``operator``: ``torch.ops.inertia.fused_apply`` called directly with the lists the
  step's plan holds (op dispatch, the C++ runner's checks, address and chunk tables, the
  kernel, the step counters), i.e. the step without the engine's Python;
* ``check``: ``torch.ops.inertia.fused_check`` with the same lists (dispatch + checks),
  called through the overload packet as the engine does, and through ``.default``;
* ``kernel``: the numba kernel called from Python on a prepared argument array (a few
  microseconds of numba dispatch + the sweep itself).

So: engine Python = step - operator; runner bookkeeping = operator - kernel. It reaches
into the engine's private state (``opt._plans``) to get the operator's arguments: a
profiling tool, not an API. ``--profile`` adds cProfile's view of the engine's Python.
What it prints is also written to ``results/small_step_profile.md``.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import RESULTS  # noqa: E402  (the same problems and timing harness)
from throughput.problems import INERTIA, make_params, optimizer  # noqa: E402
from throughput.timing import interleaved, load_text, machine, quartiles  # noqa: E402

SHAPES = [(1000,)] * 100


def _plan_args(opt):
    """The operator arguments of the optimizer's only kernel call, as the engine makes them."""
    (plan,) = opt._plans.values()
    (b,) = plan.buckets
    group = opt.param_groups[0]
    grads = [p.grad for p in plan.params]
    gmul = plan.constant(b.device, group)
    return plan, b, grads, gmul


def inertia_parts(name: str, nonfinite) -> dict:
    """Builders for the layers of inertia's step (see the module docstring)."""
    from inertia.backends import numba_cpu
    from inertia.backends.cpu import chunk_table
    from inertia.backends.ops import KERNELS

    def made():
        params = make_params(SHAPES, "cpu")
        opt = INERTIA[name](params, nonfinite=nonfinite)
        opt.step()
        return opt

    def operator():
        opt = made()
        plan, b, grads, gmul = _plan_args(opt)
        op = torch.ops.inertia.fused_apply
        return lambda: op(b.apply, plan.params, grads, plan.states, plan.steps, b.hyper,
                          None, None, gmul, None, b.bad, b.met)

    def check(op_name: str = "packet"):
        def build():
            opt = made()
            plan, b, grads, _ = _plan_args(opt)
            op = torch.ops.inertia.fused_check
            op = op.default if op_name == "default" else op
            return lambda: op(b.apply, plan.params, grads, plan.states, plan.steps)
        return build

    def kernel():
        opt = made()
        plan, b, grads, gmul = _plan_args(opt)
        k = KERNELS[b.apply]
        K = len(k.slots)
        keep = {}
        table = np.array([[p.data_ptr(), g.data_ptr(), s.data_ptr()]
                          + [plan.states[t * K + j].data_ptr() for j in range(K)]
                          for t, (p, g, s) in enumerate(zip(plan.params, grads, plan.steps))],
                         dtype=np.int64)
        sizes = np.array([p.numel() for p in plan.params], dtype=np.int64)
        chunks = chunk_table(tuple(sizes.tolist()))
        out = np.zeros(len(chunks), dtype=np.int64)
        gm = np.array([1.0])
        a = np.zeros(len(numba_cpu.ARGS), dtype=np.int64)
        A = numba_cpu.A
        a[A["tensors"]], a[A["table"]], a[A["sizes"]] = len(sizes), table.ctypes.data, \
            sizes.ctypes.data
        a[A["chunks"]], a[A["n_chunks"]] = chunks.ctypes.data, len(chunks)
        a[A["hyper"]], a[A["out"]], a[A["gmul"]] = b.hyper.data_ptr(), out.ctypes.data, \
            gm.ctypes.data
        keep.update(table=table, sizes=sizes, chunks=chunks, out=out, gm=gm, opt=opt)
        run, n = k.run, len(chunks)

        def sweep():  # the buffers in ``keep`` stay alive as long as this closure
            run(a, 0, n)
            return keep and None
        return sweep

    label = "default" if nonfinite == "guard" else "unchecked"
    return {f"inertia step ({label})": lambda: made().step,
            f"operator ({label})": operator,
            f"check ({label})": check(),
            f"check, .default ({label})": check("default"),
            f"kernel ({label})": kernel}


def profile(name: str, steps: int = 3000) -> str:
    params = make_params(SHAPES, "cpu")
    opt = INERTIA[name](params)
    for _ in range(10):
        opt.step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        opt.step()
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(18)
    return s.getvalue()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--block", type=float, default=0.02)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from inertia.backends import ops

    out: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        out.append(text)

    say(f"`python benchmarks/small_step_profile.py {' '.join(argv or sys.argv[1:])}`: torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), runner "
        f"{ops.cpu_implementation()}, {machine()}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"load {load_text()}")
    o = torch.optim
    torch_make = {"SGD": lambda ps: o.SGD(ps, lr=1e-3, momentum=0.9, fused=True),
                  "Adam": lambda ps: o.Adam(ps, lr=1e-3, fused=True)}
    for name in ("SGD", "Adam"):
        builders = {"torch fused step": optimizer(torch_make[name], SHAPES, "cpu"),
                    **inertia_parts(name, "guard"), **inertia_parts(name, None)}
        t = interleaved(builders, args.rounds, args.block, "cpu")
        say(f"\n{name}: microseconds per step, median (interquartile range), "
            f"{args.rounds} interleaved rounds; load after {load_text()}")
        base = t.median("torch fused step")
        for k in t.samples:
            q1, q3 = quartiles(t.samples[k])
            say(f"  {k:28s} {t.median(k) * 1e6:8.1f} ({q1 * 1e6:.1f}-{q3 * 1e6:.1f})"
                f"  {t.median(k) / base:5.2f}x torch fused")
        for label in ("default", "unchecked"):
            step, op = t.median(f"inertia step ({label})"), t.median(f"operator ({label})")
            kern = t.median(f"kernel ({label})")
            say(f"  {label}: engine Python {1e6 * (step - op):.1f} us, runner bookkeeping "
                f"and dispatch {1e6 * (op - kern):.1f} us, kernel {1e6 * kern:.1f} us")
        if args.profile:
            say(profile(name))
    text = "# Where a small-model step's time goes\n\n```\n" + "\n".join(out) + "\n```\n"
    (RESULTS / "small_step_profile.md").write_text(text)


if __name__ == "__main__":
    main()

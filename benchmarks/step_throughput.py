"""Optimizer step throughput: inertia's default step against its peers and the memory roofline.

    python benchmarks/step_throughput.py [--quick] [--device cpu|cuda] [--params N]
                                         [--rounds R] [--only NAME ...] [--threads T]
                                         [--sections SECTION ...] [--modern-params N]
                                         [--modern-width W] [--render JSON]

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
* **modern**: the newer optimizers against the libraries they replace, in float32 and in
  bfloat16 parameters: Muon (on a transformer's 2-D matrices) against ``torch.optim.Muon``
  and heavyball's; Adafactor against torch's; AdamWScheduleFree and SGDScheduleFree
  against the ``schedulefree`` package (and heavyball's ``SFAdamW``); NAdam, RAdam,
  Adamax, Adadelta against torch's foreach and for-loop steps; and the bytes of optimizer
  state per parameter. Its own problem: a transformer of width 256 with about 2M
  parameters (``--modern-params``, ``--modern-width``; quick: 0.2M of width 128), 7 rounds
  of 0.3 s blocks (quick: 3 of 0.1 s) unless ``--rounds`` or ``--block`` is given, one
  torch thread unless ``--threads`` is given. Targets: 2x the best peer for Muon,
  Adafactor and Schedule-Free, 1.5x for the others. CPU only: skipped with ``--device
  cuda``.
* **threads**: on the CPU the main table and the loop again, in a child process with
  ``INERTIA_NATIVE=0`` (the Python-threads runner instead of the C++ one).

``--sections`` picks sections (default: all). ``--only`` names optimizers of the main
sections (``SGD``, ``Adam``, ...) and of the modern one (``Muon``, ``Adafactor``, ...),
mixed as one likes; a section none of whose optimizers is named is skipped (``clip``
counts as one of the main sections), and an unknown name is an error listing the valid ones.

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

Writes ``benchmarks/results/step_throughput[_cuda][_quick][TAG].md`` with a PNG chart and
the raw samples as JSON; ``--render JSON`` writes the Markdown and the chart of a finished
run again, next to its JSON. This file is the command line; the pieces (timing method,
problems, peers, sections, report) are the package ``benchmarks/throughput/``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import RESULTS, modern  # noqa: E402
from throughput.problems import INERTIA, transformer_shapes  # noqa: E402
from throughput.report import chart, from_json, render, to_json, write_markdown  # noqa: E402
from throughput.scenarios import (  # noqa: E402
    clipping, first_step, main_table, small_model, threads_runner, training_loop)
from throughput.timing import load_text, machine, section, versions  # noqa: E402


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
    modern: modern.ModernConfig
    keep_peers: dict[str, list[str]] | None = None


SECTIONS = ("main", "small", "loop", "clip", "first", "modern", "threads")
#: The sections that time the main optimizers (``INERTIA``), skipped when ``--only`` names
#: none of them; "modern" is skipped when it names none of ``MODERN``.
MAIN_SECTIONS = ("main", "small", "loop", "clip", "first", "threads")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="about 8M params, 5 rounds")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--params", type=float, default=None,
                    help="parameters of the main table (default: 12e6 CPU, 100e6 CUDA; "
                         "quick: 8e6)")
    ap.add_argument("--clip-params", type=float, default=8e6)
    ap.add_argument("--rounds", type=int, default=None,
                    help="default 15 (quick: 5); modern: 7 (quick: 3)")
    ap.add_argument("--block", type=float, default=None,
                    help="seconds per timed block (default 0.05; quick 0.03; modern: 0.3, "
                         "quick 0.1)")
    ap.add_argument("--only", nargs="*", default=None,
                    help=f"optimizer names to run: of the main sections {list(INERTIA)}, of "
                         f"the modern one {list(modern.MODERN)}")
    ap.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's, all cores; modern: 1)")
    ap.add_argument("--modern-params", type=float, default=None,
                    help="parameters of the modern section's transformer (default 2e6; "
                         "quick: 2e5)")
    ap.add_argument("--modern-width", type=int, default=None,
                    help="width of the modern section's transformer (default 256; quick: 128)")
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

    unknown = [x for x in args.only or () if x not in INERTIA and x not in modern.MODERN]
    if unknown:
        sys.exit(f"unknown optimizer(s) {unknown}; choose from {list(INERTIA)} (main "
                 f"sections) or {list(modern.MODERN)} (modern)")
    names = [x for x in args.only if x in INERTIA] if args.only else list(INERTIA)
    modern_names = ([x for x in args.only if x in modern.MODERN] if args.only
                    else list(modern.MODERN))
    sections = [s for s in args.sections
                if not ((s in MAIN_SECTIONS and not names)
                        or (s == "modern" and not modern_names))]
    if set(args.sections) - set(sections):
        print("--only names none of the optimizers of the section(s) "
              f"{[s for s in args.sections if s not in sections]}: skipped", flush=True)
    if not sections:
        sys.exit("nothing to run")
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
    cfg = Config(device=args.device, quick=args.quick, names=names,
                 shapes=shapes, n=sum(math.prod(s) for s in shapes), width=width,
                 rounds=args.rounds or (5 if args.quick else 15),
                 block=args.block or (0.03 if args.quick else 0.05),
                 clip_params=args.clip_params, cold_native=not args.quick,
                 modern=modern.ModernConfig.make(
                     modern_names, args.quick, args.rounds, args.block, args.modern_params,
                     args.modern_width, args.threads),
                 keep_peers=json.loads(args.keep_peers) if args.keep_peers else None)
    from inertia.backends import ops

    runner = ops.cpu_implementation() if not cuda else "triton (CUDA)"
    report: dict[str, Any] = {"config": {
        "device": args.device, "quick": args.quick, "n": cfg.n, "tensors": len(shapes),
        "rounds": cfg.rounds, "block": cfg.block, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "runner": runner, "machine": machine()
        + (f", {torch.cuda.get_device_name()}" if cuda else ""), "peers": versions(),
        "started": time.strftime("%Y-%m-%d %H:%M"), "load_start": load_text(),
        "command": "python benchmarks/step_throughput.py " + " ".join(
            '--note "..."' if a == args.note and i and argv[i - 1] == "--note" else a
            for i, a in enumerate(argv) if a != "--note"),
        "cold_native": cfg.cold_native, "names": cfg.names, "note": args.note}}
    print(f"{cfg.n / 1e6:.1f}M params in {len(shapes)} tensors on {args.device}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; runner {runner}", flush=True)

    if "main" in sections:
        with section(report, "main"):
            report["main"] = main_table(cfg)
    if "small" in sections:
        with section(report, "small"):
            report["small"] = small_model(cfg)
    if "loop" in sections:
        with section(report, "loop"):
            report["loop"] = training_loop(cfg)
    if "clip" in sections:
        with section(report, "clip"):
            report["clip"] = clipping(cfg)
    if "first" in sections:
        with section(report, "first step"):
            report["first_step"] = first_step(cfg)
    if "modern" in sections and cuda:
        print("modern: CPU only, skipped with --device cuda", flush=True)
    elif "modern" in sections:
        with section(report, "modern"):
            report["modern"] = modern.run(cfg.modern)
    if "threads" in sections and not cuda and args.json is None:
        with section(report, "threads"):
            child = [a for a in argv if a not in ("--sections", *SECTIONS)]
            best = {r["name"]: [r["best"]] for r in report["main"]} if "main" in report \
                else None
            got = threads_runner(child, best)
            report["threads"] = from_json(got) if got else None
    report["finished"] = time.strftime("%Y-%m-%d %H:%M")
    report["load_end"] = load_text()

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


if __name__ == "__main__":
    main()

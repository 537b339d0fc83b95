"""Compact optimizer storage, measured: bytes, speed, quality, and stochastic rounding.

    python benchmarks/memory.py codes      # which 8-bit code (update error on real gradients)
    python benchmarks/memory.py bytes      # state bytes per parameter, training-run memory
    python benchmarks/memory.py speed      # step time against torch fused AdamW and peers
    python benchmarks/memory.py quality    # held-out quality, each policy, 3 seeds, tuned lr
    python benchmarks/memory.py rounding   # pure-bfloat16 training: nearest vs stochastic
    python benchmarks/memory.py all

Each section writes ``benchmarks/results/memory_<section>.md`` (and ``.json``, ``.png``
where there is a figure); nothing here is asserted, every number is measured in the run
that writes it, with the machine, versions and load average next to it.

* **codes**: the error of Adam's step when its moments are stored with an 8-bit code,
  against the same moments in float32 fed the same gradients (300 steps of real training
  of ``mnist-mlp`` and ``mnist-cnn``, every tensor with rows of 16+ elements quantised):
  the RMS over the quantised tensors of ``|u_8bit - u_f32| / |u_f32|`` per step, and the
  share of coordinates (with ``|u| > 0.01``) whose step is off by more than half. The
  contenders: inertia's codes (``s1e3m4`` signed / ``e4m4`` with a floor for second
  moments), other splits of the bits, bitsandbytes' dynamic map (blockwise, nearest: what
  its and torchao's 8-bit optimizers use), bfloat16.
* **bytes**: optimizer-state bytes per parameter for each policy (sums of the state
  tensors' sizes, after a step), on three models: MiniLM-L6 fully fine-tuned (22.7M), the
  lab's ``mnist-cnn`` (its tensors are below the 4,096-element threshold: listed with and
  without it) and transformer-shaped tensors; and the peak resident memory of a training
  run (MiniLM-L6, 10 steps) in a fresh process per policy.
* **speed**: the optimizer step alone on ~12.6M transformer-shaped float32 parameters,
  contenders interleaved in rounds (one step timed at a time, each round's sample the
  median step of its block, rounds rotated); the median over rounds with its interquartile
  range. ``--threads`` (default 1: on a shared machine a second thread measures the
  scheduler).
* **quality**: the lab's ``mnist-cnn`` and ``reviews`` with Adam, each state policy, the lr
  chosen per policy on validation (the lab's :func:`inertia.lab.tuning.choose`) from the
  workload's rate times 1/3, 1, 3, seeds 0-2; the test metric at the chosen lr.
* **rounding**: the lab's ``movielens`` (matrix factorisation, a regression, dense
  gradients) and ``mnist-mlp``, the whole model in bfloat16 (weights and activations),
  Adam at a slow and a usual rate, with the update rounded to nearest or stochastically,
  against the float32 model: validation curves (plot) and the final test metric.

This file is the command line; the pieces (the measured problems and policies, one module
per section, the results' header and writing) are the package ``benchmarks/memory_bench/``.
``memory.py _peak NAME`` is the child process of the ``bytes`` section's peak-memory table
(one per optimizer).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from memory_bench.bytes import bytes_section, peak  # noqa: E402
from memory_bench.codes import codes_section  # noqa: E402
from memory_bench.quality import quality_section  # noqa: E402
from memory_bench.rounding import rounding_section  # noqa: E402
from memory_bench.speed import speed_section  # noqa: E402


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_peak":
        return peak(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=["codes", "bytes", "speed", "quality", "rounding", "all"])
    parser.add_argument("--steps", type=int, default=300, help="codes: training steps")
    parser.add_argument("--threads", type=int, default=1, help="speed: torch threads")
    parser.add_argument("--rounds", type=int, default=15, help="speed: interleaved rounds")
    parser.add_argument("--block", type=float, default=0.3, help="speed: seconds per sample")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workloads", default="mnist-cnn,reviews", help="quality")
    parser.add_argument("--quality-steps", type=int, default=None,
                        help="quality: step budget (default: the workload's; a smoke test)")
    parser.add_argument("--untuned", default="",
                        help="quality: workloads run at their own Adam rate only, float32 "
                             "against 8-bit state (reviews: about 6 minutes a run here)")
    parser.add_argument("--lean", default="",
                        help="quality: workloads run for float32 and 8-bit state only (tuned)")
    parser.add_argument("--jobs", type=int, default=1, help="quality: runs in parallel")
    parser.add_argument("--work", default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "inertia-memory"),
                        help="quality: where the lab's run database goes")
    args = parser.parse_args()
    sections = {"codes": codes_section, "bytes": bytes_section, "speed": speed_section,
                "quality": quality_section, "rounding": rounding_section}
    for name, fn in sections.items():
        if args.section in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()

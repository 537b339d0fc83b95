"""Optimizer step time under FSDP2, inertia against torch.optim, and collectives per step.

    python benchmarks/fsdp2_step.py [--params 8e6] [--world 2] [--steps 20]

Spawns ``--world`` CPU processes (gloo), shards a transformer-shaped stack of linear
layers with ``fully_shard``, and times ``optimizer.step()`` alone (after backward, between
barriers, median over steps) for inertia's AdamW and LAMB and for
``torch.optim.AdamW(foreach=True)`` under the same sharding; it also counts the
``all_reduce`` calls each step makes. Writes ``benchmarks/results/fsdp2_step.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _model(params: float) -> torch.nn.Module:
    width = int((params / 4) ** 0.5)  # four d x d linear layers
    layers = []
    for _ in range(4):
        layers += [torch.nn.Linear(width, width), torch.nn.GELU()]
    torch.manual_seed(0)
    return torch.nn.Sequential(*layers)


def _contenders():
    import inertia

    return {
        "inertia AdamW": lambda ps: inertia.AdamW(ps, lr=1e-3),
        "torch AdamW (foreach)": lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True),
        "inertia LAMB": lambda ps: inertia.LAMB(ps, lr=1e-3, weight_decay=0.01),
        "inertia AdamW + max_grad_norm": lambda ps: inertia.AdamW(ps, lr=1e-3, max_grad_norm=1.0),
    }


def _worker(rank: int, world: int, port: int, params: float, steps: int, out: str) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
    mesh = init_device_mesh("cpu", (world,))
    results = {}
    for name, make in _contenders().items():
        model = _model(params)
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        opt = make(model.parameters())
        width = model[0].in_features
        x = torch.randn(8, width)
        times, reduces = [], []
        original = dist.all_reduce

        def counting(*a, **k):
            reduces[-1] += 1
            return original(*a, **k)

        for step in range(steps + 2):
            opt.zero_grad()
            model(x).square().mean().backward()
            dist.barrier()
            reduces.append(0)
            dist.all_reduce = counting
            t0 = time.perf_counter()
            opt.step()
            elapsed = time.perf_counter() - t0
            dist.all_reduce = original
            dist.barrier()
            if step >= 2:  # after plans, kernels and state exist
                times.append(elapsed)
        results[name] = {"median_ms": 1e3 * statistics.median(times),
                         "min_ms": 1e3 * min(times), "max_ms": 1e3 * max(times),
                         "all_reduces": reduces[-1],
                         "local_params": sum(p.to_local().numel() for p in model.parameters())}
    if rank == 0:
        Path(out).write_text(json.dumps(results))
    dist.destroy_process_group()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=float, default=8e6)
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tempfile.mktemp(suffix=".json")
    torch.multiprocessing.spawn(_worker, args=(args.world, port, args.params, args.steps, out),
                                nprocs=args.world)
    results = json.loads(Path(out).read_text())
    load = os.getloadavg()
    lines = ["# Optimizer step under FSDP2", "",
             f"`python benchmarks/fsdp2_step.py --params {args.params:g} --world {args.world} "
             f"--steps {args.steps}`: {args.world} CPU processes (gloo), {args.params / 1e6:.1f}M "
             f"float32 parameters sharded with `fully_shard`, `optimizer.step()` timed alone "
             f"between barriers (median and range over {args.steps} steps, rank 0). Load average "
             f"at the end: {load[0]:.2f}. torch {torch.__version__}.", "",
             "| optimizer | step (ms), median [min-max] | all_reduce calls per step | "
             "parameters on rank 0 |", "|---|---:|---:|---:|"]
    base = results["torch AdamW (foreach)"]["median_ms"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['median_ms']:.2f} [{r['min_ms']:.2f}-{r['max_ms']:.2f}] "
                     f"| {r['all_reduces']} | {r['local_params']:,} |")
    lines += ["", f"inertia AdamW / torch AdamW (foreach) speed: "
              f"{base / results['inertia AdamW']['median_ms']:.2f}x."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fsdp2_step.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

"""The two-process side of ``tests/test_distributed_new_optimizers.py`` (gloo, CPU).

Each optimizer of the modern-optimizers issue trains the small MLP of
``distributed_worker.py`` for a few steps under FSDP2 (every parameter a sharded
``DTensor``), the global batch split between the ranks, and records the full parameters,
with the same run in one process. Elementwise rules (NAdam, RAdam, Adamax, Adadelta,
Schedule-Free) step the local shards; Muon gathers each matrix to orthogonalise it;
Adafactor's row and column statistics are reductions over the sharded tensors.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import torch
import torch.distributed as dist

import distributed_worker as W

#: (scenario name, registry name, constructor options). Muon iterates in float32 here:
#: FSDP's reduce-scattered gradients differ from one process's in their last bits, which
#: bfloat16 rounding would turn into differences of a bfloat16 ulp.
SCENARIOS = [("nadam", "nadam", dict(lr=0.01, weight_decay=0.01)),
             ("radam", "radam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.01)),
             ("adamax", "adamax", dict(lr=0.01)),
             ("adadelta", "adadelta", dict(lr=1.0)),
             ("adamw-schedulefree", "adamw-schedulefree", dict(lr=0.01, warmup_steps=2)),
             ("sgd-schedulefree", "sgd-schedulefree", dict(lr=0.05)),
             ("muon", "muon", dict(lr=0.02, ns_dtype=torch.float32)),
             ("adafactor", "adafactor", dict(lr=0.01, weight_decay=0.01))]


def _optimizer(name, params, options):
    from inertia.optim.registry import REGISTRY

    return REGISTRY[name].make(params, **options)


def _reference(name, options):
    model = W._model()
    opt = _optimizer(name, model.parameters(), options)
    W._train(model, opt, W._batches(), 0, 1)
    if hasattr(opt, "eval"):
        opt.eval()
    return W._full(model)


def scenario(name, options, rank, world):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = W._model()
    mesh = init_device_mesh("cpu", (world,))
    for m in model:
        if isinstance(m, torch.nn.Linear):
            fully_shard(m, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = _optimizer(name, model.parameters(), options)
    W._train(model, opt, W._batches(), rank, world)
    if hasattr(opt, "eval"):
        opt.eval()  # Schedule-Free: the average x, on the shards
    state = {k: v for p in model.parameters() for k, v in opt.state[p].items()}
    return {"params": W._full(model), "reference": _reference(name, options),
            "sharded_state": sorted(k for k, v in state.items()
                                    if hasattr(v, "placements"))}


def main(rank, world, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    import warnings

    warnings.simplefilter("ignore")
    results = {}
    for key, name, options in SCENARIOS:
        try:
            results[key] = scenario(name, options, rank, world)
        except Exception:  # noqa: BLE001 - reported to the test, which fails with it
            results[key] = {"error": traceback.format_exc()}
        dist.barrier()
    dist.destroy_process_group()
    return results


if __name__ == "__main__":
    rank, world, port, out_dir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    out = main(rank, world, port)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)

"""The two-process side of ``tests/test_distributed.py`` (gloo, CPU).

Each scenario trains a small MLP for a few steps under FSDP2, DDP or ZeRO with the global
batch split between the ranks, and records the full parameters at the end, together with
the same run in one process (every rank computes it: same seeds, same global batch). The
pytest side compares them. Run by ``torch.multiprocessing.spawn`` once per test module.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import torch
import torch.distributed as dist

STEPS = 6
BATCH = 16


def _model(widths=(8, 32, 8, 3)):
    """Linear layers of these widths with tanh between them, the same weights every call."""
    torch.manual_seed(0)
    layers: list = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers[:-1])


def _batches(inputs=8, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(BATCH, inputs, generator=gen), torch.randn(BATCH, 3, generator=gen))
            for _ in range(STEPS)]


def _optimizer(name, params, clip):
    from inertia.optim.registry import REGISTRY

    info = REGISTRY[name]
    kwargs = dict(info.configs["default"])
    if clip:
        kwargs["max_grad_norm"] = 0.05  # small enough to clip every step
    return info.cls(params, **kwargs)


def _train(model, opt, batches, rank, world, counts=None):
    """Train on each rank's half of every global batch; with ``counts``, record how many
    all_reduce calls each optimizer step makes."""
    for x, y in batches:
        lo, hi = rank * BATCH // world, (rank + 1) * BATCH // world
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x[lo:hi]), y[lo:hi]).backward()
        if counts is None:
            opt.step()
        else:
            counts.append(_count_all_reduces(opt.step))


def _full(model):
    out = []
    for p in model.parameters():
        p = p.full_tensor() if hasattr(p, "full_tensor") else p
        out.append(p.detach().flatten().tolist())
    return out


def _reference(name, clip):
    model = _model()
    opt = _optimizer(name, model.parameters(), clip)
    _train(model, opt, _batches(), 0, 1)
    return _full(model)


def _count_all_reduces(step_fn):
    calls = []
    original = dist.all_reduce

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    dist.all_reduce = counting
    try:
        step_fn()
    finally:
        dist.all_reduce = original
    return len(calls)


def scenario(kind, name, clip, rank, world, out_dir):
    from torch.distributed.device_mesh import init_device_mesh

    model = _model()
    result = {}
    if kind == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for m in model:
            if isinstance(m, torch.nn.Linear):
                fully_shard(m, mesh=mesh)
        fully_shard(model, mesh=mesh)
        opt = _optimizer(name, model.parameters(), clip)
        batches = _batches()
        counts = []
        _train(model, opt, batches, rank, world, counts)
        result["all_reduces_per_step"] = counts
        result["params"] = _full(model)
        if name == "lamb" and not clip:
            result["shard_norms"] = _shard_norm_control(rank, world)
            _save_checkpoint(model, opt, out_dir, batches, rank, world)
    elif kind == "replicate":
        # tensor-parallel style: every parameter a DTensor replicated on every rank, each
        # rank stepping the whole batch: norms are local, nothing may be all-reduced
        from torch.distributed.tensor import Replicate, distribute_tensor

        mesh = init_device_mesh("cpu", (world,))
        for m in model:
            if isinstance(m, torch.nn.Linear):
                for pname, param in list(m.named_parameters()):
                    setattr(m, pname, torch.nn.Parameter(
                        distribute_tensor(param.detach(), mesh, [Replicate()])))
        opt = _optimizer(name, model.parameters(), clip)
        counts = []

        class Replicated(torch.nn.Module):  # plain tensors in and out
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                from torch.distributed.tensor import DTensor

                return self.inner(DTensor.from_local(x, mesh, [Replicate()])).to_local()

        _train(Replicated(model), opt, _batches(), 0, 1, counts)
        result["all_reduces_per_step"] = counts
        result["sparse_refused"] = _sparse_is_refused(next(model.parameters()))
    elif kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model)
        opt = _optimizer(name, ddp.parameters(), clip)
        _train(ddp, opt, _batches(), rank, world)
    elif kind == "zero":
        from torch.distributed.optim import ZeroRedundancyOptimizer

        from inertia.optim.registry import REGISTRY

        ddp = torch.nn.parallel.DistributedDataParallel(model)
        info = REGISTRY[name]
        kwargs = dict(info.configs["default"])
        if clip:
            kwargs["max_grad_norm"] = 0.05
        opt = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=info.cls, **kwargs)
        _train(ddp, opt, _batches(), rank, world)
    if "params" not in result:
        result["params"] = _full(model)
    result["reference"] = _reference(name, clip)
    return result


def _sparse_is_refused(p):
    from inertia.engine.plan import _check_gradient

    grad = torch.sparse_coo_tensor(torch.tensor([[0]]), torch.ones(1, *p.shape[1:]), p.shape)
    try:
        _check_gradient(p, grad, 0)
    except ValueError as error:
        return str(error)
    return None


def _shard_norm_control(rank, world):
    """LAMB stepped on each rank's shards as if they were whole tensors (norms of shards,
    fairscale #767's bug): the result the comparison must *not* match."""
    import inertia

    model = _model()
    shards = []
    for p in model.parameters():
        rows = p.shape[0]
        lo, hi = rank * ((rows + world - 1) // world), min(rows, (rank + 1) * ((rows + world - 1) // world))
        shards.append(torch.nn.Parameter(p.detach()[lo:hi].clone()))
    opt = inertia.LAMB(shards, lr=0.01)
    full = _model()
    fopt_params = list(full.parameters())
    for x, y in _batches():
        for p in fopt_params:
            p.grad = None
        torch.nn.functional.mse_loss(full(x), y).backward()
        for s, p in zip(shards, fopt_params):
            rows = p.shape[0]
            lo = rank * ((rows + world - 1) // world)
            s.grad = p.grad[lo:lo + s.shape[0]].clone()
        opt.step()
        with torch.no_grad():
            for s, p in zip(shards, fopt_params):
                lo = rank * ((p.shape[0] + world - 1) // world)
                p[lo:lo + s.shape[0]] = s
    return [[float(v) for v in s.detach().flatten()] for s in shards]


def _save_checkpoint(model, opt, out_dir, batches, rank, world, name="dcp"):
    """Save (model, optimizer) after the run with DCP, train 3 more steps, record them."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (get_model_state_dict,
                                                         get_optimizer_state_dict)

    path = os.path.join(out_dir, name)
    dcp.save({"model": get_model_state_dict(model),
              "optim": get_optimizer_state_dict(model, opt)}, checkpoint_id=path)
    _train(model, opt, batches[:3], rank, world)
    full = _full(model)  # a collective: every rank takes part
    if rank == 0:
        suffix = "" if name == "dcp" else "_" + name
        with open(os.path.join(out_dir, f"after_checkpoint{suffix}.json"), "w") as f:
            json.dump(full, f)


SCENARIOS = ([("fsdp2", n, False) for n in ("sgd", "momentum", "rmsprop", "adam", "adamw",
                                             "adagrad", "lion", "lamb", "lars")]
             + [("fsdp2", n, True) for n in ("adam", "lamb")]
             + [(k, n, c) for k in ("ddp", "zero") for n in ("adam", "lamb")
                for c in (False, True)]
             + [("replicate", "lamb", False), ("replicate", "lars", True)])


# ----------------------------------------------------------------------------- compact storage

EIGHT_BIT = dict(state_dtype="8bit", state_min_size=0, state_block_size=32)


def _model8():
    """Layers whose rows hold 24-40 elements (8-bit blocks) and whose first dimensions (40,
    20, 3) split unevenly between two ranks."""
    return _model((24, 40, 20, 3))


def _batches8():
    return _batches(inputs=24, seed=2)


def memory_fsdp2(rank, world, out_dir):
    """Adam with 8-bit state under FSDP2 against one process; then a DCP checkpoint that
    the test loads into one process."""
    import inertia
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = _model8()
    mesh = init_device_mesh("cpu", (world,))
    for m in model:
        if isinstance(m, torch.nn.Linear):
            fully_shard(m, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = inertia.Adam(model.parameters(), lr=0.01, **EIGHT_BIT)
    batches = _batches8()
    _train(model, opt, batches, rank, world)
    result = {"params": _full(model)}
    state = opt.state[next(model.parameters())]
    result["kinds"] = {k: str(v.dtype) for k, v in state.items()}
    single = _model8()
    ref = inertia.Adam(single.parameters(), lr=0.01, **EIGHT_BIT)
    _train(single, ref, batches, 0, 1)
    result["reference"] = _full(single)
    _save_checkpoint(model, opt, out_dir, batches, rank, world, name="dcp8")
    return result


def memory_exact(rank, world):
    """bfloat16 parameters sharded by rows (Shard(0)), stochastic rounding and 8-bit state,
    given the exact gradients of one process: parameters and state are the one-process
    ones bit for bit (blocks within rows; the random bits of each element's index in the
    whole tensor)."""
    import inertia
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world,))
    gen = torch.Generator().manual_seed(3)
    shapes = [(40, 24), (3, 20), (17, 64)]
    full = [torch.randn(s, generator=gen).to(torch.bfloat16) for s in shapes]
    kwargs = dict(lr=1e-3, stochastic_rounding=True, rounding_seed=11, **EIGHT_BIT)
    sharded = [torch.nn.Parameter(distribute_tensor(t.clone(), mesh, [Shard(0)])) for t in full]
    single = [torch.nn.Parameter(t.clone()) for t in full]
    opt, ref = inertia.AdamW(sharded, **kwargs), inertia.AdamW(single, **kwargs)
    for step in range(4):
        grads = [torch.randn(s, generator=gen).to(torch.bfloat16) for s in shapes]
        for p, q, g in zip(sharded, single, grads):
            p.grad = distribute_tensor(g.clone(), mesh, [Shard(0)])
            q.grad = g.clone()
        opt.step()
        ref.step()
    same = []
    for p, q in zip(sharded, single):
        same.append(bool(torch.equal(p.full_tensor(), q.detach())))
        for key, value in ref.state[q].items():
            mine = opt.state[p][key]
            mine = mine.full_tensor() if hasattr(mine, "full_tensor") else mine
            same.append(bool(torch.equal(mine, value)))
    return {"same": same, "keys": sorted(ref.state[single[0]])}


def main(rank, world, port, out_dir):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    results = {}
    import warnings

    warnings.simplefilter("ignore")
    for kind, name, clip in SCENARIOS:
        key = f"{kind}-{name}{'-clip' if clip else ''}"
        if os.environ.get("INERTIA_DIST_VERBOSE"):
            print(rank, key, flush=True)
        try:
            results[key] = scenario(kind, name, clip, rank, world, out_dir)
        except Exception:  # noqa: BLE001 - reported to the test, which fails with it
            results[key] = {"error": traceback.format_exc()}
            if os.environ.get("INERTIA_DIST_VERBOSE"):
                print(results[key]["error"], flush=True)
        dist.barrier()
    for key, run in (("memory-fsdp2", lambda: memory_fsdp2(rank, world, out_dir)),
                     ("memory-exact", lambda: memory_exact(rank, world))):
        try:
            results[key] = run()
        except Exception:  # noqa: BLE001 - reported to the test, which fails with it
            results[key] = {"error": traceback.format_exc()}
        dist.barrier()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])

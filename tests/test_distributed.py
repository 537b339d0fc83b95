"""Every optimizer under FSDP2 (DTensor), DDP and ZeRO equals one process (gloo, 2 CPU ranks).

The two ranks are spawned once for the module (``tests/distributed_worker.py`` runs every
scenario); each test reads its scenario's result. A sharded run must end where one process
ends with the same global batch (relative error < 1e-5), with both ranks agreeing. LAMB and
LARS need the norms of whole tensors: the control run with norms of shards (fairscale
#767's bug) must *not* match. A distributed checkpoint saved by 2 ranks loads into 1 and
continues equal.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import distributed_worker as W

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch without distributed support")
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    worker = Path(W.__file__)
    procs = [subprocess.Popen([sys.executable, str(worker), str(rank), str(WORLD), str(port),
                               str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for rank in range(WORLD)]
    logs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, logs):
        assert p.returncode == 0, err[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return ranks, out


def _close(a, b, rtol=1e-5):
    for x, y in zip(a, b):
        x, y = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
        torch.testing.assert_close(x, y, rtol=rtol, atol=1e-7)


def _scenario(results, key):
    ranks, _ = results
    for r, res in enumerate(ranks):
        assert "error" not in res[key], f"rank {r}:\n{res[key].get('error')}"
    return [res[key] for res in ranks]


@pytest.mark.parametrize("kind,name,clip", W.SCENARIOS,
                         ids=[f"{k}-{n}{'-clip' if c else ''}" for k, n, c in W.SCENARIOS])
def test_sharded_run_equals_one_process(results, kind, name, clip):
    ranks = _scenario(results, f"{kind}-{name}{'-clip' if clip else ''}")
    for res in ranks:
        _close(res["params"], res["reference"])
    _close(ranks[0]["params"], ranks[1]["params"], rtol=0)  # the ranks agree exactly


def test_lamb_with_norms_of_shards_would_not_match(results):
    """The control: LAMB's trust ratio from a shard's norm instead of the tensor's."""
    ranks = _scenario(results, "fsdp2-lamb")
    diff = 0.0
    for rank, res in enumerate(ranks):
        full = [torch.tensor(p) for p in res["reference"]]
        for shard, whole in zip(res["shard_norms"], full):
            rows = len(shard)
            if rows == 0:
                continue
            diff = max(diff, float((torch.tensor(shard) - whole[:0 + rows] if rank == 0
                                    else torch.tensor(shard) - whole[-rows:]).abs().max()))
    assert diff > 1e-4


def test_one_all_reduce_per_step_for_lamb(results):
    """LAMB's norms: one all_reduce for all tensors of a step, not one per tensor; with
    clipping one more, for the global gradient norm; an element-wise rule needs none."""
    assert _scenario(results, "fsdp2-lamb")[0]["all_reduces_per_step"] == [1] * W.STEPS
    assert _scenario(results, "fsdp2-lamb-clip")[0]["all_reduces_per_step"] == [2] * W.STEPS
    assert _scenario(results, "fsdp2-adam")[0]["all_reduces_per_step"] == [0] * W.STEPS
    assert _scenario(results, "fsdp2-adam-clip")[0]["all_reduces_per_step"] == [1] * W.STEPS


def _load_into_one_process(model, opt, path):
    """A ``torch.distributed.checkpoint`` the ranks saved, loaded into one process's model
    and optimizer."""
    import warnings

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (get_model_state_dict,
                                                         get_optimizer_state_dict,
                                                         set_model_state_dict,
                                                         set_optimizer_state_dict)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
        dcp.load(state, checkpoint_id=str(path))
        set_model_state_dict(model, state["model"])
        set_optimizer_state_dict(model, opt, state["optim"])


def test_a_checkpoint_saved_by_two_ranks_continues_in_one(results):
    _, out = results
    model = W._model()
    opt = W._optimizer("lamb", model.parameters(), clip=False)
    _load_into_one_process(model, opt, out / "dcp")
    W._train(model, opt, W._batches()[:3], 0, 1)
    expected = json.loads((out / "after_checkpoint.json").read_text())
    _close(W._full(model), expected)


def test_replicated_dtensors_reduce_nothing_and_refuse_sparse_gradients(results):
    res = _scenario(results, "replicate-lamb")[0]
    assert res["all_reduces_per_step"] == [0] * W.STEPS  # replicated: norms are local
    assert "Invalid gradient layout: a sparse gradient for a sharded (DTensor)" in \
        res["sparse_refused"]


# ----------------------------------------------------------------------------- compact storage


def test_8bit_state_and_stochastic_rounding_do_not_depend_on_the_sharding(results):
    """Shards of whole rows (FSDP2's Shard(0)) given one process's gradients: parameters,
    codes and scales equal one process's bit for bit."""
    for res in _scenario(results, "memory-exact"):
        assert res["keys"] == ["exp_avg", "exp_avg_absmax", "exp_avg_sq", "exp_avg_sq_absmax",
                               "step"]
        assert all(res["same"]), res["same"]


def test_8bit_adam_under_fsdp2_equals_one_process(results):
    ranks = _scenario(results, "memory-fsdp2")
    assert ranks[0]["kinds"]["exp_avg"] == "torch.uint8"
    for res in ranks:  # as every optimizer's float32 state (the gradients' sums differ in
        _close(res["params"], res["reference"], rtol=1e-5)  # their last bits)
    _close(ranks[0]["params"], ranks[1]["params"], rtol=0)


def test_an_8bit_checkpoint_saved_by_two_ranks_continues_in_one(results):
    import inertia

    _, out = results
    model = W._model8()
    opt = inertia.Adam(model.parameters(), lr=0.01, **W.EIGHT_BIT)
    _load_into_one_process(model, opt, out / "dcp8")
    first = next(model.parameters())
    assert opt.state[first]["exp_avg"].dtype == torch.uint8
    W._train(model, opt, W._batches8()[:3], 0, 1)
    expected = json.loads((out / "after_checkpoint_dcp8.json").read_text())
    _close(W._full(model), expected, rtol=1e-5)

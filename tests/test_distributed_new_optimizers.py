"""NAdam, RAdam, Adamax, Adadelta, Schedule-Free, Muon and Adafactor under FSDP2 equal one
process (gloo, 2 CPU ranks; the ranks are spawned once for the module).

Muon needs whole matrices (each is gathered, orthogonalised, and each rank keeps its
shard); Adafactor's row and column statistics and norms are reductions over the sharded
tensors. Both must end where one process ends with the same global batch, relative error
below 1e-5, with the two ranks bit-identical, as every optimizer in
``tests/test_distributed.py``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import distributed_worker_new as W
from test_distributed import WORLD, _close, _free_port

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch without distributed support")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed-new")
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(Path(W.__file__)), str(rank), str(WORLD),
                               str(port), str(out)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in range(WORLD)]
    logs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, logs):
        assert p.returncode == 0, err[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


@pytest.mark.parametrize("key", [key for key, _, _ in W.SCENARIOS])
def test_fsdp2_run_equals_one_process(results, key):
    ranks = [res[key] for res in results]
    for r, res in enumerate(ranks):
        assert "error" not in res, f"rank {r}:\n{res.get('error')}"
    for res in ranks:
        _close(res["params"], res["reference"])
    _close(ranks[0]["params"], ranks[1]["params"], rtol=0)  # the ranks agree exactly
    assert ranks[0]["sharded_state"], "the state should be sharded like the parameters"

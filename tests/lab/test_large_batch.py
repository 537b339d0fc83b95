"""The large-batch scenario: gradient accumulation is the big batch's gradient; the report states batch and rules."""
from __future__ import annotations

import pytest
import torch

from inertia.lab import api, suites
from inertia.lab.running import runner
from inertia.lab.workloads import common, get


def test_accumulated_micro_batches_give_the_full_batch_gradient():
    torch.manual_seed(0)
    X, Y = torch.randn(100, 4), torch.randint(0, 3, (100,))
    net = torch.nn.Linear(4, 3)

    def loss(model, batch):
        xb, yb = batch
        return torch.nn.functional.cross_entropy(model(xb), yb)

    work = api.resolve_workload("valley")  # only its loss is replaced: runner._backward takes any workload
    work = type(work)(**{**work.__dict__, "loss": loss})
    full = torch.autograd.grad(loss(net, (X, Y)), list(net.parameters()))
    (parts,) = [next(common.accumulated(X, Y, 100, 32, seed=0))]  # 32 + 32 + 32 + 4 rows
    assert [len(p[1]) for p in parts.parts] == [32, 32, 32, 4] and sum(parts.weights) == pytest.approx(1.0)
    net.zero_grad()
    value = runner._backward(work, net, common.Accumulated([(X[:32], Y[:32]), (X[32:64], Y[32:64]),
                                                            (X[64:96], Y[64:96]), (X[96:], Y[96:])],
                                                           [0.32, 0.32, 0.32, 0.04]))
    for p, g in zip(net.parameters(), full):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)
    assert value == pytest.approx(float(loss(net, (X, Y))), rel=1e-5)


def test_entries_follow_the_stated_scaling_rules():
    work = get("mnist-large-batch", steps=3)
    assert work.batch_size == 1024 and work.extras["accumulation_steps"] == 8
    assert work.batch_size >= work.extras["n_train"] / 4  # a quarter of the training split at least
    entries = {e.label: e for e in suites.large_batch_entries(work)}
    assert entries["Adam (linear x16)"].hparams["lr"] == pytest.approx(1e-3 * 16)
    assert entries["SGD+Momentum (sqrt x4)"].hparams == {"momentum": 0.9, "lr": pytest.approx(0.1 * 4)}
    assert {e.schedule for e in entries.values()} == {f"warmup(steps={suites.WARMUP})+cosine"}
    assert len(entries) == 8 and {e.name for e in entries.values()} == {"adam", "sgd", "lamb", "lars"}


def test_the_report_states_the_batch_and_the_rule(tmp_path):
    work = get("mnist-large-batch", steps=3)
    entries = [e for e in suites.large_batch_entries(work) if e.name == "lamb"]
    api.compare([work], entries, seeds=[0], out=tmp_path, quiet=True, notes=[suites.large_batch_statement(work)])
    md = (tmp_path / "report.md").read_text()
    assert "Global batch 1,024 digits per step (29% of the 3,500 training digits)" in md
    assert "8 micro-batches of 128" in md and "**linear** rule" in md and "**square-root** rule" in md
    assert "LAMB (linear x16)" in md and "LAMB (sqrt x4)" in md

"""Sparse embedding gradients, for every optimizer, in both modes, against densified references.

* ``sparse="dense"``: training an ``nn.Embedding(sparse=True)`` must equal training the same
  table with ``sparse=False`` (the update of the densified gradient), state included.
* ``sparse="lazy"``: rows absent from a step's gradient keep their weights *and* their
  state; the touched rows get exactly the rule applied to those rows (the first step equals
  a dense optimizer on the gathered rows); when every row is present it equals dense mode.

Each case runs the default path (fused kernels where they exist) and the reference
(``fused=False``). Indices repeat within a batch, so coalescing (summing) is exercised.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from inertia.optim.registry import REGISTRY

ROWS, DIM = 12, 3
STEPS = [torch.tensor([0, 2, 2, 5, 7]), torch.tensor([2, 3, 7, 7, 11]), torch.tensor([5, 0, 9])]
ALL_ROWS = [torch.arange(ROWS).repeat(2)[torch.randperm(2 * ROWS, generator=torch.Generator().manual_seed(s))]
            for s in range(3)]
# (Muon and Adafactor refuse sparse gradients, as torch's: tests/test_optimizers.py)
CASES = [(name, fused) for name, info in REGISTRY.items() if info.sparse for fused in (None, False)]
IDS = [f"{name}-{'default' if fused is None else 'reference'}" for name, fused in CASES]


def table(sparse: bool) -> nn.Embedding:
    emb = nn.Embedding(ROWS, DIM, sparse=sparse, dtype=torch.float64)
    with torch.no_grad():
        emb.weight.copy_(torch.linspace(-1, 1, ROWS * DIM, dtype=torch.float64).view(ROWS, DIM))
    return emb


def loss(emb: nn.Embedding, idx: torch.Tensor) -> torch.Tensor:
    target = torch.arange(len(idx) * DIM, dtype=torch.float64).view(len(idx), DIM).sin()
    return ((emb(idx) - target) ** 2).sum()


def make(name: str, params, fused, **kw):
    return REGISTRY[name].make(params, "default", fused=fused, **kw)


def train(emb: nn.Embedding, opt, batches) -> None:
    for idx in batches:
        opt.zero_grad()
        loss(emb, idx).backward()
        opt.step()


def state_of(opt, p):
    return {k: v.clone() for k, v in opt.state[p].items() if torch.is_tensor(v) and v.dim() > 0}


@pytest.mark.parametrize("name, fused", CASES, ids=IDS)
def test_dense_mode_equals_dense_embedding(name, fused):
    sparse_emb, dense_emb = table(True), table(False)
    opt_s = make(name, sparse_emb.parameters(), fused, sparse="dense")
    opt_d = make(name, dense_emb.parameters(), fused)
    train(sparse_emb, opt_s, STEPS)
    train(dense_emb, opt_d, STEPS)
    assert sparse_emb.weight.grad.is_sparse  # the sparse path really ran
    torch.testing.assert_close(sparse_emb.weight, dense_emb.weight, rtol=1e-12, atol=1e-12)
    s, d = state_of(opt_s, sparse_emb.weight), state_of(opt_d, dense_emb.weight)
    assert s.keys() == d.keys()
    for key in s:
        torch.testing.assert_close(s[key], d[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, fused", CASES, ids=IDS)
def test_lazy_mode_leaves_absent_rows_and_their_state_alone(name, fused):
    emb = table(True)
    initial = emb.weight.detach().clone()
    opt = make(name, emb.parameters(), fused, sparse="lazy")
    train(emb, opt, STEPS[:1])
    after1, state1 = emb.weight.detach().clone(), state_of(opt, emb.weight)
    train(emb, opt, STEPS[1:2])
    untouched = sorted(set(range(ROWS)) - set(STEPS[1].tolist()))
    assert torch.equal(emb.weight[untouched], after1[untouched])
    for key, value in state_of(opt, emb.weight).items():
        assert torch.equal(value[untouched], state1[key][untouched]), key
    never = sorted(set(range(ROWS)) - set(torch.cat(STEPS[:2]).tolist()))
    assert torch.equal(emb.weight[never], initial[never])


@pytest.mark.parametrize("name, fused", CASES, ids=IDS)
def test_lazy_first_step_equals_dense_optimizer_on_the_touched_rows(name, fused):
    emb = table(True)
    opt = make(name, emb.parameters(), fused, sparse="lazy")
    idx = STEPS[0]
    train(emb, opt, [idx])
    rows = torch.unique(idx)
    # the reference: a dense parameter made of exactly the touched rows, same gradient
    ref_emb = table(False)
    ref = nn.Parameter(ref_emb.weight.detach()[rows].clone())
    grad_full = torch.autograd.grad(loss(ref_emb, idx), ref_emb.weight)[0]
    ref.grad = grad_full[rows]
    make(name, [ref], fused).step()
    torch.testing.assert_close(emb.weight.detach()[rows], ref.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, fused", CASES, ids=IDS)
def test_lazy_equals_dense_when_every_row_is_present(name, fused):
    lazy_emb, dense_emb = table(True), table(False)
    train(lazy_emb, make(name, lazy_emb.parameters(), fused, sparse="lazy"), ALL_ROWS)
    train(dense_emb, make(name, dense_emb.parameters(), fused), ALL_ROWS)
    torch.testing.assert_close(lazy_emb.weight, dense_emb.weight, rtol=1e-12, atol=1e-12)

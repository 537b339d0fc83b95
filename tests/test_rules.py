"""A rule written once runs everywhere: the rule language, tracing, and user-written rules.

``tests/custom_rules.py`` defines two optimizers by their rules alone. Here they run
through the default (generated, fused) path and the reference path, which must agree;
``tests/test_triton.py`` checks their GPU kernels the same way.
"""
from __future__ import annotations

import pytest
import torch

from custom_rules import CUSTOM
from inertia.backends import graph as G
from inertia.engine.step import path_counts
from inertia.rules import Hyper, Sym, where
from inertia.rules.expr import load


def _pair(cls, kwargs, dtype):
    gen = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (40_000,), ()]
    base = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]
    out = []
    for fused in (None, False):
        params = [torch.nn.Parameter(p.clone()) for p in base]
        out.append((cls(params, fused=fused, **kwargs), params))
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", CUSTOM)
def test_a_rule_defined_in_a_test_file_is_fused_and_equals_its_reference(name, dtype):
    cls, kwargs = CUSTOM[name]
    (fast, fp), (ref, rp) = _pair(cls, kwargs, dtype)
    before = path_counts.copy()
    for t in range(12):
        gen = torch.Generator().manual_seed(t)
        for a, b in zip(fp, rp):
            g = torch.randn(a.shape, generator=gen, dtype=torch.float64).to(dtype)
            a.grad, b.grad = g.clone(), g.clone()
        fast.step()
        ref.step()
    assert sum(path_counts[k] - before[k] for k in path_counts if k.startswith("cpu:")) == 12
    assert path_counts["reference"] == before["reference"]
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for a, b in zip(fp, rp):
        torch.testing.assert_close(a, b, **tol)
        for key, value in ref.state[b].items():
            torch.testing.assert_close(fast.state[a][key], value, **tol, msg=key)


def test_tracing_records_the_rules_structure():
    cls, kwargs = CUSTOM["normalized-sgd"]
    opt = cls([torch.nn.Parameter(torch.zeros(3))], **kwargs)
    graph = G.trace(cls.rule, opt.param_groups[0], torch.zeros(3))
    assert graph.slots == ("momentum_buffer",) and graph.written == ("momentum_buffer",)
    assert set(graph.hypers) == {"lr", "momentum", "eps"}
    assert len(graph.reductions) == 1  # the norm: a two-pass kernel


def test_a_hyperparameter_comparison_is_a_guard_and_a_traced_value_has_no_truth():
    guards = []
    momentum = Hyper("momentum", 0.9, guards)
    assert momentum != 0 and guards == [("momentum", "ne", 0.0, True)]
    g = load("grad")
    with pytest.raises(TypeError, match="use inertia.rules.where"):
        bool(g > 0)
    assert isinstance(where(g > 0, g, 0.0), Sym)


def test_changing_a_guarded_hyperparameter_selects_another_kernel():
    import inertia

    p = torch.nn.Parameter(torch.ones(4))
    opt = inertia.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(4)
    opt.step()
    assert "momentum_buffer" in opt.state[p]
    opt.param_groups[0]["momentum"] = 0.0  # SGD without momentum: another algorithm
    before = p.detach().clone()
    p.grad = torch.ones(4)
    opt.step()
    torch.testing.assert_close(p.detach(), before - 0.1)

"""Bad input is refused before anything moves; no path reads or writes out of bounds.

Every hazard of ``tests/hazards.py`` against every optimizer (default fused path and the
reference), complex parameters as torch treats them, norms that agree on every path at the
extremes of the float range, torch's validation order, and ``differentiable=True``.
"""
from __future__ import annotations

import copy

import pytest
import torch

import inertia
from hazards import HAZARDS, Hazard
from inertia.engine.state import step_of
from inertia.optim.registry import REGISTRY

SHAPES = [(7, 5), (5,), (3, 2, 4)]


def _params(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
            for s in SHAPES]


def _grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)


def _snapshot(opt, params):
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict()), \
        {k: copy.deepcopy(v) for k, v in opt.state.items()}


def _same(a, b):
    for x, y in zip(a[0], b[0]):
        assert torch.equal(x, y)
    assert str(a[1]) == str(b[1])
    for (ka, va), (kb, vb) in zip(a[2].items(), b[2].items()):
        assert sorted(va) == sorted(vb)
        for key in va:
            assert torch.equal(va[key], vb[key]), key


@pytest.mark.parametrize("fused", [None, False], ids=["default", "reference"])
@pytest.mark.parametrize("hazard", HAZARDS, ids=lambda h: h.name)
@pytest.mark.parametrize("name", REGISTRY)
def test_hazard_is_refused_and_changes_nothing(name, hazard, fused):
    if hazard.sparse and not REGISTRY[name].sparse:
        # Muon and Adafactor refuse every sparse gradient first (tests/test_optimizers.py)
        hazard = Hazard(hazard.name, hazard.spoil, RuntimeError,
                        "does not support sparse gradients", hazard.options)
    params = _params()
    opt = REGISTRY[name].make(params, fused=fused, **(hazard.options or {}))
    for seed in range(2):
        _grads(params, seed)
        opt.step()
    _grads(params, 9)
    hazard.spoil(params)
    before = _snapshot(opt, params)
    with pytest.raises(hazard.error, match=hazard.match):
        opt.step()
    _same(before, _snapshot(opt, params))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize("name", REGISTRY)
def test_integer_parameters_are_refused(name, dtype):
    with pytest.raises(ValueError, match=rf"Invalid parameter dtype: {dtype} \(inertia optimizers "
                                         r"update floating-point or complex tensors\)"):
        REGISTRY[name].make([torch.zeros(3, dtype=dtype)])


@pytest.mark.parametrize("name", REGISTRY)
def test_hyperparameters_are_checked_before_the_parameters(name):
    """torch.optim's order: a bad value is reported even when ``params`` is also wrong."""
    bad = REGISTRY[name].bad_inputs[0]
    with pytest.raises(bad.error, match=bad.match):
        REGISTRY[name].cls(None, **bad.kwargs)


# ---------------------------------------------------------------- complex parameters

COMPLEX_TWINS = [(n, c) for n, info in REGISTRY.items() if info.torch_equivalent and info.complex
                 for c in info.configs if c not in info.torch_skip]
#: Muon and Adafactor refuse complex parameters, as torch's do (test_torch_optim_db.py)
COMPLEX = [n for n, info in REGISTRY.items() if info.complex]


def _complex_params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.complex128))
            for s in [(4, 3), (5,)]]


def _complex_grads(params, t):
    gen = torch.Generator().manual_seed(100 + t)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


@pytest.mark.parametrize("name,config", COMPLEX_TWINS)
def test_complex_parameters_match_torch(name, config):
    info = REGISTRY[name]
    ours_p, theirs_p = _complex_params(), _complex_params()
    ours = info.make(ours_p, config)
    theirs = info.torch_equivalent(theirs_p, **info.configs[config])
    for t in range(6):
        _complex_grads(ours_p, t)
        _complex_grads(theirs_p, t)
        ours.step()
        theirs.step()
    for a, b in zip(ours_p, theirs_p):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        for key, value in theirs.state[b].items():
            torch.testing.assert_close(ours.state[a][key], value, rtol=1e-12, atol=1e-12, msg=key)


def test_the_issue_reproducer_moves_the_imaginary_part():
    z = torch.nn.Parameter(torch.tensor([1 + 1j, -2 + .5j]))
    o = inertia.Adam([z], lr=0.1)
    for _ in range(3):
        z.grad = torch.tensor([.3 - 2j, 1 + .1j])
        o.step()
    torch.testing.assert_close(z.detach(), torch.tensor([0.7 + 1.3j, -2.3 + 0.2j]))


@pytest.mark.parametrize("name", COMPLEX)
def test_complex_is_the_real_view(name):
    """Every optimizer, twin or not, updates a complex tensor as its real view."""
    info = REGISTRY[name]
    cplx = _complex_params()
    real = [torch.nn.Parameter(torch.view_as_real(p.detach()).clone()) for p in cplx]
    oc, orl = info.make(cplx), info.make(real)
    for t in range(6):
        _complex_grads(cplx, t)
        for r, c in zip(real, cplx):
            r.grad = torch.view_as_real(c.grad).clone()
        oc.step()
        orl.step()
    for c, r in zip(cplx, real):
        torch.testing.assert_close(torch.view_as_real(c.detach()), r.detach(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- norms at the extremes

@pytest.mark.parametrize("weights,grads", [(1.0, 1e-24), (1e38, 1.0), (1e-30, 1.0)],
                         ids=["tiny-grads", "huge-weights", "tiny-weights"])
@pytest.mark.parametrize("name", ["lamb", "lars"])
def test_trust_ratio_is_the_same_on_every_path(name, weights, grads):
    """Squared norms accumulate in float64 everywhere: contiguous (fused), non-contiguous
    and ``fused=False`` parameters take the same step."""
    def run(layout):
        p = torch.full((64, 32), weights, dtype=torch.float32)
        if layout == "strided":
            p = p.t().contiguous().t()  # same values, transposed memory
        p = torch.nn.Parameter(p)
        opt = REGISTRY[name].make([p], fused=False if layout == "reference" else None)
        for t in range(3):
            gen = torch.Generator().manual_seed(t)
            g = torch.rand(p.shape, generator=gen) * grads
            p.grad = g if layout != "strided" else g.t().contiguous().t()
            opt.step()
        return p.detach().contiguous()

    fused, strided, reference = run("fused"), run("strided"), run("reference")
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(strided, fused, rtol=1e-6, atol=0)
    torch.testing.assert_close(reference, fused, rtol=1e-6, atol=0)
    assert not torch.equal(fused, torch.full_like(fused, weights))  # it did move


# ---------------------------------------------------------------- differentiable=True

DIFF_CASES = [(name, config) for name, info in REGISTRY.items() for config in info.configs
              if config != "maximize"]


@pytest.mark.parametrize("name,config", DIFF_CASES)
def test_differentiable_step_passes_gradcheck(name, config):
    """As torch tests it: the step is a function of (param, grad, state) that autograd
    differentiates, checked against finite differences over two steps."""
    info = REGISTRY[name]
    gen = torch.Generator().manual_seed(0)
    p0 = torch.rand(6, generator=gen, dtype=torch.float64) + 0.5
    g0 = torch.rand(6, generator=gen, dtype=torch.float64) + 0.5
    warm = info.make([torch.nn.Parameter(p0.clone())], config)
    warm.param_groups[0]["params"][0].grad = g0.clone()
    warm.step()  # state after one step: realistic, strictly positive second moments
    # (not per-tensor scalar state such as NAdam's mu_product: a float32 count, as the step)
    warm_state = warm.state[warm.param_groups[0]["params"][0]]
    keys = [k for k, v in warm_state.items()
            if k != "step" and v.is_floating_point() and v.dim() > 0]
    scalars = {k: v.detach().clone() for k, v in warm_state.items()
               if k != "step" and k not in keys}
    state0 = [warm.state[warm.param_groups[0]["params"][0]][k].detach().clone().requires_grad_()
              for k in keys]
    step0 = step_of(warm, warm.param_groups[0]["params"][0]).clone()

    def one_step(p, grad, *state):
        p = p.clone()
        p.grad = grad
        opt = info.make([p], config, differentiable=True)
        opt.state[p].update({k: v.clone() for k, v in zip(keys, state)})
        opt.state[p].update({k: v.clone() for k, v in scalars.items()})
        if info.cls.step_in_state:  # (SGD derives its count from the momentum buffer)
            opt.state[p]["step"] = step0.clone()
        opt.step()
        return (p,) + tuple(opt.state[p][k] for k in keys)

    # a new gradient for the checked step: with the first one again, an Adafactor update is
    # exactly sign(g) and its clipping max(1, RMS(u)) sits on its kink
    g1 = torch.rand(6, generator=gen, dtype=torch.float64) + 0.5
    inputs = (p0.clone().requires_grad_(), g1.requires_grad_(), *state0)
    # eps 1e-8: Adadelta's accumulated update is ~1e-6 after one step (gradcheck's default
    # perturbation, 1e-6, would double it)
    assert torch.autograd.gradcheck(one_step, inputs, eps=1e-8, raise_exception=True)


def test_differentiable_step_differentiates_the_learning_rate():
    """A meta-learning use: d(loss after the step)/d(lr), equal to the closed form."""
    lr = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    p = w.clone()
    p.grad = 2 * w.detach()  # gradient of sum(w^2)
    opt = inertia.SGD([p], lr=lr, differentiable=True)
    opt.step()  # p = w - lr * 2w
    loss = (p ** 2).sum()  # = (1 - 2 lr)^2 |w|^2
    loss.backward()
    expected = -4 * (1 - 2 * 0.1) * (w.detach() ** 2).sum()
    torch.testing.assert_close(lr.grad, expected)

"""Non-finite gradients, clipping and AMP: the policies around the kernels.

No mode may let a NaN or an infinity into parameters or state. ``"guard"`` (the default)
leaves the blocks holding one unchanged and applies the rest; ``"raise"`` and ``"skip"``
change nothing; ``None`` does not look. Clipping is torch's ``clip_grad_norm_`` fused
into the update; under ``GradScaler`` the scaler's ``found_inf`` decides.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

import inertia
from inertia.backends.numba_cpu import BLOCK
from inertia.optim.registry import REGISTRY

BIG = 3 * 32768 + 5  # spans several chunks and many guard blocks


def _params(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
            for s in [(BIG,), (6, 5), (7,)]]


def _grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)


def _finite(opt, params):
    assert all(torch.isfinite(p).all() for p in params)
    for state in opt.state.values():
        for key, value in state.items():
            assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "reference"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("name", REGISTRY)
def test_guard_keeps_every_nonfinite_value_out_and_applies_the_rest(name, bad, fused):
    params = _params()
    opt = REGISTRY[name].make(params, fused=fused)
    _grads(params, 0)
    opt.step()
    before = [p.detach().clone() for p in params]
    states = copy.deepcopy({i: opt.state[p] for i, p in enumerate(params)})
    _grads(params, 1)
    at = 2 * BLOCK + 7
    params[0].grad[at] = bad
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt.step()
    _finite(opt, params)
    assert int(opt.nonfinite_steps) == 1
    assert any("non-finite gradient in parameter 0" in str(w.message) for w in caught)
    for p, b in zip(params[1:], before[1:]):
        assert not torch.equal(p, b)  # the other tensors stepped
    group = next(g for g in opt.param_groups if any(p is params[0] for p in g["params"]))
    # norm-based rules and whole-tensor rules (Adafactor; Muon's matrices) skip whole tensors
    whole_tensor = fused is False or name in ("lamb", "lars") or opt.rule(group).many is not None
    hit = slice(0, BIG) if whole_tensor else slice(2 * BLOCK, 3 * BLOCK)
    assert torch.equal(params[0][hit], before[0][hit])
    for key, value in states[0].items():
        if key != "step" and value.dim() > 0:  # (not per-tensor scalars: mu_product)
            assert torch.equal(opt.state[params[0]][key][hit], value[hit]), key
    if not whole_tensor:  # the blocks around it moved
        assert not torch.equal(params[0][:BLOCK], before[0][:BLOCK])
        assert not torch.equal(params[0][-BLOCK:], before[0][-BLOCK:])
    _grads(params, 2)
    opt.step()  # and it goes on
    _finite(opt, params)


def test_the_warning_is_shown_once():
    params = _params()
    opt = inertia.Adam(params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in range(3):
            _grads(params, seed)
            params[1].grad[0, 0] = float("nan")
            opt.step()
    assert sum("non-finite gradient" in str(w.message) for w in caught) == 1
    assert int(opt.nonfinite_steps) == 3


@pytest.mark.parametrize("name", ["adam", "sgd", "lamb"])
def test_skip_changes_nothing_and_counts_on_the_device(name):
    params = _params()
    opt = REGISTRY[name].make(params, nonfinite="skip")
    _grads(params, 0)
    opt.step()
    before = copy.deepcopy(opt.state_dict()), [p.detach().clone() for p in params]
    _grads(params, 1)
    params[2].grad[3] = float("inf")
    opt.step()
    assert isinstance(opt.nonfinite_steps, torch.Tensor) and opt.nonfinite_steps.dim() == 0
    assert int(opt.nonfinite_steps) == 1 and opt.skipped_steps == 1
    assert str(opt.state_dict()) == str(before[0])
    assert all(torch.equal(a, b) for a, b in zip(params, before[1]))


def test_none_does_not_look():
    p = torch.nn.Parameter(torch.ones(4))
    opt = inertia.SGD([p], lr=0.1, nonfinite=None)
    p.grad = torch.tensor([1.0, float("nan"), 1.0, 1.0])
    opt.step()
    assert torch.isnan(p[1]) and int(opt.nonfinite_steps) == 0


# ---------------------------------------------------------------- clipping

CLIP_CASES = [(n, c) for n, info in REGISTRY.items() for c in list(info.configs)[:2]]


@pytest.mark.parametrize("max_norm", [0.5, 1e6], ids=["clipped", "not-clipped"])
@pytest.mark.parametrize("name,config", CLIP_CASES)
def test_max_grad_norm_equals_clip_grad_norm_then_the_optimizer(name, config, max_norm):
    info = REGISTRY[name]
    a, b = _params(torch.float64), _params(torch.float64)
    ours = info.make(a, config, max_grad_norm=max_norm)
    theirs = info.make(b, config, fused=False)  # the reference, after torch's clipping
    for seed in range(5):
        _grads(a, seed)
        _grads(b, seed)
        ours.step()
        norm = torch.nn.utils.clip_grad_norm_(b, max_norm, foreach=True)
        theirs.step()
        torch.testing.assert_close(ours.last_grad_norm, norm.double(), rtol=1e-12, atol=0)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_clipping_spans_every_group_and_the_reference_path():
    a, b = _params(torch.float64), _params(torch.float64)
    ours = inertia.Adam([{"params": a[:1]}, {"params": a[1:], "lr": 0.1}], lr=0.01,
                        max_grad_norm=1.0)
    theirs = inertia.Adam([{"params": b[:1]}, {"params": b[1:], "lr": 0.1}], lr=0.01)
    a[1].data = a[1].data.t().contiguous().t()  # laid out with gaps? no: transposed, dense
    for seed in range(3):
        _grads(a, seed)
        _grads(b, seed)
        ours.step()
        torch.nn.utils.clip_grad_norm_(b, 1.0)
        theirs.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_a_nonfinite_norm_skips_the_whole_step():
    params = _params()
    opt = inertia.Adam(params, max_grad_norm=1.0)
    _grads(params, 0)
    opt.step()
    before = [p.detach().clone() for p in params]
    _grads(params, 1)
    params[1].grad[0, 0] = float("nan")
    opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    assert int(opt.nonfinite_steps) == 1 and not torch.isfinite(opt.last_grad_norm)


def test_groups_must_share_max_grad_norm():
    with pytest.raises(ValueError, match=r"Invalid max_grad_norm: 2\.0 \(every parameter group"):
        inertia.Adam([{"params": [torch.nn.Parameter(torch.ones(2))]},
                      {"params": [torch.nn.Parameter(torch.ones(2))], "max_grad_norm": 2.0}],
                     max_grad_norm=1.0)


# ---------------------------------------------------------------- AMP

@pytest.mark.parametrize("name", ["adam", "sgd", "lion", "lamb"])
def test_grad_scaler_hands_the_scale_to_the_kernels(name):
    """inertia unscales inside its kernels (``_step_supports_amp_scaling``); the result equals
    the same optimizer stepping gradients the scaler unscaled itself."""
    info = REGISTRY[name]
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
              for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    ours = info.make(models[0].parameters())
    plain = info.make(models[1].parameters(), fused=False)
    plain._step_supports_amp_scaling = False  # the scaler unscales for this one
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0 ** 10) for _ in range(2)]
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    for step in range(6):
        for model, opt, scaler in zip(models, (ours, plain), scalers):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            if step == 3:  # an overflow: the step is skipped, the scale halves
                next(model.parameters()).grad[0, 0] = float("inf")
            scaler.step(opt)
            scaler.update()
    assert scalers[0].get_scale() == scalers[1].get_scale() == 2.0 ** 9
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert int(ours.nonfinite_steps) == 0  # found_inf decided, not inertia's own check

"""Checkpoints move between torch.optim and inertia in both directions and never lose state.

For every optimizer torch also has and every registry configuration: a run saved by one
library and resumed by the other ends where the uninterrupted run ends; the keys are
exactly torch's; ``state_dict()`` after ``load_state_dict(sd)`` is ``sd`` again; and
``torch.distributed.checkpoint`` moves the state either way.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

import inertia
from inertia.optim.registry import REGISTRY

TWINS = [(name, config) for name, info in REGISTRY.items() if info.torch_equivalent
         for config in info.configs if config not in info.torch_skip]
SHAPES = [(4, 3), (5,), (2, 2, 2)]


def _params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in SHAPES]


def _steps(opt, params, steps, seed):
    for t in range(steps):
        gen = torch.Generator().manual_seed(seed * 100 + t)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        opt.step()


def _both(name, config, params):
    info = REGISTRY[name]
    return info.torch_equivalent(params, **info.configs[config])


@pytest.mark.parametrize("direction", ["torch->inertia", "inertia->torch"])
@pytest.mark.parametrize("name,config", TWINS)
def test_resumed_in_the_other_library_equals_an_uninterrupted_run(name, config, direction):
    info = REGISTRY[name]
    make_torch = lambda ps: info.torch_equivalent(ps, **info.configs[config])  # noqa: E731
    make_ours = lambda ps: info.make(ps, config)  # noqa: E731
    first, second = (make_torch, make_ours) if direction == "torch->inertia" else (make_ours, make_torch)

    straight = _params()
    opt = first(straight)
    _steps(opt, straight, 4, seed=1)
    saved = copy.deepcopy(opt.state_dict())
    _steps(opt, straight, 4, seed=2)  # the uninterrupted run

    resumed = _params()
    with torch.no_grad():
        for a, b in zip(resumed, _params()):
            a.copy_(b)
    warm = first(resumed)
    _steps(warm, resumed, 4, seed=1)
    other = second(resumed)
    other.load_state_dict(saved)
    _steps(other, resumed, 4, seed=2)
    tol = dict(rtol=1e-12, atol=1e-12)
    if name == "nadam" and direction == "inertia->torch":
        # torch casts NAdam's float32 mu_product to the parameters' dtype when it loads any
        # checkpoint, its own included: its resumed float64 run then differs from its
        # uninterrupted one by 5e-12 (inertia keeps mu_product float32, as torch creates it)
        tol = dict(rtol=1e-10, atol=1e-10)
    for a, b in zip(straight, resumed):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(straight, resumed):
        for key, value in opt.state[a].items():
            # (torch's float64 copy of a float32 mu_product: equal at float32 precision)
            torch.testing.assert_close(other.state[b][key].to(value.dtype), value,
                                       **(tol if value.dim() else dict(rtol=1e-7, atol=0)),
                                       msg=key)


@pytest.mark.parametrize("name,config", TWINS)
def test_keys_are_exactly_torchs(name, config):
    info = REGISTRY[name]
    ours, theirs = info.make(_params(), config), _both(name, config, _params())
    _steps(ours, ours.param_groups[0]["params"], 2, seed=1)
    _steps(theirs, theirs.param_groups[0]["params"], 2, seed=1)
    a, b = ours.state_dict(), theirs.state_dict()
    assert [sorted(g) for g in a["param_groups"]] == [sorted(g) for g in b["param_groups"]]
    assert sorted(a["state"]) == sorted(b["state"])
    for index in b["state"]:
        assert sorted(a["state"][index]) == sorted(b["state"][index]), index


@pytest.mark.parametrize("source", ["inertia", "torch"])
@pytest.mark.parametrize("name,config", TWINS)
def test_state_dict_after_load_is_the_loaded_one(name, config, source):
    info = REGISTRY[name]
    maker = info.make if source == "inertia" else (lambda ps, c: _both(name, c, ps))
    opt = maker(_params(), config)
    _steps(opt, opt.param_groups[0]["params"], 3, seed=1)
    sd = copy.deepcopy(opt.state_dict())
    fresh = info.make(_params(), config)
    fresh.load_state_dict(copy.deepcopy(sd))
    again = fresh.state_dict()
    assert again["param_groups"] == sd["param_groups"]
    assert sorted(again["state"]) == sorted(sd["state"])
    for index, entry in sd["state"].items():
        assert sorted(again["state"][index]) == sorted(entry)
        for key, value in entry.items():
            assert torch.equal(again["state"][index][key], value), (index, key)


def test_the_issue_reproducer_keeps_torch_sgd_momentum():
    p, q = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    t = torch.optim.SGD([p], lr=.1, momentum=.9)
    for _ in range(3):
        p.grad = torch.ones(3)
        t.step()
    o = inertia.SGD([q], lr=.1, momentum=.9)
    with torch.no_grad():
        q.copy_(p)
    o.load_state_dict(copy.deepcopy(t.state_dict()))
    p.grad = q.grad = torch.ones(3)
    t.step()
    o.step()
    torch.testing.assert_close(o.state[q]["momentum_buffer"], torch.full((3,), 3.439))
    torch.testing.assert_close(q, p)


def test_inertia_options_are_written_only_when_not_default():
    params = _params()
    plain = inertia.Adam(params, lr=0.1).state_dict()["param_groups"][0]
    assert not {"nonfinite", "sparse", "state_dtype"} & set(plain)
    custom = inertia.Adam(params, lr=0.1, nonfinite="skip", state_dtype=torch.bfloat16)
    group = custom.state_dict()["param_groups"][0]
    assert group["nonfinite"] == "skip" and group["state_dtype"] == torch.bfloat16
    assert "sparse" not in group


def test_constructor_options_are_kept_and_the_state_converted():
    theirs_p, ours_p = _params(), _params()
    theirs = torch.optim.Adam(theirs_p, lr=0.01)
    _steps(theirs, theirs_p, 3, seed=1)
    ours = inertia.Adam(ours_p, lr=0.01, state_dtype=torch.float32, nonfinite="skip")
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))
    group = ours.param_groups[0]
    assert group["state_dtype"] == torch.float32 and group["nonfinite"] == "skip"
    for p in ours_p:
        assert ours.state[p]["exp_avg"].dtype == torch.float32
    # an option the constructor did not pass comes from the checkpoint
    saved = ours.state_dict()
    plain = inertia.Adam(_params(), lr=0.01)
    plain.load_state_dict(saved)
    assert plain.param_groups[0]["state_dtype"] == torch.float32
    assert plain.param_groups[0]["nonfinite"] == "skip"


def test_a_state_of_the_wrong_shape_is_refused_before_anything_changes():
    params = _params()
    opt = inertia.Adam(params, lr=0.01)
    _steps(opt, params, 2, seed=1)
    bad = copy.deepcopy(opt.state_dict())
    bad["state"][1]["exp_avg"] = torch.zeros(7, dtype=torch.float64)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 1 .* shape \(7,\) .* \(5,\)"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert str(after) == str(before)
    _steps(opt, params, 1, seed=3)  # and it still steps


def _dcp_round_trip(make_source, make_target, tmp_path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (get_optimizer_state_dict,
                                                         set_optimizer_state_dict)

    def model_and_opt(maker):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        opt = maker(model.parameters())
        for seed in range(3):
            torch.manual_seed(seed)
            opt.zero_grad()
            model(torch.randn(5, 3)).square().sum().backward()
            opt.step()
        return model, opt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no process group: running without collectives"
        model, opt = model_and_opt(make_source)
        dcp.save({"optim": get_optimizer_state_dict(model, opt)}, checkpoint_id=str(tmp_path))
        model2, opt2 = model_and_opt(make_target)
        model2.load_state_dict(model.state_dict())
        loaded = {"optim": get_optimizer_state_dict(model2, opt2)}
        dcp.load(loaded, checkpoint_id=str(tmp_path))
        set_optimizer_state_dict(model2, opt2, loaded["optim"])
    for (k, a), b in zip(opt.state.items(), opt2.state.values()):
        for key, value in a.items():
            if key in b:
                torch.testing.assert_close(b[key].to(value.dtype), value, msg=key)


@pytest.mark.parametrize("name", ["adam", "sgd", "adagrad", "rmsprop", "adamw"])
@pytest.mark.parametrize("direction", ["torch->inertia", "inertia->torch"])
def test_distributed_checkpoint_moves_state_either_way(name, direction, tmp_path):
    info = REGISTRY[name]
    config = "momentum" if name == "sgd" else "default"
    ours = lambda ps: info.make(ps, config)  # noqa: E731
    theirs = lambda ps: info.torch_equivalent(ps, **info.configs[config])  # noqa: E731
    if direction == "torch->inertia":
        _dcp_round_trip(theirs, ours, tmp_path)
    else:
        _dcp_round_trip(ours, theirs, tmp_path)

"""Registry-driven tests: every optimizer, every named configuration, every bad input."""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

import inertia
from inertia.engine.state import scalar_keys, step_of
from inertia.optim.registry import REGISTRY
from numpy_reference import RULES, TOLERANCE

CASES = [(name, config) for name, info in REGISTRY.items() for config in info.configs]
TORCH_CASES = [(n, c) for n, c in CASES if REGISTRY[n].torch_equivalent and c not in REGISTRY[n].torch_skip]
BAD = [(name, i) for name, info in REGISTRY.items() for i in range(len(info.bad_inputs))]
SHAPES = [(7, 5), (5,), (3, 2, 4), ()]


def _params(dtype=torch.float64, seed=0, zero_last=False):
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]
    if zero_last:
        ps.append(torch.zeros(4, dtype=dtype))  # a zero tensor: trust ratios must fall back to 1
    return [torch.nn.Parameter(p) for p in ps]


def _grads(params, step, seed=1):
    gen = torch.Generator().manual_seed(seed * 1000 + step)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) for p in params]


def _run(opt, params, steps, seed=1):
    for t in range(steps):
        for p, g in zip(params, _grads(params, t, seed)):
            p.grad = g.clone()
        opt.step()


@pytest.mark.parametrize("name,config", CASES)
def test_matches_independent_float64_rule(name, config):
    info = REGISTRY[name]
    params = _params(zero_last=True)
    opt = info.make(params, config)
    kwargs = dict(info.configs[config])
    ref_params = [p.detach().numpy().copy() for p in params]
    ref_states = [{} for _ in params]
    tol = TOLERANCE.get(name, dict(rtol=1e-10, atol=1e-12))
    for t in range(1, 26):
        grads = _grads(params, t)
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        for i, g in enumerate(grads):
            ref_params[i] = RULES[name](ref_params[i], g.numpy(), ref_states[i], t, **kwargs)
        for p, ref, ref_state in zip(params, ref_params, ref_states):
            np.testing.assert_allclose(p.detach().numpy(), ref, **tol, err_msg=f"step {t}")
            state = opt.state.get(p, {})
            assert float(step_of(opt, p)) == t
            for key, value in ref_state.items():
                np.testing.assert_allclose(state[key].numpy(), value, **tol,
                                           err_msg=f"state {key!r} at step {t}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name,config", TORCH_CASES)
def test_matches_torch_optim(name, config, dtype):
    info = REGISTRY[name]
    ours_p, theirs_p = _params(dtype), _params(dtype)
    ours = info.make(ours_p, config)
    theirs = info.torch_equivalent(theirs_p, **info.configs[config])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-11, atol=1e-13)
    for t in range(25):
        grads = _grads(ours_p, t)
        for a, b, g in zip(ours_p, theirs_p, grads):
            a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
        for a, b in zip(ours_p, theirs_p):
            torch.testing.assert_close(a, b, **tol)
            sa, sb = ours.state[a], theirs.state[b]
            for key, value in sb.items():
                if key != "step" and value is not None:
                    torch.testing.assert_close(sa[key], value, **tol, msg=f"state {key!r}")


@pytest.mark.parametrize("name,index", BAD)
def test_bad_input_message(name, index):
    info = REGISTRY[name]
    bad = info.bad_inputs[index]
    with pytest.raises(bad.error, match=bad.match):
        info.cls([torch.nn.Parameter(torch.zeros(2))], **bad.kwargs)


@pytest.mark.parametrize("name", REGISTRY)
def test_bad_input_in_a_later_param_group(name):
    info = REGISTRY[name]
    bad = info.bad_inputs[0]
    opt = info.make([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match=bad.match):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], **bad.kwargs})


@pytest.mark.parametrize("name", REGISTRY)
def test_empty_parameter_list(name):
    with pytest.raises(ValueError, match="empty parameter list"):
        REGISTRY[name].make([])


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword arguments: momentun"):
        inertia.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentun=0.9)


# ---------------------------------------------------------------- convergence

def _parabola(x):
    scales = torch.tensor([1.0, 4.0, 0.5, 2.0], dtype=x.dtype)
    return (scales * (x - 1) ** 2).sum()


def _rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


CONVERGENCE = {
    # name: (kwargs for the parabola, kwargs for Rosenbrock, Rosenbrock steps)
    "sgd": (dict(lr=0.1), dict(lr=1e-3, momentum=0.9), 3000),
    "momentum": (dict(lr=0.1), dict(lr=5e-3, beta=0.9), 4000),
    "rmsprop": (dict(lr=0.01), dict(lr=3e-3), 4000),
    "adam": (dict(lr=0.05), dict(lr=0.02), 3000),
    "adamw": (dict(lr=0.05, weight_decay=0.0), dict(lr=0.02, weight_decay=0.0), 3000),
    "adagrad": (dict(lr=0.5), dict(lr=1.0), 4000),  # its own decay: no cosine on Rosenbrock
    "lion": (dict(lr=0.01), dict(lr=3e-3), 4000),
    "lamb": (dict(lr=0.05), dict(lr=0.03), 4000),
    "lars": (dict(lr=10.0, trust_coefficient=0.01), dict(lr=1.0, trust_coefficient=0.01), 4000),
    "nadam": (dict(lr=0.05), dict(lr=0.02), 3000),
    "radam": (dict(lr=0.05), dict(lr=0.01, betas=(0.8, 0.99)), 4000),  # SGD for 5 steps first
    "adamax": (dict(lr=0.1), dict(lr=0.1), 3000),
    "adadelta": (dict(lr=10.0), dict(lr=10.0, rho=0.95), 4000),
    # a vector: Muon hands it to its AdamW
    "muon": (dict(lr=0.05, weight_decay=0.0), dict(lr=0.02, weight_decay=0.0), 3000),
    "adafactor": (dict(lr=0.05), dict(lr=0.02), 4000),
    # no schedule: the averaging replaces it (and the result is read at x, after eval())
    "adamw-schedulefree": (dict(lr=0.05), dict(lr=0.05), 4000),
    "sgd-schedulefree": (dict(lr=0.1), dict(lr=0.003), 8000),
}
#: optimizers run without the cosine schedule: Adagrad decays by itself, Schedule-Free
#: replaces the schedule by an average
NO_SCHEDULE = {"adagrad", "adamw-schedulefree", "sgd-schedulefree"}


def _minimise(name, kwargs, fn, x0, steps, schedule=None):
    x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = REGISTRY[name].cls([x], **kwargs)
    sched = inertia.schedules.Scheduler(opt, schedule, scale_by_initial=True) if schedule else None
    for _ in range(steps):
        opt.zero_grad()
        fn(x).backward()
        opt.step()
        if sched:
            sched.step()
    if hasattr(opt, "eval"):  # Schedule-Free: the average x is the model to evaluate
        opt.eval()
    return fn(x).item()


@pytest.mark.parametrize("name", REGISTRY)
def test_converges_on_a_parabola(name):
    start = [3.0, -2.0, 0.0, 2.0]
    initial = _parabola(torch.tensor(start, dtype=torch.float64)).item()
    steps = 1500
    schedule = None if name in NO_SCHEDULE else inertia.schedules.cosine(1.0, steps)
    final = _minimise(name, CONVERGENCE[name][0], _parabola, start, steps, schedule)
    assert final < 1e-4 * initial


@pytest.mark.parametrize("name", REGISTRY)
def test_converges_on_rosenbrock(name):
    _, kwargs, steps = CONVERGENCE[name]
    schedule = None if name in NO_SCHEDULE else inertia.schedules.cosine(1.0, steps)
    final = _minimise(name, kwargs, _rosenbrock, [-1.5, 2.0], steps, schedule)
    assert final < 1e-2  # from f = 62.5 at the start


# ---------------------------------------------------------------- the torch.optim contract

def _snapshot(opt, params):
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict())


@pytest.mark.parametrize("state_dtype", [None, torch.bfloat16], ids=["param-dtype", "bf16-state"])
@pytest.mark.parametrize("name,config", CASES)
def test_state_dict_round_trip_continues_bit_identically(name, config, state_dtype):
    info = REGISTRY[name]
    params = _params(torch.float32)
    opt = info.make(params, config, state_dtype=state_dtype)
    _run(opt, params, 10)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "opt": opt.state_dict()}, buffer)
    _run(opt, params, 10, seed=2)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    restored = [torch.nn.Parameter(p.clone()) for p in saved["params"]]
    opt2 = info.make(restored, config, state_dtype=state_dtype)
    opt2.load_state_dict(saved["opt"])
    _run(opt2, restored, 10, seed=2)
    for a, b in zip(params, restored):
        assert torch.equal(a, b)
        for key, value in opt.state[a].items():
            assert opt2.state[b][key].dtype == value.dtype, key
            assert torch.equal(opt2.state[b][key], value), key


def test_old_checkpoint_without_new_options_still_loads():
    params = _params(torch.float32)
    opt = inertia.Adam(params, lr=0.01)
    _run(opt, params, 3)
    old = copy.deepcopy(opt.state_dict())
    for group in old["param_groups"]:
        # keys torch and inertia added over time; inertia's own are absent at their defaults
        for key in ("decoupled_weight_decay", "capturable", "differentiable", "fused", "foreach"):
            del group[key]
        assert not {"nonfinite", "sparse", "state_dtype"} & set(group)
    for state in old["state"].values():
        state["step"] = 3  # very old torch checkpoints kept an int
    fresh = inertia.Adam(_params(torch.float32), lr=0.01)
    fresh.load_state_dict(old)
    assert fresh.param_groups[0]["nonfinite"] == "guard"
    assert isinstance(fresh.state[fresh.param_groups[0]["params"][0]]["step"], torch.Tensor)
    _run(fresh, fresh.param_groups[0]["params"], 2)


def test_loads_a_torch_adam_checkpoint():
    theirs_p, ours_p = _params(torch.float64), _params(torch.float64)
    theirs = torch.optim.Adam(theirs_p, lr=0.01)
    _run(theirs, theirs_p, 5)
    for a, b in zip(ours_p, theirs_p):
        a.data.copy_(b.data)
    ours = inertia.Adam(ours_p, lr=0.01)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))
    _run(theirs, theirs_p, 5, seed=3)
    _run(ours, ours_p, 5, seed=3)
    for a, b in zip(ours_p, theirs_p):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)


def test_param_groups_use_their_own_hyperparameters():
    params = _params()
    opt = inertia.Adam([{"params": params[:2], "lr": 0.1, "weight_decay": 0.1},
                        {"params": params[2:], "betas": (0.5, 0.9)}], lr=0.01)
    refs = [p.detach().numpy().copy() for p in params]
    states = [{} for _ in params]
    hp = [dict(lr=0.1, weight_decay=0.1)] * 2 + [dict(lr=0.01, betas=(0.5, 0.9))] * 2
    for t in range(1, 21):
        grads = _grads(params, t)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for i in range(len(params)):
            refs[i] = RULES["adam"](refs[i], grads[i].numpy(), states[i], t, **hp[i])
    for p, r in zip(params, refs):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-10)


@pytest.mark.parametrize("name", REGISTRY)
def test_params_without_grad_are_skipped(name):
    params = _params(torch.float32)
    opt = REGISTRY[name].make(params)
    before = params[1].detach().clone()
    for i, p in enumerate(params):
        p.grad = None if i == 1 else torch.ones_like(p)
    opt.step()
    if name == "adagrad":  # torch's Adagrad creates its state with the optimizer: untouched
        assert float(opt.state[params[1]]["step"]) == 0
    else:
        assert params[1] not in opt.state
    assert torch.equal(params[1], before)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_closure_is_evaluated_with_grad_and_its_loss_returned():
    x = torch.nn.Parameter(torch.tensor([2.0]))
    opt = inertia.SGD([x], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0
    assert x.item() == 1.0


def test_torch_lr_schedulers_drive_inertia_optimizers():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    opt = inertia.Lion([x], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    moves = []
    for _ in range(4):
        before = x.item()
        x.grad = torch.tensor([1.0])
        opt.step()
        sched.step()
        moves.append(round(before - x.item(), 6))
    assert moves == [0.1, 0.1, 0.05, 0.05]  # Lion moves every coordinate by exactly lr


def test_tensor_learning_rate_equals_float():
    a, b = _params(torch.float32), _params(torch.float32)
    oa = inertia.Adam(a, lr=torch.tensor(0.01))
    ob = inertia.Adam(b, lr=0.01)
    _run(oa, a, 5)
    _run(ob, b, 5)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("name", REGISTRY)
def test_bfloat16_parameters_follow_float32(name):
    info = REGISTRY[name]
    low, high = _params(torch.bfloat16), _params(torch.float32)
    for a, b in zip(low, high):
        b.data.copy_(a.data.float())
    ol, oh = info.make(low), info.make(high)
    _run(ol, low, 5)
    _run(oh, high, 5)
    for a, b in zip(low, high):
        assert a.dtype == torch.bfloat16
        # (per-tensor scalar state such as NAdam's mu_product stays float32, as torch's)
        scalars = scalar_keys(ol.rule(next(g for g in ol.param_groups
                                           if any(p is a for p in g["params"]))))
        assert all(v.dtype == torch.bfloat16 for k, v in ol.state[a].items()
                   if k != "step" and k not in scalars)
        torch.testing.assert_close(a.float(), b, rtol=2e-2, atol=2e-2)


# ---------------------------------------------------------------- non-finite gradients

@pytest.mark.parametrize("name", REGISTRY)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_raises_and_changes_nothing(name, bad):
    params = _params(torch.float32)
    opt = REGISTRY[name].make(params, nonfinite="raise")
    _run(opt, params, 2)
    before = _snapshot(opt, params)
    for p, g in zip(params, _grads(params, 9)):
        p.grad = g
    params[2].grad.view(-1)[3] = bad
    # (group 0, or 1 for Muon, whose registry groups put the 3-D tensor in its AdamW group)
    with pytest.raises(inertia.NonFiniteGradientError, match="non-finite gradient in parameter group [01]"):
        opt.step()
    after = _snapshot(opt, params)
    for x, y in zip(before[0], after[0]):
        assert torch.equal(x, y)
    assert str(before[1]) == str(after[1])


@pytest.mark.parametrize("name", REGISTRY)
def test_nonfinite_gradient_skip_policy(name):
    params = _params(torch.float32)
    opt = REGISTRY[name].make(params, nonfinite="skip")
    _run(opt, params, 2)
    before = [p.detach().clone() for p in params]
    state_before = copy.deepcopy(opt.state_dict())
    for p in params:
        p.grad = torch.full_like(p, float("nan"))
    opt.step()
    assert opt.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    assert str(opt.state_dict()) == str(state_before)
    _run(opt, params, 1)
    assert all(torch.isfinite(p).all() for p in params)


# ---------------------------------------------------------------- sparse gradients

def _sparse_rows(shape, rows, seed):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn((len(rows),) + shape[1:], generator=gen, dtype=torch.float64)
    return torch.sparse_coo_tensor(torch.tensor([rows]), values, shape)


SPARSE = [name for name, info in REGISTRY.items() if info.sparse]


@pytest.mark.parametrize("name", [n for n in REGISTRY if n not in SPARSE])
def test_sparse_gradients_are_refused_where_unsupported(name):
    """Muon and Adafactor, like torch's, take dense gradients only: a sparse one is refused
    at the step, naming the problem, before anything changes."""
    params = [torch.nn.Parameter(torch.randn(6, 3, dtype=torch.float64)) for _ in range(2)]
    opt = REGISTRY[name].make(params)
    _run(opt, params, 1)
    before = _snapshot(opt, params)
    params[1].grad = _sparse_rows((6, 3), [1, 4], 0)
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before[0], params))
    assert str(before[1]) == str(opt.state_dict())


@pytest.mark.parametrize("name", SPARSE)
def test_sparse_dense_mode_equals_the_densified_gradient(name):
    info = REGISTRY[name]
    a, b = torch.nn.Parameter(torch.randn(6, 3, dtype=torch.float64)), None
    b = torch.nn.Parameter(a.detach().clone())
    oa, ob = info.make([a], sparse="dense"), info.make([b])
    for t in range(8):
        g = _sparse_rows((6, 3), [t % 6, (t + 2) % 6, (t + 2) % 6], t)  # repeated index: summed
        a.grad, b.grad = g, g.to_dense()
        oa.step()
        ob.step()
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", SPARSE)
def test_sparse_lazy_mode_updates_only_present_rows(name):
    info = REGISTRY[name]
    weights = torch.randn(6, 3, dtype=torch.float64)
    a = torch.nn.Parameter(weights.clone())
    opt = info.make([a], sparse="lazy")
    g = _sparse_rows((6, 3), [1, 4], 0)
    a.grad = g
    opt.step()
    untouched = [0, 2, 3, 5]
    assert torch.equal(a.detach()[untouched], weights[untouched])
    for key, value in opt.state[a].items():
        if key != "step" and value.shape == a.shape:
            initial = info.cls([torch.nn.Parameter(weights.clone())], **info.configs["default"])
            zero = initial.rule(initial.param_groups[0]).init(weights)[key]
            assert torch.equal(value[untouched], zero[untouched]), key
    # On the present rows, one lazy step from fresh state equals the dense rule on those rows.
    rows = torch.nn.Parameter(weights[[1, 4]].clone())
    ref = info.make([rows])
    rows.grad = g.to_dense()[[1, 4]]
    ref.step()
    torch.testing.assert_close(a.detach()[[1, 4]], rows.detach(), rtol=1e-12, atol=1e-12)


def test_embedding_with_sparse_gradients_trains():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 4, sparse=True)
    opt = inertia.Adam(emb.parameters(), lr=0.05, sparse="lazy")
    idx = torch.randint(0, 50, (64,))
    target = torch.randn(64, 4)
    first = None
    for _ in range(50):
        opt.zero_grad()
        loss = ((emb(idx) - target) ** 2).mean()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first



def test_huge_finite_gradients_are_not_mistaken_for_infinite():
    # Their sum overflows to inf; the check must confirm element by element before refusing.
    p = torch.nn.Parameter(torch.zeros(4))
    opt = inertia.SGD([p], lr=1e-40)
    p.grad = torch.full((4,), 3e38)
    opt.step()
    assert torch.isfinite(p).all() and opt.skipped_steps == 0


def test_empty_parameters_are_fine():
    p, q = torch.nn.Parameter(torch.zeros(0)), torch.nn.Parameter(torch.ones(2))
    opt = inertia.Adam([p, q], lr=0.1)
    p.grad, q.grad = torch.zeros(0), torch.ones(2)
    opt.step()
    assert q.detach().tolist() == pytest.approx([0.9, 0.9])

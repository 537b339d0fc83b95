"""Every fused path against the reference transforms (``fused=False``), on params and state.

Each test runs two copies of the same problem for 20+ steps, one through the default
(fused) step and one through the reference, and compares every parameter and every
state tensor. ``path_counts`` proves the fast path actually ran, so a dispatch that
silently falls back cannot pass.
"""
from __future__ import annotations

import pytest
import numpy as np
import torch

import inertia
from inertia.backends import ops
from inertia.engine.state import step_of
from inertia.engine.step import path_counts

numba = pytest.importorskip("numba")

STEPS = 21
SHAPES = [(7, 5), (5,), (3, 2, 4), (), (40_000,)]  # the last one spans two kernel chunks

CONFIGS = {
    "SGD": [dict(lr=0.1), dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
            dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)],
    "Momentum": [dict(lr=0.1), dict(lr=0.1, nesterov=True, weight_decay=0.01, maximize=True)],
    "RMSprop": [dict(lr=0.01), dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.01),
                dict(lr=0.01, momentum=0.5, maximize=True)],
    "Adam": [dict(lr=0.01), dict(lr=0.01, amsgrad=True, weight_decay=0.01, maximize=True)],
    "AdamW": [dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, amsgrad=True)],
    "Adagrad": [dict(lr=0.1), dict(lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                   initial_accumulator_value=0.1, maximize=True)],
    "Lion": [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1, maximize=True)],
    "LAMB": [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1)],
    "LARS": [dict(lr=0.1), dict(lr=0.1, nesterov=True, weight_decay=0.01, eps=1e-8,
                                maximize=True)],
    # issue 16: rules written once, fused by the same engine
    "NAdam": [dict(lr=0.01, weight_decay=0.01),
              dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)],
    "RAdam": [dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)],
    "Adamax": [dict(lr=0.01, weight_decay=0.01, maximize=True)],
    "Adadelta": [dict(lr=1.0, weight_decay=0.01)],
    "AdamWScheduleFree": [dict(lr=0.01, weight_decay=0.01, warmup_steps=5)],
    "SGDScheduleFree": [dict(lr=0.05, warmup_steps=3, maximize=True)],
}
CASES = [(name, i) for name, configs in CONFIGS.items() for i in range(len(configs))]
#: issue 16's optimizers: their first configuration in float32 (the parallel drivers) runs by
#: default, the rest with ``-m slow`` (each new rule is one more kernel for numba to compile)
NEW = {"NAdam", "RAdam", "Adamax", "Adadelta", "AdamWScheduleFree", "SGDScheduleFree"}
_F64, _F32 = torch.float64, torch.float32
REFERENCE_CASES = [
    pytest.param(name, i, dtype, id=f"{name}-{i}-{tag}",
                 marks=[pytest.mark.slow] if name in NEW and (i or dtype == _F64) else [])
    for name, i in CASES for dtype, tag in ((_F64, "f64"), (_F32, "f32"))]
BF16_STATE = [pytest.param(name, marks=[pytest.mark.slow] if name in NEW else [])
              for name in CONFIGS]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6),
       torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def _tensors(dtype, seed=0, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]


def _pair(name, groups_kwargs, make_params, **options):
    """The same optimizer twice: default (fused) and reference, on equal parameters."""
    out = []
    for fused in (None, False):
        groups = [dict(kw, params=make_params(j)) for j, kw in enumerate(groups_kwargs)]
        cls = getattr(inertia, name)
        out.append((cls(groups, lr=groups_kwargs[0]["lr"], fused=fused, **options), groups))
    return out


def _params(dtype, j, shapes=SHAPES):
    return [torch.nn.Parameter(t) for t in _tensors(dtype, seed=j, shapes=shapes)]


def _grads(params, step, none_index=None, grad_fn=None):
    gen = torch.Generator().manual_seed(1000 + step)
    for i, p in enumerate(params):
        # made on the CPU (one generator for every device), then moved to the parameter's
        g = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype)
        p.grad = None if i == none_index else (grad_fn(g) if grad_fn else g)


def _run(pair, steps=STEPS, **grad_kw):
    for t in range(steps):
        for opt, groups in pair:
            for group in groups:
                _grads(group["params"], t, **grad_kw)
            opt.step()


def _assert_same(pair, tol, state_tol=None, bit_equal=0.0):
    """Params within ``tol``; state within ``state_tol`` (default ``tol``), and at least a
    fraction ``bit_equal`` of all state elements bit-identical."""
    (fast, fast_groups), (ref, ref_groups) = pair
    same = total = 0
    for fg, rg in zip(fast_groups, ref_groups):
        for pf, pr in zip(fg["params"], rg["params"]):
            torch.testing.assert_close(pf.detach(), pr.detach(), **tol)
            sf, sr = fast.state.get(pf, {}), ref.state.get(pr, {})
            assert sf.keys() == sr.keys()
            for key in sr:
                assert sf[key].dtype == sr[key].dtype, key
                torch.testing.assert_close(sf[key], sr[key], **(state_tol or tol), msg=key)
                same += int((sf[key] == sr[key]).sum())
                total += sr[key].numel()
    assert same >= bit_equal * total, (same, total)


def _expected(name=None, dtype=None, state_dtype=None):
    """The CPU kernel path of this process (C++ in torch's threads, or Python threads)."""
    return "cpu:" + ops.cpu_implementation()


def _fused_ran(path, before):
    return path_counts[path] > before[path]


@pytest.fixture
def parallel(monkeypatch):
    """Split even small problems across threads (they otherwise run on the calling thread)."""
    from inertia.backends import threads

    old = ops.set_parallel_min(0)
    monkeypatch.setattr(threads, "count", lambda: 3)  # more ranges than this machine's cores
    threads_before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(threads_before)
    ops.set_parallel_min(old)


@pytest.mark.parametrize("name,index,dtype", REFERENCE_CASES)
def test_matches_reference(name, index, dtype, request):
    if dtype == torch.float32:
        request.getfixturevalue("parallel")  # f32 exercises the parallel drivers, f64 serial
    kw = CONFIGS[name][index]
    # Two groups with different hyperparameters; the second has a tensor lr.
    other = dict(kw, lr=torch.tensor(kw["lr"] * 0.5), weight_decay=0.02)
    before = path_counts.copy()
    pair = _pair(name, [kw, other], lambda j: _params(dtype, j))
    _run(pair, none_index=1)  # one parameter per group never gets a gradient
    assert _fused_ran(_expected(name, dtype), before)
    assert path_counts["reference"] == before["reference"]
    fast = pair[0][0]
    assert step_of(fast, pair[0][1][0]["params"][0]).item() == STEPS
    if name != "Adagrad":  # (Adagrad's state is created with the optimizer, as torch's)
        assert pair[0][1][0]["params"][1] not in fast.state  # grad None: no state created
    tol = TOL[dtype]
    if kw.get("centered") and dtype == torch.float32:
        # torch.sqrt on float32 CPU is not correctly rounded (about 15% of results are 1 ulp
        # off IEEE, which numba's sqrt is), and centered RMSprop's sqrt(s - a^2) amplifies
        # that 1 ulp by the cancellation: the two paths differ by the reference's error.
        tol = dict(rtol=2e-4, atol=1e-5)
    _assert_same(pair, tol)


@pytest.mark.parametrize("name", BF16_STATE)
def test_bf16_state(name):
    """``state_dtype=torch.bfloat16`` with float32 params: numba reads/writes bf16 state."""
    kw = CONFIGS[name][-1]
    before = path_counts.copy()
    pair = _pair(name, [kw], lambda j: _params(torch.float32, j), state_dtype=torch.bfloat16)
    _run(pair)
    assert _fused_ran(_expected(), before)
    # Both sides compute in float32 and round the state the same way, so the state is
    # bit-identical except where a 1-ulp float32 difference (torch's sqrt is not correctly
    # rounded) lands on a bf16 rounding boundary: then one bf16 ulp (2**-8 relative).
    _assert_same(pair, dict(rtol=1e-3, atol=1e-4), dict(rtol=8e-3, atol=1e-6), bit_equal=0.99)


@pytest.mark.parametrize("name", ["Adam", "Lion", "SGD", "LAMB"])
def test_bf16_params(name):
    kw = CONFIGS[name][-1]
    before = path_counts.copy()
    pair = _pair(name, [kw], lambda j: _params(torch.bfloat16, j))
    _run(pair)
    assert _fused_ran(_expected(), before)
    _assert_same(pair, TOL[torch.bfloat16], bit_equal=0.95)


@pytest.mark.parametrize("name", ["Adam", "Lion"])
def test_mixed_dtypes_in_one_group(name):
    mixed = lambda j: [torch.nn.Parameter(t.to(dt)) for t, dt in zip(  # noqa: E731
        _tensors(torch.float64, j), [torch.float32, torch.float64, torch.float32,
                                     torch.float64, torch.float32])]
    before = path_counts.copy()
    pair = _pair(name, [CONFIGS[name][0]], mixed)
    _run(pair)
    assert path_counts[_expected(name, torch.float32)] - before[_expected(name, torch.float32)] == 2 * STEPS
    _assert_same(pair, TOL[torch.float32])


@pytest.mark.parametrize("name", ["Adam", "RMSprop", "LARS"])
def test_non_contiguous(name):
    """Non-contiguous params or grads go to the reference; the rest of the group stays fused."""
    def make(j):
        ps = _params(torch.float32, j, shapes=[(6, 4), (9, 5), (5,)])
        ps[1] = torch.nn.Parameter(ps[1].detach().t())  # a transposed (non-contiguous) param
        return ps
    before = path_counts.copy()
    pair = _pair(name, [CONFIGS[name][-1]], make)
    _run(pair, grad_fn=lambda g: g.t().contiguous().t() if g.dim() == 2 else g)
    assert _fused_ran("reference", before) and _fused_ran(_expected(name, torch.float32), before)
    _assert_same(pair, TOL[torch.float32])


def _sparse_pair(name, kw, sparse, dtype=torch.float32, state_dtype=None):
    make = lambda j: [torch.nn.Parameter(t) for t in _tensors(dtype, j, [(50, 8), (30,)])]  # noqa
    pair = _pair(name, [kw], make, sparse=sparse, state_dtype=state_dtype)
    for t in range(STEPS):
        gen = torch.Generator().manual_seed(t)
        rows = torch.randint(0, 50, (12,), generator=gen)  # repeats: must be coalesced
        values = torch.randn(12, 8, generator=gen, dtype=torch.float64).to(dtype)
        dense_g = torch.randn(30, generator=gen, dtype=torch.float64).to(dtype)
        for opt, groups in pair:
            emb, vec = groups[0]["params"]
            emb.grad = torch.sparse_coo_tensor(rows[None], values, (50, 8))
            vec.grad = dense_g.clone()
            opt.step()
    return pair


@pytest.mark.parametrize("name", ["SGD", "Momentum", "RMSprop", "Adam", "Adagrad", "Lion"])
def test_sparse_lazy(name, parallel):
    before = path_counts.copy()
    pair = _sparse_pair(name, CONFIGS[name][-1], "lazy")
    assert path_counts["cpu:rows"] - before["cpu:rows"] == STEPS
    _assert_same(pair, TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_sparse_lazy_adam_bf16_state_and_f64(dtype):
    pair = _sparse_pair("Adam", CONFIGS["Adam"][0], "lazy", dtype)
    _assert_same(pair, TOL[dtype])
    pair = _sparse_pair("Adam", CONFIGS["Adam"][0], "lazy", torch.float32, torch.bfloat16)
    _assert_same(pair, dict(rtol=1e-3, atol=1e-4), dict(rtol=8e-3, atol=1e-6), bit_equal=0.99)


@pytest.mark.parametrize("name", ["Adam", "LAMB"])
def test_sparse_dense_mode_equals_densified(name):
    before = path_counts.copy()
    pair = _sparse_pair(name, CONFIGS[name][0], "dense")
    assert _fused_ran(_expected(name, torch.float32), before)
    _assert_same(pair, TOL[torch.float32])


def test_subclass_with_new_rule_is_fused_with_its_own_math():
    """A rule changed by a subclass is traced into its own kernel, never the parent's."""
    class Doubled(inertia.Adam):
        @staticmethod
        def rule(group):
            return inertia.Adam.rule({**group, "lr": 2 * group["lr"]})

    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    before = path_counts.copy()
    Doubled([p], lr=0.1).step()
    assert _fused_ran(_expected(), before)
    assert path_counts["reference"] == before["reference"]
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.8))


def test_state_dict_round_trip_keeps_fusing():
    """After load_state_dict (new tensors everywhere) the kernels read the new addresses."""
    pair = _pair("Lion", [CONFIGS["Lion"][1]], lambda j: _params(torch.float32, j))
    _run(pair, steps=5)
    fast, groups = pair[0]
    fresh = inertia.Lion([dict(CONFIGS["Lion"][1], params=groups[0]["params"])])
    fresh.load_state_dict(fast.state_dict())
    pair[0] = (fresh, groups)
    _run(pair, steps=5)
    _assert_same(pair, TOL[torch.float32])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,index", CASES)
def test_cuda_matches_reference(name, index):
    kw = CONFIGS[name][index]
    before = path_counts.copy()
    pair = _pair(name, [kw], lambda j: [torch.nn.Parameter(t.cuda()) for t in
                                        _tensors(torch.float32, j)])
    _run(pair)
    assert path_counts["cuda:triton"] > before["cuda:triton"]
    _assert_same(pair, dict(rtol=1e-5, atol=1e-5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(CONFIGS))
def test_cuda_bf16_state(name):
    kw = CONFIGS[name][-1]
    before = path_counts.copy()
    pair = _pair(name, [kw], lambda j: [torch.nn.Parameter(t.cuda()) for t in
                                        _tensors(torch.float32, j)], state_dtype=torch.bfloat16)
    _run(pair)
    assert path_counts["cuda:triton"] > before["cuda:triton"]
    _assert_same(pair, dict(rtol=1e-2, atol=1e-3))


def test_sparse_lazy_rejects_out_of_range_rows():
    """COO tensors are not validated on construction; the row kernel must not write past p."""
    emb = torch.nn.Parameter(torch.zeros(5, 3))
    opt = inertia.Adam([emb], sparse="lazy")
    emb.grad = torch.sparse_coo_tensor(torch.tensor([[7]]), torch.ones(1, 3), (5, 3),
                                       check_invariants=False)
    with pytest.raises(IndexError):
        opt.step()
    assert not opt.state.get(emb)  # refused before any state was created


def test_bf16_narrowing_is_bit_identical_to_torch():
    """The kernels' float32 -> bf16 store rounds exactly like ``tensor.to(torch.bfloat16)``:
    ties to even, carries into the exponent, overflow to inf, NaN to a quiet NaN."""
    from inertia.backends.numba_support import st

    @numba.njit
    def narrow(x, out):
        for i in range(x.shape[0]):
            st(out, i, x[i])

    gen = torch.Generator().manual_seed(0)
    bits = torch.randint(-2**31, 2**31 - 1, (200_000,), generator=gen, dtype=torch.int64)
    special = torch.tensor([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x7F7FFFFF, 0x7F7F8000,
                            0x00008000, 0x00018000, 0x80008000, 0x7F800000, 0xFF800000,
                            0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0], dtype=torch.int64)
    x = torch.cat([bits, special]).to(torch.int32).view(torch.float32)
    out = np.empty(x.numel(), np.uint16)
    narrow(x.numpy(), out)
    expected = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(x.numpy())
    np.testing.assert_array_equal(out[~nan], expected[~nan])
    assert np.all(out[nan] & 0x7FC0 == 0x7FC0)  # every NaN stays a (quiet) NaN


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16],
                         ids=["f32", "f64", "bf16"])
def test_nonfinite_check_finds_every_bad_value_and_no_huge_finite_one(dtype, parallel,
                                                                      monkeypatch):
    """The numba check, split over threads: a NaN or inf anywhere (first or last element,
    any tensor) is found; huge finite values whose sum would overflow are not refused."""
    from inertia.backends import cpu
    from inertia.engine.step import _all_finite

    calls = []
    numba_check = cpu.all_finite
    monkeypatch.setattr(cpu, "all_finite", lambda ts: calls.append(len(ts)) or numba_check(ts))
    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(n, generator=gen).to(dtype) for n in (70_000, 1, 33_000, 0, 40_000)]
    assert _all_finite(tensors)
    big = torch.finfo(dtype).max
    assert _all_finite([torch.full((50_000,), big, dtype=dtype)] * 3)
    for bad in (float("nan"), float("inf"), -float("inf")):
        for t, i in ((0, 0), (2, 32_767), (2, 32_768), (4, -1)):
            hit = [x.clone() for x in tensors]
            hit[t][i] = bad
            assert not _all_finite(hit), (bad, t, i)
    assert calls and all(n == 4 or n == 3 for n in calls)  # numba read them (empty one dropped)


def test_without_the_native_runner_python_threads_give_the_same_results(tmp_path):
    """``INERTIA_NATIVE=0`` (or no compiler): the same kernels on Python threads."""
    import subprocess
    import sys

    script = tmp_path / "threads.py"
    script.write_text('''
import torch, inertia
from inertia.backends import ops
from inertia.engine.step import path_counts
torch.set_num_threads(2)
ops.set_parallel_min(0)
for cls, kw in [(inertia.Adam, dict(lr=0.01, weight_decay=0.1)), (inertia.LAMB, dict(lr=0.01)),
                (inertia.SGD, dict(lr=0.1, momentum=0.9, nesterov=True))]:
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(s, generator=gen) for s in [(70_000,), (5, 3), ()]]
    a = [torch.nn.Parameter(t.clone()) for t in base]
    b = [torch.nn.Parameter(t.clone()) for t in base]
    fast, ref = cls(a, **kw), cls(b, fused=False, **kw)
    for t in range(5):
        for x, y in zip(a, b):
            x.grad = torch.randn(x.shape, generator=gen)
            y.grad = x.grad.clone()
        fast.step(); ref.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
assert ops.cpu_implementation() == "threads", ops.cpu_implementation()
assert path_counts["cpu:threads"] == 15, path_counts
print("ok")
''')
    env = {**__import__("os").environ, "INERTIA_NATIVE": "0"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


# --------------------------------------------------------------- Adafactor's hand-fused sweep
# Adafactor's rule needs whole tensors (row and column sums), so it is not traced into the
# elementwise kernels: on the CPU a hand-written sweep (backends/factored_cpu.py) runs it,
# held here to the rule on torch ops (fused=False) over many steps, on params and state.

ADAFACTOR_SHAPES = [(7, 5), (7, 5), (3, 4, 6), (5,), (), (300, 200), (1, 9)]
ADAFACTOR_CASES = [
    pytest.param(torch.float64, {}, dict(lr=0.05, weight_decay=0.1), id="f64-decay"),
    pytest.param(torch.float32, {}, dict(lr=0.3, maximize=True, eps=(1e-20, 1e-3), d=2.0),
                 id="f32-maximize-eps1-d"),
    pytest.param(torch.float32, dict(state_dtype=torch.bfloat16), dict(lr=0.05),
                 id="f32-bf16-state"),
    pytest.param(torch.bfloat16, {}, dict(lr=0.05, weight_decay=0.01), id="bf16"),
]


@pytest.mark.parametrize("dtype,options,kw", ADAFACTOR_CASES)
def test_adafactor_sweep_matches_the_rule_on_torch_ops(dtype, options, kw, parallel):
    before = path_counts.copy()
    # the second group's lr is a tensor (a scheduler's); one parameter never gets a gradient
    other = dict(kw, lr=torch.tensor(kw["lr"] * 0.5))
    pair = _pair("Adafactor", [kw, other], lambda j: _params(dtype, j, ADAFACTOR_SHAPES),
                 **options)
    _run(pair, steps=30, none_index=1)
    # one sweep per group and step; the reference side's groups on torch ops
    assert path_counts["cpu:factored"] - before["cpu:factored"] == 2 * 30
    assert path_counts["reference:batched"] - before["reference:batched"] == 2 * 30
    fast = pair[0][0]
    assert step_of(fast, pair[0][1][0]["params"][0]).item() == 30
    assert pair[0][1][0]["params"][1] not in fast.state
    # sums in another order (and rsqrt(R/mean R) rsqrt(C) for rsqrt(R C/mean R)): a few ulps
    # a step, grown over 30 steps of lr 0.3 to some 1e-6 on unit weights (each float32 path
    # is as far from the float64 result: sweep 2.5e-6, torch ops 3.6e-6, torch 4.8e-6)
    tol = {torch.float64: dict(rtol=1e-11, atol=1e-13), torch.float32: dict(rtol=2e-5, atol=1e-5),
           torch.bfloat16: TOL[torch.bfloat16]}[dtype]
    _assert_same(pair, tol, bit_equal=0.5 if dtype == torch.bfloat16 else 0.0)


def test_adafactor_sweep_guard_leaves_a_nonfinite_tensor_as_it_was():
    """A NaN in one gradient: that tensor and its statistics keep their values (the step
    count advances, as on the torch-ops path), the others step, the step is counted."""
    before = path_counts.copy()
    pair = _pair("Adafactor", [dict(lr=0.05)], lambda j: _params(torch.float32, j, ADAFACTOR_SHAPES))
    _run(pair, steps=3)
    (fast, groups), _ = pair
    kept = [p.detach().clone() for p in groups[0]["params"]]
    stats = {k: v.clone() for k, v in fast.state[groups[0]["params"][2]].items()}
    bad = lambda g: g.index_put_((torch.tensor([0]),), torch.tensor(float("nan")).to(g.dtype)) \
        if g.shape == (3, 4, 6) else g  # noqa: E731
    with pytest.warns(UserWarning, match="non-finite gradient in parameter 2 of group 0"):
        _run(pair, steps=1, grad_fn=bad)
    assert path_counts["cpu:factored"] - before["cpu:factored"] == 4
    params = groups[0]["params"]
    assert torch.equal(params[2].detach(), kept[2])
    for key in ("row_var", "col_var"):
        assert torch.equal(fast.state[params[2]][key], stats[key])
    assert fast.state[params[2]]["step"].item() == 4
    assert not torch.equal(params[0].detach(), kept[0])
    assert int(fast.nonfinite_steps) == 1 and int(pair[1][0].nonfinite_steps) == 1
    _assert_same(pair, dict(rtol=2e-5, atol=1e-6))


def test_adafactor_sweep_with_clipping_and_what_it_does_not_take():
    """``max_grad_norm`` scales the gradient inside the sweep; 8-bit state and a
    non-contiguous parameter go to the rule on torch ops, in the same step."""
    before = path_counts.copy()
    def make(j):
        params = _params(torch.float32, j, ADAFACTOR_SHAPES)
        params[0] = torch.nn.Parameter(params[0].detach().t().contiguous().t())  # strided
        return params
    pair = _pair("Adafactor", [dict(lr=0.05)], make, max_grad_norm=0.5)
    _run(pair, steps=10)
    assert path_counts["cpu:factored"] - before["cpu:factored"] == 10
    # the strided parameter on the default side, every tensor on the reference side
    assert path_counts["reference:batched"] - before["reference:batched"] == 2 * 10
    _assert_same(pair, dict(rtol=2e-5, atol=1e-6))
    before = path_counts.copy()
    pair = _pair("Adafactor", [dict(lr=0.05)], lambda j: _params(torch.float32, j, [(300, 300)]),
                 state_dtype="8bit", state_min_size=16)
    _run(pair, steps=5)
    assert path_counts["cpu:factored"] == before["cpu:factored"]
    _assert_same(pair, dict(rtol=2e-5, atol=1e-6))

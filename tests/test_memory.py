"""Compact storage: 8-bit blockwise state, stochastic rounding of bfloat16 parameters, and
their checkpoints (``docs/memory.md``).

The codes and the random stream are written once (:mod:`inertia.backends.quantize`) and
run by three interpreters: torch ops (the reference), LLVM instructions (numba kernels),
Triton source (``tests/test_triton.py``). These tests hold the interpreters to each other
bit for bit, the fused step to the reference step, and the storage to its promises: blocks
within rows (sharding along the first dimension changes nothing), unbiased rounding, exact
resumption, portable checkpoints, and refusals at construction.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import inertia
from inertia.backends import quantize as Q
from inertia.engine import state as S
from inertia.engine.step import path_counts
from inertia.optim.registry import REGISTRY

numba = pytest.importorskip("numba")

# (48, 80): rows narrower than a block; (5, 300): a row of a full and a short block; (33,):
# one dimension, float32 state
SHAPES = [(48, 80), (5, 300), (33,)]
EIGHT = dict(state_dtype="8bit", state_min_size=1024)


def _params(dtype=torch.float32, shapes=SHAPES, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
            for s in shapes]


def _grads(params, t, scale=1.0):
    gen = torch.Generator().manual_seed(1000 + t)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen, dtype=torch.float64) * scale).to(p.dtype)


def _run(opts_params, steps, start=0, scale=1.0):
    for t in range(start, start + steps):
        for opt, params in opts_params:
            _grads(params, t, scale)
            opt.step()


# ----------------------------------------------------------------------------- the codes

@pytest.mark.parametrize("code", [Q.SIGNED, Q.UNSIGNED], ids=lambda c: c.name)
def test_every_code_decodes_and_encodes_back_and_rounds_to_nearest(code):
    values = code.values()
    assert values[code.largest].item() == pytest.approx(code.fmax)
    back = Q.encode(Q.TorchOps, code, values).t
    assert torch.equal(back, torch.arange(256))
    # any value in range goes to the nearest code (outside the flush / floor region)
    x = torch.rand(20_000, generator=torch.Generator().manual_seed(0)) * code.fmax
    x = torch.cat([x, torch.logspace(-9, 0, 2000) * code.fmax])
    if code.signed:
        x = torch.cat([x, -x])
    got = values[Q.encode(Q.TorchOps, code, x).t]
    best = (x[:, None] - values[None, :]).abs().min(dim=1).values
    inside = x.abs() > values[1]
    assert torch.all((got - x).abs()[inside] <= best[inside] * (1 + 1e-6))
    if code.floor:  # a positive value never becomes 0, 0 stays 0
        assert torch.all(got[x > 0] > 0)
        assert Q.encode(Q.TorchOps, code, torch.zeros(3)).t.tolist() == [0, 0, 0]


def test_numba_codes_and_rounding_are_the_reference_bit_for_bit():
    """The numba intrinsics are :mod:`quantize`'s functions on LLVM values: compared with the
    torch interpreter on every bit pattern class (random bits, NaN, inf, zeros, ties)."""
    from inertia.backends import numba_support as N

    @numba.njit
    def run(x, key, offset, signed, unsigned, dec_s, dec_u, sr):
        for i in range(x.shape[0]):
            signed[i] = N.enc_signed(x[i])
            unsigned[i] = N.enc_unsigned(abs(x[i]))
            sr[i] = N.bf16_stochastic(x[i], key, np.uint64(offset) + np.uint64(i))
        for c in range(256):
            dec_s[c] = N.dec_signed(np.uint8(c))
            dec_u[c] = N.dec_unsigned(np.uint8(c))

    gen = torch.Generator().manual_seed(0)
    bits = torch.randint(-2 ** 31, 2 ** 31 - 1, (100_000,), generator=gen).to(torch.int32)
    special = torch.tensor([0.0, -0.0, 1.9375, 2.0, 1e-30, float("nan"), float("inf"),
                            -float("inf"), 0.5 + 2 ** -6])
    x = torch.cat([bits.view(torch.float32), torch.randn(50_000, generator=gen), special])
    n = len(x)
    out = [np.empty(n, np.uint8), np.empty(n, np.uint8), np.empty(256, np.float32),
           np.empty(256, np.float32), np.empty(n, np.uint16)]
    key, offset = 0x9E3779B9, 2 ** 32 - 7  # element indices cross 2**32
    run(x.numpy(), np.uint32(key), offset, *out)
    o = Q.TorchOps
    assert np.array_equal(out[0], Q.encode(o, Q.SIGNED, x).t.numpy().astype(np.uint8))
    assert np.array_equal(out[1], Q.encode(o, Q.UNSIGNED, x.abs()).t.numpy().astype(np.uint8))
    assert np.array_equal(out[2].view(np.uint32), Q.SIGNED.values().numpy().view(np.uint32))
    assert np.array_equal(out[3].view(np.uint32), Q.UNSIGNED.values().numpy().view(np.uint32))
    index = torch.arange(n, dtype=torch.int64) + offset
    r = Q.random_bits(o, o.u32(torch.tensor(key)), o.u32(index & Q.MASK32), o.u32(index >> 32))
    expected = Q.round_bf16_stochastic(o, x, r).t.numpy().astype(np.uint16)
    assert np.array_equal(out[4], expected)


def test_stochastic_rounding_is_unbiased_and_exact_on_bfloat16_values():
    o = Q.TorchOps
    x = torch.full((200_000,), 1.0 + 2 ** -10)  # 1/8 of the way from 1 to the next bf16
    index = torch.arange(len(x))
    r = Q.random_bits(o, o.u32(torch.tensor(12345)), o.u32(index), o.u32(index * 0))
    bits = Q.round_bf16_stochastic(o, x, r).t
    rounded = bits.to(torch.int32).to(torch.int16).view(torch.bfloat16).float()
    assert set(rounded.unique().tolist()) == {1.0, 1.0078125}
    up = float((rounded > 1).float().mean())
    assert abs(up - 0.125) < 4 * (0.125 * 0.875 / len(x)) ** 0.5  # 4 sigma
    exact = torch.randn(1000).bfloat16().float()  # representable: never moved
    r = Q.random_bits(o, o.u32(torch.tensor(7)), o.u32(torch.arange(1000)), o.u32(torch.zeros(1000, dtype=torch.int64)))
    back = Q.round_bf16_stochastic(o, exact, r).t.to(torch.int32).to(torch.int16).view(torch.bfloat16)
    assert torch.equal(back.float(), exact)


def test_blocks_lie_within_rows_so_row_shards_quantise_alike():
    """FSDP2 shards the first dimension: the codes and scales of any run of rows are the
    rows of the whole tensor's."""
    x = torch.randn(37, 300, generator=torch.Generator().manual_seed(0))
    for key in ("exp_avg", "exp_avg_sq"):
        value = x if key == "exp_avg" else x * x
        codes, scales = Q.quantize(value, key, 64)
        assert codes.dtype == torch.uint8 and scales.shape == (37, 5)  # ceil(300 / 64)
        for lo, hi in ((0, 19), (19, 37), (5, 6)):
            c, s = Q.quantize(value[lo:hi], key, 64)
            assert torch.equal(c, codes[lo:hi]) and torch.equal(s, scales[lo:hi])
        error = (Q.dequantize(codes, scales, key, 64) - value).abs()
        assert float((error / value.abs().clamp_min(1e-3)).median()) < 0.02


# ----------------------------------------------------------------------------- the policy

def test_small_and_one_dimensional_tensors_keep_float32_state():
    params = [torch.nn.Parameter(torch.zeros(s)) for s in [(64, 64), (8, 8), (5000,), (300, 8)]]
    opt = inertia.Adam(params, state_dtype="8bit")
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    kinds = [opt.state[p]["exp_avg"].dtype for p in params]
    assert kinds == [torch.uint8, torch.float32, torch.float32, torch.float32]
    assert opt.state[params[0]]["exp_avg_absmax"].shape == (64, 1)
    # bytes of state per parameter of the quantised tensor: 2 codes + 2 scales per 64 values
    state = opt.state[params[0]]
    size = sum(v.numel() * v.element_size() for k, v in state.items() if k != "step")
    assert size / params[0].numel() == 2 + 2 * 4 / 64


@pytest.mark.parametrize("kwargs,match", [
    (dict(state_dtype="8bit", sparse="lazy"), r"Invalid state_dtype: '8bit' \(8-bit state has no lazy"),
    (dict(state_dtype="8bit", differentiable=True), r"Invalid state_dtype: '8bit' \(8-bit state rounds"),
    (dict(state_dtype="int4"), r"Invalid state_dtype: 'int4' \(must be a floating-point torch.dtype \(or its name"),
    (dict(state_block_size=100), r"Invalid state_block_size: 100 \(must be a power of two from 32 to 4096\)"),
    (dict(state_min_size=-1), r"Invalid state_min_size: -1"),
    (dict(stochastic_rounding="yes"), r"Invalid stochastic_rounding value: 'yes'"),
    (dict(rounding_seed=2 ** 32), r"Invalid rounding_seed: 4294967296"),
])
def test_unsupported_combinations_are_refused_at_construction(kwargs, match):
    error = TypeError if kwargs.get("stochastic_rounding") == "yes" else ValueError
    with pytest.raises(error, match=match):
        inertia.Adam([torch.nn.Parameter(torch.zeros(64, 64))], **kwargs)


def test_a_state_dtype_given_by_name_is_that_dtype():
    """The lab's entries and the CLI give options as text: ``state_dtype=bfloat16``."""
    p = torch.nn.Parameter(torch.zeros(64, 64))
    opt = inertia.Adam([p], state_dtype="bfloat16")
    assert opt.param_groups[0]["state_dtype"] is torch.bfloat16
    p.grad = torch.ones_like(p)
    opt.step()
    assert opt.state[p]["exp_avg"].dtype == torch.bfloat16


# ----------------------------------------------------------------------------- fused == reference

def _flipped(fast, ref, fast_params, ref_params, into=None):
    """Per parameter, the elements whose 8-bit code (of a state shaped like it) differs
    between the two optimizers now, or-ed into ``into``."""
    out = into or [torch.zeros(a.shape, dtype=torch.bool) for a in fast_params]
    for mask, a, b in zip(out, fast_params, ref_params):
        sa, sb = fast.state[a], ref.state[b]
        for key in sb:
            if sa[key].dtype == torch.uint8 and sa[key].shape == a.shape:
                mask |= sa[key] != sb[key]
    return out


def _assert_same(fast, ref, fast_params, ref_params, tol, codes_equal=0.99, flipped=None):
    """Parameters and state equal within ``tol``, at least ``codes_equal`` of the 8-bit
    codes identical; parameter elements in ``flipped`` (whose code was one step apart at
    some step: they moved by that step's share of their update, which at Adadelta's lr=1
    exceeds ``tol``) are left out of the parameter comparison."""
    same = total = 0
    for k, (a, b) in enumerate(zip(fast_params, ref_params)):
        sa, sb = fast.state[a], ref.state[b]
        ok = ~flipped[k] if flipped is not None else torch.ones(a.shape, dtype=torch.bool)
        torch.testing.assert_close(a.detach()[ok], b.detach()[ok], **tol)
        assert sa.keys() == sb.keys()
        for key in sb:
            assert sa[key].dtype == sb[key].dtype, key
            if sa[key].dtype == torch.uint8:
                same += int((sa[key] == sb[key]).sum())
                total += sa[key].numel()
            else:
                torch.testing.assert_close(sa[key], sb[key], **tol, msg=key)
    assert same >= codes_equal * total, (same, total)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_8bit_state_fused_equals_reference(name):
    """Every optimizer, 21 steps: the kernels decode, update and encode as the reference
    does (the codes differ only where torch's float32 sqrt, not correctly rounded, moves a
    value across a rounding boundary)."""
    info = REGISTRY[name]
    config = list(info.configs)[-1]
    a, b = _params(), _params()
    fast, ref = info.make(a, config, **EIGHT), info.make(b, config, fused=False, **EIGHT)
    before = path_counts.copy()
    flipped = None
    for t in range(21):
        _run([(fast, a), (ref, b)], 1, start=t)
        flipped = _flipped(fast, ref, a, b, flipped)
    assert sum(int(m.sum()) for m in flipped) <= 0.01 * sum(m.numel() for m in flipped)
    # Muon and Adafactor need whole tensors: their default path is the batched one
    paths = ("cpu:native", "cpu:threads") if info.elementwise else ("reference:batched",)
    assert sum(path_counts[k] - before[k] for k in paths) == 2 * 21
    assert fast.state[a[0]][next(k for k in fast.state[a[0]] if k != "step")].dtype in (
        torch.uint8, torch.float32)
    _assert_same(fast, ref, a, b, dict(rtol=1e-4, atol=1e-5), flipped=flipped)


def test_8bit_state_with_float64_and_bfloat16_parameters():
    for dtype, tol in ((torch.float64, dict(rtol=1e-12, atol=1e-12)),
                       (torch.bfloat16, dict(rtol=0, atol=0))):
        a, b = _params(dtype), _params(dtype)
        fast, ref = inertia.AdamW(a, lr=1e-2, **EIGHT), inertia.AdamW(b, lr=1e-2, fused=False, **EIGHT)
        _run([(fast, a), (ref, b)], 8)
        _assert_same(fast, ref, a, b, tol, codes_equal=1.0)


def test_the_guard_skips_the_8bit_block_holding_a_nan(parallel=None):
    a, b = _params(), _params()
    fast, ref = inertia.Adam(a, lr=1e-2, **EIGHT), inertia.Adam(b, lr=1e-2, fused=False, **EIGHT)
    _run([(fast, a), (ref, b)], 2)
    codes = fast.state[a[1]]["exp_avg"].clone()
    _grads(a, 5)
    a[1].grad[3, 270] = float("nan")  # row 3, the short second block (256..299)
    with pytest.warns(UserWarning, match="non-finite gradient in parameter 1"):
        fast.step()
    after = fast.state[a[1]]["exp_avg"]
    assert torch.equal(after[3, 256:], codes[3, 256:])
    assert not torch.equal(after[3, :256], codes[3, :256])
    assert int(fast.nonfinite_steps) == 1
    assert all(torch.isfinite(v.float()).all() for v in fast.state[a[1]].values())


# ----------------------------------------------------------------------------- stochastic rounding

def test_stochastic_rounding_fused_equals_reference_and_threads_change_nothing():
    from inertia.backends import ops

    results = []
    for fused, parallel in ((None, True), (None, False), (False, False)):
        old = ops.set_parallel_min(0 if parallel else 1 << 40)
        threads = torch.get_num_threads()
        torch.set_num_threads(3 if parallel else 1)
        try:
            params = _params(torch.bfloat16, shapes=[(300, 300), (33,)])
            opt = inertia.Adam(params, lr=1e-3, fused=fused, stochastic_rounding=True,
                               rounding_seed=5)
            _run([(opt, params)], 5)
        finally:
            torch.set_num_threads(threads)
            ops.set_parallel_min(old)
        results.append([p.detach().clone() for p in params])
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert torch.equal(x, y)


def test_stochastic_rounding_keeps_learning_where_nearest_rounding_stalls():
    """A slow learning rate on bfloat16 weights: every update is below half a bfloat16 unit,
    so rounding to nearest gives the same weights back; stochastic rounding moves them by
    the right amount on average."""
    target = torch.full((4096,), 3.0)
    out = {}
    for stochastic in (False, True):
        w = torch.nn.Parameter(torch.full((4096,), 1.0, dtype=torch.bfloat16))
        opt = inertia.SGD([w], lr=1e-4, stochastic_rounding=stochastic)
        for _ in range(200):
            w.grad = (w.float() - target).to(torch.bfloat16)  # d/dw of (w - 3)^2 / 2
            opt.step()
        out[stochastic] = w.float()
    assert torch.all(out[False] == 1.0)  # 1e-4 * 2 is below half of bf16's 2**-7 at 1.0
    exact = 3 - 2 * (1 - 1e-4) ** 200  # float32 gradient descent
    assert abs(float(out[True].mean()) - exact) < 1e-3


def test_stochastic_rounding_resumes_exactly_from_a_checkpoint():
    def make(params):
        return inertia.AdamW(params, lr=1e-3, stochastic_rounding=True, rounding_seed=3, **EIGHT)

    straight = _params(torch.bfloat16)
    opt = make(straight)
    _run([(opt, straight)], 3)
    saved = copy.deepcopy(opt.state_dict())
    kept = [p.detach().clone() for p in straight]
    _run([(opt, straight)], 3, start=3)

    resumed = [torch.nn.Parameter(p) for p in kept]
    other = inertia.AdamW(resumed, lr=1e-3)  # the options come from the checkpoint
    other.load_state_dict(saved)
    assert other.param_groups[0]["stochastic_rounding"] and other.param_groups[0]["rounding_seed"] == 3
    _run([(other, resumed)], 3, start=3)
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- checkpoints

def test_an_8bit_checkpoint_holds_codes_and_scales_and_converts_both_ways():
    params = _params()
    opt = inertia.Adam(params, lr=1e-2, **EIGHT)
    _run([(opt, params)], 4)
    sd = opt.state_dict()
    group = sd["param_groups"][0]
    assert group["state_dtype"] == "8bit" and group["state_min_size"] == 1024
    assert "state_block_size" not in group  # the default is not written
    entry = sd["state"][0]
    assert sorted(entry) == ["exp_avg", "exp_avg_absmax", "exp_avg_sq", "exp_avg_sq_absmax",
                             "step"]
    assert entry["exp_avg"].dtype == torch.uint8 and entry["exp_avg_absmax"].shape == (48, 1)

    # into a float32 optimizer (the constructor pins state_dtype): decoded exactly
    f32 = inertia.Adam(_params(), lr=1e-2, state_dtype=torch.float32)
    f32.load_state_dict(copy.deepcopy(sd))
    p0 = f32.param_groups[0]["params"][0]
    assert set(f32.state[p0]) == {"step", "exp_avg", "exp_avg_sq"}
    decoded = Q.dequantize(entry["exp_avg"], entry["exp_avg_absmax"], "exp_avg", 256)
    assert torch.equal(f32.state[p0]["exp_avg"], decoded)
    # and back into 8 bits: the decoded values encode to the same codes
    back = inertia.Adam(_params(), lr=1e-2, **EIGHT)
    back.load_state_dict(f32.state_dict())
    q0 = back.param_groups[0]["params"][0]
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(back.state[q0][key], entry[key])
        torch.testing.assert_close(back.state[q0][key + "_absmax"], entry[key + "_absmax"],
                                   rtol=1e-6, atol=0)


def test_an_8bit_run_resumes_bit_identically_and_with_another_block_size():
    straight = _params()
    opt = inertia.Adam(straight, lr=1e-2, **EIGHT)
    _run([(opt, straight)], 3)
    saved = copy.deepcopy(opt.state_dict())
    kept = [p.detach().clone() for p in straight]
    _run([(opt, straight)], 3, start=3)
    resumed = [torch.nn.Parameter(p.clone()) for p in kept]
    again = inertia.Adam(resumed, lr=1e-2)
    again.load_state_dict(copy.deepcopy(saved))
    _run([(again, resumed)], 3, start=3)
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)
    # a constructor-pinned block size re-encodes (one encoding's error)
    other = [torch.nn.Parameter(p.clone()) for p in kept]
    small = inertia.Adam(other, lr=1e-2, state_block_size=32, **EIGHT)
    small.load_state_dict(copy.deepcopy(saved))
    assert small.state[other[0]]["exp_avg_absmax"].shape == (48, 3)
    _run([(small, other)], 3, start=3)
    for a, b in zip(straight, other):
        torch.testing.assert_close(a, b, rtol=0, atol=0.05)


def test_bfloat16_parameters_keep_their_float32_scales_through_a_checkpoint():
    """torch's loader casts every floating state tensor to its parameter's dtype: the codes
    and scales are set aside and restored, not rounded to bfloat16."""
    params = _params(torch.bfloat16)
    opt = inertia.Adam(params, lr=1e-2, **EIGHT)
    _run([(opt, params)], 3)
    sd = copy.deepcopy(opt.state_dict())
    fresh = inertia.Adam(_params(torch.bfloat16), lr=1e-2)
    fresh.load_state_dict(copy.deepcopy(sd))
    q = fresh.param_groups[0]["params"][0]
    assert fresh.state[q]["exp_avg_absmax"].dtype == torch.float32
    assert torch.equal(fresh.state[q]["exp_avg_absmax"], sd["state"][0]["exp_avg_absmax"])
    assert torch.equal(fresh.state[q]["exp_avg"], sd["state"][0]["exp_avg"])


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop", "adagrad"])
def test_torch_state_dict_is_torchs_own_format(name):
    """``torch_state_dict()`` decodes 8-bit state for torch.optim, which then continues like
    inertia's float32 optimizer loaded from the same 8-bit checkpoint."""
    info = REGISTRY[name]
    config = "momentum" if name == "sgd" else "default"
    params = _params()
    opt = info.make(params, config, **EIGHT)
    _run([(opt, params)], 3)
    exported = opt.torch_state_dict()
    assert not any(k.endswith("_absmax") for entry in exported["state"].values() for k in entry)
    assert "state_dtype" not in exported["param_groups"][0]
    theirs_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    ours_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    theirs = info.torch_equivalent(theirs_params, **info.configs[config])
    theirs.load_state_dict(copy.deepcopy(exported))
    ours = info.make(ours_params, config, state_dtype=torch.float32)
    ours.load_state_dict(copy.deepcopy(opt.state_dict()))
    _run([(theirs, theirs_params), (ours, ours_params)], 3, start=3)
    for a, b in zip(theirs_params, ours_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

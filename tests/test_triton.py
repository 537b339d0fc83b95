"""The GPU (Triton) kernels against the reference, run on the CPU by Triton's interpreter.

CI has no GPU: ``TRITON_INTERPRET=1`` executes the generated Triton kernels on CPU tensors,
exactly, so every rule's GPU kernel is tested like its CPU one: every registry
configuration, float32 and float64, bfloat16 state and parameters, the non-finite guard
and AMP's ``found_inf``, over several steps, parameters and state compared. On a machine
with a GPU these are skipped (``tests/test_cuda.py`` runs the kernels for real there).
"""
from __future__ import annotations

import copy
import os

import pytest
import torch

if torch.cuda.is_available():
    pytest.skip("a GPU is present: the CUDA tests run these kernels for real",
                allow_module_level=True)
os.environ["TRITON_INTERPRET"] = "1"  # (tests/conftest.py sets it before anything imports triton)
pytest.importorskip("triton")

from custom_rules import CUSTOM  # noqa: E402
from inertia.backends import graph as G  # noqa: E402
from inertia.backends import ops, triton_gpu  # noqa: E402
from inertia.backends import quantize as Q  # noqa: E402
from inertia.backends.reference import apply as reference  # noqa: E402
from inertia.engine import state as S  # noqa: E402
from inertia.engine.plan import stream_key  # noqa: E402
from inertia.optim.registry import REGISTRY  # noqa: E402
import inertia  # noqa: E402

# The interpreter runs every block in Python: chunks of 2 blocks keep the tests quick while
# tensors still span several chunks and blocks, as on a GPU.
triton_gpu.CHUNK = 2 * triton_gpu.BLOCK
# (Muon and Adafactor work on whole tensors, with torch ops: no elementwise kernel to test)
CASES = [(name, config) for name, info in REGISTRY.items() if info.elementwise
         for config in info.configs]
SHAPES = [(7, 5), (5,), (), (triton_gpu.CHUNK + 3,)]  # the last spans two chunks
# float32: torch.sqrt on the CPU is not correctly rounded (the kernels' is): one ulp of values
# near 10, amplified where momentum buffers cancel, is the atol.
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


# 8-bit state: every tensor quantised (state_min_size=0); rows narrower than a block, rows
# of several blocks with a short last one, and chunks that end inside rows
BLOCK_SHAPES = [(7, 40), (24, 150)]  # blocks of 128: (24, 150)'s rows are 128 + 22, its
# 3600 elements two chunks, the second starting inside row 13


class Run:
    """One optimizer group run through the Triton kernels and through the reference."""

    def __init__(self, name, config, dtype, state_dtype=None, seed=0, cls=None, kwargs=None,
                 stochastic=False, shapes=SHAPES):
        if cls is None:
            cls, kwargs = REGISTRY[name].cls, REGISTRY[name].configs[config]
        gen = torch.Generator().manual_seed(seed)
        self.params = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)
                       for s in shapes]
        opt = cls([torch.nn.Parameter(p.clone()) for p in self.params],
                  **{**kwargs, "state_dtype": state_dtype, "stochastic_rounding": stochastic,
                     "state_min_size": 0, "state_block_size": 128})
        self.group = opt.param_groups[0]
        self.rule = cls.rule(self.group)
        self.graph = G.trace(cls.rule, self.group, self.params[0])
        sdtype = S.state_dtype(self.group, self.params[0])
        self.kernels = {}
        for phase in ("apply", "reduce") if self.graph.reductions else ("apply",):
            k = triton_gpu.kernel(self.graph, phase, dtype, sdtype, guard=True,
                                  stochastic=stochastic)
            ops.KERNELS[k.name] = k
            self.kernels[phase] = k
        self.slots = self.kernels["apply"].slots
        self.states = [{**S.template(self.rule, p, self.group), "step": torch.zeros(())}
                       for p in self.params]
        self.ref_params = [p.clone() for p in self.params]
        self.ref_states = copy.deepcopy(self.states)
        self.sign = -1.0 if self.group["maximize"] else 1.0
        self.hyper = torch.tensor([float(G.hyper_value(self.group, n)) for n in self.graph.hypers]
                                  or [0.0], dtype=torch.float64)
        block = self.group["state_block_size"]
        self.keys = [stream_key(self.group, i) for i in range(len(self.params))]
        self.meta = torch.tensor([[max(1, Q.layout(tuple(p.shape), block)[1]), 0, key]
                                  for p, key in zip(self.params, self.keys)], dtype=torch.int64)
        self.stochastic = stochastic

    def step(self, grads, found_inf=None):
        flat = [s[k] for s in self.states for k in self.slots]
        steps = [s["step"] for s in self.states]
        gmul = torch.tensor(self.sign, dtype=torch.float64)
        inputs = skip = None
        if "reduce" in self.kernels:
            k = self.kernels["reduce"]
            sums = triton_gpu.fused_reduce(k.name, self.params, grads, flat, steps, self.hyper,
                                           gmul, self.meta)
            inputs, skip = sums[:, :k.reductions], (sums[:, k.reductions] > 0).long()
        bad = torch.zeros(len(self.params), dtype=torch.int64)
        met = torch.zeros((), dtype=torch.int64)
        triton_gpu.fused_apply(self.kernels["apply"].name, self.params, grads, flat, steps,
                               self.hyper, inputs, skip, gmul, found_inf, bad, met, self.meta)
        assert int(met) == int(bad.sum() > 0)
        if found_inf is None or not found_inf:
            for p, g, s, key in zip(self.ref_params, grads, self.ref_states, self.keys):
                reference(self.rule, p, g, s, s["step"], self.sign, keep=torch.isfinite(g).all(),
                          block=self.group["state_block_size"],
                          rounding=(key, 0) if self.stochastic else None)
        return bad

    def assert_same(self, tol, skip=()):
        for i, (a, b) in enumerate(zip(self.params, self.ref_params)):
            if i in skip:
                continue
            torch.testing.assert_close(a, b, **tol)
            for key in self.slots:
                torch.testing.assert_close(self.states[i][key], self.ref_states[i][key], **tol,
                                           msg=key)
            assert float(self.states[i]["step"]) == float(self.ref_states[i]["step"])


def _grads(run, t):
    gen = torch.Generator().manual_seed(100 + t)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            for p in run.params]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,config", CASES)
def test_triton_kernel_matches_reference(name, config, dtype):
    run = Run(name, config, dtype)
    for t in range(4):
        assert run.step(_grads(run, t)).tolist() == [0] * len(SHAPES)
    tol = TOL[dtype]
    if REGISTRY[name].configs[config].get("centered") and dtype == torch.float32:
        tol = dict(rtol=2e-4, atol=1e-5)  # torch's float32 sqrt is not correctly rounded
    if name == "nadam" and dtype == torch.float64:
        # NAdam rounds mu_t to float32 as torch does (a step function of mu_t), and Triton's
        # pow (exp(b log a), see triton_gpu._OPS) may differ from libm's by an ulp, which
        # can land mu_t on the other side of a float32 rounding boundary: 6e-8 in mu_t
        tol = dict(rtol=1e-9, atol=1e-10)
    run.assert_same(tol)


@pytest.mark.parametrize("name", ["adam", "lion", "lamb", "rmsprop"])
def test_triton_bf16_state_is_bit_identical_to_the_reference(name):
    run = Run(name, "default", torch.float32, state_dtype=torch.bfloat16)
    for t in range(4):
        run.step(_grads(run, t))
    run.assert_same(dict(rtol=1e-5, atol=1e-6))


@pytest.mark.parametrize("name", ["adam", "sgd", "lamb"])
def test_triton_bf16_parameters(name):
    run = Run(name, "default", torch.bfloat16)
    for t in range(4):
        run.step(_grads(run, t))
    run.assert_same(dict(rtol=0, atol=0))


@pytest.mark.parametrize("name", ["adam", "lamb"])
def test_triton_guard_skips_the_nonfinite_block_only(name):
    run = Run(name, "default", torch.float32)
    run.step(_grads(run, 0))
    before = run.params[3].clone()
    grads = _grads(run, 1)
    grads[3][triton_gpu.CHUNK + 1] = float("nan")  # in the second chunk of the last tensor
    bad = run.step(grads)
    assert bad.tolist() == [0, 0, 0, 1] or name == "lamb"
    after = run.params[3]
    assert torch.isfinite(after).all()
    if name == "lamb":  # a norm-based rule skips the whole tensor
        assert torch.equal(after, before)
    else:  # the first chunk moved, the block holding the NaN did not
        assert not torch.equal(after[:triton_gpu.BLOCK], before[:triton_gpu.BLOCK])
        assert torch.equal(after[triton_gpu.CHUNK:], before[triton_gpu.CHUNK:])
    run.assert_same(TOL[torch.float32], skip=(3,))


def test_triton_found_inf_skips_everything_including_the_steps():
    run = Run("adam", "default", torch.float32)
    run.step(_grads(run, 0))
    before = [p.clone() for p in run.params]
    run.step(_grads(run, 1), found_inf=torch.ones(()))
    for a, b in zip(before, run.params):
        assert torch.equal(a, b)
    assert all(float(s["step"]) == 1 for s in run.states)


class _LaterScheduleFree(inertia.AdamWScheduleFree):
    """Schedule-Free AdamW as its kernels see it after a few steps: the group's running
    numbers (which ``step()`` advances on the host before the kernels run) set by hand."""

    def __init__(self, params, **kw):
        super().__init__(params, **kw)
        self.param_groups[0].update(k=3, lr_max=0.01, weight_sum=4e-4, scheduled_lr=0.01)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_schedule_free_kernel_with_its_running_numbers(dtype):
    run = Run("adamw-schedulefree", None, dtype, cls=_LaterScheduleFree,
              kwargs=dict(lr=0.01, weight_decay=0.01))
    for t in range(4):
        run.step(_grads(run, t))
    run.assert_same(TOL[dtype])
    assert not torch.equal(run.states[0]["z"], run.ref_params[0])  # z and y moved apart


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", CUSTOM)
def test_a_rule_defined_in_a_test_file_gets_a_gpu_kernel_equal_to_its_reference(name, dtype):
    cls, kwargs = CUSTOM[name]
    run = Run(name, None, dtype, cls=cls, kwargs=kwargs)
    for t in range(4):
        run.step(_grads(run, t))
    run.assert_same(TOL[dtype])


@pytest.mark.parametrize("name", ["adam", "lamb", "adagrad", "lion"])
def test_triton_8bit_state_is_bit_identical_to_the_reference(name):
    """The GPU kernel decodes, updates and encodes 8-bit blocks exactly as the reference."""
    run = Run(name, "default", torch.float32, state_dtype="8bit", shapes=BLOCK_SHAPES)
    assert run.slots[:2] == (run.graph.slots[0], Q.scale_key(run.graph.slots[0]))
    for t in range(3):
        run.step(_grads(run, t))
    run.assert_same(dict(rtol=1e-6, atol=1e-7))
    for s, r in zip(run.states, run.ref_states):
        for key in run.graph.slots:
            assert torch.equal(s[key], r[key]), key  # codes, bit for bit
            assert torch.equal(s[Q.scale_key(key)], r[Q.scale_key(key)]), key


def test_triton_8bit_guard_skips_the_block_only():
    run = Run("adam", "default", torch.float32, state_dtype="8bit", shapes=BLOCK_SHAPES)
    run.step(_grads(run, 0))
    codes = run.states[1]["exp_avg"].clone()
    grads = _grads(run, 1)
    grads[1][2, 140] = float("nan")  # row 2, its short second block (128..149)
    bad = run.step(grads)
    assert bad.tolist() == [0, 1]
    after = run.states[1]["exp_avg"]
    assert torch.equal(after[2, 128:], codes[2, 128:])
    assert not torch.equal(after[2, :128], codes[2, :128])
    run.assert_same(TOL[torch.float32], skip=(1,))


def test_triton_stochastic_rounding_equals_the_reference():
    """bfloat16 parameters rounded stochastically: the same random bits as the reference."""
    run = Run("adam", "default", torch.bfloat16, stochastic=True)
    for t in range(4):
        run.step(_grads(run, t))
    run.assert_same(dict(rtol=0, atol=0))

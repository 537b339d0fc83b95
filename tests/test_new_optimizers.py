"""The modern optimizers against the libraries they replace, beyond the registry's tests.

* Muon against ``torch.optim.Muon`` over many steps (torch's Muon takes matrices only, so the
  registry's shared tests cannot pair them): parameters and momentum, bfloat16 iteration
  (torch's) and float32, matrices of one shape batched together; torch checkpoints both ways.
* Schedule-Free AdamW and SGD against the ``schedulefree`` package (1.4, its
  ``AdamWScheduleFree`` and ``SGDScheduleFree``) in float64: the parameters (``y``), ``z``,
  the second moment, ``eval()``'s average ``x``, and checkpoints both ways.
* Adafactor's state is O(rows + cols) per matrix.
* ``inertia.create`` by every name, and the docstring examples of the new modules.
"""
from __future__ import annotations

import doctest
import importlib

import pytest
import torch

import inertia
from inertia.optim.registry import REGISTRY

# two matrices of one shape (one batched Newton-Schulz), a wide one and a tall one
MUON_SHAPES = [(16, 8), (16, 8), (8, 24), (24, 6)]
STEPS = 40


def _params(shapes, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
            for s in shapes]


def _grads(params, step, seed=1):
    gen = torch.Generator().manual_seed(seed * 1000 + step)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) for p in params]


def _steps(opts_and_params, steps, start=0):
    for t in range(start, start + steps):
        grads = _grads(opts_and_params[0][1], t)
        for opt, params in opts_and_params:
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()


# ------------------------------------------------------------------------------ Muon

MUON_CONFIGS = {
    "default": dict(lr=0.02),
    "rms_adamw": dict(lr=0.01, weight_decay=0.01, momentum=0.9, nesterov=False,
                      adjust_lr_fn="match_rms_adamw"),
    "steps_coefficients": dict(lr=0.02, ns_steps=3, ns_coefficients=(3.0, -3.2, 1.2),
                               eps=1e-6, weight_decay=0.0),
}


# torch's bfloat16 iteration for every configuration; the float32 one for the first by default
MUON_CASES = [pytest.param(config, dtype, ns, id=f"{config}-{d}-ns-{n}",
                           marks=[pytest.mark.slow] if ns == torch.float32 and k else [])
              for k, config in enumerate(MUON_CONFIGS)
              for dtype, d in ((torch.float32, "f32"), (torch.float64, "f64"))
              for ns, n in ((torch.bfloat16, "bf16"), (torch.float32, "f32"))]


@pytest.mark.parametrize("config,dtype,ns_dtype", MUON_CASES)
def test_muon_equals_torch_over_many_steps(config, dtype, ns_dtype):
    """torch's Muon iterates in bfloat16; with ``ns_dtype=torch.bfloat16`` inertia is the
    same computation (batched over equal shapes), to float rounding. torch has
    no float32 iteration: there its bfloat16 result is the reference, within bfloat16's
    precision (the update is O(lr), so a bfloat16 ulp of it bounds the difference)."""
    kwargs = MUON_CONFIGS[config]
    ours_p, theirs_p = _params(MUON_SHAPES, dtype), _params(MUON_SHAPES, dtype)
    ours = inertia.Muon(ours_p, **kwargs, ns_dtype=ns_dtype)
    theirs = torch.optim.Muon(theirs_p, **kwargs)
    if ns_dtype == torch.bfloat16:
        # the same bfloat16 iterates; the float arithmetic around them in another order
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    else:  # each step differs by at most a bfloat16 rounding of the update (lr * 2^-8)
        tol = dict(rtol=0, atol=STEPS * kwargs["lr"] * 2 * 2 ** -8)
    for t in range(STEPS):
        _steps([(ours, ours_p), (theirs, theirs_p)], 1, start=t)
        for a, b in zip(ours_p, theirs_p):
            torch.testing.assert_close(a, b, **tol, msg=lambda m: f"step {t}: {m}")
            torch.testing.assert_close(ours.state[a]["momentum_buffer"],
                                       theirs.state[b]["momentum_buffer"],
                                       **(tol if ns_dtype == torch.bfloat16 else
                                          dict(rtol=1e-5, atol=1e-6)))
    if ns_dtype == torch.float32:  # and the float32 iteration is a different computation
        assert any(not torch.equal(a, b) for a, b in zip(ours_p, theirs_p))


@pytest.mark.parametrize("direction", ["torch->inertia", "inertia->torch"])
def test_muon_checkpoint_moves_between_torch_and_inertia(direction):
    """Stop after 10 steps, load the state dict into the other library, go on for 10: equal
    to 20 steps of one library (keys exactly torch's, so each loads the other's)."""
    kwargs = MUON_CONFIGS["rms_adamw"]
    make_torch = lambda ps: torch.optim.Muon(ps, **kwargs)  # noqa: E731
    make_ours = lambda ps: inertia.Muon(ps, **kwargs)  # noqa: E731
    first, second = (make_torch, make_ours) if direction == "torch->inertia" else (make_ours, make_torch)
    whole_p = _params(MUON_SHAPES, torch.float32)
    whole = second(whole_p)
    _steps([(whole, whole_p)], 20)
    a_p = _params(MUON_SHAPES, torch.float32)
    a = first(a_p)
    _steps([(a, a_p)], 10)
    saved = a.state_dict()
    assert set(saved["param_groups"][0]) == set(torch.optim.Muon(_params([(2, 2)], torch.float32),
                                                                 **kwargs).state_dict()["param_groups"][0])
    b = second(a_p)
    b.load_state_dict(saved)
    _steps([(b, a_p)], 10, start=10)
    for x, y in zip(a_p, whole_p):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def test_muon_adamw_part_for_vectors_and_embeddings():
    """In one optimizer: the hidden matrices step as torch's Muon, the vectors (group
    ``use_muon=None``) and an explicit ``use_muon=False`` group as torch's AdamW with
    Muon's AdamW options."""
    mats, vecs, ends = (_params([(16, 8), (8, 8)], torch.float64), _params([(8,), ()], torch.float64, 1),
                        _params([(10, 8)], torch.float64, 2))
    ref = [[p.detach().clone().requires_grad_() for p in ps] for ps in (mats, vecs, ends)]
    ours = inertia.Muon([{"params": mats + vecs, "adamw_lr": 3e-3},
                         {"params": ends, "use_muon": False, "weight_decay": 0.01}],
                        lr=0.02, ns_dtype=torch.float32, adamw_betas=(0.9, 0.95), adamw_eps=1e-10)
    theirs_muon = torch.optim.Muon(ref[0], lr=0.02)
    theirs_vec = torch.optim.AdamW(ref[1], lr=3e-3, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.1)
    theirs_end = torch.optim.AdamW(ref[2], lr=0.02, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.01)
    ours_all, theirs_all = mats + vecs + ends, ref[0] + ref[1] + ref[2]
    for t in range(15):
        for a, b, g in zip(ours_all, theirs_all, _grads(ours_all, t)):
            a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        for opt in (theirs_muon, theirs_vec, theirs_end):
            opt.step()
    for a, b in zip(vecs + ends, ref[1] + ref[2]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    for a, b in zip(mats, ref[0]):  # float32 iteration against torch's bfloat16 one
        torch.testing.assert_close(a, b, rtol=0, atol=15 * 0.02 * 2 * 2 ** -8)


# --------------------------------------------------------------------- Schedule-Free

SF_CONFIGS = {
    "adamw-schedulefree": [dict(lr=0.01),
                           dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05,
                                warmup_steps=7, r=1.0, weight_lr_power=1.0)],
    "sgd-schedulefree": [dict(lr=0.05),
                         dict(lr=0.1, momentum=0.8, weight_decay=0.01, warmup_steps=5, r=0.5)],
}
SF_CASES = [(n, i) for n, configs in SF_CONFIGS.items() for i in range(len(configs))]
SHAPES = [(7, 5), (5,), (3, 2, 4), ()]


def _package(name):
    schedulefree = pytest.importorskip("schedulefree")
    return {"adamw-schedulefree": schedulefree.AdamWScheduleFree,
            "sgd-schedulefree": schedulefree.SGDScheduleFree}[name]


@pytest.mark.parametrize("name,index", SF_CASES)
def test_schedule_free_equals_the_package_in_float64(name, index):
    package = _package(name)
    kwargs = SF_CONFIGS[name][index]
    ours_p, theirs_p = _params(SHAPES, torch.float64), _params(SHAPES, torch.float64)
    ours = REGISTRY[name].cls(ours_p, **kwargs)
    theirs = package(theirs_p, **kwargs)
    theirs.train()  # the package starts in eval mode
    for t in range(STEPS):
        _steps([(ours, ours_p), (theirs, theirs_p)], 1, start=t)
        for a, b in zip(ours_p, theirs_p):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=lambda m: f"step {t}: {m}")
            for key, value in theirs.state[b].items():
                torch.testing.assert_close(ours.state[a][key], value, rtol=1e-12, atol=1e-14)
        if t % 10 == 9:  # evaluate at x, then go on training from y
            ours.eval()
            theirs.eval()
            for a, b in zip(ours_p, theirs_p):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
            ours.train()
            theirs.train()
    for key in ("k", "lr_max", "weight_sum", "scheduled_lr"):
        assert ours.param_groups[0][key] == pytest.approx(theirs.param_groups[0][key], rel=1e-14)


@pytest.mark.parametrize("direction", ["package->inertia", "inertia->package"])
@pytest.mark.parametrize("name", list(SF_CONFIGS))
def test_schedule_free_checkpoint_moves_to_and_from_the_package(name, direction):
    package = _package(name)
    kwargs = SF_CONFIGS[name][1]
    ours_cls = REGISTRY[name].cls

    def make(cls, ps):
        opt = cls(ps, **kwargs)
        opt.train()
        return opt

    first, second = (package, ours_cls) if direction == "package->inertia" else (ours_cls, package)
    whole_p = _params(SHAPES, torch.float64)
    whole = make(second, whole_p)
    _steps([(whole, whole_p)], 20)
    a_p = _params(SHAPES, torch.float64)
    a = make(first, a_p)
    _steps([(a, a_p)], 10)
    b = second(a_p, **kwargs)
    b.load_state_dict(a.state_dict())  # in train mode, as saved
    _steps([(b, a_p)], 10, start=10)
    b.eval()
    whole.eval()
    for x, y in zip(a_p, whole_p):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


def test_schedule_free_step_in_eval_mode_is_refused():
    w = torch.nn.Parameter(torch.ones(3))
    opt = inertia.SGDScheduleFree([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    opt.eval()
    with pytest.raises(RuntimeError, match=r"step\(\) in eval mode"):
        opt.step()
    assert opt.param_groups[0]["k"] == 1


# ------------------------------------------------------------------------- Adafactor

def test_adafactor_state_is_rows_plus_cols_per_matrix():
    rows, cols = 384, 256
    w, b = torch.nn.Parameter(torch.randn(rows, cols)), torch.nn.Parameter(torch.randn(cols))
    opt = inertia.Adafactor([w, b], lr=0.01)
    w.grad, b.grad = torch.randn(rows, cols), torch.randn(cols)
    opt.step()
    elements = lambda p: sum(v.numel() for k, v in opt.state[p].items() if k != "step")  # noqa: E731
    assert elements(w) == rows + cols  # row and column statistics, no full second moment
    assert elements(b) == cols  # a vector keeps its full second moment
    torch_opt = torch.optim.Adafactor([w.detach().clone().requires_grad_()], lr=0.01)
    torch_opt.param_groups[0]["params"][0].grad = torch.randn(rows, cols)
    torch_opt.step()
    assert {k: tuple(v.shape) for k, v in opt.state[w].items()} == {
        k: tuple(v.shape) for k, v in torch_opt.state[torch_opt.param_groups[0]["params"][0]].items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_adafactor_stacks_equal_shapes_and_equals_torch(dtype):
    """Tensors of one shape are stepped as one stack (matrices, 3-D tensors, vectors, 0-d
    tensors; the reductions per tensor of the stack): still torch's result, over many
    steps, with one tensor left without a gradient on one step."""
    shapes = [(6, 4), (6, 4), (6, 4), (2, 3, 4), (2, 3, 4), (5,), (5,), (), (), (4, 6)]
    ours_p, theirs_p = _params(shapes, dtype), _params(shapes, dtype)
    ours = inertia.Adafactor(ours_p, lr=0.05, weight_decay=0.1)
    theirs = torch.optim.Adafactor(theirs_p, lr=0.05, weight_decay=0.1)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-11, atol=1e-13)
    for t in range(30):
        grads = _grads(ours_p, t)
        for i, (a, b, g) in enumerate(zip(ours_p, theirs_p, grads)):
            a.grad = b.grad = None if (t == 4 and i == 1) else g.clone()
        ours.step()
        theirs.step()
        for a, b in zip(ours_p, theirs_p):
            torch.testing.assert_close(a, b, **tol)
            for key, value in theirs.state[b].items():
                torch.testing.assert_close(ours.state[a][key].to(value.dtype), value, **tol)


# -------------------------------------------------------------------- create, docs

@pytest.mark.parametrize("name", REGISTRY)
def test_create_builds_every_optimizer_by_name_and_class_name(name):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    cls = REGISTRY[name].cls
    lr = REGISTRY[name].configs["default"]["lr"]
    for key in (name, cls.__name__, name.upper().replace("-", "_")):
        opt = inertia.create(key, model, lr=lr)
        assert type(opt) is cls
        assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}


def test_create_refuses_an_unknown_name_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"Invalid optimizer name: 'adamm' \(valid names: .*"
                                         r"muon.*adafactor.*adamw-schedulefree"):
        inertia.create("adamm", torch.nn.Linear(2, 2))


def test_create_splits_weight_decay_and_layer_decay_from_a_model():
    blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(3)])
    model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(10, 4), "blocks": blocks,
                                 "norm": torch.nn.LayerNorm(4), "head": torch.nn.Linear(4, 2)})
    opt = inertia.create("adamw", model, lr=1.0, weight_decay=0.05)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    assert decayed == {id(model["embed"].weight), id(model["head"].weight),
                       *(id(b.weight) for b in blocks)}
    opt = inertia.create("nadam", model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert [lr_of[id(model["embed"].weight)], *(lr_of[id(b.weight)] for b in blocks),
            lr_of[id(model["head"].weight)]] == [0.0625, 0.125, 0.25, 0.5, 1.0]
    assert lr_of[id(model["norm"].weight)] == 1.0  # after the blocks: the head's depth
    opt = inertia.create("muon", model, lr=0.02)
    muon = [g for g in opt.param_groups if g.get("use_muon") is not False]
    assert {id(p) for g in muon for p in g["params"]} == {id(b.weight) for b in blocks}


@pytest.mark.parametrize("module", ["inertia.optim.adam_variants", "inertia.optim.adadelta",
                                    "inertia.optim.muon", "inertia.optim.adafactor",
                                    "inertia.optim.schedulefree", "inertia.optim.groups",
                                    "inertia.optim.factory"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), verbose=False)
    assert result.attempted > 0, f"{module} has no example"
    assert result.failed == 0


def test_adafactor_without_numba_runs_the_rule_on_torch_ops():
    """The core install has no numba: Adafactor's CPU sweep is then not imported at all,
    and its groups run the rule on torch ops."""
    import subprocess
    import sys

    script = '''
import sys
sys.modules["numba"] = None  # "import numba" raises ImportError
import torch, inertia
from inertia.engine.step import path_counts
ps = [torch.nn.Parameter(torch.randn(6, 4)), torch.nn.Parameter(torch.randn(4))]
opt = inertia.Adafactor(ps)
for _ in range(3):
    for p in ps:
        p.grad = torch.randn_like(p)
    opt.step()
assert path_counts["reference:batched"] == 3 and not path_counts["cpu:factored"], path_counts
assert "inertia.backends.factored_cpu" not in sys.modules
print("ok")
'''
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]

"""Drop-in, checked against torch's own test data: ``optim_db`` from the installed torch.

``torch.testing._internal.common_optimizers.optim_db`` (shipped in every torch wheel) holds,
for each ``torch.optim`` optimizer, the sample configurations torch's own suite runs and the
inputs it must refuse. For every optimizer inertia shares with torch (matched by class name,
so NAdam, RAdam, Adamax, Adadelta, Adafactor, Muon ... are picked up as soon as ``inertia``
exports an optimizer of that name), this module checks:

* **Every sample configuration**, in float32 and float64, on CPU: ``torch.optim.X`` and
  ``inertia.X`` built with the same keyword arguments step the same parameters (several
  shapes, one non-contiguous, one left without a gradient on one step) with the same
  gradients for ``STEPS`` steps; after each step the parameters and every state entry torch
  keeps must be equal (inertia must have each of torch's state keys, and, checked at the
  end so that a key difference does not hide a numeric one, no other). The state right
  after construction is compared in a test of its own (torch's Adagrad creates its state
  eagerly).
* **Every error input**: what torch raises (or warns), inertia must raise (or warn) with the
  same exception type (a subclass is accepted) and a message naming the same argument (see
  :func:`named_argument`) -- unless the input is one of inertia's intended deviations
  (:data:`inertia.optim.torch_compat.INTENDED_DEVIATIONS`), which inertia must accept and
  compute like torch's equivalent configuration.

The global implementation flags (``foreach``, ``fused``, ``differentiable``), which
``optim_db`` leaves to the tests, each get their own variant of a configuration, with the
same keyword arguments passed to both libraries:

* ``default``: no flag, what a drop-in user writes. torch runs its for-loop on CPU; inertia
  picks its fastest implementation (a fused kernel where one exists).
* ``forloop``: every flag the entry supports set to False, as torch's ``optim_db`` helper does
  for its base case; for inertia ``foreach=False`` / ``fused=False`` select the readable
  reference implementation.
* ``foreach`` / ``fused``: that flag True (``fused`` only where torch supports it on CPU). For
  inertia both mean "the fused kernel where one exists", so they check the kernels against
  torch's multi-tensor and fused CPU implementations.
  torch 2.13's fused CPU kernels update the wrong elements of a non-contiguous parameter
  (``p = Parameter(torch.arange(24.).reshape(4, 6)[:, ::2]); p.grad = torch.ones(4, 3);
  torch.optim.SGD([p], lr=0.1, fused=True).step()`` leaves rows 2 and 3 unchanged), so in
  the ``fused`` variant torch's reference steps a contiguous copy of that parameter.
* ``differentiable``: ``differentiable=True``, stepping plain tensors (not leaves that
  require grad, as in torch's own tests); torch's result does not change with the flag, so
  inertia must accept it and compute the same.

A configuration torch itself refuses on CPU is skipped with torch's message as the reason
(none today). Nothing else is skipped: a configuration inertia cannot take fails.

Run alone: ``pytest tests/test_torch_optim_db.py``. Each case is its own test id:
``<Optimizer>-<config desc>-<variant>-<dtype>`` (e.g. ``Adam-Tensor_lr-foreach-float32``, the
description with spaces as ``_`` and commas as ``+``) and ``<Optimizer>-<index>-<error desc>``.
"""
from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch

import inertia
from inertia.optim.torch_compat import INTENDED_DEVIATIONS

try:
    from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db
except ImportError as exc:  # not a skip: this module is the drop-in guarantee
    raise ImportError(f"{exc}: torch's testing internals need the dev extra "
                      "(pip install -c constraints.txt -e '.[dev]', which installs expecttest)") from exc

STEPS = 7  # as torch's own foreach/fused parity tests (RAdam's rectification starts at 6)
SHAPES = [(7, 5), (5,), (3, 2, 4), ()]
#: optimizers that take only some shapes (torch's own tests give Muon a single 2-D weight)
SHAPES_FOR = {"Muon": [(7, 5), (3, 4)]}
NO_GRAD_STEP, NO_GRAD_PARAM = 3, 1  # on this step this parameter has no gradient
DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-11, atol=1e-13)}
#: the optimizers inertia has today that torch's optim_db covers; a test fails if one goes missing
EXPECTED_SHARED = {"Adagrad", "Adam", "AdamW", "RMSprop", "SGD"}


def _inertia_class(name: str):
    cls = getattr(inertia, name, None)
    if isinstance(cls, type) and issubclass(cls, inertia.optim.Optimizer):
        return cls
    return None


SHARED = [info for info in optim_db if _inertia_class(info.name) is not None]


# ------------------------------------------------------------------ configurations

def _variants(info) -> list[tuple[str, dict]]:
    """The global-flag variants of one configuration (see the module docstring)."""
    flags = [f for f in info.supported_impls
             if f != "fused" or "cpu" in info.supports_fused_on]
    out = [("default", {})]
    if flags:
        out.append(("forloop", {f: False for f in flags}))
        out += [(f, {**{g: False for g in flags}, f: True}) for f in flags]
    return out


def _slug(desc: str) -> str:
    """A description as a test-id part that a shell and ``pytest -k`` take as it is."""
    return re.sub(r"[^\w.+]+", "_", desc.replace(", ", "+").replace(" & ", "+")).strip("_.")


def _config_cases():
    cases = []
    for info in SHARED:
        for index, sample in enumerate(info.optim_inputs_func(device="cpu", dtype=torch.float32)):
            for variant, _ in _variants(info):
                for dtype in DTYPES:
                    case_id = f"{info.name}-{_slug(sample.desc)}-{variant}-{str(dtype).removeprefix('torch.')}"
                    cases.append(pytest.param(info, index, variant, dtype, id=case_id))
    return cases


def _params(dtype, seed=0, requires_grad=True, contiguous=False, name=None):
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)
          for s in SHAPES_FOR.get(name, SHAPES)]
    # non-contiguous: every other column of a wider matrix
    strided = torch.randn(4, 6, generator=gen, dtype=torch.float64).to(dtype)[:, ::2]
    ps.append(strided.contiguous() if contiguous else strided)
    return [torch.nn.Parameter(p) for p in ps] if requires_grad else ps


def _grads(params, step, seed=1):
    gen = torch.Generator().manual_seed(seed * 1000 + step)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) for p in params]


def _set_grads(params, grads, step):
    for i, (p, g) in enumerate(zip(params, grads)):
        p.grad = None if (step == NO_GRAD_STEP and i == NO_GRAD_PARAM) else g.clone()


def _compare_state(theirs_state, ours_state, dtype, where):
    tol = TOL[dtype]
    for key, value in theirs_state.items():
        assert key in ours_state, (
            f"{where}: state key {key!r} that torch keeps is missing "
            f"(torch: {sorted(theirs_state)}, inertia: {sorted(ours_state)})")
        ours = ours_state[key]
        if isinstance(value, torch.Tensor):
            assert isinstance(ours, torch.Tensor), f"{where}: state {key!r} is {type(ours).__name__}, torch's a Tensor"
            torch.testing.assert_close(ours, value, **tol, msg=lambda m: f"{where}: state {key!r}: {m}")
        else:
            assert ours == value, f"{where}: state {key!r}: inertia {ours!r}, torch {value!r}"


def _compare_keys(theirs, ours, params, where):
    for i, p in enumerate(params[1]):
        t_keys = set(theirs.state[params[0][i]]) if params[0][i] in theirs.state else set()
        o_keys = set(ours.state[p]) if p in ours.state else set()
        assert o_keys == t_keys, (
            f"{where}: parameter {i}: state keys differ: only inertia {sorted(o_keys - t_keys)}, "
            f"only torch {sorted(t_keys - o_keys)}")


@pytest.mark.parametrize("info,index,variant,dtype", _config_cases())
def test_sample_config_matches_torch(info, index, variant, dtype):
    sample = info.optim_inputs_func(device="cpu", dtype=dtype)[index]
    kwargs = {**sample.kwargs, **dict(_variants(info))[variant]}
    plain = variant == "differentiable"  # torch's differentiable path cannot step leaves that require grad
    theirs_p = _params(dtype, requires_grad=not plain, contiguous=variant == "fused", name=info.name)
    ours_p = _params(dtype, requires_grad=not plain, name=info.name)
    theirs_kwargs = kwargs
    if plain and dtype == torch.float64 and info.name in ("Adam", "AdamW", "NAdam"):
        # torch's differentiable Adam computes its bias corrections from the float32 step
        # tensor (4e-7 relative error in float64), its differentiable NAdam its two step
        # factors from the float32 mu_product tensor (5e-9); inertia computes them in
        # float64, as torch's other paths do. Compare with one of those: the math is the same.
        theirs_kwargs = {**kwargs, "differentiable": False}
    try:
        theirs = info.optim_cls(theirs_p, **copy.deepcopy(theirs_kwargs))
        probe_p = _params(dtype, requires_grad=not plain, name=info.name)
        probe = info.optim_cls(probe_p, **copy.deepcopy(kwargs))
        _set_grads(probe_p, _grads(probe_p, 0), 0)
        probe.step()
    except Exception as exc:  # noqa: BLE001 - torch's own refusal decides the skip
        pytest.skip(f"torch itself refuses {kwargs} on CPU: {type(exc).__name__}: {exc}")
    ours = _inertia_class(info.name)(ours_p, **copy.deepcopy(kwargs))

    for t in range(STEPS):
        grads = _grads(theirs_p, t)
        _set_grads(theirs_p, grads, t)
        _set_grads(ours_p, grads, t)
        theirs.step()
        ours.step()
        for i, (a, b) in enumerate(zip(theirs_p, ours_p)):
            where = f"step {t + 1}, parameter {i} (shape {tuple(a.shape)})"
            torch.testing.assert_close(b.detach(), a.detach(), **TOL[dtype],
                                       msg=lambda m, where=where: f"{where}: {m}")
            _compare_state(theirs.state.get(a, {}), ours.state.get(b, {}), dtype, where)
    _compare_keys(theirs, ours, (theirs_p, ours_p), f"after {STEPS} steps")


@pytest.mark.parametrize("info", SHARED, ids=lambda info: info.name)
def test_state_after_construction_matches_torch(info):
    """torch's Adagrad creates its state in the constructor; a drop-in must too (or say why not)."""
    theirs_p, ours_p = _params(torch.float32, name=info.name), _params(torch.float32, name=info.name)
    theirs, ours = info.optim_cls(theirs_p), _inertia_class(info.name)(ours_p)
    for i, (a, b) in enumerate(zip(theirs_p, ours_p)):
        _compare_state(theirs.state.get(a, {}), ours.state.get(b, {}), torch.float32,
                       f"after construction, parameter {i}")
    _compare_keys(theirs, ours, (theirs_p, ours_p), "after construction")


# ------------------------------------------------------------------ error inputs

_PROSE = [
    (re.compile(r"\blearning rate\b", re.I), "lr"),
    (re.compile(r"\bbeta parameter at index (\d+)", re.I), r"betas[\1]"),
]


def _argument_names(info) -> list[str]:
    import inspect

    names = [n for n in inspect.signature(info.optim_cls.__init__).parameters if n != "self"]
    return sorted(set(names) | {"params"}, key=len, reverse=True)


def named_argument(message: str, names: list[str]) -> str | None:
    """The argument an error message is about: the first constructor argument it names.

    torch's two prose spellings are rewritten first ("learning rate" -> ``lr``, "beta parameter
    at index i" -> ``betas[i]``); then the earliest whole-word occurrence of a constructor
    argument name of torch's class (or ``params``) wins, ``betas[i]`` keeping its index. So
    "Invalid learning rate: -1.0" and "Tensor lr must be 1-element" both name ``lr``, and
    "lr as a Tensor is not supported for capturable=False and foreach=True" names ``lr``.
    """
    for pattern, replacement in _PROSE:
        message = pattern.sub(replacement, message)
    best = None
    for name in names:
        m = re.search(rf"(?<![\w.]){re.escape(name)}(\[\d+\])?(?![\w])", message)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), m.group(0))
    return best[1] if best else None


def _matches(pattern, value) -> bool:
    if isinstance(pattern, tuple):
        return (isinstance(value, (tuple, list)) and len(value) == len(pattern)
                and all(_matches(p, v) for p, v in zip(pattern, value)))
    if pattern is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(pattern, type):
        return isinstance(value, pattern)
    return not isinstance(value, torch.Tensor) and value == pattern


def _deviation(name, error_input):
    oi = error_input.optimizer_error_input
    for dev in INTENDED_DEVIATIONS:
        if name not in dev.optimizers:
            continue
        if dev.desc is not None and dev.desc != oi.desc:
            continue
        if dev.kwargs is not None and not all(
                k in oi.kwargs and _matches(p, oi.kwargs[k]) for k, p in dev.kwargs.items()):
            continue
        return dev
    return None


def _error_cases():
    cases = []
    for info in SHARED:
        for index, e in enumerate(info.optim_error_inputs_func(device="cpu", dtype=torch.float32)):
            desc = _slug(e.optimizer_error_input.desc.replace("\\", ""))
            cases.append(pytest.param(info, index, id=f"{info.name}-{index}-{desc}"))
    return cases


def _raised(build, step):
    """Run ``build()`` (and ``.step()`` if ``step``); return (exception or None, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            opt = build()
            if step:
                opt.step()
        except Exception as exc:  # noqa: BLE001 - the exception is what we compare
            return exc, list(caught)
    return None, list(caught)


def _float_kwargs(kwargs):
    """The same configuration in a form torch takes: one-element tensors as floats, for-loop."""
    def plain(v):
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            return v.item()
        if isinstance(v, tuple):
            return tuple(plain(x) for x in v)
        return v
    out = {k: plain(v) for k, v in kwargs.items()}
    out.update({k: False for k in ("foreach", "fused") if k in out})
    return out


@pytest.mark.parametrize("info,index", _error_cases())
def test_error_input_is_refused_like_torch(info, index):
    error_input = info.optim_error_inputs_func(device="cpu", dtype=torch.float32)[index]
    oi = error_input.optimizer_error_input
    step = error_input.error_on == OptimizerErrorEnum.STEP_ERROR
    ours_cls = _inertia_class(info.name)
    is_warning = issubclass(error_input.error_type, Warning)

    # torch, first: the data must describe what torch does (or this test compares nothing)
    theirs_exc, theirs_warned = _raised(lambda: info.optim_cls(oi.params, **oi.kwargs), step)
    if is_warning:
        theirs_w = [w for w in theirs_warned if issubclass(w.category, error_input.error_type)]
        assert theirs_w and re.search(error_input.error_regex, str(theirs_w[0].message)), \
            "torch no longer warns as its optim_db says"
        theirs_msg = str(theirs_w[0].message)
    else:
        assert isinstance(theirs_exc, error_input.error_type) and \
            re.search(error_input.error_regex, str(theirs_exc)), \
            f"torch no longer raises as its optim_db says: {theirs_exc!r}"
        theirs_msg = str(theirs_exc)

    deviation = _deviation(info.name, error_input)
    if deviation is not None:
        _check_intended_deviation(info, ours_cls, oi.kwargs, deviation)
        return

    ours_exc, ours_warned = _raised(lambda: ours_cls(oi.params, **copy.deepcopy(oi.kwargs)), step)
    names = _argument_names(info)
    expected_arg = named_argument(theirs_msg, names)
    if is_warning:
        ours_w = [w for w in ours_warned if issubclass(w.category, error_input.error_type)]
        assert ours_w, (f"torch warns {error_input.error_type.__name__}({theirs_msg!r}); inertia does not"
                        + (f" (it raised {type(ours_exc).__name__}: {ours_exc})" if ours_exc else ""))
        ours_msg = str(ours_w[0].message)
    else:
        assert ours_exc is not None, (
            f"torch raises {type(theirs_exc).__name__}({theirs_msg!r}); inertia accepts the input "
            "(refuse it, or list it in inertia.optim.torch_compat.INTENDED_DEVIATIONS)")
        assert isinstance(ours_exc, type(theirs_exc)), (
            f"torch raises {type(theirs_exc).__name__}({theirs_msg!r}); "
            f"inertia raises {type(ours_exc).__name__}({ours_exc})")
        ours_msg = str(ours_exc)
    if expected_arg is None:
        # torch's message names no argument: its wording is the only thing to compare
        assert re.search(error_input.error_regex, ours_msg), (
            f"torch's message {theirs_msg!r} names no argument, so inertia's must match "
            f"{error_input.error_regex!r}; it is {ours_msg!r}")
    else:
        assert named_argument(ours_msg, names) == expected_arg, (
            f"torch's message names {expected_arg!r} ({theirs_msg!r}); inertia's names "
            f"{named_argument(ours_msg, names)!r} ({ours_msg!r})")


def _check_intended_deviation(info, ours_cls, kwargs, deviation):
    """inertia accepts the input, and computes what torch computes for its float/for-loop form."""
    dtype = torch.float32
    ours_p, theirs_p = _params(dtype, name=info.name), _params(dtype, name=info.name)
    try:
        ours = ours_cls(ours_p, **copy.deepcopy(kwargs))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"listed as an intended deviation ({deviation.reason!r}) but inertia refuses "
                    f"it: {type(exc).__name__}: {exc}")
    theirs = info.optim_cls(theirs_p, **_float_kwargs(kwargs))
    for t in range(STEPS):
        grads = _grads(ours_p, t)
        _set_grads(ours_p, grads, t)
        _set_grads(theirs_p, grads, t)
        ours.step()
        theirs.step()
    for i, (a, b) in enumerate(zip(theirs_p, ours_p)):
        torch.testing.assert_close(b.detach(), a.detach(), **TOL[dtype],
                                   msg=lambda m, i=i: f"parameter {i} after {STEPS} steps: {m}")


# ------------------------------------------------------------------ the harness itself

def test_shared_optimizers_are_found():
    assert EXPECTED_SHARED <= {info.name for info in SHARED}, \
        f"optim_db entries matched to inertia classes: {sorted(i.name for i in SHARED)}"


def test_every_intended_deviation_matches_an_error_input():
    errors = {info.name: info.optim_error_inputs_func(device="cpu", dtype=torch.float32)
              for info in optim_db}
    for dev in INTENDED_DEVIATIONS:
        assert dev.reason.strip(), f"{dev} has no reason"
        for name in dev.optimizers:
            assert any(_deviation(name, e) is dev for e in errors.get(name, [])), \
                f"intended deviation {dev.desc or dev.kwargs} matches no error input of {name}"


@pytest.mark.parametrize("message,expected", [
    ("Invalid learning rate: -1.0", "lr"),
    ("Tensor lr must be 1-element", "lr"),
    ("Invalid beta parameter at index 1: -0.1", "betas[1]"),
    (r"betas[0] as a Tensor is not supported for capturable=False and foreach=True", "betas[0]"),
    ("lr as a Tensor is not supported for capturable=False and foreach=True", "lr"),
    ("Invalid weight_decay value: -1", "weight_decay"),
    ("some parameters appear in more than one parameter group", None),
    ("'NoneType' object is not iterable", None),
])
def test_named_argument(message, expected):
    names = _argument_names(next(i for i in optim_db if i.name == "Adam"))
    assert named_argument(message, names) == expected

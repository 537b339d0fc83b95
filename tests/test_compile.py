"""``torch.compile`` of an inertia step: one graph, no recompilation, equal to eager.

The fused step reaches dynamo as torch operators (``inertia::fused_apply`` ...) with fake
implementations, and its bookkeeping runs once at trace time through ``_init_group``, so
``torch.compile(opt.step, fullgraph=True)`` traces every optimizer into one graph.
Hyperparameters reach the kernels as a tensor: a learning rate that changes every step
(a tensor lr filled in place, by inertia's Scheduler or torch's lr_scheduler) never
recompiles. Counting uses the ``eager`` backend (dynamo only) to keep CI fast; one test
runs inductor end to end.
"""
from __future__ import annotations

import pytest
import torch
import torch._dynamo.testing

import inertia
from inertia.optim.registry import REGISTRY

STEPS = 30


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def _backward(model, x, y):
    model.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()


def _train(models, step, eager, x, y, steps, before_step=None):
    """``steps`` steps of the compiled ``step`` on ``models[0]`` and of ``eager`` on
    ``models[1]``, on the same batch; ``before_step(t)`` runs before each pair of steps."""
    for t in range(steps):
        for model in models:
            _backward(model, x, y)
        if before_step is not None:
            before_step(t)
        step()
        eager.step()


def _assert_same_params(models, **tol):
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, **tol)


def _pair(name, config="default", **extra):
    info = REGISTRY[name]
    kwargs = {**info.configs[config], **extra}
    lr = kwargs["lr"]
    models = _model(), _model()
    compiled = info.cls(models[0].parameters(), **{**kwargs, "lr": torch.tensor(float(lr))})
    eager = info.cls(models[1].parameters(), **kwargs)
    return models, compiled, eager, float(lr)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


#: issue 16's optimizers: their first configuration by default, the second with ``-m slow``
NEW = {"nadam", "radam", "adamax", "adadelta", "muon", "adafactor", "adamw-schedulefree",
       "sgd-schedulefree"}


@pytest.mark.parametrize("name,config", [
    pytest.param(n, c, marks=[pytest.mark.slow] if n in NEW and k else [])
    for n, info in REGISTRY.items() for k, c in enumerate(list(info.configs)[:2])])
def test_fullgraph_step_equals_eager_and_never_recompiles(name, config):
    models, opt, eager, lr = _pair(name, config)
    counter = torch._dynamo.testing.CompileCounter()
    step = torch.compile(opt.step, backend=counter, fullgraph=True)

    def new_lr(t):  # a learning rate that changes every step
        opt.param_groups[0]["lr"].fill_(lr / (1 + t))
        eager.param_groups[0]["lr"] = lr / (1 + t)

    _train(models, step, eager, torch.randn(32, 8), torch.randn(32, 1), STEPS, new_lr)
    assert counter.frame_count == 1  # one graph, traced once: no recompilation
    _assert_same_params(models, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("scheduler", ["inertia", "torch"])
def test_learning_rate_schedulers_do_not_recompile(scheduler):
    (model, ref), opt, eager, lr = _pair("adamw")
    if scheduler == "inertia":
        schedule = inertia.schedules.cosine(lr, 100)
        sched, rsched = (inertia.schedules.Scheduler(o, schedule) for o in (opt, eager))
        fullgraph = True
    else:
        sched, rsched = (torch.optim.lr_scheduler.CosineAnnealingLR(o, 100) for o in (opt, eager))
        fullgraph = False  # torch's scheduler wraps step() in a function dynamo skips
    counter = torch._dynamo.testing.CompileCounter()
    step = torch.compile(opt.step, backend=counter, fullgraph=fullgraph)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    frames = []
    for t in range(100):
        _backward(model, x, y)
        _backward(ref, x, y)
        step()
        eager.step()
        sched.step()
        rsched.step()
        frames.append(counter.frame_count)
    assert frames[-1] == frames[1]  # nothing compiled after the first steps
    _assert_same_params((model, ref), rtol=1e-5, atol=1e-6)


def test_clipping_and_the_step_compile_as_one_graph():
    models, opt, eager, lr = _pair("adam", max_grad_norm=0.1)
    counter = torch._dynamo.testing.CompileCounter()
    step = torch.compile(opt.step, backend=counter, fullgraph=True)
    _train(models, step, eager, torch.randn(32, 8), torch.randn(32, 1), 10)
    assert counter.frame_count == 1
    torch.testing.assert_close(opt.last_grad_norm, eager.last_grad_norm)
    _assert_same_params(models, rtol=1e-6, atol=1e-7)


def test_inductor_compiles_a_two_pass_step():
    """LAMB's reduce and apply operators through inductor, end to end (one inductor compile)."""
    models, opt, eager, lr = _pair("lamb")
    step = torch.compile(opt.step, fullgraph=True)
    _train(models, step, eager, torch.randn(32, 8), torch.randn(32, 1), 5)
    _assert_same_params(models, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["adamw-schedulefree", "sgd-schedulefree"])
def test_schedule_free_with_a_float_lr_refuses_to_compile(name):
    """Its running numbers would be Python numbers frozen into the graph: refused, with the
    remedy (a tensor lr keeps them on the device, as in the test above)."""
    model = _model()
    opt = REGISTRY[name].cls(model.parameters(), lr=0.01)
    _backward(model, torch.randn(4, 8), torch.randn(4, 1))
    with pytest.raises(Exception, match="torch.compile needs the learning rate as a tensor"):
        torch.compile(opt.step, backend="eager", fullgraph=True)()
    assert opt.param_groups[0]["k"] == 0  # nothing stepped


def test_adafactor_stacks_equal_shapes_in_one_graph():
    """Adafactor steps tensors of one shape as a stack (two 8 x 8 layers here): traced into
    one graph as well, equal to eager."""
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8),
                                   torch.nn.Tanh(), torch.nn.Linear(8, 1))

    models = model(), model()
    opt = inertia.Adafactor(models[0].parameters(), lr=torch.tensor(0.01), weight_decay=0.1)
    eager = inertia.Adafactor(models[1].parameters(), lr=0.01, weight_decay=0.1)
    counter = torch._dynamo.testing.CompileCounter()
    step = torch.compile(opt.step, backend=counter, fullgraph=True)
    _train(models, step, eager, torch.randn(16, 8), torch.randn(16, 1), 10)
    assert counter.frame_count == 1
    _assert_same_params(models, rtol=1e-6, atol=1e-7)

"""Entry syntax, strictly: every malformed entry is an error naming the entry and the field."""
from __future__ import annotations

import pytest

from inertia.lab import OptimizerSpec, api, specs
from inertia.lab.running import build


def test_parse_entries():
    e = specs.parse_optimizer("SGD:lr=0.1,momentum=0.9;schedule=warmup(steps=5)+cosine;label=fast")
    assert e == OptimizerSpec("sgd", {"lr": 0.1, "momentum": 0.9}, "warmup(steps=5)+cosine", "fast")
    e = specs.parse_optimizer("adam:betas=(0.9,0.99),nonfinite=skip;batch=8")
    assert e.hparams == {"betas": (0.9, 0.99), "nonfinite": "skip"} and e.batch_size == 8
    assert specs.parse_workload("valley-noisy:noise=0.5") == ("valley-noisy", {"noise": 0.5})
    assert specs.parse_optimizer("adam:lr=1e-3").text == "adam:lr=1e-3"  # kept for messages, not identity


@pytest.mark.parametrize("text, message", [
    ("adamx", "Invalid entry 'adamx': unknown optimizer 'adamx'; valid names: sgd, momentum"),
    ("adam:lr", "Invalid entry 'adam:lr': 'lr' is not KEY=VALUE"),
    ("adam:lr=", "Invalid entry 'adam:lr=': lr has no value"),
    ("adam:lr=abc", "Invalid entry 'adam:lr=abc': lr must be a number, got 'abc'"),
    ("adam:lr=1,lr=2", "Invalid entry 'adam:lr=1,lr=2': lr is given twice"),
    ("adam:", "Invalid entry 'adam:': nothing after 'adam:'"),
    ("adam:lr=0.1,", "Invalid entry 'adam:lr=0.1,': an empty KEY=VALUE"),
    ("adam:betas=(0.9,0.99", "Invalid entry 'adam:betas=(0.9,0.99': unclosed '(' in 'betas=(0.9,0.99'"),
    ("adam:betas=0.9", "Invalid entry 'adam:betas=0.9': betas must be a tuple of 2 numbers"),
    ("adam:betas=(0.9,0.99,0.1)", "betas must be a tuple of 2 numbers"),
    ("adam:amsgrad=3", "Invalid entry 'adam:amsgrad=3': amsgrad must be true or false, got 3"),
    ("adam:lr=True", "lr must be a number, got True"),
    ("sgd:beta=0.9", "Invalid entry 'sgd:beta=0.9': sgd has no hyperparameter 'beta'; valid: lr, momentum"),
    ("adam;foo=1", "Invalid entry 'adam;foo=1': unknown field 'foo=1' (expected schedule=, batch=, label= or tune=)"),
    ("adam;tune=maybe", "Invalid entry 'adam;tune=maybe': tune must be yes or no, got 'maybe'"),
    ("adam;batch=0", "Invalid entry 'adam;batch=0': batch must be a positive integer, got '0'"),
    ("adam;batch=x", "batch must be a positive integer, got 'x'"),
    ("adam;label=", "Invalid entry 'adam;label=': label has no value"),
    ("adam;schedule=", "Invalid entry 'adam;schedule=': schedule has no value"),
    ("adam;label=a;label=b", "label is given twice"),
    ("adam;;label=a", "an empty field"),
    ("sgd;schedule=cosine(", "Invalid entry 'sgd;schedule=cosine(': unclosed '(' in 'schedule=cosine('"),
    ("sgd;schedule=cosine)", "unmatched ')'"),
    ("sgd;schedule=linear", "Invalid entry 'sgd;schedule=linear': unknown schedule 'linear'; valid names: constant"),
    ("sgd;schedule=cosine(T=1,T=2)", "T in schedule cosine is given twice"),
    ("sgd;schedule=cosine(T=)", "T in schedule cosine has no value"),
    ("sgd;schedule=warmup(steps=5)+", "schedule part '' is not NAME or NAME(KEY=VALUE,...)"),
    ("sgd;schedule=cosine(2)", "'2' in schedule cosine is not KEY=VALUE"),
])
def test_bad_entries_name_the_field(text, message):
    with pytest.raises(specs.SpecError) as err:
        specs.parse_optimizer(text)
    assert message in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("adam:lr=-1", "Invalid entry 'adam:lr=-1': Invalid learning rate: -1"),
    ("adam:betas=(1.0,0.9)", r"Invalid entry 'adam:betas=(1.0,0.9)': Invalid beta parameter at index 0: 1.0"),
    ("sgd;schedule=constant+cosine", "Invalid entry 'sgd;schedule=constant+cosine': schedule part 'constant' needs len="),
    ("sgd;schedule=cosine(T=abc)", "Invalid entry 'sgd;schedule=cosine(T=abc)': schedule"),
    ("sgd;schedule=exponential(q=1)", "Invalid entry 'sgd;schedule=exponential(q=1)': schedule exponential:"),
])
def test_invalid_values_fail_before_training(text, message):
    with pytest.raises(specs.SpecError) as err:
        api.plan(["valley"], [text])
    assert message in str(err.value)


def test_an_optimizer_without_a_default_lr_needs_one():
    import torch

    with pytest.raises(specs.SpecError, match="Invalid entry 'lars': lars has no default learning rate: give lr="):
        build.build_optimizer(specs.parse_optimizer("lars"), [torch.nn.Parameter(torch.zeros(2))], {})
    assert build.build_optimizer(specs.parse_optimizer("lars"), [torch.nn.Parameter(torch.zeros(2))], {"lars": 1.0})


def test_schedules_follow_the_budget():
    s = build.build_schedule("warmup(steps=10)+cosine", 1.0, 110)
    assert s(0) == 0.0 and s(10) == pytest.approx(1.0) and s(110) == pytest.approx(0.0)
    assert build.build_schedule("step(every=2,factor=0.5)", 1.0, 10)(4) == 0.25
    assert build.build_schedule("cosine()", 1.0, 10)(0) == 1.0  # empty parentheses are the defaults


def test_plan_rejects_what_cannot_run():
    with pytest.raises(specs.SpecError, match="has no batch size"):
        api.plan(["valley"], ["sgd;batch=4"])
    with pytest.raises(specs.SpecError, match="two are shown as 'adam'"):
        api.plan(["valley"], ["adam", "adam"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(optimizers=[__import__("torch").nn.Linear]), "Invalid entry <class 'torch.nn.modules.linear.Linear'>: "
                                                        "expected text"),
    (dict(optimizers=[object()]), "Invalid entry <object object"),
    (dict(optimizers=42), "Invalid optimizers 42: expected a list of entries"),
    (dict(seeds=3), "Invalid seeds 3: expected a list of integers such as [0, 1, 2]"),
    (dict(seeds=[0, 0]), "Invalid seeds [0, 0]: seed 0 is given twice"),
    (dict(seeds=[0.5]), "Invalid seeds [0.5]: 0.5 is not an integer"),
    (dict(seeds=[]), "Invalid seeds []: need at least one"),
    (dict(steps=0), "Invalid steps 0: must be a positive integer"),
    (dict(workloads=[__import__("torch").nn.Linear(2, 2)]), "build a workload from your model with Workload.from_tensors"),
])
def test_wrong_api_arguments_are_named(kwargs, message):
    with pytest.raises(specs.SpecError) as err:
        api.plan(**{"workloads": ["valley"], "optimizers": ["adam"], **kwargs})
    assert message in str(err.value)


def test_inertia_classes_and_single_entries_are_accepted():
    import inertia

    runs = api.plan("valley", inertia.Adam, seeds=[0])
    assert [(w.name, e.name, s) for w, e, s in runs] == [("valley", "adam", 0)]
    assert [e.name for _, e, _ in api.plan("valley", "sgd:lr=0.1", seeds=[0])] == ["sgd"]


def test_hyperparameters_include_shared_options_and_required_lr():
    assert specs.hyperparameters("lars")["lr"] == "required"
    assert specs.hyperparameters("adam")["lr"] == 1e-3
    assert "nonfinite" in specs.hyperparameters("adam")  # read from an instance: follows the optimizer package


def test_resolved_hyperparameters_include_defaults():
    import torch

    opt = build.build_optimizer(specs.parse_optimizer("adam:lr=0.01"), [torch.nn.Parameter(torch.zeros(2))])
    hp = build.resolved(opt)
    assert hp["lr"] == 0.01 and hp["betas"] == [0.9, 0.999] and hp["weight_decay"] == 0.0
    spec = specs.parse_optimizer("adam")
    assert build.resolve_lr(spec, {"adam": 0.2}) == ({"lr": 0.2}, "workload")
    assert build.resolve_lr(spec, {}) == ({}, "default")
    assert build.resolve_lr(specs.parse_optimizer("adam:lr=0.3"), {"adam": 0.2})[1] == "entry"


def test_the_main_comparison_adds_the_newer_optimizers_where_they_apply(monkeypatch):
    from inertia.lab import api
    from inertia.optim.registry import REGISTRY

    cnn, valley = api.resolve_workload("mnist-cnn"), api.resolve_workload("valley")
    names = lambda w: [s.name for s in api.resolve_entries(None, w)]  # noqa: E731
    assert names(cnn)[:4] == ["adam", "rmsprop", "momentum", "sgd"] and "adamw" in names(cnn)
    for newer in ("adamw-schedulefree", "muon"):  # as when inertia has them (the modern-optimizers work)
        monkeypatch.setitem(REGISTRY, newer, REGISTRY["adamw"])
    assert names(cnn)[4:] == ["adamw", "adamw-schedulefree", "muon"]
    assert names(valley)[4:] == ["adamw", "adamw-schedulefree"]  # one 2-D point: no matrix for Muon
    assert names(api.resolve_workload("minibatch")) == [s.name for s in api.resolve_workload("minibatch").default_entries]


def test_muon_on_a_convolutional_model_hands_everything_but_matrices_to_its_adamw_group():
    """The main job runs Muon on mnist-cnn: its filters and biases are not matrices, so the
    lab builds Muon's own split (a flat parameter list made every run fail at step 1)."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    opt = build.build_optimizer(specs.parse_optimizer("muon:lr=0.01"), model.parameters())
    groups = [(sorted(tuple(p.shape) for p in g["params"]), g["use_muon"] is not False)
              for g in opt.param_groups]
    assert groups == [([(3, 144)], True), ([(3,), (4,), (4, 1, 3, 3)], False)]
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(2, 1, 8, 8)).square().sum().backward()
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))

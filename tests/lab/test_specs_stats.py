"""Entry syntax, up-front validation, and the statistics (time to target, medians, "beats")."""
from __future__ import annotations

import math

import pytest

from inertia.lab import OptimizerSpec, api, specs, stats
from inertia.lab.runner import RunRecord

INF = math.inf


def test_parse_entries():
    e = specs.parse_optimizer("SGD:lr=0.1,momentum=0.9;schedule=warmup(steps=5)+cosine;label=fast")
    assert e == OptimizerSpec("sgd", {"lr": 0.1, "momentum": 0.9}, "warmup(steps=5)+cosine", "fast")
    e = specs.parse_optimizer("adam:betas=(0.9,0.99),nonfinite=skip;batch=8")
    assert e.hparams == {"betas": (0.9, 0.99), "nonfinite": "skip"} and e.batch_size == 8
    assert specs.parse_workload("valley-noisy:noise=0.5") == ("valley-noisy", {"noise": 0.5})


@pytest.mark.parametrize("text, match", [
    ("adamx", "unknown optimizer 'adamx'; valid names: sgd, momentum"),
    ("adam:lr", "expected KEY=VALUE"),
    ("adam;foo=1", "expected schedule=, batch= or label="),
    ("adam;batch=0", "Invalid batch"),
])
def test_bad_entries(text, match):
    with pytest.raises(specs.SpecError, match=match):
        specs.parse_optimizer(text)


def test_schedules_follow_the_budget():
    s = specs.build_schedule("warmup(steps=10)+cosine", 1.0, 110)
    assert s(0) == 0.0 and s(10) == pytest.approx(1.0) and s(110) == pytest.approx(0.0)
    assert specs.build_schedule("step(every=2,factor=0.5)", 1.0, 10)(4) == 0.25
    with pytest.raises(specs.SpecError, match="unknown schedule"):
        specs.build_schedule("linear", 1.0, 10)
    with pytest.raises(specs.SpecError, match="needs len="):
        specs.build_schedule("constant+cosine", 1.0, 10)


def test_invalid_hyperparameters_fail_before_training():
    with pytest.raises(ValueError, match=r"Invalid beta parameter at index 0: 1\.0"):
        api.plan(["valley"], ["adam:betas=(1.0,0.9)"])
    with pytest.raises(specs.SpecError, match="unexpected keyword"):
        api.plan(["valley"], ["sgd:beta=0.9"])
    with pytest.raises(specs.SpecError, match="has no batch size"):
        api.plan(["valley"], ["sgd;batch=4"])


def _rec(evals):
    return RunRecord(key="k", workload="w", label="l", optimizer="sgd", seed=0, workload_config={},
                     spec={}, hparams={}, evals=evals)


def test_time_to_target_is_first_evaluation_reaching_it():
    rec = _rec([(0, 0.0, 0.1), (10, 1.0, 0.85), (20, 2.0, 0.93), (30, 3.0, 0.95)])
    assert stats.time_to_target(rec, 0.9, True) == (20.0, 2.0)
    assert stats.time_to_target(rec, 0.99, True) == (INF, INF)
    assert stats.time_to_target(_rec([(0, 0.0, 5.0), (5, 0.1, 0.001)]), 0.01, False) == (5.0, 0.1)


def test_median_keeps_infinity():
    assert stats.median([1, 2, INF]) == 2
    assert stats.median([1, INF, INF]) == INF
    assert stats.median([1, 3, INF, INF]) == INF
    assert stats.median([1, 3]) == 2


def test_beats_needs_every_seed():
    assert stats.beats([10, 12, 14], [15, 20, INF], lower_is_better=True)
    assert not stats.beats([10, 12, 16], [15, 20, 30], lower_is_better=True)
    assert not stats.beats([INF, INF], [INF, INF], lower_is_better=True)
    assert stats.beats([0.95, 0.96], [0.9, float("nan")], lower_is_better=False)


def test_detour_measures_zigzag():
    assert stats.detour([[0, 0], [1, 0], [2, 0]]) == pytest.approx(1.0)
    assert stats.detour([[0, 0], [1, 1], [2, -1], [3, 0]]) == pytest.approx((2 * 2**0.5 + 5**0.5) / 3)


def test_required_hyperparameters_are_listed_as_required():
    from inertia.lab.specs import hyperparameters

    assert hyperparameters("lars")["lr"] == "required"
    assert hyperparameters("adam")["lr"] == 1e-3

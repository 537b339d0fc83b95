"""What a run's outcome means: held targets, explosions, divergence on real runs, failures."""
from __future__ import annotations

import math

import pytest
import torch

from inertia.lab import OptimizerSpec, outcomes, specs, workloads
from inertia.lab.outcomes import DIVERGED, FAILED, NOT_REACHED, REACHED, Watchdog
from inertia.lab.running.runner import train

INF = math.inf


def test_reached_means_held_to_the_end():
    evals = [(0, 0.0, 0.1), (10, 1.0, 0.85), (20, 2.0, 0.93), (30, 3.0, 0.95)]
    assert outcomes.time_to_target(evals, 0.9, True) == (20.0, 2.0)
    assert outcomes.time_to_target(evals, 0.99, True) == (INF, INF)
    # one lucky evaluation: met at step 10, lost afterwards, never regained
    lucky = [(0, 0.0, 0.1), (10, 1.0, 0.95), (20, 2.0, 0.85), (30, 3.0, 0.78)]
    assert outcomes.time_to_target(lucky, 0.9, True) == (INF, INF)
    assert outcomes.outcome("completed", lucky, 0.9, True) == NOT_REACHED
    # met, lost, met again: time to target is where the final streak starts
    back = [(0, 0.0, 0.1), (10, 1.0, 0.95), (20, 2.0, 0.85), (30, 3.0, 0.91), (40, 4.0, 0.92)]
    assert outcomes.time_to_target(back, 0.9, True) == (30.0, 3.0)
    # lower is better; a run that finishes at 0.9417 has not reached 0.95 accuracy, nor 0.94 rmse
    assert outcomes.time_to_target([(0, 0, 5.0), (5, 0.1, 0.001)], 0.01, False) == (5.0, 0.1)
    assert outcomes.outcome("completed", [(0, 0, 0.5), (10, 1, 0.9417)], 0.95, True) == NOT_REACHED
    # a diverged or failed run reaches nothing, whatever it met before it stopped
    assert outcomes.time_to_target(evals, 0.9, True, completed=False) == (INF, INF)
    assert outcomes.outcome("diverged", evals, 0.9, True) == DIVERGED
    assert outcomes.outcome("failed", evals, 0.9, True) == FAILED
    assert outcomes.outcome("completed", evals, 0.9, True) == REACHED
    assert not outcomes.meets(float("nan"), 0.9, True)


def _first_alarm(losses):
    w = Watchdog()
    for t, loss in enumerate(losses, 1):
        if w.update(loss):
            return t
    return None


def test_explosion_rule_on_synthetic_losses():
    assert _first_alarm([float("nan")]) == 1
    assert _first_alarm([1.0, 0.5, float("inf")]) == 3
    # healthy descent, with a single terrible mini-batch: not an explosion
    assert _first_alarm([2.3, 1.5, 1.0, 0.7, 0.5, 60.0, 0.45, 0.4, 0.38]) is None
    # a loss near zero: scale is its own size and the descent, so 1e-3 -> 1e-6 -> 1 explodes
    tiny = [1e-3 * 0.5 ** t for t in range(10)] + [1.0] * 5
    assert _first_alarm(tiny) is not None and _first_alarm(tiny) > 10
    assert _first_alarm([1e-3 * 0.5 ** t for t in range(20)]) is None
    # a negative loss: starts at -3, reaches -5; rising to +20 is within 10 x 3 of the best, +30 is not
    neg = [-3.0, -4.0, -5.0, -5.0, -5.0, -5.0]
    assert _first_alarm(neg + [20.0] * 5) is None
    assert _first_alarm(neg + [30.0] * 5) is not None
    # a loss of exactly zero that never moves: only non-finite values count
    assert _first_alarm([0.0] * 10 + [5.0] * 10) is None


def _run(workload, entry, seed=0, steps=None):
    w = workloads.get(workload)
    if steps:
        w = w.with_budget(steps)
    return train(w, specs.parse_optimizer(entry), seed)


def test_readme_example_diverges_although_its_loss_stays_finite():
    """sgd lr=0.1, momentum 0.9 on the valley (curvature 50): lr * 50 = 5 > 2 (1 + 0.9), unstable."""
    rec = _run("valley", "sgd:lr=0.1,momentum=0.9;schedule=cosine")
    assert rec.status == DIVERGED and "exploded" in rec.error
    assert all(math.isfinite(x) for x in rec.losses)  # not a NaN: the loss rule caught it
    assert rec.steps_done < 20 and rec.test_metric is None


@pytest.mark.parametrize("workload, entry", [("valley", "sgd:lr=30"), ("rosenbrock", "sgd:lr=0.1")])
def test_issue_crash_cases_diverge(workload, entry):
    rec = _run(workload, entry)
    assert rec.status == DIVERGED and rec.error.startswith("step ")


def test_healthy_runs_are_not_flagged():
    for workload, entry in [("valley", "adam"), ("rosenbrock", "adam:lr=0.1"), ("valley-noisy", "sgd"),
                            ("rosenbrock-noisy", "momentum")]:
        rec = _run(workload, entry, steps=300)
        assert rec.status == "completed", (workload, entry, rec.error)


def test_non_finite_gradient_error_is_one_more_signal(monkeypatch):
    from inertia import NonFiniteGradientError

    w = workloads.get("valley").with_budget(5)
    real = w.loss

    def poisoned(model, batch):
        raise NonFiniteGradientError("gradient of p is nan")

    w.loss = poisoned
    rec = train(w, OptimizerSpec("adam"), 0)
    assert rec.status == DIVERGED and "gradient of p is nan" in rec.error
    w.loss = real


def test_a_non_finite_parameter_is_divergence_even_with_a_finite_loss():
    class Half(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))
            self.dead = torch.nn.Parameter(torch.ones(1))  # unused by the loss

        def forward(self, x):
            return x @ self.w

    from inertia.lab import Workload

    X, Y = torch.randn(64, 2), torch.randn(64)
    w = Workload.from_tensors("half", model=Half, X=X, Y=Y, X_val=X, Y_val=Y, X_test=X, Y_test=Y,
                     loss="mse", metric="rmse", target=0.1, steps=4, eval_every=2)
    rec_ok = train(w, OptimizerSpec("sgd", {"lr": 0.01}), 0)
    assert rec_ok.status == "completed"
    original = w.init_model

    def init(seed, device):
        m = original(seed, device)
        with torch.no_grad():
            m.dead.fill_(float("nan"))
        return m

    w.init_model = init
    rec = train(w, OptimizerSpec("sgd", {"lr": 0.01}), 0)
    assert rec.status == DIVERGED and "parameter is NaN" in rec.error


def test_an_exception_is_a_failed_run_with_its_message():
    w = workloads.get("valley").with_budget(6)

    def broken(model, batch):
        raise RuntimeError("the user's loss is broken")

    w.loss = broken
    rec = train(w, OptimizerSpec("sgd"), 0)
    assert rec.status == FAILED and "RuntimeError: the user's loss is broken" in rec.error
    assert rec.steps_done == 0 and rec.test_metric is None

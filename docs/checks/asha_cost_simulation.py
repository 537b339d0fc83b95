"""How much Optuna's asynchronous successive halving costs when trials run one at a time.

The figure quoted in ``docs/lab.md`` and :mod:`inertia.lab.tuning.budget`: 20 trials of a
300-step run evaluated every 20 steps, ``SuccessiveHalvingPruner(min_resource=20,
reduction_factor=3)``, one trial after another (as one process runs a study). Each trial has a
quality ``q`` (standard normal) and reports ``q * sqrt(step / 300)`` plus noise that shrinks
to zero at the end (early values are a noisy guess of the final one). 30 random orders.
Prints the cost in full runs: mean, min, max. ``python docs/checks/asha_cost_simulation.py``.
"""
import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
R, E, N = 300, 20, 20


def cost(seed: int) -> float:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=N)
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=E, reduction_factor=3))
    steps = 0
    for i in range(N):
        trial = study.ask()
        for s in range(E, R + 1, E):
            trial.report(q[i] * (s / R) ** 0.5 + 0.3 * rng.normal() * (1 - s / R), s)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                steps += s
                break
        else:
            study.tell(trial, q[i])
            steps += R
    return steps / R


costs = [cost(seed) for seed in range(30)]
print(f"{N} trials, {len(costs)} orders: {np.mean(costs):.2f} full runs on average, "
      f"{min(costs):.2f} to {max(costs):.2f}")

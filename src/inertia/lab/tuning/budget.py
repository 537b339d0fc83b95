"""The tuning budget: how many trials, how they are drawn, and how hopeless ones are stopped.

Every optimizer in a comparison gets the same :class:`Budget`: the same number of trials
(configurations), drawn the same way from the same relative space (:mod:`.space`), and,
with pruning, the same rungs with the same number of configurations allowed past each, so
the same total number of training steps, known before the first trial starts
(:meth:`Rungs.planned_steps`).

**Successive halving** (``pruner="halving"``, the default; Jamieson and Talwalkar 2016, the
building block of Hyperband and ASHA). With ``N`` configurations and reduction factor
:data:`ETA` = 3, every configuration trains to the first rung; the best third of them (by
the validation metric there) train on to the second rung, the best third of those to the
third, and the last one to the full budget ``R``. The rungs sit at ``R/27, R/9, R/3``
(as many as there are halvings: ``round(N/3), round(N/9), ..., 1`` continue; each rung
moved up to the next evaluation, since the validation metric is only measured there).
For 20 configurations of 300 steps (mnist-cnn, evaluated every 20) that is
``20 x 20 + 7 x 40 + 2 x 100 + 1 x 300 = 1,180`` steps budgeted, 3.93 full runs, whatever
the values turn out to be; trained continuously (below) it is
``20 x 20 + 7 x 20 + 2 x 60 + 1 x 200 = 860`` steps, 2.87 full runs.

The halving is *synchronous*: a rung's survivors are chosen when every configuration of
the rung has finished, so each one competes with all the others, not only with those that
happened to finish before it. Optuna's asynchronous ``SuccessiveHalvingPruner`` instead
lets a trial continue whenever it is in the top third of those seen so far; run one trial
at a time, the first trial always continues, and how many run long depends on the order
the values arrive in, so two optimizers would get different budgets (and the default lr,
trained first, an easier ride). A configuration that continues is trained again from its
start to the next rung (a trial is one configuration at one rung, trained on the same seed,
so it repeats exactly the steps it already took); :mod:`.driver` skips that repetition when
the same process still holds the configuration's training state, so the steps *spent* are
fewer than the steps *budgeted* (:meth:`Rungs.continued_steps` when every continuation is
at hand, as when one process runs a study), and the report gives both.

``pruner="none"`` trains every configuration to the end (``N`` full runs each).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

#: how much each rung thins the trials out
ETA = 3
PRUNERS = ("halving", "none")
SAMPLERS = ("quasirandom", "tpe")
#: the training seed of every trial (the final runs use the comparison's seeds, 0, 1, 2 … by default)
TUNING_SEED = 1000


@dataclass(frozen=True)
class Budget:
    """One optimizer's tuning budget, the same for every entry of a comparison.

    Args:
        trials: trials per entry (the lr and any ``tune_also`` knobs, drawn from :mod:`.space`).
        pruner: ``"halving"`` (successive halving, module docstring) or ``"none"`` (every trial to the end).
        sampler: ``"quasirandom"`` (scrambled Sobol points; the default) or ``"tpe"`` (Optuna's
            TPE for the second phase, after the quasirandom first phase).
        tune_also: other knobs to tune besides lr (:data:`.space.KNOBS`), where the optimizer has them.
        seed: the training seed of every trial.
    """

    trials: int
    pruner: str = "halving"
    sampler: str = "quasirandom"
    tune_also: tuple[str, ...] = ()
    seed: int = TUNING_SEED

    def __post_init__(self) -> None:
        from .space import KNOBS

        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"Invalid tune: {self.trials!r} (the number of trials per optimizer, a positive integer)")
        if self.pruner not in PRUNERS:
            raise ValueError(f"Invalid pruner: {self.pruner!r} (choose from {', '.join(PRUNERS)})")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"Invalid sampler: {self.sampler!r} (choose from {', '.join(SAMPLERS)})")
        knobs = tuple(self.tune_also)
        for k in knobs:
            if k not in KNOBS:
                raise ValueError(f"Invalid tune_also: {k!r} (choose from {', '.join(KNOBS)})")
        object.__setattr__(self, "tune_also", knobs)

    def describe(self) -> str:
        knobs = f" and {', '.join(self.tune_also)}" if self.tune_also else ""
        prune = {"halving": "successive halving", "none": "no pruning"}[self.pruner]
        return f"{self.trials} trials of lr{knobs} per entry, {self.sampler}, {prune}"

    def to_dict(self) -> dict:
        return {"trials": self.trials, "pruner": self.pruner, "sampler": self.sampler,
                "tune_also": list(self.tune_also), "seed": self.seed}


def quotas(trials: int, eta: int = ETA) -> list[int]:
    """How many trials continue past each rung: ``[round(N/3), round(N/9), ..., 1]``."""
    out, n = [], trials
    while n > 1:
        n = max(1, round(n / eta))
        out.append(n)
    return out


@dataclass(frozen=True)
class Rungs:
    """A study's halving schedule: rung ``k`` trains ``counts[k]`` configurations to ``stops[k]`` steps.

    The last rung is the full budget; with no pruning it is the only one.
    """

    trials: int
    full: int  # the full budget R, in steps
    steps: tuple[int, ...] = field(default_factory=tuple)  # the intermediate rungs
    keep: tuple[int, ...] = field(default_factory=tuple)  # how many continue past each

    @property
    def stops(self) -> tuple[int, ...]:
        return self.steps + (self.full,)

    @property
    def counts(self) -> tuple[int, ...]:
        return (self.trials,) + self.keep

    @property
    def last(self) -> int:
        return len(self.steps)

    def planned_trials(self) -> int:
        """Trials of the study: every configuration once per rung it reaches."""
        return sum(self.counts)

    def planned_steps(self) -> int:
        """Total training steps of the study's trials, each trained from its start to its rung."""
        return sum(n * stop for n, stop in zip(self.counts, self.stops))

    def multiple(self) -> float:
        """The planned cost in full training runs."""
        return self.planned_steps() / self.full

    def continued_steps(self) -> int:
        """The steps actually trained when every configuration continues where it paused
        (one process holding it from rung to rung): each step is trained once."""
        last, total = 0, 0
        for n, stop in zip(self.counts, self.stops):
            total += n * (stop - last)
            last = stop
        return total

    def to_dict(self) -> dict:
        return {"steps": list(self.steps), "keep": list(self.keep), "stops": list(self.stops),
                "counts": list(self.counts), "planned_steps": self.planned_steps(), "full": self.full,
                "multiple": self.multiple(), "continued_steps": self.continued_steps()}


def rungs(trials: int, full: int, eval_every: int, pruner: str = "halving", eta: int = ETA) -> Rungs:
    """The rung schedule for ``trials`` configurations of ``full`` steps evaluated every ``eval_every``.

    Rung ``k`` of ``K`` sits at ``full / eta^(K-k)``, moved up to the next evaluation. Rungs
    that land on the same evaluation merge (the later, smaller count wins); rungs at or past
    the end are dropped.
    """
    if pruner != "halving":
        return Rungs(trials, full)
    keep = quotas(trials, eta)
    k_total = len(keep)
    steps: list[int] = []
    kept: list[int] = []
    for k, q in enumerate(keep):
        raw = full / eta ** (k_total - k)
        step = min(full, eval_every * math.ceil(raw / eval_every))
        if step >= full:
            continue
        if steps and step == steps[-1]:
            kept[-1] = q
            continue
        steps.append(step)
        kept.append(q)
    return Rungs(trials, full, tuple(steps), tuple(kept))

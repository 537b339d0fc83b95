"""The ``seed-claims`` suite: do the lesson's three claims hold on real data?

The lesson says:

1. *Image classification*: "Adam reaches 90% fastest, while SGD+Momentum generalises best."
2. *BERT fine-tuning*: "Adam works with default hyperparameters, RMSprop needs careful tuning."
3. *Recommender systems* (sparse gradients): "RMSprop is more stable; Adam may fail to converge."

Each claim is a statement about *tuned* optimizers or about *defaults*, so the suite runs a
fair protocol: Adam, RMSprop and SGD+Momentum (heavy ball, momentum 0.9) each get their lr
from the lab's equal-budget tuning (the same as the main job's, :mod:`inertia.lab.tuning`),
and each also runs at the library's own default lr (what an untuned user gets), on every
seed (:mod:`.protocol`). Nothing else is tuned. The scenarios are real data, offline: ``mnist-cnn`` (MNIST digits, small
ResNet), ``reviews`` (MiniLM-L6 fine-tuning on Amazon food reviews) and ``movielens``
(matrix factorisation with sparse embedding gradients, once with lazy sparse updates like
SparseAdam and once densified).

The layout follows the lab's: :mod:`.protocol` (what runs), :mod:`.suite` (running it),
:mod:`.table` and :mod:`.verdicts` (scoring, pure functions of a results table, so they
can be recomputed and tested from any stored database), :mod:`.report` (the lab's
document model). Every verdict is decided seed by seed: the claim is **supported** when
it holds on every seed, **not supported** when it fails on every seed, and
**inconclusive** when the seeds disagree (or a comparison is an exact tie). Learning
rates are chosen on the validation split; claims about the final metric read the test
split, measured once per run.
"""
from .protocol import FULL_TRIALS, QUICK_TRIALS, Scenario, entries, library_default_lr, scenarios
from .report import write_report
from .suite import load, run
from .table import (
    FAMILIES, INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, baseline_of, curves_table, runs_table, trials_table,
)
from .verdicts import (
    Verdict, converged, recommendations, tuned_lr, verdict_best_final, verdict_defaults, verdict_fastest,
    verdict_stability, verdicts,
)

__all__ = [
    "FAMILIES", "FULL_TRIALS", "QUICK_TRIALS", "SUPPORTED", "NOT_SUPPORTED", "INCONCLUSIVE",
    "Scenario", "scenarios", "entries", "library_default_lr", "runs_table", "trials_table",
    "curves_table", "baseline_of", "Verdict", "verdicts", "verdict_fastest", "verdict_best_final",
    "verdict_defaults", "verdict_stability", "converged", "recommendations", "tuned_lr", "load",
    "write_report", "run",
]

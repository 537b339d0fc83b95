"""The ``seed-claims`` suite: do the seed lesson's three claims hold on real data?

The seed lesson says:

1. *Image classification*: "Adam reaches 90% fastest, while SGD+Momentum generalises best."
2. *BERT fine-tuning*: "Adam works with default hyperparameters, RMSprop needs careful tuning."
3. *Recommender systems* (sparse gradients): "RMSprop is more stable; Adam may fail to converge."

Each claim is a statement about *tuned* optimizers or about *defaults*, so the suite runs a
fair protocol: Adam, RMSprop and SGD+Momentum (heavy ball, momentum 0.9) each get the
same learning-rate sweep (the workload's suggested lr times the same log-spaced factors)
plus the library's own default lr (what an untuned user gets), on every seed. Nothing
else is tuned. The scenarios are real data, offline: ``mnist-cnn`` (4,000 MNIST digits,
small ResNet), ``reviews`` (MiniLM-L6 fine-tuning on Amazon food reviews) and
``movielens`` (matrix factorisation with sparse embedding gradients, once with lazy
sparse updates like SparseAdam and once densified).

The verdicts are pure functions of a results table (one row per run; see
:func:`runs_table`), so they can be recomputed and tested from any stored database.
Every verdict is decided seed by seed: the claim is **supported** when it holds on every
seed, **not supported** when it fails on every seed, and **inconclusive** when the seeds
disagree (or a comparison is an exact tie). A learning rate is chosen per optimizer on the
mean over seeds, by the same criterion the claim is about (steps to target for "fastest",
final test metric otherwise); we select and report on the same test set, which flatters
every optimizer equally and is stated in the report.
"""
from .protocol import (
    FAMILIES, FULL_FACTORS, INCONCLUSIVE, NOT_SUPPORTED, QUICK_FACTORS, SUPPORTED, Scenario,
    curves_table, entries, learning_rates, library_default_lr, runs_table, scenarios,
)
from .report import write_report
from .suite import run
from .verdicts import (
    Verdict, converged, load, recommendations, verdict_best_final, verdict_defaults,
    verdict_fastest, verdict_stability, verdicts,
)

__all__ = [
    "FAMILIES", "FULL_FACTORS", "QUICK_FACTORS", "SUPPORTED", "NOT_SUPPORTED", "INCONCLUSIVE",
    "Scenario", "scenarios", "entries", "learning_rates", "library_default_lr", "runs_table",
    "curves_table", "Verdict", "verdicts", "verdict_fastest", "verdict_best_final",
    "verdict_defaults", "verdict_stability", "converged", "recommendations", "load",
    "write_report", "run",
]

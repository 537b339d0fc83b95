"""Tuning: every optimizer gets the same budget, chosen on validation, judged on test.

``compare(..., tune=N)`` (``inertia compare --tune N``) gives each entry its own Optuna
study with the same budget (:mod:`.budget`): ``N`` trials drawn quasirandomly (or by TPE)
from the same relative search space (:mod:`.space`: log-uniform lr over
``[default / 30, default x 30]``, widened when the best trial lies at an edge), trained on
one tuning seed and scored on the **validation** split, hopeless ones stopped at the same
rungs by equal-budget successive halving. The studies live in an Optuna storage
(:mod:`.study`: SQLite in the output folder, or PostgreSQL shared by many machines); each
entry's best trial is then re-run by the comparison on its seeds and judged on the
**test** split. What each study found (the choice, the band of good learning rates, what
the default would have cost, the steps spent) is scored from stored trials by
:mod:`inertia.lab.scoring.tuning`.

:mod:`.sweep` keeps the plain fixed-grid sweep and its choice on validation.

Submodules are imported on use: :mod:`.driver` and :mod:`.study` need Optuna (``inertia[lab]``).
"""
from .budget import Budget
from .sweep import choose, grid

__all__ = ["Budget", "grid", "choose"]

"""Tuning: giving each optimizer a learning rate chosen from data, on the validation split.

Today this is the fixed learning-rate sweep of the seed-claims suite (:mod:`.sweep`): the
same relative grid for every optimizer plus its library default, with the best rate
chosen on the *validation* metric, never on test. Equal-budget search (Optuna) will live
here too, behind the same rule: choose on validation, judge on test.
"""
from .sweep import choose, grid

__all__ = ["grid", "choose"]

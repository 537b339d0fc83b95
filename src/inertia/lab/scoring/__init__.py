"""Scoring: what stored runs mean, computed from records alone (no runner, no torch).

* :mod:`.table` — one row per run and per entry, medians with intervals, the ranking;
* :mod:`.stats` — the interval, the rank test and Holm's correction;
* :mod:`.verdict` — the claims per workload: winner, ties, failures;
* :mod:`.profiles` — performance profiles across workloads.

The definitions of the outcomes themselves (reached, diverged …) are in
:mod:`inertia.lab.outcomes`, shared with the runner.
"""
from .table import practical_threshold, run_frame, steps_threshold, summarize
from .verdict import PairTest, WorkloadVerdict, verdicts

__all__ = ["run_frame", "summarize", "practical_threshold", "steps_threshold", "verdicts", "WorkloadVerdict",
           "PairTest"]

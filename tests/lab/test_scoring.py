"""Scoring from records alone: intervals, the rank test, Holm, the ranking, the claims, profiles."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from inertia.lab.records import RunRecord
from inertia.lab.scoring import profiles, run_frame, stats, summarize, verdicts
from inertia.lab.scoring.table import practical_threshold, steps_threshold

INF = math.inf


def test_median_keeps_infinity():
    assert stats.median([1, 2, INF]) == 2
    assert stats.median([1, INF, INF]) == INF
    assert stats.median([1, 3, INF, INF]) == INF
    assert stats.median([1, 3]) == 2


def test_median_interval_coverage_is_exact():
    assert stats.median_interval([3, 1, 2]) == (1, 3, 0.75)  # the seed range covers the median 75% of the time
    lo, hi, cov = stats.median_interval(list(range(10)))
    assert (lo, hi) == (1, 8) and cov == pytest.approx(1 - 2 * 11 / 1024)
    assert stats.median_interval([1, 2, 3, 4, 5, 6])[2] == pytest.approx(1 - 2 / 64)
    assert stats.median_interval([1, 2, INF])[:2] == (1, INF)


def test_rank_test_exact_p_values():
    assert stats.rank_test([1, 2, 3, 4, 5], [6, 7, 8, 9, INF]) == pytest.approx(2 / 252)
    assert stats.rank_test([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)  # 3 seeds can never reach 0.05
    assert stats.rank_test([45, 45, 45], [45, 45, 45]) == 1.0
    assert stats.rank_test([1], [2]) == 1.0
    assert stats.rank_test([1], [2, 3, 4]) == pytest.approx(0.5)


def test_holm_and_seeds_needed():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.02, float("nan")])[0] == pytest.approx(0.02)
    assert stats.seeds_needed(1) == 5 and stats.seeds_needed(3) == 5
    assert stats.seeds_needed(31) == 7  # 31 * 2 / C(12, 6) = 0.067, 31 * 2 / C(14, 7) = 0.018


INFO = {"name": "w", "metric": "accuracy", "higher_is_better": True, "target": 0.9, "steps": 100, "eval_every": 10,
        "extras": {"n_test": 1000}}


def rec(label, seed, final_val, test=None, status="completed", reach_at=50, lr=0.1, source="entry"):
    """A record whose validation metric crosses the target at ``reach_at`` and ends at ``final_val``."""
    evals = [(0, 0.0, 0.1)] + [(s, s / 100, 0.95 if s >= reach_at else 0.5) for s in range(10, 100, 10)]
    evals.append((100, 1.0, final_val))
    return RunRecord(key=f"{label}-{seed}", workload="w", label=label, optimizer=label.split("-")[0], seed=seed,
                     workload_config={}, spec={}, lr=lr, lr_source=source, status=status,
                     evals=evals, test_metric=None if status != "completed" else (final_val if test is None else test),
                     steps=100, steps_done=100 if status == "completed" else 30, losses=[1.0] * 3,
                     time_per_step=0.01, error=None if status == "completed" else "step 30: the training loss is nan")


def score(records):
    frame = run_frame(records, {"w": INFO})
    summary = summarize(frame, {"w": INFO})
    return frame, summary, verdicts(frame, summary, {"w": INFO})["w"]


def test_thresholds():
    assert practical_threshold(INFO) == 0.01
    assert practical_threshold({**INFO, "extras": {"n_test": 50}}) == 0.04  # never less than two test examples
    assert practical_threshold({"metric": "rmse", "target": 0.95}) == pytest.approx(0.0095)
    assert practical_threshold({**INFO, "min_difference": 0.005}) == 0.005
    assert steps_threshold(INFO) == 10


def test_lucky_evaluation_is_not_reached_and_final_shows():
    frame, summary, _ = score([rec("adam", s, 0.78) for s in range(3)])
    row = summary.iloc[0]
    assert row["reached"] == "0/3" and row["n_not_reached"] == 3
    assert row["final_metric"] == pytest.approx(0.78) and row["best_metric"] == pytest.approx(0.95)


def test_too_few_seeds_gives_no_verdict():
    records = [rec("a", s, 0.95) for s in range(3)] + [rec("b", s, 0.80) for s in range(3)]
    _, summary, v = score(records)
    assert v.winner == "a" and v.too_few_seeds and v.needed == 5
    assert v.beaten == [] and v.ties == []  # no verdict words either way


def test_winner_beats_clearly_with_five_seeds():
    records = [rec("a", s, 0.95 + s / 1000) for s in range(5)] + [rec("b", s, 0.80 + s / 1000) for s in range(5)]
    _, summary, v = score(records)
    assert not v.too_few_seeds and v.clear_winner
    (t,) = v.tests
    assert t.criterion == "final metric" and t.p_adjusted == pytest.approx(2 / 252) and t.clear


def test_practically_equal_metric_is_decided_on_time_then_a_tie():
    # same final accuracy (within 1 point), a reaches the target at 20, b at 60: time decides
    records = ([rec("a", s, 0.95, reach_at=20) for s in range(5)] + [rec("b", s, 0.951, reach_at=60) for s in range(5)])
    _, summary, v = score(records)
    assert list(summary["optimizer"]) == ["a", "b"] and summary["tier"].tolist() == [1, 1]
    assert v.tests[0].criterion == "time to target" and v.tests[0].clear
    # one test example apart on every seed: statistically perfect, practically nothing
    records = [rec("a", s, 0.951) for s in range(5)] + [rec("b", s, 0.950) for s in range(5)]
    _, _, v = score(records)
    assert not v.tests[0].practical and v.ties and not v.beaten


def test_diverged_runs_rank_last_and_are_listed():
    records = [rec("a", s, 0.93) for s in range(5)] + [rec("b", s, 0.5, status="diverged") for s in range(5)]
    frame, summary, v = score(records)
    assert list(summary["optimizer"]) == ["a", "b"]
    assert summary.iloc[1]["diverged"] == 5 and math.isnan(summary.iloc[1]["final_metric"])
    assert v.failures[0]["entry"] == "b" and v.failures[0]["diverged"] == 5 and "nan" in v.failures[0]["errors"][0]
    assert v.tests[0].clear and math.isinf(v.tests[0].difference)


def test_many_entries_give_a_handful_of_claims():
    records = [rec(f"e{i:02d}", s, 0.80 + i / 200 + s / 10000) for i in range(32) for s in range(5)]
    _, summary, v = score(records)
    assert v.winner == "e31" and v.comparisons == 31 and v.needed == 7 and v.too_few_seeds
    records = [rec(f"e{i:02d}", s, 0.80 + i / 200 + s / 10000) for i in range(32) for s in range(7)]
    _, summary, v = score(records)
    assert not v.too_few_seeds and len(v.beaten) + len(v.ties) == 31
    assert {t.other for t in v.ties} >= {"e30", "e29"}  # within one point of the winner


def test_untuned_defaults_and_misses_are_recorded():
    records = [rec("a", s, 0.95) for s in range(3)] + [rec("b", s, 0.5, lr=1e-3, source="default") for s in range(3)]
    _, _, v = score(records)
    assert v.untuned == ["b"] and v.misses == [{"entry": "b", "not_reached": 3, "seeds": 3, "lr_source": "default"}]


def test_performance_profiles():
    summary = pd.DataFrame({"workload": ["w1", "w1", "w2", "w2", "w3", "w3"], "optimizer": ["a", "b"] * 3,
                            "steps_to_target": [100, 200, 300, 150, INF, INF]})
    rho, dropped = profiles.profiles(summary, taus=(1.0, 2.0, 4.0))
    assert dropped == ["w3"]
    assert rho.loc["a"].tolist() == [0.5, 1.0, 1.0] and rho.loc["b"].tolist() == [0.5, 1.0, 1.0]
    assert profiles.shared_entries(summary) == ["a", "b"]

"""The progress bar (tqdm, over runs) and the dispatch of suites (seed-claims lives in another module)."""
from __future__ import annotations

import io

import pandas as pd

from inertia import cli
from inertia.lab import suites
from inertia.lab.progress import Progress


def test_progress_bar_counts_runs_with_elapsed_and_remaining_time():
    stream = io.StringIO()
    with Progress(4, skipped=1, stream=stream, force=True) as bar:
        bar.start("valley adam seed 0", 100)
        bar.step(50, 0.25)
        bar.step(100, 0.125)
        bar.done("valley adam seed 0", "completed")
    text = stream.getvalue()
    assert "2/4" in text and "valley adam seed 0" in text
    assert "<" in text and "[00:0" in text  # elapsed < remaining


def test_progress_is_silent_off_a_terminal(capsys):
    with Progress(1) as bar:  # pytest captures stderr: not a TTY
        bar.start("x", 10)
        bar.step(10, 1.0)
        bar.done("x", "completed")
    assert capsys.readouterr().err == ""


def test_seed_claims_suite_dispatches_lazily(monkeypatch, tmp_path, capsys):
    from inertia.lab import claims

    calls = []
    monkeypatch.setattr(claims, "run", lambda out, quick=False, quiet=False, seeds=None, jobs=None, tune=None:
                        calls.append((out, quick, quiet, seeds, tune)) or pd.DataFrame({"x": [1, 2]}))
    assert cli.main(["compare", "--suite", "seed-claims", "--quick", "--quiet", "--out", str(tmp_path)]) == 0
    assert calls == [(str(tmp_path), True, True, None, None)]  # the suite's own tuning budget
    assert cli.main(["compare", "--suite", "seed-claims", "--tune", "0", "--out", str(tmp_path)]) == 0
    assert calls[-1][-1] == 0
    assert "2 runs" in capsys.readouterr().out
    assert set(suites.SUITES) >= {"headline", "seed-claims", "surfaces", "minibatch", "large-batch"}
    assert all(s.quick for s in suites.SUITES.values())  # every --quick says what it covers


def test_quick_suite_says_what_it_cannot_test(tmp_path):
    suites.run_suite("minibatch", out=str(tmp_path), quick=True, seeds=[0])
    md = (tmp_path / "report.md").read_text()
    assert "Quick version" in md and "stochastic descent sees only 60 examples" in md

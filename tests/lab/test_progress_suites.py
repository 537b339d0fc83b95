"""The terminal progress line and the dispatch of suites (seed-claims lives in another module)."""
from __future__ import annotations

import io

import pandas as pd

from inertia import cli
from inertia.lab import api
from inertia.lab.progress import Bars, bars


def test_progress_line_has_position_bar_and_eta():
    stream = io.StringIO()
    b = Bars(enabled=True, stream=stream)
    b.begin(4, skipped=1)
    b.start(100, "valley adam seed 0")
    b.update(50, 0.25)
    b.update(100, 0.125)
    b.finish("ok")
    text = stream.getvalue()
    assert "[2/4] valley adam seed 0" in text and "100/100 steps" in text and "run ETA" in text and "all ETA" in text
    assert text.endswith("\r\033[K")  # the line is cleared for the summary table


def test_progress_is_silent_off_a_terminal(capsys):
    b = bars(quiet=False)  # pytest captures stderr: not a TTY
    b.begin(1)
    b.start(10, "x")
    b.update(10, 1.0)
    b.finish("ok")
    assert capsys.readouterr().err == ""


def test_seed_claims_suite_dispatches_lazily(monkeypatch, tmp_path, capsys):
    from inertia.lab import claims

    calls = []
    monkeypatch.setattr(claims, "run", lambda out, quick=False, quiet=False, seeds=None:
                        calls.append((out, quick, quiet, seeds)) or pd.DataFrame({"x": [1, 2]}))
    assert cli.main(["compare", "--suite", "seed-claims", "--quick", "--quiet", "--out", str(tmp_path)]) == 0
    assert calls == [(str(tmp_path), True, True, None)]
    assert "2 runs" in capsys.readouterr().out
    assert set(api.SUITES) >= {"headline", "seed-claims", "surfaces", "minibatch"}

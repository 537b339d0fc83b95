"""The main job: `inertia compare` with no arguments, timed (slow: run with `pytest -m slow`)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_headline_comparison_fits_five_minutes(tmp_path):
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "inertia.cli", "compare"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    elapsed = time.perf_counter() - started
    assert r.returncode == 0, r.stderr
    out = tmp_path / "inertia-report"
    assert (out / "report.html").exists() and (out / "mnist-cnn-time-to-target.png").exists()
    assert (out / "valley-trajectories.png").exists()
    for name in ("adam", "rmsprop", "momentum", "sgd"):
        assert f"  {name} " in r.stdout
    assert elapsed < 300, f"the headline comparison took {elapsed:.0f} s (budget: 5 minutes on 2 cores)"

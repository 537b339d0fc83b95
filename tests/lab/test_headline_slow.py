"""The main job: `inertia compare` with no arguments, end to end (slow: run with `pytest -m slow`).

Its time is printed, not asserted: on a shared machine the load decides it (docs/lab.md,
"Measured: time and cost", records the measured times and loads)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_headline_comparison_fits_five_minutes(tmp_path):
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "inertia.cli", "compare"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=1800)
    elapsed = time.perf_counter() - started
    assert r.returncode == 0, r.stderr
    out = tmp_path / "inertia-report"
    assert (out / "report.html").exists() and (out / "mnist-cnn-time-to-target.png").exists()
    assert (out / "valley-trajectories.png").exists()
    for name in ("adam", "rmsprop", "momentum", "sgd", "adamw"):
        assert f"  {name} " in r.stdout
    assert "tuned" in r.stdout  # every entry tuned with the main job's budget
    print(f"the headline comparison took {elapsed:.0f} s (budget: 5 minutes on 2 idle cores)")

"""Report files: present, real images, strict JSON, and rebuilt from the database alone."""
from __future__ import annotations

import json

import matplotlib.image as mpimg

from inertia.lab import api

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_files_and_images(small_comparison):
    out, table = small_comparison
    for name in ("report.html", "report.md", "summary.json", "runs.sqlite"):
        assert (out / name).exists(), name
    expected = [f"valley-{k}.png" for k in ("loss-steps", "loss-time", "metric", "time-to-target", "trajectories", "lr")]
    expected += [f"minibatch-{k}.png" for k in ("loss-steps", "loss-time", "loss-epochs", "metric", "time-to-target", "lr")]
    for name in expected:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
        img = mpimg.imread(out / name)
        assert img.shape[0] > 200 and img.shape[1] > 400 and img.std() > 0.05, name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(expected)
    assert "src='http" not in html and "<script" not in html  # opens offline


def test_summary_table_and_json(small_comparison):
    out, table = small_comparison
    assert set(table["workload"]) == {"valley", "minibatch"}
    assert {"steps_to_target", "steps_to_target_min", "steps_to_target_max", "final_metric", "steps_per_s",
            "state_bytes", "peak_memory", "rank", "reached"} <= set(table.columns)
    mb = table[table["workload"] == "minibatch"]
    assert set(mb["batch_size"]) == {1, 64, 256, 4000}
    doc = json.loads((out / "summary.json").read_text())  # strict JSON: no Infinity/NaN
    assert doc["rule"].startswith("A beats B")
    assert len(doc["runs"]) == 4 * 2 + 4 * 2
    md = (out / "report.md").read_text()
    assert "## valley" in md and "## minibatch" in md and "Which optimizer to pick" in md
    assert "ms/update" in md and "Detour" in md


def test_report_regenerates_from_the_database_alone(small_comparison, tmp_path):
    out, table = small_comparison
    result = api.report(out / "runs.sqlite", tmp_path)
    assert (tmp_path / "report.html").exists() and (tmp_path / "valley-trajectories.png").exists()
    assert list(result["summary"]["optimizer"]) == list(table["optimizer"])
    assert (tmp_path / "report.md").read_text() == (out / "report.md").read_text()
    everything = api.report(out / "runs.sqlite", tmp_path / "all", all_runs=True)
    # the first comparison (40 steps) and the second (12 steps) both appear, named apart
    assert everything["summary"]["workload"].nunique() == 3

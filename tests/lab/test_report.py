"""Report files: present, real images with text alternatives, strict JSON, rebuilt from the database alone."""
from __future__ import annotations

import json
import re

import matplotlib.image as mpimg
import pytest

from inertia.lab import api

PNG = b"\x89PNG\r\n\x1a\n"
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


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
    assert html.count("<img alt='") == len(expected)  # every figure has a text alternative
    md = (out / "report.md").read_text()
    assert not EMOJI.search(md) and not EMOJI.search(html)


def test_summary_table_and_json(small_comparison):
    out, table = small_comparison
    assert set(table["workload"]) == {"valley", "minibatch"}
    assert {"steps_to_target", "steps_to_target_min", "steps_to_target_max", "steps_to_target_lo", "steps_to_target_hi",
            "final_metric", "best_metric", "val_final", "steps_per_s", "state_bytes", "peak_memory", "rank", "reached",
            "lr", "lr_source"} <= set(table.columns)
    mb = table[table["workload"] == "minibatch"]
    assert set(mb["batch_size"]) == {1, 64, 256, 3500}
    doc = json.loads((out / "summary.json").read_text())  # strict JSON: no Infinity/NaN
    assert doc["rule"].startswith("A beats B")
    valley = api.resolve_entries(None, api.resolve_workload("valley"))  # the headline four and AdamW
    assert len(valley) >= 5 and len(doc["runs"]) == len(valley) * 2 + 4 * 2
    for run in doc["runs"]:  # every run carries its learning rate and every resolved hyperparameter
        assert run["lr"] > 0 and run["hparams"]["lr"] == run["lr"] and "weight_decay" in run["hparams"]
        assert run["lr_source"] in ("entry", "workload", "default")
    assert all(row["lr"] > 0 for row in doc["summary"])
    assert {c["kind"] for c in doc["claims"]} >= {"first", "too few seeds"}
    assert all("Holm over" in c["correction"] for c in doc["claims"] if "correction" in c)
    assert len(doc["figures"]) == 12 and all(f["alt"] for f in doc["figures"])
    md = (out / "report.md").read_text()
    assert "## valley" in md and "## minibatch" in md and "## Which optimizer to pick" in md
    assert "/update" in md and "Detour" in md and "Too few seeds for a verdict" in md
    assert "| # | optimizer | lr | lr from |" in md  # every table shows the learning rate
    assert "hand-picked for this workload, not tuned by the lab" in md


def test_legends_and_alt_texts_name_the_learning_rate(small_comparison):
    out, _ = small_comparison
    doc = json.loads((out / "summary.json").read_text())
    valley = [f for f in doc["figures"] if f["file"] == "valley-loss-steps.png"][0]
    assert "adam, lr 0.2" in valley["alt"] and "momentum, lr 0.05" in valley["alt"]


def test_report_regenerates_from_the_database_alone(small_comparison, tmp_path):
    out, table = small_comparison
    result = api.report(out / "runs.sqlite", tmp_path)
    assert (tmp_path / "report.html").exists() and (tmp_path / "valley-trajectories.png").exists()
    assert list(result["summary"]["optimizer"]) == list(table["optimizer"])
    assert (tmp_path / "report.md").read_text() == (out / "report.md").read_text()
    everything = api.report(out / "runs.sqlite", tmp_path / "all", all_runs=True)
    # the first comparison (40 steps) and the second (12 steps) both appear, named apart
    assert everything["summary"]["workload"].nunique() == 3


def test_diverged_failed_and_empty_comparisons_write_their_whole_report(tmp_path):
    """The issue's crashing commands, and a comparison where nothing completes, still report."""
    for entries, steps in ((["sgd:lr=30"], None), (["adam:lr=0.1", "sgd:lr=0.1"], 60)):
        out = tmp_path / f"r{len(entries)}"
        table = api.compare(["valley" if len(entries) == 1 else "rosenbrock"], entries, seeds=[0], out=out,
                            steps=steps, jobs=1)
        assert (out / "report.html").exists() and (out / "summary.json").exists()
        assert "sgd(lr=" in (out / "report.md").read_text()
        assert table[table["optimizer"].str.startswith("sgd")]["diverged"].tolist() == [1]
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert summary["runs"][0]["outcome"] == "diverged" and "exploded" in summary["runs"][0]["error"]


@pytest.mark.parametrize("seeds", [[0], [0, 1, 2, 3, 4]])
def test_verdict_words_need_seeds(tmp_path, seeds):
    table = api.compare(["valley"], ["momentum", "sgd"], seeds=seeds, out=tmp_path, steps=60)
    v = table.attrs["verdicts"]["valley"]
    md = (tmp_path / "report.md").read_text()
    if len(seeds) < 5:
        assert v.too_few_seeds and "Too few seeds for a verdict" in md
    else:
        assert not v.too_few_seeds and v.needed == 5
        assert ("momentum, lr 0.05 beats" in md) or ("No clear difference" in md)

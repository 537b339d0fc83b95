"""The `inertia` command: listings, a tiny comparison, report, error paths.

Most cases call :func:`inertia.cli.main` in this process, with stdout and stderr captured
(same parser, same exit codes, no seconds spent starting an interpreter and importing
torch); :func:`test_the_issue_crash_commands_report_divergence` and the kill test in
``test_store_resume.py`` run the real command in a subprocess.
"""
from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
from types import SimpleNamespace

import pytest

from inertia import cli


def inertia(*args, cwd=None):
    """Run the command in-process; ``returncode``, ``stdout`` and ``stderr`` as from a subprocess."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse's own errors
                code = exc.code
    finally:
        os.chdir(here)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def subprocess_inertia(*args, cwd=None, timeout=300):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "inertia.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def test_listings():
    w = inertia("workloads")
    assert w.returncode == 0
    for name in ("valley", "valley-noisy", "rosenbrock", "rosenbrock-noisy", "minibatch", "mnist-mlp", "mnist-cnn",
                 "reviews", "movielens"):
        assert f"\n{name} " in "\n" + w.stdout
    o = inertia("optimizers")
    assert o.returncode == 0
    for name in ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad", "lion", "lamb", "lars"):
        assert f"\n{name} " in "\n" + o.stdout
    assert "defaults: lr=" in o.stdout
    h = inertia("compare", "--help")
    assert "schedule=cosine" in h.stdout and "warmup(steps=50)+cosine" in h.stdout
    assert "--jobs" in h.stdout and "--threads" in h.stdout and "--quick:" in h.stdout


def test_compare_then_report(tmp_path):
    out = tmp_path / "rep"
    args = ("compare", "-w", "valley", "-o", "adam", "-o", "sgd:lr=0.03;schedule=cosine", "--seeds", "0,1",
            "--steps", "20", "--out", str(out))
    r = inertia(*args)
    assert r.returncode == 0, r.stderr
    assert "steps to target" in r.stdout and "sgd(lr=0.03,schedule=cosine)" in r.stdout
    assert "Verdict." in r.stdout and "lr from" in r.stdout
    assert r.stderr.strip() == ""  # no TTY: no progress bars
    assert (out / "report.html").exists()
    again = inertia(*args)
    assert again.returncode == 0 and again.stdout == r.stdout  # resumed: nothing retrained, same table
    rep = inertia("report", str(out / "runs.sqlite"), "--out", str(tmp_path / "again"))
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "again" / "report.md").read_text() == (out / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (("compare", "-w", "nope"), "unknown workload 'nope'; valid names: valley"),
    (("compare", "-w", "valley", "-o", "adamx"), "Invalid entry 'adamx': unknown optimizer 'adamx'; valid names: sgd"),
    (("compare", "-w", "valley", "-o", "adam:lr=-1"), "Invalid entry 'adam:lr=-1': Invalid learning rate: -1"),
    (("compare", "-w", "valley", "-o", "adam:lr=abc"), "Invalid entry 'adam:lr=abc': lr must be a number, got 'abc'"),
    (("compare", "-w", "valley", "-o", "adam:lr="), "Invalid entry 'adam:lr=': lr has no value"),
    (("compare", "-w", "valley", "-o", "adam:betas=(0.9,0.99"), "unclosed '(' in 'betas=(0.9,0.99'"),
    (("compare", "-w", "valley", "-o", "rmsprop:alpha=1.5"), "Invalid alpha value: 1.5"),
    (("compare", "-w", "valley", "-o", "sgd;schedule=linear"), "unknown schedule 'linear'"),
    (("compare", "-w", "valley", "-o", "sgd;schedule=cosine("), "unclosed '(' in 'schedule=cosine('"),
    (("compare", "-w", "valley:noise=", "-o", "sgd"), "Invalid workload 'valley:noise=': noise has no value"),
    (("compare", "--suite", "nope"), "Invalid suite 'nope'"),
    (("report", "missing.sqlite", "--out", "x"), "no results database"),
    (("compare", "-w", "valley", "--device", "tpu"), "Invalid device 'tpu'"),
    (("compare", "-w", "valley", "--jobs", "0"), "invalid value '0' (must be a positive integer)"),
])
def test_bad_input_exits_2_without_traceback(tmp_path, args, message):
    r = inertia(*args, "--out", str(tmp_path / "o")) if args[0] == "compare" else inertia(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "runs.sqlite").exists()  # failed before anything was written


def test_unwritable_output_and_incompatible_db(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    r = inertia("compare", "-w", "valley", "--steps", "3", "--out", str(blocker / "sub"))
    assert r.returncode == 2 and "cannot write to output folder" in r.stderr and "Traceback" not in r.stderr
    assert blocker.read_text() == "I am a file"

    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER)")
        conn.execute("INSERT INTO schema_version VALUES (0)")
    before = db.read_bytes()
    r = inertia("compare", "-w", "valley", "--steps", "3", "--db", str(db), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "schema version 0" in r.stderr and "Traceback" not in r.stderr
    assert db.read_bytes() == before


def test_the_issue_crash_commands_report_divergence(tmp_path):
    """`-w valley -o sgd:lr=30` crashed matplotlib before: now a full report with the run diverged."""
    r = subprocess_inertia("compare", "-w", "valley", "-o", "sgd:lr=30", "--seeds", "0", "--out", str(tmp_path / "a"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "1 diverged" in r.stdout and "exploded" in r.stdout
    assert (tmp_path / "a" / "report.html").exists() and (tmp_path / "a" / "summary.json").exists()
    rep = inertia("report", str(tmp_path / "a" / "runs.sqlite"), "--out", str(tmp_path / "b"))
    assert rep.returncode == 0 and "1 diverged" in rep.stdout

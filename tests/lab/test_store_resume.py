"""The results database: whole runs only, resume without redoing, refusal of foreign databases."""
from __future__ import annotations

import sqlite3

import pytest

from inertia.lab import api, store
from inertia.lab.running import runner

ENTRIES = ["adam", "sgd"]


class Boom(RuntimeError):
    pass


def _count(db):
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
                conn.execute("SELECT COUNT(DISTINCT run_key) FROM series").fetchone()[0])


def test_interrupted_comparison_resumes_without_redoing(tmp_path, monkeypatch):
    real_train = runner.train
    calls = []

    def flaky(workload, spec, seed, **kw):
        if len(calls) == 3:  # the 4th run dies part-way through training
            raise Boom("killed")
        calls.append((spec.name, seed))
        return real_train(workload, spec, seed, **kw)

    monkeypatch.setattr(runner, "train", flaky)
    with pytest.raises(Boom):  # jobs=1: every run in this process, where the patch is
        api.compare(["valley"], ENTRIES, seeds=[0, 1, 2], out=tmp_path, steps=10, jobs=1)
    assert _count(tmp_path / "runs.sqlite") == (3, 3)  # whole runs only
    assert not (tmp_path / "report.html").exists()

    done = []
    monkeypatch.setattr(runner, "train", lambda w, s, seed, **kw: done.append((s.name, seed)) or real_train(w, s, seed, **kw))
    table = api.compare(["valley"], ENTRIES, seeds=[0, 1, 2], out=tmp_path, steps=10, jobs=1)
    assert sorted(done) == sorted({(e, s) for e in ENTRIES for s in (0, 1, 2)} - set(calls))
    assert _count(tmp_path / "runs.sqlite") == (6, 6)
    assert list(table["seeds"]) == [3, 3]

    done.clear()
    api.compare(["valley"], ENTRIES, seeds=[0, 1, 2], out=tmp_path, steps=10, jobs=1)
    assert done == []  # everything finished: nothing retrained
    done.clear()
    api.compare(["valley"], ENTRIES, seeds=[0, 1, 2], out=tmp_path, steps=11, jobs=1)
    assert len(done) == 6  # another budget is another run


def test_a_failing_write_leaves_no_half_run(tmp_path, monkeypatch):
    w = api.resolve_workload("valley").with_budget(5)
    rec = runner.train(w, api.resolve_entries(["adam"], w)[0], 0)
    monkeypatch.setattr(store, "_SERIES", store._SERIES + ("missing",))
    with store.Store(tmp_path / "r.sqlite") as db:
        with pytest.raises(KeyError):
            db.save(rec, w.info())
        assert not db.has(rec.key)
    assert _count(tmp_path / "r.sqlite") == (0, 0)


def test_round_trip_keeps_everything(tmp_path):
    w = api.resolve_workload("valley").with_budget(6, eval_every=3)
    rec = runner.train(w, api.resolve_entries(["momentum:lr=0.02"], w)[0], 4)
    with store.Store(tmp_path / "r.sqlite") as db:
        db.save(rec, w.info())
    with store.Store(tmp_path / "r.sqlite", readonly=True) as db:
        (back,) = db.runs()
        assert db.workload_info(rec.workload_config)["extras"]["contour"]["minimum"] == [0.0, 0.0]
    assert back == rec
    assert back.versions["torch"] and back.hparams["lr"] == 0.02 and back.hparams["beta"] == 0.9
    assert back.lr == 0.02 and back.lr_source == "entry" and back.test_metric == rec.test_metric


def test_incompatible_schema_version_is_refused_untouched(tmp_path):
    db = tmp_path / "runs.sqlite"
    store.Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    before = db.read_bytes()
    with pytest.raises(store.IncompatibleDatabaseError, match="schema version 99.*reads version 3.*nothing was changed"):
        api.compare(["valley"], ["adam"], seeds=[0], out=tmp_path, steps=3)
    assert db.read_bytes() == before
    assert not (tmp_path / "report.html").exists()


def test_foreign_files_are_refused(tmp_path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(store.IncompatibleDatabaseError, match="not an inertia results database"):
        store.Store(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(store.StoreError):
        store.Store(junk)
    assert junk.read_bytes() == b"this is not sqlite at all" * 100


def test_version_1_databases_are_refused_with_the_reason(tmp_path):
    db = tmp_path / "v1.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
    with pytest.raises(store.IncompatibleDatabaseError, match="measured the test split during training"):
        store.Store(db)


def test_diverged_run_is_recorded_not_raised(tmp_path):
    table = api.compare(["rosenbrock"], ["sgd:lr=0.5", "adam:lr=0.01"], seeds=[0, 1], out=tmp_path, steps=30)
    runs = api.load_runs(tmp_path / "runs.sqlite")
    bad = runs[runs["optimizer"] == "sgd(lr=0.5)"]
    assert (bad["status"] == "diverged").all() and (bad["outcome"] == "diverged").all()
    assert (bad["steps_to_target"] == float("inf")).all()
    row = table[table["optimizer"] == "sgd(lr=0.5)"].iloc[0]
    assert row["diverged"] == 2 and row["reached"] == "0/2"
    assert "diverged" in (tmp_path / "report.md").read_text()


def test_failed_runs_are_reported_and_retried(tmp_path, monkeypatch):
    from inertia.lab import workloads

    work = workloads.get("valley").with_budget(8)
    real_loss = work.loss

    def broken(model, batch):
        raise RuntimeError("out of luck")

    work.loss = broken
    table = api.compare([work], ["adam", "sgd"], seeds=[0], out=tmp_path, jobs=1)
    assert list(table["failed"]) == [1, 1]
    md = (tmp_path / "report.md").read_text()
    assert "RuntimeError: out of luck" in md and "failed" in md
    with store.Store(tmp_path / "runs.sqlite", readonly=True) as db:
        assert not any(db.has(k) for k in db.keys())  # failed runs do not count as done
    work.loss = real_loss
    table = api.compare([work], ["adam", "sgd"], seeds=[0], out=tmp_path, jobs=1)
    assert list(table["failed"]) == [0, 0] and _count(tmp_path / "runs.sqlite") == (2, 2)


def test_sigkill_mid_comparison_then_resume(tmp_path):
    """A real kill -9 of the CLI: the database holds whole runs only; the rerun does the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "inertia.cli", "compare", "-w", "rosenbrock", "-o", "adam", "-o", "sgd",
           "--seeds", "0,1,2", "--steps", "3000", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "runs.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                if _count(db)[0] >= 2:
                    break
            except sqlite3.OperationalError:
                pass  # the schema is being created
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the comparison finished before it could be killed (machine too fast)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs, series = _count(db)
    assert 2 <= runs < 6 and series == runs
    with sqlite3.connect(db) as conn:
        first = dict(conn.execute("SELECT key, rowid || created FROM runs"))
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    assert _count(db) == (6, 6)
    with sqlite3.connect(db) as conn:
        after = dict(conn.execute("SELECT key, rowid || created FROM runs"))
    assert {k: after[k] for k in first} == first  # finished runs were not redone

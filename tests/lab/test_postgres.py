"""Many processes on one comparison: a real PostgreSQL server, two workers, exactly the planned trials.

The test starts its own server (Debian's ``postgresql`` binaries) on a Unix socket in a
temporary folder, as an unprivileged user when it runs as root (``initdb`` refuses root:
``runuser -u postgres``), and stops it at the end. It skips, saying why, where the binaries,
the user or the driver are missing. The workload sleeps a little in every step so that the
two workers' trials overlap in time, as they do across machines.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

optuna = pytest.importorskip("optuna", reason='tuning needs Optuna: pip install "inertia[lab]"')
pytest.importorskip("psycopg", reason='PostgreSQL storage needs psycopg: pip install "inertia[postgres]"')

SRC = str(Path(__file__).resolve().parents[2] / "src")

WORKLOAD = '''
import time
import torch
import torch.nn.functional as F
from inertia.lab import Workload


def slow_loss(out, y):
    time.sleep(0.02)  # a step long enough for two workers' trials to overlap
    return F.cross_entropy(out, y)


def make_workload():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 6, generator=g)
    Y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    return Workload.from_tensors("blobs", model=lambda: torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                 torch.nn.Linear(16, 2)), X=X, Y=Y, loss=slow_loss, target=0.8, steps=60,
                                 batch_size=32, eval_every=10)
'''


def _bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(dirs[-1]).parent if dirs else None


def _as_user(user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@pytest.fixture(scope="module")
def postgres():
    """``postgresql://`` URL of a fresh server on a Unix socket; stopped afterwards."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found (Debian: apt-get install postgresql)")
    user = None
    if os.geteuid() == 0:  # initdb refuses root: run the server as the package's unprivileged user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        user = "postgres"
    home = Path(tempfile.mkdtemp(prefix="inertia-pg-"))
    if user:
        shutil.chown(home, user)
    data, log = home / "data", home / "server.log"
    run = dict(check=True, capture_output=True, text=True)
    subprocess.run(_as_user(user, [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "inertia",
                                   "--no-sync"]), **run)
    subprocess.run(_as_user(user, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                                   f"-k {home} -c listen_addresses='' -F", "start"]), **run)
    try:
        import psycopg

        with psycopg.connect(f"host={home} user=inertia dbname=postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE tuning")
        yield f"postgresql://inertia@/tuning?host={home}"
    finally:
        subprocess.run(_as_user(user, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _inertia(args: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "inertia.cli", "compare", *args], cwd=cwd,
                            env={**os.environ, "PYTHONPATH": SRC, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_workers_share_one_study_exactly_and_a_killed_ones_trial_runs_again(postgres, tmp_path):
    from inertia.lab.tuning.budget import rungs

    (tmp_path / "slowwork.py").write_text(WORKLOAD)
    args = ["-w", "slowwork:make_workload", "-o", "adam", "--tune", "9", "--seeds", "0", "--storage", postgres, "-q"]
    planned = rungs(9, 60, 10).planned_trials()  # 9 + 3 + 1 trials
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    storage = optuna.storages.RDBStorage(postgres.replace("postgresql://", "postgresql+psycopg://"))

    def trials():
        return [t for s in optuna.get_all_study_summaries(storage)
                for t in optuna.load_study(study_name=s.study_name, storage=storage).get_trials()]

    def ran_by(states):
        return {t.user_attrs["run"]["worker"].split(":")[1] for t in trials() if t.state in states and "run" in t.user_attrs}

    # two workers on the one study; once both have finished trials, the second is killed in the middle of one
    quick = {"INERTIA_TUNING_HEARTBEAT_S": "1", "INERTIA_TUNING_GRACE_S": "3"}  # an abandoned trial is seen in 3 s
    workers = [_inertia(args + ["--worker", "--out", f"w{i}"], tmp_path, **quick) for i in (1, 2)]
    first, second = (str(w.pid) for w in workers)
    deadline = time.monotonic() + 180
    while not ({first, second} <= ran_by(done) and second in ran_by((optuna.trial.TrialState.RUNNING,))):
        assert workers[0].poll() is None and time.monotonic() < deadline, workers[0].communicate()[0]
        time.sleep(0.1)
    workers[1].send_signal(signal.SIGKILL)
    output = workers[0].communicate(timeout=300)[0]  # the survivor runs the rest, the abandoned trial included
    assert workers[0].returncode == 0, output
    main = _inertia(args + ["--out", "report"], tmp_path)
    assert main.wait(timeout=300) == 0, main.communicate()[0]

    all_trials = trials()
    assert len(optuna.get_all_study_summaries(storage)) == 1
    finished = [(t.user_attrs["rung"], t.user_attrs["slot"]) for t in all_trials if t.state in done]
    assert len(finished) == len(set(finished)) == planned  # exactly the planned trials, none twice, none lost
    failed = [t for t in all_trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1  # the killed worker's trial failed once, and ran again from its start:
    assert any(t.user_attrs.get("retry_of") == failed[0].number and t.state in done for t in all_trials)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert {r["lr_source"] for r in summary["summary"]} == {"tuned"}
    assert summary["tuning"]["blobs"]["adam"]["storage"].startswith("postgresql")

"""Your own model from the command line: ``--workload MODULE:FUNCTION``, tuned, beside a torch.optim peer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inertia.lab import api, specs

from test_cli import inertia  # noqa: E402 (tests/lab is on sys.path)

pytest.importorskip("optuna", reason='tuning needs Optuna: pip install "inertia[lab]"')

SRC = str(Path(__file__).resolve().parents[2] / "src")

MODULE = '''
import torch
from inertia.lab import Workload


def make_workload(hidden=16):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(400, 5, generator=g)
    Y = (X[:, 0] - X[:, 2] > 0).long()
    return Workload.from_tensors("blobs", model=lambda: torch.nn.Sequential(
        torch.nn.Linear(5, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)), X=X, Y=Y, target=0.8,
        steps=40, batch_size=32, eval_every=10)


def not_a_workload():
    return 42
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "mywork.py").write_text(MODULE)
    return tmp_path


def test_a_module_path_on_the_command_line_is_tuned_beside_a_peer(project):
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "-m", "inertia.cli", "compare", "--workload", "mywork:make_workload:hidden=8",
                          "-o", "adam", "-o", "torch.optim.SGD:momentum=0.9", "--tune", "4", "--seeds", "0,1",
                          "--out", "report", "-q"], cwd=project, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    assert "tuned" in run.stdout  # the terminal table says where each lr came from
    data = json.loads((project / "report" / "summary.json").read_text())
    assert {(r["workload"], r["optimizer"], r["lr_source"]) for r in data["summary"]} == {
        ("blobs", "adam", "tuned"), ("blobs", "torch.optim.SGD(momentum=0.9)", "tuned")}
    tuning = data["tuning"]["blobs"]
    assert set(tuning) == {"adam", "torch.optim.SGD(momentum=0.9)"}
    assert all(len(s["trials"]) == 4 for s in tuning.values())
    assert (project / "report" / "studies.sqlite").exists()  # the studies, beside the report


def test_a_file_path_works_too_and_bad_paths_are_named(project):
    r = inertia("compare", "--workload", f"{project}/mywork.py:make_workload", "-o", "adam", "--steps", "10",
                "--seeds", "0", "--out", str(project / "r"), "-q")
    assert r.returncode == 0, r.stderr
    for target, message in [
        ("nosuchmodule_xyz:make", "Invalid workload 'nosuchmodule_xyz:make': importing nosuchmodule_xyz failed: "
                                  "ModuleNotFoundError"),
        ("mywork:missing", "Invalid workload 'mywork:missing': mywork has no function 'missing'"),
        ("mywork:not_a_workload", "not_a_workload() returned a int, expected a Workload"),
        ("mywork:make_workload:width=3", "make_workload() failed: TypeError"),
    ]:
        r = inertia("compare", "--workload", target, "--out", str(project / "bad"), cwd=project)
        assert r.returncode == 2 and message in r.stderr, (target, r.stderr)


def test_peer_entries_are_checked_like_inertia_ones(tmp_path):
    assert specs.parse_optimizer("torch.optim.AdamW:lr=3e-4,weight_decay=0.1").hparams == {"lr": 3e-4,
                                                                                          "weight_decay": 0.1}
    for text, message in [
        ("torch.optim.AdamX", "Invalid entry 'torch.optim.AdamX': torch.optim has no attribute 'AdamX'"),
        ("torch.nn.Linear", "torch.nn.Linear is not a torch.optim.Optimizer class"),
        ("nosuchpkg_xyz.Opt", "cannot import 'nosuchpkg_xyz.Opt': no module named 'nosuchpkg_xyz'"),
        ("torch.optim.AdamW:bogus=1", "torch.optim.AdamW has no hyperparameter 'bogus'; valid: lr, betas"),
        ("torch.optim.AdamW:lr=abc", "lr must be a number, got 'abc'"),
    ]:
        with pytest.raises(specs.SpecError) as err:
            specs.parse_optimizer(text)
        assert message in str(err.value)
    import torch

    table = api.compare(["valley"], [(torch.optim.SGD, {"lr": 0.02, "momentum": 0.5}), "torch.optim.Adam:lr=0.1"],
                        seeds=[0], out=tmp_path, steps=20, quiet=True)
    assert sorted(table["lr"]) == [0.02, 0.1]
    assert set(table["lr_source"]) == {"entry"} and set(table["n_reached"]) <= {0, 1}


class EvaluatedAtItsStart(__import__("torch").optim.SGD):
    """A peer with Schedule-Free's two modes, made observable: in eval mode its parameters are
    their initial values (Schedule-Free's would be its average), in train mode the SGD iterate;
    it starts in eval mode and its step() refuses to run there, as ``schedulefree``'s do."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr)
        self.training = False
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["other"] = p.detach().clone()

    def _swap(self):
        for group in self.param_groups:
            for p in group["params"]:
                held = self.state[p]["other"]
                mine = p.detach().clone()
                p.data.copy_(held)
                held.copy_(mine)

    def eval(self):
        if self.training:
            self._swap()
            self.training = False

    def train(self):
        if not self.training:
            self._swap()
            self.training = True

    def step(self, closure=None):
        if not self.training:
            raise RuntimeError("step() in eval mode: call optimizer.train() first")
        return super().step(closure)


def test_optimizers_with_train_and_eval_modes_are_evaluated_in_eval_mode():
    from inertia.lab.running import runner

    w = api.resolve_workload("valley").with_budget(12, eval_every=4)
    rec = runner.train(w, api.resolve_entries([(EvaluatedAtItsStart, {"lr": 0.005})], w)[0], 0)
    assert rec.status == "completed", rec.error  # trained in train mode after every evaluation
    start = rec.evals[0][2]
    assert [e[0] for e in rec.evals] == [0, 4, 8, 12]
    assert all(e[2] == start for e in rec.evals) and rec.test_metric == start  # every evaluation in eval mode
    assert rec.trajectory[-1] != rec.trajectory[0] and rec.losses[-1] < rec.losses[0]  # while training moved
    plain = runner.train(w, api.resolve_entries(["torch.optim.SGD:lr=0.005"], w)[0], 0)
    assert plain.evals[-1][2] < start  # the same steps without modes: evaluated where it trained

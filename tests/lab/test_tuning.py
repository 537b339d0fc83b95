"""Equal-budget tuning: the space, the halving schedule, the studies, the choice, resuming, the report."""
from __future__ import annotations

import json
import math

import pytest

optuna = pytest.importorskip("optuna", reason='tuning needs Optuna: pip install "inertia[lab]"')

from inertia.lab import api, specs  # noqa: E402
from inertia.lab.running import runner  # noqa: E402
from inertia.lab.scoring import tuning as found  # noqa: E402
from inertia.lab.store import Store  # noqa: E402
from inertia.lab.tuning import Budget  # noqa: E402
from inertia.lab.tuning import budget as bud  # noqa: E402
from inertia.lab.tuning import space as sp  # noqa: E402
from inertia.lab.tuning.study import latest  # noqa: E402

# ---------------------------------------------------------------------------- pure parts


def test_halving_schedule_costs_what_it_states():
    r = bud.rungs(20, 300, 20)  # mnist-cnn with --tune 20
    assert r.stops == (20, 40, 100, 300) and r.counts == (20, 7, 2, 1)
    assert r.planned_steps() == 20 * 20 + 7 * 40 + 2 * 100 + 300 == 1180
    assert r.planned_trials() == 30 and r.multiple() == pytest.approx(1180 / 300)
    assert r.continued_steps() == 20 * 20 + 7 * 20 + 2 * 60 + 200 == 860
    assert bud.rungs(20, 300, 20, pruner="none").planned_steps() == 20 * 300
    # rungs landing on the same evaluation merge; the last rung is the full budget
    r = bud.rungs(6, 40, 10)
    assert r.stops == (10, 20, 40) and r.counts == (6, 2, 1)
    assert bud.rungs(1, 100, 10).stops == (100,)


@pytest.mark.parametrize("kwargs, message", [
    (dict(trials=0), "Invalid tune: 0"),
    (dict(trials=4, pruner="asha"), "Invalid pruner: 'asha' (choose from halving, none)"),
    (dict(trials=4, sampler="grid"), "Invalid sampler: 'grid'"),
    (dict(trials=4, tune_also=("beta",)), "Invalid tune_also: 'beta' (choose from momentum, beta1"),
])
def test_bad_budgets_are_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        Budget(**kwargs)
    assert message in str(err.value)


def test_space_is_relative_quasirandom_and_widens_at_an_edge():
    s = sp.centred(1e-3)
    assert (s.low, s.high) == pytest.approx((1e-3 / 30, 1e-3 * 30))
    pts = sp.sobol(8, 1)
    assert pts == sp.sobol(8, 1) and len({round(p[0], 6) for p in pts}) == 8  # deterministic, distinct
    assert sorted(p[0] for p in pts)[-1] - sorted(p[0] for p in pts)[0] > 0.75  # spread over the unit interval
    assert sp.point(s, [0.5])["lr"] == pytest.approx(1e-3)  # the middle of the log range is the centre
    up = sp.widened(s, "up")
    assert (up.low, up.high) == pytest.approx((s.high, s.high * 30)) and up.widened == "up"
    assert sp.widened(s, "down", extension_only=False).high == s.high
    assert found.edge_of([1e-4, 1e-3, 1e-2], 1e-2) == "up" and found.edge_of([1e-4, 1e-3, 1e-2], 1e-3) == ""
    assert found.edge_of([1e-4, 1e-2], 1e-2) == ""  # two points have no inside


def test_knobs_map_to_constructor_arguments():
    knobs = sp.knobs_for(("momentum", "beta1", "weight_decay"), specs.hyperparameters("adam"))
    assert [k.name for k in knobs] == ["1-beta1", "weight_decay"]  # adam has no momentum
    hp = sp.to_hparams({"lr": 0.01, "1-beta1": 0.2, "weight_decay": 1e-3}, {"betas": (0.9, 0.999)})
    assert hp == {"lr": 0.01, "betas": pytest.approx((0.8, 0.999)), "weight_decay": 1e-3}
    assert sp.to_hparams({"1-momentum": 0.05}, {})["momentum"] == pytest.approx(0.95)


def _trial(slot, lr, outcome, step, value, curve=None):
    return {"slot": slot, "params": {"lr": lr}, "outcome": outcome, "step": step, "value": value,
            "curve": curve or [[step, value]], "seconds": 1.0}


def test_the_choice_band_and_default_cost_from_stored_trials():
    trials = [_trial(0, 1e-3, "pruned", 20, 0.80, [[20, 0.80]]),
              _trial(1, 1e-2, "completed", 100, 0.95, [[20, 0.90], [40, 0.93], [100, 0.95]]),
              _trial(2, 3e-2, "pruned", 40, 0.94, [[20, 0.91], [40, 0.94]]),
              _trial(3, 1e-1, "diverged", 7, None, []),
              _trial(4, 3e-3, "pruned", 40, 0.92, [[20, 0.88], [40, 0.92]])]
    assert found.best(trials, True)["slot"] == 1  # trained furthest
    assert [t["slot"] for t in found.rank(trials, True)] == [1, 2, 4, 0, 3]
    band = found.band(trials, True, 0.015)
    assert band["step"] == 40 and (band["low"], band["high"]) == (1e-2, 3e-2) and band["good"] == 2
    d = found.default_cost(trials, True)
    assert d["step"] == 20 and d["difference"] == pytest.approx(0.10)
    assert found.cost(trials, 100)["steps"] == 20 + 100 + 40 + 7 + 40
    assert found.best([_trial(0, 1e-3, "diverged", 3, None, [])], True) is None


# ---------------------------------------------------------------------------- studies


def _studies(db):
    with Store(db, readonly=True) as store:
        return store.tunings()


def _storage(out):
    return optuna.storages.RDBStorage(f"sqlite:///{out / 'studies.sqlite'}")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned")
    table = api.compare(["valley"], ["adam", "sgd", "momentum"], seeds=[0, 1], out=out, steps=30, tune=6, jobs=1,
                        quiet=True)
    return out, table


def test_every_entry_gets_exactly_the_same_budget(tuned):
    out, _ = tuned
    studies = _studies(out / "runs.sqlite")
    assert len(studies) == 3
    storage = _storage(out)
    plans = {}
    for key, study in studies.items():
        trials = optuna.load_study(study_name=key, storage=storage).get_trials()
        done = [t for t in trials if t.state.is_finished()]
        keys = [(t.user_attrs["rung"], t.user_attrs["slot"]) for t in done]
        r = bud.rungs(6, 30, study["plan"]["eval_every"])
        assert len(done) == len(set(keys)) == r.planned_trials()  # each (rung, slot) exactly once
        # valley never diverges at these rates: every trial trains to its rung; one process held every
        # paused configuration, so each continued where it stopped instead of training again from step 0
        assert study["spent"]["budgeted_steps"] == r.planned_steps()
        assert study["spent"]["steps"] == r.continued_steps() < r.planned_steps()
        plans[study["label"]] = sorted(t["params"]["lr"] / study["plan"]["space"]["centre"]
                                       for t in study["trials"] if t["phase"] == 1)
    # the same first-phase points relative to each optimizer's centre (adam and sgd 1e-3, momentum 1e-2)
    assert len(plans["adam"]) == 4 and plans["adam"][0] < 1 < plans["adam"][-1]
    assert plans["adam"] == pytest.approx(plans["sgd"]) and plans["adam"] == pytest.approx(plans["momentum"])


def test_tuned_entries_rerun_on_the_seeds_with_the_chosen_lr(tuned):
    out, table = tuned
    studies = {s["label"]: s for s in _studies(out / "runs.sqlite").values()}
    assert set(table["lr_source"]) == {"tuned"} and list(table["seeds"]) == [2, 2, 2]
    for _, row in table.iterrows():
        chosen = found.best(studies[row["optimizer"]]["trials"], False)
        assert chosen["step"] == 30 and row["lr"] == pytest.approx(chosen["params"]["lr"])
    # adam's best first-phase trial lay at the top of [1e-3/30, 1e-3*30]: the second phase searched above it
    assert studies["adam"]["phase2"]["widened"] == "up"
    assert table.set_index("optimizer").loc["adam", "lr"] > 0.03


def test_the_report_shows_the_search(tuned, tmp_path):
    out, _ = tuned
    md = (out / "report.md").read_text()
    assert "**Tuning.** Every entry got the same budget: 6 trials of lr" in md
    assert "Tuning: trials against the learning rate" in md and (out / "valley-tuning.png").stat().st_size > 1000
    assert "valley, tuned** (validation): adam lr" in md
    data = json.loads((out / "summary.json").read_text())
    assert set(data["tuning"]["valley"]) == {"adam", "sgd", "momentum"}
    assert {r["lr_source"] for r in data["summary"]} == {"tuned"}
    rebuilt = api.report(out / "runs.sqlite", tmp_path / "again")  # from the database alone
    assert "**Tuning.**" in (tmp_path / "again" / "report.md").read_text() and rebuilt["document"]


def test_rerunning_resumes_and_trains_no_trial_again(tuned, monkeypatch):
    out, table = tuned
    calls = []
    real = runner.Training.advance  # every trial and every final run trains through it
    monkeypatch.setattr(runner.Training, "advance", lambda self, *a, **k: calls.append(self.spec) or real(self, *a, **k))
    again = api.compare(["valley"], ["adam", "sgd", "momentum"], seeds=[0, 1], out=out, steps=30, tune=6, jobs=1,
                        quiet=True)
    assert calls == [] and list(again["lr"]) == list(table["lr"])


def test_an_interrupted_tuning_resumes_where_it_stopped(tmp_path, monkeypatch):
    real = runner.Training.advance
    calls = []

    def interrupted(self, *a, **k):  # Ctrl-C during the fourth trial
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(runner.Training, "advance", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.compare(["valley"], ["adam"], seeds=[0], out=tmp_path, steps=30, tune=6, jobs=1, quiet=True)
    monkeypatch.setattr(runner.Training, "advance", real)
    api.compare(["valley"], ["adam"], seeds=[0], out=tmp_path, steps=30, tune=6, jobs=1, quiet=True)
    (key,) = _studies(tmp_path / "runs.sqlite")
    trials = optuna.load_study(study_name=key, storage=_storage(tmp_path)).get_trials()
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1  # the interrupted trial, run again from its start:
    assert [t for t in trials if t.user_attrs.get("retry_of") == failed[0].number]
    slots = latest(trials)
    assert len(slots) == bud.rungs(6, 30, 7).planned_trials() and all(t.state.is_finished() for t in slots.values())


def test_tpe_other_knobs_peers_and_fixed_entries(tmp_path):
    import torch

    b = Budget(4, sampler="tpe", tune_also=("momentum",))
    table = api.compare(["valley"], ["torch.optim.SGD", (torch.optim.Adam, {}), "adam:lr=1e-3;tune=no;label=adam-default"],
                        seeds=[0], out=tmp_path, steps=20, tune=b, jobs=1, quiet=True)
    by = table.set_index("optimizer")
    assert by.loc["adam-default", "lr_source"] == "entry" and by.loc["adam-default", "lr"] == 1e-3
    assert by.loc["torch.optim.SGD", "lr_source"] == "tuned" and by.loc["torch.optim.adam.Adam", "lr_source"] == "tuned"
    studies = {s["label"]: s for s in _studies(tmp_path / "runs.sqlite").values()}
    sgd = studies["torch.optim.SGD"]["trials"]
    assert all(0.5 <= t["hparams"]["momentum"] <= 0.999 for t in sgd if t["slot"] != 0)
    assert "momentum" not in next(t for t in sgd if t["slot"] == 0)["hparams"]  # the centre is the default
    assert "momentum" not in studies["torch.optim.adam.Adam"]["trials"][1]["hparams"]  # Adam has none


def test_entries_that_differ_only_in_what_tuning_chooses_are_refused(tmp_path):
    with pytest.raises(specs.SpecError, match="both shown as 'adam' once tuned on valley"):
        api.compare(["valley"], ["adam:lr=1e-3", "adam:lr=1e-2"], seeds=[0], out=tmp_path, steps=10, tune=2)
    with pytest.raises(specs.SpecError, match="Invalid tune -1"):
        api.compare(["valley"], ["adam"], seeds=[0], out=tmp_path, steps=10, tune=-1)


def test_version_2_databases_gain_the_tunings_table(tmp_path):
    import sqlite3

    db = tmp_path / "runs.sqlite"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE tunings")
        conn.execute("UPDATE schema_version SET version = 2")
    with Store(db, readonly=True) as store:  # read as it is, nothing written
        assert store.tunings() == {}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (2,)
    with Store(db) as store:
        store.save_tuning("k", "valley", {"name": "valley"}, "adam", {"trials": []})
        assert store.tunings()["k"]["label"] == "adam"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (3,)


def test_continuing_a_paused_trial_equals_training_it_again(tmp_path, monkeypatch):
    """A configuration that earns the next rung continues its paused training (dropout's random
    state included) instead of training again from its start: the same curves, fewer steps."""
    import torch

    from inertia.lab import Workload
    from inertia.lab.tuning import driver

    g = torch.Generator().manual_seed(1)
    X = torch.randn(240, 5, generator=g)
    work = Workload.from_tensors(
        "dropout", model=lambda: torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                                     torch.nn.Linear(16, 2)),
        X=X, Y=(X[:, 0] > 0).long(), target=0.9, steps=30, batch_size=16, eval_every=5)
    found_by = {}
    for flag in (False, True):
        monkeypatch.setattr(driver, "CONTINUE", flag)
        api.compare([work], ["adam"], seeds=[0], out=tmp_path / str(flag), tune=6, jobs=1, quiet=True)
        (study,) = _studies(tmp_path / str(flag) / "runs.sqlite").values()
        found_by[flag] = study
    assert [t["curve"] for t in found_by[True]["trials"]] == [t["curve"] for t in found_by[False]["trials"]]
    again, continued = found_by[False]["spent"], found_by[True]["spent"]
    assert again["steps"] == again["budgeted_steps"] == continued["budgeted_steps"] == bud.rungs(6, 30, 5).planned_steps()
    assert continued["steps"] == 6 * 5 + 2 * (10 - 5) + 1 * (30 - 10) < again["steps"]


def test_the_advice_gives_the_band_with_its_step_and_says_when_the_choice_is_outside_it():
    from inertia.lab.reporting import tuning as words

    band = {"low": 0.8, "high": 2.4, "width": 3.0, "good": 2, "of": 7, "step": 40, "threshold": 0.01}
    study = lambda lr: {"found": {"band": band, "default": None}, "chosen": {"hparams": {"lr": lr}}}  # noqa: E731
    inside = words.advice_line("valley", {"adam": study(1.0)}, "f(x, y)")
    assert "good from 0.8 to 2.4, x3, 2 of 7 trials at step 40)" in inside and "not among them" not in inside
    outside = words.advice_line("valley", {"adam": study(0.25)}, "f(x, y)")
    assert "the chosen lr, best further on, was not among them there" in outside

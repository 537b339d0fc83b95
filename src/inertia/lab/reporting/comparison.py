"""The comparison report, built from the results database alone.

:func:`build` reads runs from a :class:`~inertia.lab.store.Store` (never live objects),
scores them (:mod:`inertia.lab.scoring`), assembles one :class:`~.document.Document`
and renders it as ``report.md``, ``report.html`` and the terminal summary, with
``summary.json`` (the same facts as data) and the PNGs beside them. So
``inertia report DB --out DIR`` regenerates exactly what ``inertia compare`` wrote.

Per workload the report gives the verdict and its claims (:mod:`inertia.lab.scoring.verdict`),
the table (outcomes, time to target, final test metric, best and final validation metric,
each median with its interval, and every entry's learning rate and where it came from),
measured facts that explain the ranking, and the figures with their text alternatives.
Then performance profiles across workloads, advice written from these runs only, timing
and cost, and the runs that stopped early with their messages.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .. import outcomes
from ..records import LR_SOURCES, RunRecord
from ..scoring import profiles as prof
from ..scoring import run_frame, summarize, verdicts
from ..scoring.stats import ALPHA, MIN_SEEDS
from ..scoring.table import TIMING_SPREAD
from ..scoring.verdict import WorkloadVerdict
from ..store import Store, workload_hash
from . import format as fmt
from . import plots, render
from .document import Bullets, Document, Figure, Heading, Paragraph, Table

RULE = ("A beats B only when an exact two-sided rank test over the seeds (the permutation distribution of the "
        f"difference in mean ranks) gives a p-value below {ALPHA:g} after Holm's correction for all of the winner's "
        "comparisons, and the difference of the medians exceeds the workload's practical threshold; with fewer "
        f"than {MIN_SEEDS} seeds per entry (or too few to survive the correction) no verdict is given. Otherwise: "
        "no clear difference.")

RANKING = ("Entries are ranked by the final test metric (median over seeds; a diverged or failed run counts as the "
           "worst value), in tiers as wide as the practical threshold; within a tier by median steps to target "
           "(never reached = infinite), or by seconds for workloads whose entries differ in cost per step. The "
           "winner is tested against each other entry on the criterion that separated them.")


# ---------------------------------------------------------------------------- inputs

def infos_for(store: Store, records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """Workload info per name; two configs under one name (another budget) get distinct names."""
    names: dict[str, set] = {}
    for r in records:
        names.setdefault(r.workload, set()).add(workload_hash(r.workload_config))
    by_hash: dict[str, dict[str, Any]] = {}
    infos = {}
    for r in records:
        h = workload_hash(r.workload_config)
        if h not in by_hash:
            info = store.workload_info(r.workload_config)
            if len(names[r.workload]) > 1:
                info = {**info, "name": f"{r.workload} [{r.workload_config['steps']} steps, {h[:6]}]"}
            by_hash[h] = info
        r.workload = by_hash[h]["name"]
        infos[r.workload] = by_hash[h]
    return infos


def score(store: Store, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Records, infos, the run and entry tables and the verdicts of these runs."""
    records = store.runs(keys)
    infos = infos_for(store, records)
    frame = run_frame(records, infos)
    summary = summarize(frame, infos)
    return {"records": records, "infos": infos, "runs": frame, "summary": summary,
            "verdicts": verdicts(frame, summary, infos) if len(frame) else {}}


# ---------------------------------------------------------------------------- words

def entry_name(row: Any) -> str:
    """An entry with its learning rate, as claims and advice name it."""
    return plots.legend_label(row["optimizer"], row["lr"], row["lr_source"])


def outcome_text(row: Any) -> str:
    n = int(row["seeds"])
    parts = [f"{row['n_reached']}/{n} reached"]
    for key, word in (("n_diverged", "diverged"), ("n_failed", "failed")):
        if row[key]:
            parts.append(f"{row[key]} {word}")
    return ", ".join(parts)


def _interval(row: Any, col: str, kind: str, metric: str = "") -> str:
    f = {"steps": fmt.steps, "seconds": fmt.seconds,
         "metric": lambda v: fmt.metric(v, metric, missing="diverged")}[kind]
    return fmt.interval(row[col], row[col + "_lo"], row[col + "_hi"], f)


def _coverage_note(summary: pd.DataFrame) -> str:
    conf = sorted({round(float(c), 3) for c in summary["final_metric_conf"] if c == c})
    seeds = sorted({int(s) for s in summary["seeds"]})
    if not conf:
        return ""
    if max(seeds) == 1:
        return "One seed per entry: no intervals, and no verdict is possible."
    if min(conf) >= 0.95:
        return "Brackets: the 95% interval for the median over seeds (order statistics)."
    return (f"Brackets: the interval for the median over seeds; with {', '.join(map(str, seeds))} seeds per entry "
            f"it is the seed range, which covers the median with {fmt.percent(min(conf))} confidence "
            "(6 or more seeds give a 95% interval).")


def verdict_sentence(v: WorkloadVerdict, by: dict[str, Any]) -> str:
    """One sentence: who ranks first and what the seeds support about it."""
    if v.winner is None:
        return "No runs."
    w = entry_name(by[v.winner])
    if not v.tests:
        return f"**{w}** is the only entry; there is nothing to compare it with."
    if v.too_few_seeds:
        return (f"**Too few seeds for a verdict.** {w} ranks first and {entry_name(by[v.runner_up])} second, but with "
                f"{v.seeds} {'seed' if v.seeds == 1 else 'seeds'} per entry no difference can be shown: the exact rank test needs at least {v.needed} "
                f"seeds per entry for {v.comparisons} comparison{'s' if v.comparisons > 1 else ''} at {ALPHA:g} after "
                "Holm's correction. The medians and intervals below are what the runs say.")
    if v.clear_winner:
        return f"**{w} wins**: it beats every other entry ({_criteria(v.tests)}), each difference statistically clear and larger than the practical threshold."
    if not v.beaten:
        return (f"**No clear winner.** {w} ranks first, but shows no clear difference from any other entry "
                f"({', '.join(entry_name(by[t.other]) for t in v.ties)}).")
    return (f"**{w} ranks first**: it beats {', '.join(entry_name(by[t.other]) for t in v.beaten)}, but shows no clear "
            f"difference from {', '.join(entry_name(by[t.other]) for t in v.ties)}.")


def _criteria(tests) -> str:
    kinds = sorted({t.criterion for t in tests})
    return " and ".join(kinds)


def _gap(t, metric: str) -> str:
    if t.criterion == "final metric":
        return f"{fmt.metric_difference(t.difference, metric)} higher final test {metric}" if not math.isinf(t.difference) \
            else "the other diverged or failed"
    return f"{fmt.steps(t.difference)} fewer steps to target" if not math.isinf(t.difference) else "the other never held the target"


def claims_for(v: WorkloadVerdict, by: dict[str, Any], metric: str) -> tuple[list[str], list[dict[str, Any]]]:
    """A handful of claims (text and data): the winner, whom it beats, the ties, the failures."""
    if v.winner is None:
        return [], []
    correction = f"Holm over {v.comparisons} comparison{'s' if v.comparisons != 1 else ''}"
    lines, data = [], []
    w = by[v.winner]
    lines.append(f"Ranked first: {entry_name(w)}: final test {metric} {_interval(w, 'final_metric', 'metric', metric)}, "
                 f"steps to target {_interval(w, 'steps_to_target', 'steps')}, {outcome_text(w)}.")
    data.append({"kind": "first", "entry": v.winner, "lr": w["lr"], "final_metric": w["final_metric"],
                 "final_metric_interval": [w["final_metric_lo"], w["final_metric_hi"]],
                 "steps_to_target": w["steps_to_target"],
                 "steps_to_target_interval": [w["steps_to_target_lo"], w["steps_to_target_hi"]]})

    def side(t) -> str:
        o = by[t.other]
        col, kind = ("final_metric", "metric") if t.criterion == "final metric" else ("steps_to_target", "steps")
        return f"{entry_name(o)} {_interval(o, col, kind, metric)}"

    def record(kind: str, t) -> dict[str, Any]:
        o = by[t.other]
        col = "final_metric" if t.criterion == "final metric" else "steps_to_target"
        return {"kind": kind, "winner": v.winner, "other": t.other, "criterion": t.criterion,
                "difference": t.difference, "p": t.p, "p_adjusted": t.p_adjusted, "correction": correction,
                "other_median": o[col], "other_interval": [o[col + "_lo"], o[col + "_hi"]]}

    if v.too_few_seeds and v.tests:
        lines.append(f"Too few seeds for a verdict: {v.seeds} per entry, {v.needed} needed for {v.comparisons} "
                     f"comparison{'s' if v.comparisons != 1 else ''} ({correction}).")
        data.append({"kind": "too few seeds", "seeds": v.seeds, "needed": v.needed, "correction": correction})
    else:
        if v.beaten:
            shown = v.beaten if len(v.beaten) <= 4 else v.beaten[:3]
            text = "; ".join(f"{side(t)} ({_gap(t, metric)}, adjusted {fmt.pvalue(t.p_adjusted)})" for t in shown)
            more = f"; and {len(v.beaten) - len(shown)} more, largest adjusted {fmt.pvalue(max(t.p_adjusted for t in v.beaten))}" \
                if len(v.beaten) > len(shown) else ""
            lines.append(f"{entry_name(w)} beats: {text}{more} ({correction}).")
            data += [record("beats", t) for t in v.beaten]
        if v.ties:
            shown = v.ties if len(v.ties) <= 4 else v.ties[:3]
            text = "; ".join(f"{side(t)} (adjusted {fmt.pvalue(t.p_adjusted)}"
                             + ("" if t.practical else ", gap below the threshold") + ")" for t in shown)
            more = f"; and {len(v.ties) - len(shown)} more" if len(v.ties) > len(shown) else ""
            lines.append(f"No clear difference between {entry_name(w)} and: {text}{more} ({correction}).")
            data += [record("no clear difference", t) for t in v.ties]
    if v.failures:
        parts = []
        for f in v.failures:
            what = ", ".join(f"{n} of {f['seeds']} {word}" for n, word in ((f["diverged"], "diverged"), (f["failed"], "failed")) if n)
            parts.append(f"{entry_name(by[f['entry']])} ({what}" + (f"; {f['errors'][0]}" if f["errors"] else "") + ")")
        lines.append("Stopped early: " + "; ".join(parts) + ". Such runs count as the worst final metric and as never reaching the target.")
        data += [{"kind": "stopped early", **f} for f in v.failures]
    misses = [m for m in v.misses if m["not_reached"]]
    if misses:
        untuned = [m for m in misses if m["lr_source"] == "default"]
        lines.append("Did not hold the target to the end: " + "; ".join(
            f"{entry_name(by[m['entry']])} on {m['not_reached']} of {m['seeds']} seeds" for m in misses) + "."
            + (f" {', '.join(entry_name(by[m['entry']]) for m in untuned)} ran at the library-default learning rate, "
               "untuned: a miss there says nothing about the optimizer at a tuned rate." if untuned else ""))
        data += [{"kind": "not reached", **m} for m in misses]
    if v.met_at_start:
        lines.append(f"The target was already met before training for {', '.join(v.met_at_start)}: it is too easy "
                     "to tell these entries apart by time to target.")
        data.append({"kind": "target met at start", "entries": v.met_at_start})
    return lines, data


def _why(g: pd.DataFrame, info: dict[str, Any]) -> list[str]:
    """Measured facts that bear on the ranking (numbers only; the figures show the rest)."""
    out = []
    if info.get("trajectory"):
        d = g[g["detour"] == g["detour"]].sort_values("detour")
        if len(d):
            parts = [f"{r['optimizer']} {r['detour']:.2f}" for _, r in d.iterrows()]
            out.append("Detour, path length over straight-line distance (1 = straight; median over seeds): "
                       + ", ".join(parts) + f". Most zig-zag: {d.iloc[-1]['optimizer']}; straightest: {d.iloc[0]['optimizer']}.")
    rough = g[g["roughness"] == g["roughness"]].sort_values("roughness")
    if len(rough):
        out.append("Noise of the training-loss curve (median |change of log loss| per step): "
                   + ", ".join(f"{r['optimizer']} {r['roughness']:.3f}" for _, r in rough.iterrows()) + ".")
    n_train = (info.get("extras") or {}).get("n_train")
    if n_train and g["batch_size"].nunique() > 1:
        parts = []
        for _, r in g.iterrows():
            bs = min(int(r["batch_size"]), n_train)
            per = r["time_per_step"]
            parts.append(f"{r['optimizer']}: batch {bs}, {fmt.seconds(per)}/update, {n_train / bs:.0f} updates/epoch, "
                         f"{fmt.seconds(per * n_train / bs)}/epoch, {r['epochs']:.2f} epochs in the budget")
        out.append("Cost per update and per epoch (measured one run at a time): " + "; ".join(parts) + ".")
    out.append("Optimizer state at the end: " + ", ".join(f"{r['optimizer']} {fmt.nbytes(r['state_bytes'])}"
                                                          for _, r in g.iterrows()) + ".")
    return out


def _table(g: pd.DataFrame, info: dict[str, Any]) -> Table:
    metric = info["metric"]
    shared = bool((g["concurrency"] > 1).any())
    rows = []
    for _, r in g.iterrows():
        rows.append([str(int(r["rank"])), r["optimizer"], fmt.lr(r["lr"]),
                     {"entry": "entry", "workload": "workload", "default": "library default"}[r["lr_source"]],
                     outcome_text(r), _interval(r, "steps_to_target", "steps"),
                     _interval(r, "seconds_to_target", "seconds")
                     + (" (noisy)" if r["timing_noisy"] and math.isfinite(r["seconds_to_target"]) else ""),
                     _interval(r, "final_metric", "metric", metric), _interval(r, "best_metric", "metric", metric),
                     _interval(r, "val_final", "metric", metric),
                     f"{r['steps_per_s']:.0f}" if r["steps_per_s"] == r["steps_per_s"] else "n/a"])
    note = " ".join(x for x in [
        _coverage_note(g),
        f"Practical threshold: {fmt.metric_difference(g['threshold'].iloc[0], metric)} of {metric}; "
        f"{fmt.steps(max(float(info['eval_every']), 0.05 * float(info['steps'])))} steps to target.",
        "Time to target counts training time only." + (" Seconds were measured while runs shared the machine "
                                                         "(parallel runs): compare steps, not seconds." if shared else ""),
        f"(noisy): the slowest seed took more than {TIMING_SPREAD:g}x the fastest per step, so its seconds are noise."
        if (g["timing_noisy"] & g["seconds_to_target"].map(math.isfinite)).any() else ""] if x)
    return Table(["#", "optimizer", "lr", "lr from", "outcome", "steps to target", "time to target",
                  f"final test {metric}", f"best val {metric}", f"final val {metric}", "steps/s"],
                 rows, align=["r", "l", "r", "l", "l", "r", "r", "r", "r", "r", "r"], note=note)


def advice(vs: dict[str, WorkloadVerdict], summary: pd.DataFrame, infos: dict[str, dict[str, Any]]) -> list[str]:
    """"Which optimizer to pick", written from these runs only."""
    lines = []
    for workload, v in vs.items():
        g = summary[summary["workload"] == workload]
        by = {r["optimizer"]: r for _, r in g.iterrows()}
        metric = infos[workload]["metric"]
        if v.winner is None:
            continue
        w = by[v.winner]
        if v.runner_up is None:
            lines.append(f"**{workload}**: only {entry_name(w)} ran.")
            continue
        r = by[v.runner_up]
        t = next(t for t in v.tests if t.other == v.runner_up)
        gap = (f"final test {metric} {fmt.metric(w['final_metric'], metric, 'diverged')} vs "
               f"{fmt.metric(r['final_metric'], metric, 'diverged')}" if t.criterion == "final metric" else
               f"{fmt.steps(w['steps_to_target'])} vs {fmt.steps(r['steps_to_target'])} steps to target at a practically equal final {metric}")
        if v.too_few_seeds:
            text = (f"**{workload}**: {entry_name(w)} ranks first and {entry_name(r)} second ({gap}); with {v.seeds} "
                    f"seed{'s' if v.seeds != 1 else ''} that is a ranking, not a verdict: rerun with at least {v.needed} seeds "
                    f"(`--seeds {','.join(str(i) for i in range(v.needed))}`) to find out.")
        elif t.clear:
            text = (f"**{workload}**: pick **{entry_name(w)}**: ahead of the runner-up {entry_name(r)} ({gap}; "
                    f"adjusted {fmt.pvalue(t.p_adjusted)})" + ("; it beats every entry." if v.clear_winner else "."))
        else:
            tied = [entry_name(by[x.other]) for x in v.ties]
            text = (f"**{workload}**: no clear winner: {entry_name(w)} and {', '.join(tied)} are not clearly different "
                    f"({gap}); choose among them by cost or tune their learning rates.")
        untuned = [entry_name(by[e]) for e in v.untuned if e in (v.winner, v.runner_up)]
        if untuned:
            text += f" {', '.join(untuned)} ran at an untuned library-default learning rate."
        lines.append(text)
    sources = summary.groupby("lr_source")["optimizer"].apply(lambda s: sorted(set(s))) if len(summary) else {}
    if len(summary):
        parts = [f"{LR_SOURCES[src]}: {', '.join(names)}" for src, names in sources.items() if src != "entry"]
        if parts:
            lines.append("Learning rates not chosen by you — " + "; ".join(parts)
                         + ". None of them was tuned by this comparison, so a loss may be the learning rate's, not the optimizer's.")
    lines.append("These verdicts hold for these workloads, budgets, learning rates and seeds only.")
    return lines


# ---------------------------------------------------------------------------- the document

def document(scored: dict[str, Any], out: Path, title: str = "", command: str = "",
             meta: dict[str, Any] | None = None) -> Document:
    """The whole report as a document (writes the figures into ``out``)."""
    records, infos, frame, summary, vs = (scored[k] for k in ("records", "infos", "runs", "summary", "verdicts"))
    meta = meta or {}
    doc = Document(title or "inertia: optimizer comparison")
    devices = sorted({r.device for r in records})
    vers = records[0].versions if records else {}
    seeds = sorted({r.seed for r in records})
    shared = sorted({r.workload for r in records if r.concurrency > 1})
    facts = [f"{len(records)} runs, training seeds {seeds}, device {', '.join(devices) or 'n/a'}",
             f"inertia {vers.get('inertia', '?')}, torch {vers.get('torch', '?')}, Python {vers.get('python', '?')}"]
    if meta.get("wall_time") is not None:
        facts.append(f"{fmt.seconds(meta['wall_time'])} wall time for the {meta.get('trained', '?')} runs trained "
                     f"by this invocation ({meta.get('skipped', 0)} found in the database)")
    if meta.get("jobs"):
        facts.append(f"up to {meta['jobs']} runs at a time on {meta.get('cpus', '?')} cores")
    if meta.get("load"):
        facts.append(f"load average {meta['load'][0]:.1f} at the start, {meta['load'][-1]:.1f} at the end")
    doc.add(Paragraph("; ".join(facts) + ".", "note"))
    for note in meta.get("notes") or []:
        doc.add(Paragraph(note, "verdict", terminal=True))
    if command:
        doc.add(Paragraph(f"Command: `{command}`", "note"))
    doc.add(Heading("How to read this report", terminal=False),
            Bullets([f"**{o}**: {d}." for o, d in outcomes.DEFINITIONS.items()]
                    + ["**Validation and test.** Curves, time to target and \"reached\" use the validation split; the "
                       "final test metric is measured once per run, at the end, and only the ranking and verdict use it.",
                       f"**Ranking.** {RANKING}", f"**Claims.** {RULE}",
                       "**Seconds** measured while several runs shared the machine are labelled so and never decide "
                       "anything; steps are the clock of every verdict.",
                       "Method and definitions in full: `docs/lab.md`."]))
    for workload in dict.fromkeys(frame["workload"]) if len(frame) else []:
        info = {**infos[workload], "name": workload}
        g = summary[summary["workload"] == workload]
        by = {r["optimizer"]: r for _, r in g.iterrows()}
        v = vs[workload]
        recs = [r for r in records if r.workload == workload]
        wf = frame[frame["workload"] == workload]
        ex = info.get("extras") or {}
        splits = ("; splits " + "/".join(f"{ex[k]:,}" for k in ("n_train", "n_validation", "n_test"))
                  + " train/validation/test") if all(k in ex for k in ("n_train", "n_validation", "n_test")) else ""
        op = ">=" if info["higher_is_better"] else "<="
        doc.add(Heading(workload),
                Paragraph(f"{info.get('description', '')}. Target: validation {info['metric']} {op} "
                          f"{fmt.metric(info['target'], info['metric'])}, held to the end; budget {info['steps']} steps, "
                          f"evaluated every {info['eval_every']}{splits}.", terminal=False),
                Paragraph(f"**Verdict.** {verdict_sentence(v, by)}", "verdict", terminal=True))
        lines, _ = claims_for(v, by, info["metric"])
        doc.add(Bullets(lines, terminal=True), _table(g, info))
        doc.add(Paragraph("**Measured facts.**"), Bullets(_why(g, info)))
        doc.add(*workload_figures(recs, wf, g, info, out, workload in shared))
    profile_blocks(doc, summary, records, out)
    doc.add(Heading("Which optimizer to pick"), Paragraph("Written from the runs above, nothing else.", "note"),
            Bullets(advice(vs, summary, infos), terminal=True))
    stopped = [r for r in records if r.status != "completed"]
    if stopped:
        doc.add(Heading("Runs that stopped early", terminal=False),
                Table(["workload", "optimizer", "seed", "status", "message"],
                      [[r.workload, r.label, str(r.seed), r.status, r.error or ""] for r in stopped], terminal=False))
    return doc


def workload_figures(recs: list[RunRecord], wf: pd.DataFrame, g: pd.DataFrame, info: dict[str, Any], out: Path,
                     shared: bool) -> list[Figure]:
    """Every figure of one workload, with text alternatives."""
    out.mkdir(parents=True, exist_ok=True)
    groups = plots.groups_of(recs)
    groups = {label: groups[label] for label in g["optimizer"] if label in groups}
    colors = plots.colors_for(list(groups))
    legends = {r["optimizer"]: entry_name(r) for _, r in g.iterrows()}
    stem = info["name"]
    figs = [plots.loss_curves(groups, colors, legends, info, out / f"{stem}-loss-steps.png", "steps", shared),
            plots.loss_curves(groups, colors, legends, info, out / f"{stem}-loss-time.png", "seconds", shared)]
    if (info.get("extras") or {}).get("n_train") and len({r.batch_size for r in recs}) > 1:
        figs.append(plots.loss_curves(groups, colors, legends, info, out / f"{stem}-loss-epochs.png", "epochs", shared))
    figs += [plots.metric_curves(groups, colors, legends, info, out / f"{stem}-metric.png"),
             plots.time_to_target(g, wf, colors, legends, info, out / f"{stem}-time-to-target.png", shared)]
    if info.get("trajectory") and any(r.trajectory for r in recs):
        figs.append(plots.trajectories(groups, colors, legends, info, out / f"{stem}-trajectories.png"))
    figs.append(plots.lr_schedules(groups, colors, legends, info, out / f"{stem}-lr.png"))
    return figs


def profile_blocks(doc: Document, summary: pd.DataFrame, records: list[RunRecord], out: Path) -> dict[str, Any]:
    """Performance profiles across workloads, when at least two workloads share two entries."""
    entries = prof.shared_entries(summary)
    workloads = list(dict.fromkeys(summary["workload"])) if len(summary) else []
    if len(workloads) < 2 or len(entries) < 2:
        return {}
    sub = summary[summary["optimizer"].isin(entries)]
    rho, dropped = prof.profiles(sub)
    result: dict[str, Any] = {"entries": entries, "dropped_workloads": dropped}
    doc.add(Heading("Across workloads: performance profiles"),
            Paragraph("For each entry, the fraction of workloads on which its median steps to target is within a "
                      "factor tau of the best entry's (AlgoPerf-style; never reaching the target counts as infinite). "
                      "Entries are matched by name across workloads, each at its own learning rate there."
                      + (f" Left out, because no entry reached the target there: {', '.join(dropped)}." if dropped else "")))
    if rho.empty:
        doc.add(Paragraph("No workload had an entry reaching the target: there is no profile to draw.", "note"))
        return result
    n = len(workloads) - len(dropped)
    legends = {e: e for e in entries}
    rows = [[e, fmt.percent(rho.loc[e].iloc[0]), fmt.percent(rho.loc[e][rho.columns <= 2.0].iloc[-1]),
             fmt.percent(rho.loc[e].iloc[-1])] for e in rho.index]
    doc.add(Table(["entry", "fastest (tau = 1)", "within 2x", "reaches the target"], rows, align=["l", "r", "r", "r"],
                  note=f"Over {n} workloads; steps to target.", terminal=True),
            plots.profile_plot(rho, legends, out / "profiles-steps.png", "steps_to_target", n))
    result["steps"] = {e: rho.loc[e].tolist() for e in rho.index}
    if all(r.concurrency == 1 for r in records):
        rho_s, _ = prof.profiles(sub, "seconds_to_target")
        if not rho_s.empty:
            doc.add(plots.profile_plot(rho_s, legends, out / "profiles-seconds.png", "seconds_to_target", n))
            result["seconds"] = {e: rho_s.loc[e].tolist() for e in rho_s.index}
    else:
        doc.add(Paragraph("No seconds view: runs shared the machine, so their seconds are not comparable.", "note"))
    result["taus"] = list(rho.columns)
    return result


# ---------------------------------------------------------------------------- files

def _num(x: Any) -> Any:
    """JSON-safe values: infinities and NaN become null (strict JSON has neither)."""
    if isinstance(x, dict):
        return {str(k): _num(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_num(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def build(store: Store, out: str | Path, keys: Sequence[str] | None = None, title: str = "",
          command: str = "", meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the report for these runs (default: all in the store) into ``out``.

    Returns ``{"summary", "runs" (DataFrames), "claims", "verdicts", "advice", "document", "files"}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scored = score(store, keys)
    doc = document(scored, out, title, command, meta)
    render.write(doc, out)
    summary, frame, vs, infos = scored["summary"], scored["runs"], scored["verdicts"], scored["infos"]
    claims = []
    for workload, v in vs.items():
        by = {r["optimizer"]: r for _, r in summary[summary["workload"] == workload].iterrows()}
        claims += [{"workload": workload, **c} for c in claims_for(v, by, infos[workload]["metric"])[1]]
    verdict_text = {w: render.plain(verdict_sentence(v, {r["optimizer"]: r for _, r in
                                                          summary[summary["workload"] == w].iterrows()}))
                    for w, v in vs.items()}
    tips = [render.plain(a) for a in advice(vs, summary, infos)] if len(summary) else []
    files = ["report.html", "report.md", "summary.json"] + [f.path.name for f in doc.figures]
    data = {
        "title": doc.title, "command": command, "meta": meta or {}, "rule": RULE, "ranking": RANKING,
        "definitions": outcomes.DEFINITIONS, "lr_sources": LR_SOURCES,
        "devices": sorted({r.device for r in scored["records"]}),
        "versions": scored["records"][0].versions if scored["records"] else {},
        "workloads": {w: {k: v for k, v in info.items() if k != "extras"}
                      | {"extras": {k: v for k, v in (info.get("extras") or {}).items() if k != "contour"}}
                      for w, info in infos.items()},
        "summary": summary.drop(columns=["errors"], errors="ignore").to_dict("records") if len(summary) else [],
        "runs": frame.to_dict("records") if len(frame) else [],
        "claims": claims, "verdicts": verdict_text, "advice": tips,
        "figures": [{"file": f.path.name, "caption": f.caption, "alt": f.alt} for f in doc.figures],
        "files": files,
    }
    (out / "summary.json").write_text(json.dumps(_num(data), indent=1, allow_nan=False, default=str))
    return {"summary": summary, "runs": frame, "claims": claims, "verdicts": vs, "advice": tips,
            "document": doc, "files": [out / f for f in files]}


def terminal(doc: Document) -> str:
    """The terminal summary of a report: verdicts, claims and tables (same content as the files)."""
    return render.text(doc)


__all__ = ["build", "score", "document", "terminal", "RULE", "RANKING", "infos_for"]

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
from ..scoring import practical_threshold, run_frame, summarize, verdicts
from ..scoring import tuning as found
from ..store import Store, workload_hash
from . import format as fmt
from . import plots, render
from . import tuning as tuning_words
from .document import Bullets, Document, Figure, Heading, Paragraph, Table
from .words import RANKING, RULE, advice, claims_for, entry_name, entry_table, measured_facts, verdict_sentence

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


def score(store: Store, keys: Sequence[str] | None = None, tunings: Sequence[str] | None = None) -> dict[str, Any]:
    """Records, infos, the run and entry tables, the verdicts of these runs, and the tuning studies
    (by workload, then entry) that chose their hyperparameters."""
    records = store.runs(keys)
    names = {workload_hash(r.workload_config): r.workload for r in records}  # before any renaming
    infos = infos_for(store, records)
    renamed = {workload_hash(r.workload_config): r.workload for r in records}
    frame = run_frame(records, infos)
    summary = summarize(frame, infos)
    tuned: dict[str, dict[str, Any]] = {}
    for study in (store.tunings(tunings).values() if tunings else ()):
        w = renamed.get(study["workload_hash"])
        if w is None or names.get(study["workload_hash"]) is None:
            continue
        info = infos[w]
        study["found"] = found.summarize(study, bool(info["higher_is_better"]), practical_threshold(info))
        tuned.setdefault(w, {})[study["label"]] = study
    return {"records": records, "infos": infos, "runs": frame, "summary": summary,
            "verdicts": verdicts(frame, summary, infos) if len(frame) else {}, "tuning": tuned}


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
        doc.add(Bullets(lines, terminal=True), entry_table(g, info))
        doc.add(*tuning_words.blocks(scored["tuning"].get(workload, {}), info, out))
        doc.add(Paragraph("**Measured facts.**"), Bullets(measured_facts(g, info)))
        doc.add(*workload_figures(recs, wf, g, info, out, workload in shared))
    profile_blocks(doc, summary, records, out)
    doc.add(Heading("Which optimizer to pick"), Paragraph("Written from the runs above, nothing else.", "note"),
            Bullets(advice(vs, summary, infos, scored["tuning"]), terminal=True))
    doc.add(*cost_blocks(summary))
    stopped = [r for r in records if r.status != "completed"]
    if stopped:
        doc.add(Heading("Runs that stopped early", terminal=False),
                Table(["workload", "optimizer", "seed", "status", "message"],
                      [[r.workload, r.label, str(r.seed), r.status, r.error or ""] for r in stopped], terminal=False))
    return doc


def cost_blocks(summary: pd.DataFrame) -> list:
    """What the runs cost: wall time, time per step, threads, sharing, optimizer state, peak memory."""
    if summary.empty:
        return []
    rows = [[r["workload"], r["optimizer"], fmt.interval(r["wall_time"], r["wall_time_lo"], r["wall_time_hi"], fmt.seconds),
             fmt.seconds(r["time_per_step"]) + (" (noisy)" if r["timing_noisy"] else ""), str(r["concurrency"]),
             fmt.nbytes(r["state_bytes"]), fmt.nbytes(r["peak_memory"])] for _, r in summary.iterrows()]
    return [Heading("Cost", terminal=False),
            Table(["workload", "optimizer", "wall time per run", "time per step", "runs at once", "optimizer state",
                   "peak memory"], rows, align=["l", "l", "r", "r", "r", "r", "r"], terminal=False,
                  note="Wall time per run includes evaluations; time per step counts training only (median). Peak "
                       "memory is the process's high-water mark on the CPU (all runs of a process share it) or "
                       "CUDA's max allocated. \"Runs at once\" above 1: trained in parallel worker processes, so "
                       "the seconds are shared-machine timings.")]


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
    lrs = sub.groupby("optimizer", sort=False)["lr"].apply(lambda s: ", ".join(dict.fromkeys(fmt.lr(x) for x in s)))
    legends = {e: f"{e}, lr {lrs[e]}" for e in entries}
    rows = [[legends[e], fmt.percent(rho.loc[e].iloc[0]), fmt.percent(rho.loc[e][rho.columns <= 2.0].iloc[-1]),
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
    scored = score(store, keys, (meta or {}).get("tunings"))
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
    tips = [render.plain(a) for a in advice(vs, summary, infos, scored["tuning"])] if len(summary) else []
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
        "tuning": {w: {label: {k: v for k, v in study.items() if k != "workload_hash"} for label, study in by.items()}
                   for w, by in scored["tuning"].items()},
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

"""The seed-claims report: each of the lesson's claims quoted, its verdict, the numbers and plots.

Built with the lab's own document model and renderer (:mod:`inertia.lab.reporting`), so it
reads, looks and formats numbers like every other report, and writes ``report.md``,
``report.html`` and ``summary.json`` from one :class:`~inertia.lab.reporting.document.Document`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..reporting import format as fmt
from ..reporting import render
from ..reporting.document import Bullets, Document, Figure, Heading, Paragraph, Table
from .table import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED
from .verdicts import _rows, library_lr, recommendations, tolerance, tuned_lr, verdicts

BADGE = {SUPPORTED: "SUPPORTED", NOT_SUPPORTED: "NOT SUPPORTED", INCONCLUSIVE: "INCONCLUSIVE"}
COLORS = {"Adam": "tab:blue", "RMSprop": "tab:orange", "SGD+Momentum": "tab:green"}
STYLES = {"Adam": "-", "RMSprop": "--", "SGD+Momentum": "-."}


def plot_scenario(table: pd.DataFrame, curves: pd.DataFrame, scenario: str, out: Path) -> list[Figure]:
    """Two figures per scenario: final test metric against the lr, and the curves at the chosen lrs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(table, scenario)
    metric = rows["metric"].iloc[0]
    figs = []
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    words = []
    for family, grp in rows.groupby("family"):
        color = COLORS.get(family)
        ax.scatter(grp["lr"], grp["final"], s=12, alpha=0.5, color=color)
        mean = grp.groupby("lr")["final"].mean()
        ax.plot(mean.index, mean.values, marker="o", ls=STYLES.get(family, "-"), color=color, label=family, ms=4)
        lib = library_lr(rows, family)
        if lib in mean.index:  # the untuned user's point
            ax.plot([lib], [mean[lib]], "s", mfc="none", mec="black", ms=10)
        best = mean.idxmax() if rows["higher_is_better"].iloc[0] else mean.idxmin()
        words.append(f"{family}: best mean {fmt.metric(mean[best], metric)} at lr {fmt.lr(best)}, "
                     f"{fmt.metric(mean.get(lib, math.nan), metric, 'not run')} at its default lr {fmt.lr(lib)}")
    base = rows["baseline"].iloc[0]
    if base == base:
        ax.axhline(base, ls=":", color="grey", label="trivial predictor")
    ax.axhline(rows["target"].iloc[0], ls="--", color="red", lw=0.8, label="target")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (log scale; black square: library default)", ylabel=f"final test {metric}",
           title=f"{scenario}: sensitivity to the learning rate")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    name = out / f"lr-{scenario}.png"
    fig.savefig(name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    figs.append(Figure(name, f"{scenario}: final test {metric} against the learning rate",
                       "Mean over seeds (line) and each seed (dots): " + "; ".join(words) + "."))

    lrs = tuned_lr(table, scenario, by="final")
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    words = []
    for family, lr in lrs.items():
        c = curves[(curves["scenario"] == scenario) & (curves["family"] == family) & (curves["lr"] == lr)]
        for i, (_, g) in enumerate(c.groupby("seed")):
            ax.plot(g["step"], g["value"], color=COLORS.get(family), ls=STYLES.get(family, "-"), alpha=0.8,
                    label=f"{family} lr {fmt.lr(lr)}" if i == 0 else None)
        if len(c):
            last = c[c["step"] == c["step"].max()]["value"]
            words.append(f"{family} at lr {fmt.lr(lr)} ends at {fmt.metric(float(last.median()), metric)} (median)")
    ax.axhline(rows["target"].iloc[0], ls="--", color="red", lw=0.8, label="target")
    ax.set(xlabel="step", ylabel=f"validation {metric}", title=f"{scenario}: curves at the learning rates chosen on validation")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    name = out / f"curves-{scenario}.png"
    fig.savefig(name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    figs.append(Figure(name, f"{scenario}: validation {metric} at the chosen learning rates (one line per seed)",
                       "; ".join(words) + "."))
    return figs


def _cell(v: Any, metric: str = "") -> str:
    if v is None or isinstance(v, bool):
        return {True: "yes", False: "no", None: "undecided"}[v]
    if isinstance(v, float):
        return "n/a" if v != v else fmt.metric(v, metric) if metric else fmt.number(v)
    return str(v)


def _table(frame: pd.DataFrame, metric: str = "", numeric_as_metric: bool = False, terminal: bool = False) -> Table:
    """Cells formatted once: metric values as metrics (``93.6%``), lrs as typed, steps as counts."""
    def cell(c: str, v: Any) -> str:
        if c == "lr" and isinstance(v, float):
            return fmt.lr(v)
        if c in ("steps_to_target",) and isinstance(v, float):
            return "never" if v != v else fmt.steps(v)
        return _cell(v, metric if numeric_as_metric and c not in ("seed", "lr") else "")
    return Table([str(c) for c in frame.columns],
                 [[cell(c, v) for c, v in zip(frame.columns, row)] for row in frame.itertuples(index=False)],
                 terminal=terminal)


def _protocol(tuned: bool, meta: dict[str, Any]) -> str:
    if tuned:
        how = (f"Adam, RMSprop and SGD+Momentum (momentum 0.9) each get their learning rate from the lab's equal-budget "
               f"tuning ({meta.get('budget') or 'the same budget for each'}: the same number of trials from the same "
               "relative range around each library default, scored on the **validation** split, as in the main job) "
               "and also run at their library-default lr; nothing else is tuned. ")
    else:
        how = ("Adam, RMSprop and SGD+Momentum (momentum 0.9) each get the same learning-rate sweep (the workload's "
               "suggested lr times the same factors) plus the library's default lr; nothing else is tuned. Each "
               "optimizer's learning rate is chosen on the **validation** split (mean over seeds). ")
    return ("Protocol: " + how + "Claims about the final metric are judged on the **test** split, measured once at "
            "the end of each run, so the chosen numbers are not selected on the data that judges them. \"Reached\" "
            "means the validation metric met the target and held it to the end of the budget. Each claim is decided "
            "seed by seed: **supported** if it holds on every seed, **not supported** if it fails on every seed, "
            "**inconclusive** otherwise. One tolerance per scenario, the workload's practical threshold, is used in "
            "every comparison.")


def _tuned_lrs(table: pd.DataFrame, trials: pd.DataFrame | None) -> Table:
    """Per scenario and family: the tuned lr, the library default and the band of good learning rates."""
    from ..scoring import tuning as found
    from .verdicts import _trials

    rows = []
    for scenario in dict.fromkeys(table["scenario"]):
        r = _rows(table, scenario)
        hib, t = bool(r["higher_is_better"].iloc[0]), tolerance(r)
        for family, lr in tuned_lr(table, scenario).items():
            band = found.band(_trials(trials, scenario, family), hib, t)
            rows.append([scenario, family, fmt.lr(lr), fmt.lr(library_lr(r, family)),
                         f"{fmt.lr(band['low'])}–{fmt.lr(band['high'])} (x{band['width']:.3g}, step {band['step']})"
                         if band else "n/a"])
    return Table(["scenario", "optimizer", "tuned lr", "library default", "band of good lrs (validation)"], rows,
                 note="Each scenario's own report (linked below) shows every trial against its learning rate.",
                 terminal=True)


def document(table: pd.DataFrame, curves: pd.DataFrame, out: Path, meta: dict[str, Any],
             infos: dict[str, dict[str, Any]] | None = None, trials: pd.DataFrame | None = None) -> Document:
    """The report as a document (writes the figures into ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    doc = Document("The lesson's claims, tested")
    load = meta.get("load")
    doc.add(Paragraph(
        f"Suite `seed-claims`{' (quick)' if meta.get('quick') else ''}: training seeds {meta.get('seeds')}, "
        f"{fmt.seconds(meta.get('wall_time', math.nan))} wall time on {meta.get('device', '?')}"
        + (f" (load average {load})" if load else "") + ".", "note"))
    for note in meta.get("notes") or []:
        doc.add(Paragraph(note, "verdict", terminal=True))
    tuned = "tuned" in table and bool(table["tuned"].any())
    doc.add(Paragraph(_protocol(tuned, meta)))
    if tuned:
        doc.add(Heading("Learning rates found by tuning"), _tuned_lrs(table, trials))
    for quote, v in verdicts(table, trials):
        rows = _rows(table, v.scenario)
        doc.add(Heading(f"“{quote}”"),
                Paragraph(f"**{BADGE[v.status]}**: tested as: {v.claim} ({v.scenario}).", "verdict", terminal=True),
                Paragraph(v.reason),
                _table(pd.DataFrame(v.per_seed).rename(columns={f: f"{f} (lr {fmt.lr(lr)})" for f, lr in v.lrs.items()}),
                       rows["metric"].iloc[0], numeric_as_metric="fastest" not in v.claim))
    doc.add(Heading("Which optimizer to pick"),
            Paragraph("From these runs only (a small budget: treat as evidence, not law).", "note"),
            Bullets(recommendations(table, trials=trials), terminal=True))
    doc.add(Heading("Scenarios"))
    for scenario in dict.fromkeys(table["scenario"]):
        rows = _rows(table, scenario)
        info = (infos or {}).get(rows["workload"].iloc[0], {})
        facts = ", ".join(f"{k} {v}" for k, v in (info.get("extras") or {}).items()
                          if isinstance(v, (int, float, str)) and k != "contour")
        tps = rows.groupby("family")["time_per_step"].median()
        doc.add(Heading(scenario, 3), Paragraph(info.get("description", rows["workload"].iloc[0])))
        if facts:
            doc.add(Paragraph(f"Facts: {facts}. Tolerance (practical threshold): "
                              f"{fmt.metric_difference(tolerance(rows), rows['metric'].iloc[0])}."))
        doc.add(Paragraph("Median training time per step: "
                          + ", ".join(f"{f} {fmt.seconds(t)}" for f, t in tps.items()) + "."))
        if (out / scenario / "report.html").exists():
            doc.add(Paragraph(f"The lab's full report for this scenario (outcomes, intervals, loss curves, memory): "
                              f"[{scenario}/report.html]({scenario}/report.html)."))
        doc.add(*plot_scenario(table, curves, scenario, out))
    if meta.get("skipped"):
        doc.add(Heading("Skipped scenarios"), Bullets(list(meta["skipped"]), terminal=True))
    doc.add(Heading("All runs"))
    cols = [c for c in ["scenario", "family", "lr", "tuned", "library_default", "seed", "status", "final", "val_final",
                        "best", "steps_to_target"] if c in table]
    metric = table["metric"].iloc[0] if table["metric"].nunique() == 1 else ""
    doc.add(_table(table[cols].sort_values(["scenario", "family", "lr", "seed"]), metric, numeric_as_metric=bool(metric)))
    return doc


def write_report(table: pd.DataFrame, curves: pd.DataFrame, out: str | Path, meta: dict[str, Any],
                 infos: dict[str, dict[str, Any]] | None = None, trials: pd.DataFrame | None = None) -> Path:
    """Write ``report.md``, ``report.html``, ``summary.json`` (the verdicts) and the PNGs into
    ``out``; return the markdown's path. Each scenario's lab report lives in ``out/<scenario>/``."""
    out = Path(out)
    doc = document(table, curves, out, meta, infos, trials)
    md, _ = render.write(doc, out)
    summary = {"meta": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, list))},
               "verdicts": [{"quote": q, "claim": v.claim, "scenario": v.scenario, "status": v.status,
                             "reason": v.reason} for q, v in verdicts(table, trials)],
               "learning_rates": {s: tuned_lr(table, s) for s in dict.fromkeys(table["scenario"])},
               "recommendations": [render.plain(r) for r in recommendations(table, trials=trials)],
               "figures": [{"file": f.path.name, "caption": f.caption, "alt": f.alt} for f in doc.figures]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return md

"""The seed-claims report: each claim quoted, its verdict, the numbers and plots behind it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .protocol import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, library_default_lr
from .verdicts import _rows, recommendations, tuned_lr, verdicts
# ---------------------------------------------------------------------------- the report

_BADGE = {SUPPORTED: "✅ supported", NOT_SUPPORTED: "❌ not supported", INCONCLUSIVE: "❔ inconclusive"}
_COLORS = {"Adam": "tab:blue", "RMSprop": "tab:orange", "SGD+Momentum": "tab:green"}


def plot_scenario(table: pd.DataFrame, curves: pd.DataFrame, scenario: str, out: Path) -> list[str]:
    """Two figures per scenario: final metric vs learning rate, and tuned learning curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(table, scenario)
    metric = rows["metric"].iloc[0]
    names = []
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for family, grp in rows.groupby("family"):
        color = _COLORS.get(family)
        ax.scatter(grp["lr"], grp["final"], s=12, alpha=0.5, color=color)
        mean = grp.groupby("lr")["final"].mean()
        ax.plot(mean.index, mean.values, "-o", color=color, label=family, ms=4)
        lib = library_default_lr(family)
        if lib in mean.index:  # the untuned user's point
            ax.plot([lib], [mean[lib]], "s", mfc="none", mec="black", ms=10)
    base = rows["baseline"].iloc[0]
    if base == base:
        ax.axhline(base, ls=":", color="grey", label="trivial predictor")
    ax.axhline(rows["target"].iloc[0], ls="--", color="red", lw=0.8, label="target")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (black square: library default)", ylabel=f"final test {metric}",
           title=f"{scenario}: sensitivity to the learning rate")
    ax.legend(fontsize=7)
    fig.tight_layout()
    names.append(f"lr-{scenario}.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)

    lrs = tuned_lr(table, scenario, by="final")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for family, lr in lrs.items():
        c = curves[(curves["scenario"] == scenario) & (curves["family"] == family) & (curves["lr"] == lr)]
        for i, (_, g) in enumerate(c.groupby("seed")):
            ax.plot(g["step"], g["value"], color=_COLORS.get(family), alpha=0.8,
                    label=f"{family} lr={lr:g}" if i == 0 else None)
    ax.axhline(rows["target"].iloc[0], ls="--", color="red", lw=0.8)
    ax.set(xlabel="step", ylabel=f"test {metric}", title=f"{scenario}: tuned learning curves (one line per seed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    names.append(f"curves-{scenario}.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)
    return names


def _md_table(frame: pd.DataFrame) -> list[str]:
    def cell(v: Any) -> str:
        if v is None or isinstance(v, bool):
            return {True: "yes", False: "no", None: "undecided"}[v]
        if isinstance(v, float):
            return "—" if v != v else f"{v:.4g}"
        return str(v)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def markdown(table: pd.DataFrame, curves: pd.DataFrame, out: Path, meta: dict[str, Any],
             infos: dict[str, dict[str, Any]] | None = None) -> str:
    """The report's markdown (writes the figures into ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# The seed's claims, tested", "",
             f"Suite `seed-claims`{' (quick)' if meta.get('quick') else ''}: seeds {meta.get('seeds')}, "
             f"wall time {meta.get('wall_time', float('nan')):.0f} s on {meta.get('device', '?')}"
             + (f" (load average {meta['load']}; {os.cpu_count()} CPUs)" if meta.get("load") else "") + ".", "",
             "Protocol: Adam, RMSprop and SGD+Momentum (momentum 0.9) each get the same learning-rate sweep "
             "(the workload's suggested lr times the same factors) plus the library's default lr; nothing else "
             "is tuned. Each claim is decided seed by seed: **supported** if it holds on every seed, "
             "**not supported** if it fails on every seed, **inconclusive** otherwise. Learning rates are chosen "
             "on the mean over seeds and reported on the same test set (optimistic for every optimizer alike).", ""]
    for quote, v in verdicts(table):
        lines += [f"## “{quote}”", "", f"**{_BADGE[v.status]}** — tested as: {v.claim} ({v.scenario}).", "",
                  v.reason, ""]
        lines += _md_table(pd.DataFrame(v.per_seed)) + [""]
    lines += ["## Which optimizer to pick", "", "From these runs only (a small budget: treat as evidence, not law):", ""]
    lines += [f"- {line}" for line in recommendations(table)] + [""]
    lines += ["## Scenarios", ""]
    for scenario in dict.fromkeys(table["scenario"]):
        rows = _rows(table, scenario)
        info = (infos or {}).get(rows["workload"].iloc[0], {})
        facts = ", ".join(f"{k} {v}" for k, v in (info.get("extras") or {}).items()
                          if isinstance(v, (int, float, str)) and k != "contour")
        tps = rows.groupby("family")["time_per_step"].median()
        lines += [f"### {scenario}", "", info.get("description", rows["workload"].iloc[0]), "",
                  f"Facts: {facts}." if facts else "",
                  "Median training time per step: " + ", ".join(f"{f} {t * 1000:.1f} ms" for f, t in tps.items()) + ".", ""]
        if (out / scenario / "report.html").exists():
            lines += [f"The lab's full report for this scenario (loss curves, time to target, memory): "
                      f"[{scenario}/report.html]({scenario}/report.html).", ""]
        for name in plot_scenario(table, curves, scenario, out):
            lines += [f"![{name}]({name})", ""]
    if meta.get("skipped"):
        lines += ["## Skipped scenarios", ""] + [f"- {s}" for s in meta["skipped"]] + [""]
    lines += ["## All runs", ""]
    cols = ["scenario", "family", "lr", "library_default", "seed", "status", "final", "best", "steps_to_target"]
    lines += _md_table(table[cols].sort_values(["scenario", "family", "lr", "seed"])) + [""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    import html
    import re

    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html(md: str, title: str = "seed-claims", base: Path | None = None) -> str:
    """An HTML page from the report's markdown subset (headings, lists, tables, images, links).

    Images found under ``base`` are embedded as base64, like the lab's own reports, so the
    page opens offline from anywhere (an e-mail attachment, a CI artifact).
    """
    import base64
    import re

    body, table_open, list_open = [], False, False
    for line in md.splitlines():
        if not line.startswith("|") and table_open:
            body.append("</table>")
            table_open = False
        if not line.startswith("- ") and list_open:
            body.append("</ul>")
            list_open = False
        if line.startswith("|"):
            if set(line) <= set("|-"):
                continue
            tag = "th" if not table_open else "td"
            if not table_open:
                body.append("<table>")
                table_open = True
            body.append("<tr>" + "".join(f"<{tag}>{_inline(c.strip())}</{tag}>" for c in line.strip("|").split("|")) + "</tr>")
        elif m := re.match(r"(#+) (.*)", line):
            body.append(f"<h{len(m[1])}>{_inline(m[2])}</h{len(m[1])}>")
        elif m := re.match(r"!\[(.*)\]\((.*)\)", line):
            src = m[2]
            if base is not None and (base / src).is_file():
                src = "data:image/png;base64," + base64.b64encode((base / src).read_bytes()).decode()
            body.append(f'<img src="{src}" alt="{m[1]}">')
        elif line.startswith("- "):
            if not list_open:
                body.append("<ul>")
                list_open = True
            body.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    body.append("</table>" if table_open else "")
    style = ("body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}table{border-collapse:collapse;"
             "font-size:85%}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")


def write_report(table: pd.DataFrame, curves: pd.DataFrame, out: str | Path, meta: dict[str, Any],
                 infos: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write ``report.md``, ``report.html``, ``summary.json`` (the verdicts) and the PNGs into
    ``out``; return the markdown's path.

    The names match the lab's own reports, so ``inertia compare --suite seed-claims`` points
    at the right file; each scenario's lab report lives in ``out/<scenario>/``.
    """
    out = Path(out)
    md = markdown(table, curves, out, meta, infos)
    (out / "report.md").write_text(md, encoding="utf-8")
    (out / "report.html").write_text(to_html(md, base=out), encoding="utf-8")
    # the verdicts as data, for CI checks and for comparing suites across versions
    summary = {"meta": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, list))},
               "verdicts": [{"quote": q, "claim": v.claim, "scenario": v.scenario, "status": v.status,
                             "reason": v.reason} for q, v in verdicts(table)],
               "recommendations": recommendations(table)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return out / "report.md"



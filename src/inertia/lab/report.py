"""Render a comparison from the results database: ``report.md``, ``report.html``, ``summary.json``, PNGs.

:func:`build` reads runs from a :class:`~inertia.lab.store.Store` only (never from live
objects), so ``inertia report DB --out DIR`` regenerates exactly what ``inertia compare``
wrote. The HTML embeds its PNGs as base64 and has no scripts or external links: it opens
offline, from an e-mail attachment, anywhere.

Each workload section gives the verdict (who ranks first and which "A beats B" claims the
seeds support, under :data:`inertia.lab.stats.RULE`), the *why* (zig-zag of trajectories,
noise of the loss curves, cost per update/epoch/second, optimizer memory), the summary table
and the figures.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

from . import plots, stats
from .progress import summary_rows
from .runner import RunRecord
from .store import Store, workload_hash

RANKING = ("Within a workload, entries are ordered by median steps to target, then median final metric "
           "(workloads whose entries differ in cost per step, like minibatch, by median seconds to target). "
           "The order alone is not a claim; only the listed claims are supported by the seeds. Seconds are "
           "wall-clock training time on this machine and move with its other load; steps do not.")

ADVICE = [
    "**Adam is the robust default.** It combines momentum's running average of gradients with "
    "RMSprop's per-coordinate scaling, so one learning rate (1e-3 is the usual start) works across "
    "very different problems; it is the entry to beat, not to tune first.",
    "**SGD with momentum** is the strong alternative when you can tune the learning rate (and decay "
    "it); on narrow valleys the momentum averages the zig-zag away (see the trajectories), and on "
    "vision models it often generalises as well as Adam.",
    "**RMSprop** fixes badly scaled coordinates (the steep wall of a valley) without momentum; it is "
    "Adam without the first moment.",
    "**Plain SGD** is the baseline: on ill-conditioned problems its step is limited by the steepest "
    "direction, so it crawls along the shallow one.",
    "**Mini-batches of 64–512** give most of batch gradient descent's smoothness at a tiny fraction "
    "of its cost per update; batch size 1 updates fastest but its curve is the noisiest.",
    "These conclusions hold for the workloads, budgets and hyperparameters above only: rerun the "
    "comparison on your own problem (`Workload.from_tensors`) before trusting them there.",
]


def _num(x: Any) -> Any:
    """JSON-safe numbers: infinities and NaN become null (strict JSON has neither)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item"):
        return _num(x.item())
    return x


def _infos(store: Store, records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """Workload info per name; two configs under one name (another budget) get distinct names."""
    by_hash: dict[str, dict[str, Any]] = {}
    names: dict[str, set] = {}
    for r in records:
        h = workload_hash(r.workload_config)
        names.setdefault(r.workload, set()).add(h)
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


def _why(workload: str, summary, frame, info: dict[str, Any]) -> list[str]:
    """Measured facts that explain the ranking."""
    g = summary[summary["workload"] == workload]
    out = []
    if info.get("trajectory"):
        parts = [f"{r['optimizer']} {r['detour']:.2f}" for _, r in g.iterrows() if r["detour"] == r["detour"]]
        if parts:
            out.append("Detour (path length / straight-line distance travelled, median over seeds; 1 = straight): "
                       + ", ".join(parts) + ". Plain gradient descent zig-zags between the valley's walls; "
                       "momentum averages the bounces away; RMSprop and Adam rescale the steep coordinate.")
    rough = [f"{r['optimizer']} {r['roughness']:.3f}" for _, r in g.iterrows() if r["roughness"] == r["roughness"]]
    if rough:
        out.append("Noise of the training-loss curve (median |change of log loss| per step): " + ", ".join(rough)
                   + ". Small batches and noisy gradients make jagged curves; full batches make smooth ones.")
    n_train = (info.get("extras") or {}).get("n_train")
    if n_train and g["batch_size"].nunique() > 1:
        parts = []
        for _, r in g.iterrows():
            bs = min(int(r["batch_size"]), n_train)
            per_update = r["time_per_step"]
            parts.append(f"{r['optimizer']}: batch {bs}, {per_update * 1e3:.2f} ms/update, "
                         f"{n_train / bs:.0f} updates/epoch, {per_update * n_train / bs:.2f} s/epoch, "
                         f"{r['steps_per_s']:.0f} updates/s, {r['epochs']:.2f} epochs in the budget")
        out.append("Cost per update, per epoch and per second: " + "; ".join(parts) + ".")
    mem = [f"{r['optimizer']} {r['state_bytes'] / 1024:.1f} KiB" for _, r in g.iterrows()]
    out.append("Optimizer state: " + ", ".join(mem) + " (Adam keeps two moments per weight, momentum one, SGD none).")
    speed = [f"{r['optimizer']} {r['steps_per_s']:.0f}" for _, r in g.iterrows() if r["steps_per_s"] == r["steps_per_s"]]
    if speed:
        out.append("Training steps per second: " + ", ".join(speed) + ".")
    div = g[g["diverged"] > 0]
    for _, r in div.iterrows():
        out.append(f"{r['optimizer']} diverged on {r['diverged']} of {r['seeds']} seeds (loss or gradient became "
                   "NaN/inf); those runs count as never reaching the target.")
    return out


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no runs)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(no runs)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_inline(text: str) -> str:
    """The two bits of markdown the advice uses, for HTML (after escaping)."""
    import re
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}img{max-width:100%;
border:1px solid #eee;margin:.5em 0}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
.verdict{background:#eef6ee;border-left:4px solid #4a4;padding:.5em 1em}code{background:#f4f4f4;padding:0 .2em}
.meta{font-size:.85em;color:#555}"""


def build(store: Store, out: str | Path, keys: Sequence[str] | None = None, title: str = "",
          command: str = "") -> dict[str, Any]:
    """Write the report for these runs (default: all in the store) into ``out``.

    Returns ``{"summary": DataFrame, "runs": DataFrame, "claims": [...], "files": [...]}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = store.runs(keys)
    infos = _infos(store, records)
    frame = stats.run_frame(records, infos)
    summary = stats.summarize(frame, infos) if len(frame) else frame
    claim_list = stats.claims(frame, infos) if len(frame) else []
    verdicts = stats.verdicts(summary, claim_list) if len(frame) else {}
    title = title or "inertia: optimizer comparison"
    devices = sorted({r.device for r in records})
    vers = records[0].versions if records else {}
    seeds = sorted({r.seed for r in records})

    sections = []  # (workload, info, rows, claims, why, figures)
    for workload in dict.fromkeys(frame["workload"]) if len(frame) else []:
        recs = [r for r in records if r.workload == workload]
        wf = frame[frame["workload"] == workload]
        figs = plots.workload_figures(recs, wf, infos[workload], out)
        rows = [{k: v for k, v in row.items() if k != "workload"}
                for row in summary_rows(summary[summary["workload"] == workload])]
        wclaims = [c for c in claim_list if c["workload"] == workload]
        sections.append((workload, infos[workload], rows, wclaims, _why(workload, summary, wf, infos[workload]), figs))

    meta = (f"{len(records)} runs, seeds {seeds}, device {', '.join(devices) or 'n/a'}; inertia "
            f"{vers.get('inertia', '?')}, torch {vers.get('torch', '?')}, Python {vers.get('python', '?')}")

    # ---------------------------------------------------------------- markdown
    md = [f"# {title}\n", f"{meta}.\n"]
    if command:
        md.append(f"Command: `{command}`\n")
    md.append("Numbers are the median over seeds with [min–max] in brackets. Time to target counts training "
              "time only (evaluation excluded); a run that never reaches the target counts as infinite (\"never\").\n")
    md.append(f"**Ranking.** {RANKING}\n")
    md.append(f"**Rule for claims.** {stats.RULE}\n")
    for workload, info, rows, wclaims, why, figs in sections:
        md.append(f"\n## {workload}\n\n{info.get('description', '')}. Target: {info['metric']} "
                  f"{'>=' if info['higher_is_better'] else '<='} {info['target']:g}; budget {info['steps']} steps, "
                  f"evaluated every {info['eval_every']}.\n")
        md.append(f"**Verdict.** {verdicts.get(workload, '')}\n")
        md.append(_md_table(rows))
        if wclaims:
            md.append("Claims the seeds support:\n")
            md += [f"- {c['winner']} beats {c['loser']} on {c['criterion']}" for c in wclaims]
            md.append("")
        else:
            md.append("No pairwise claim is supported by the seeds.\n")
        md.append("**Why.**\n")
        md += [f"- {w}" for w in why]
        md.append("")
        for caption, path in figs:
            md.append(f"![{caption}]({path.name})\n")
    md.append("\n## Which optimizer to pick\n")
    md += [f"- {a}" for a in ADVICE]
    (out / "report.md").write_text("\n".join(md) + "\n")

    # ---------------------------------------------------------------- html
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
         f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>"]
    if command:
        h.append(f"<p class='meta'>Command: <code>{html.escape(command)}</code></p>")
    h.append("<p>Numbers are the median over seeds with [min–max] in brackets. Time to target counts training "
             "time only; a run that never reaches the target counts as infinite (“never”).</p>")
    h.append(f"<p><strong>Ranking.</strong> {html.escape(RANKING)}</p>")
    h.append(f"<p><strong>Rule for claims.</strong> {html.escape(stats.RULE)}</p>")
    for workload, info, rows, wclaims, why, figs in sections:
        h.append(f"<h2>{html.escape(workload)}</h2><p>{html.escape(info.get('description', ''))}. Target: "
                 f"{html.escape(info['metric'])} {'&ge;' if info['higher_is_better'] else '&le;'} {info['target']:g}; "
                 f"budget {info['steps']} steps, evaluated every {info['eval_every']}.</p>")
        h.append(f"<p class='verdict'><strong>Verdict.</strong> {html.escape(verdicts.get(workload, ''))}</p>")
        h.append(_html_table(rows))
        if wclaims:
            h.append("<p>Claims the seeds support:</p><ul>" + "".join(
                f"<li>{html.escape(c['winner'])} beats {html.escape(c['loser'])} on {c['criterion']}</li>"
                for c in wclaims) + "</ul>")
        else:
            h.append("<p>No pairwise claim is supported by the seeds.</p>")
        h.append("<p><strong>Why.</strong></p><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in why) + "</ul>")
        for caption, path in figs:
            data = base64.b64encode(path.read_bytes()).decode()
            h.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    h.append("<h2>Which optimizer to pick</h2><ul>" + "".join(f"<li>{_md_inline(a)}</li>" for a in ADVICE) + "</ul>")
    h.append("</body></html>")
    (out / "report.html").write_text("".join(h))

    # ---------------------------------------------------------------- json
    files = ["report.html", "report.md", "summary.json"] + [p.name for s in sections for _, p in s[5]]
    doc = {
        "title": title, "command": command, "rule": stats.RULE, "devices": devices, "versions": vers,
        "workloads": {w: {k: v for k, v in info.items() if k != "extras"} | {
            "extras": {k: v for k, v in (info.get("extras") or {}).items() if k != "contour"}}
            for w, info in infos.items()},
        "summary": [{k: _num(v) for k, v in row.items()} for row in summary.to_dict("records")] if len(frame) else [],
        "runs": [{k: _num(v) for k, v in row.items()} for row in frame.to_dict("records")] if len(frame) else [],
        "claims": [{k: v for k, v in c.items() if k != "evidence"} | {
            "evidence": [[_num(x) for x in side] for side in c["evidence"]]} for c in claim_list],
        "verdicts": verdicts, "files": files,
    }
    (out / "summary.json").write_text(json.dumps(doc, indent=2, allow_nan=False, default=str))
    return {"summary": summary, "runs": frame, "claims": claim_list, "verdicts": verdicts,
            "files": [out / f for f in files]}

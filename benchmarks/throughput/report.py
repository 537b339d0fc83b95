"""A run's report: its JSON round trip (the ``Timings`` of every table kept whole), the
Markdown file, the chart of the main table, and ``render`` (both again from the JSON)."""
from __future__ import annotations

import json
from pathlib import Path

from .markdown import clip_markdown, first_step_markdown, loop_markdown, main_markdown, \
    modern_markdown, small_markdown
from .timing import Timings, quartiles


def timings_json(t: Timings) -> dict:
    return {"samples": t.samples, "mean": t.mean, "inner": t.inner,
            "steps_per_block": t.steps_per_block, "skipped": t.skipped}


def timings_from(d: dict) -> Timings:
    return Timings(d["samples"], d["mean"], d["inner"], d["steps_per_block"],
                   d.get("skipped", {}))


def to_json(report: dict) -> dict:
    out = {k: v for k, v in report.items() if k not in ("main", "small", "loop", "clip")}
    if "main" in report:
        out["main"] = [{**{k: v for k, v in r.items() if k != "timings"},
                        "timings": timings_json(r["timings"])} for r in report["main"]]
    for key in ("small", "loop"):
        if key in report:
            out[key] = {k: timings_json(v) for k, v in report[key].items()}
    if "clip" in report:
        out["clip"] = {"timings": timings_json(report["clip"][0]), "n": report["clip"][1]}
    if report.get("threads"):
        out["threads"] = to_json(report["threads"])
    return out


def from_json(d: dict) -> dict:
    out = dict(d)
    if "main" in d:
        out["main"] = [{**r, "timings": timings_from(r["timings"])} for r in d["main"]]
    for key in ("small", "loop"):
        if key in d:
            out[key] = {k: timings_from(v) for k, v in d[key].items()}
    if "clip" in d:
        out["clip"] = (timings_from(d["clip"]["timings"]), d["clip"]["n"])
    if d.get("threads"):
        out["threads"] = from_json(d["threads"])
    return out


def render(path: Path) -> None:
    """Write the Markdown and the chart again from a run's JSON (no new measurement)."""
    report = from_json(json.loads(path.read_text()))
    cmd = report["config"]["command"]
    if report["config"].get("note") and report["config"]["note"] in cmd:
        report["config"]["command"] = cmd.replace(report["config"]["note"], '"..."')
    write_markdown(report, path.with_suffix(".md"))
    if "main" in report:
        chart(report, path.with_suffix(".png"))


def write_markdown(report: dict, path: Path) -> str:
    cfg = report["config"]
    n = cfg["n"]
    cuda = cfg["device"] == "cuda"
    L = [f"# Optimizer step throughput ({'quick' if cfg['quick'] else 'full'} run, "
         f"{cfg['device']})", "",
         f"Machine: {cfg['machine']}. torch {cfg['torch']}, {cfg['threads']} torch threads; "
         f"inertia's CPU runner: **{cfg['runner']}**. Peers: {cfg['peers']}. "
         f"{cfg['rounds']} interleaved rounds per table, blocks of about {cfg['block']:g} s. "
         f"Started {cfg['started']} (load {cfg['load_start']}), finished {report['finished']} "
         f"(load {report['load_end']}); command `{cfg['command']}`.", "",
         *([cfg["note"], ""] if cfg.get("note") else []),
         "Medians over rounds with the interquartile range in brackets; ratios are ratios of "
         "medians with the interquartile range of the per-round ratios. Every number below "
         "was measured in this run; ratios only compare contenders of the same table.", ""]
    if not cuda:
        L += ["GPU: **not run** (no GPU on this machine). `--device cuda` measures the same "
              "tables on a GPU (100M parameters by default, torch fused with "
              "`capturable=True` and CUDA-graph replays on the small model, a copy roofline) "
              "and writes `step_throughput_cuda.md`.", ""]
    if "main" in report:
        L += main_markdown(report, n, cuda)
    if "small" in report:
        L += small_markdown(report)
    if "loop" in report:
        L += loop_markdown(report)
    if "clip" in report:
        L += clip_markdown(report)
    if "first_step" in report:
        L += first_step_markdown(report)
    if "modern" in report:
        L += modern_markdown(report)
    text = "\n".join(L) + "\n"
    path.write_text(text)
    return text


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, n = report["main"], report["config"]["n"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    x = list(range(len(rows)))
    w = 0.27

    def bar(offset, key_of, label, **kw):
        meds, lo, hi = [], [], []
        for r in rows:
            key = key_of(r)
            if key is None:
                meds.append(0), lo.append(0), hi.append(0)
                continue
            t = r["timings"]
            q1, q3 = quartiles(t.samples[key])
            m = n / t.median(key) / 1e6
            meds.append(m), lo.append(m - n / q3 / 1e6), hi.append(n / q1 / 1e6 - m)
        ax.bar([i + offset for i in x], meds, w, yerr=[lo, hi], label=label, capsize=2, **kw)

    bar(-w, lambda r: "inertia", "inertia (default)")
    bar(0, lambda r: "inertia unchecked", "inertia, nonfinite=None")
    bar(w, lambda r: r["best"], "best peer")
    for i, r in enumerate(rows):
        roof = max(r["bandwidth"].values()) / r["bytes"] / 1e6
        ax.hlines(roof, i - 1.5 * w, i + 1.5 * w, colors="k", linestyles="dashed",
                  label="roofline" if i == 0 else None)
    ax.set_xticks(x, [r["name"] for r in rows], rotation=25, ha="right")
    ax.set_ylabel("Mparam/s (median, IQR)")
    ax.set_title(f"Step throughput, {n / 1e6:.1f}M float32 params, "
                 f"{report['config']['device']}, {report['config']['threads']} torch thread(s)")
    ax.legend(fontsize=8)

    threads = {r["name"]: r for r in (report.get("threads") or {}).get("main", [])}
    bx.bar([i - w / 2 for i in x], [r["vs_best"][0] if r["vs_best"] else 0 for r in rows], w,
           label=f"inertia ({report['config']['runner']} runner)")
    if threads:
        bx.bar([i + w / 2 for i in x],
               [threads[r["name"]]["vs_best"][0] if r["name"] in threads
                and threads[r["name"]]["vs_best"] else 0 for r in rows], w,
               label="inertia (Python threads, INERTIA_NATIVE=0)")
    bx.axhline(0.95, color="r", lw=0.8, ls="--", label="target 0.95x")
    bx.axhline(2.0, color="g", lw=0.8, ls="--", label="target 2x (Lion, LAMB, LARS, RMSprop)")
    bx.set_xticks(x, [r["name"] for r in rows], rotation=25, ha="right")
    bx.set_ylabel("speed vs best peer (same process)")
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


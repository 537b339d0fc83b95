"""The Markdown tables of the sections, one function per section (``report.write_markdown``
puts them together), and the number formats they share."""
from __future__ import annotations

import statistics

from .modern import TARGET
from .problems import CLIP_BYTES, PROBE_BYTES, TWO_X
from .timing import Timings, inverse, quartiles


def _rate(t: Timings, name: str, n: int) -> str:
    """Mparam/s as 'median (q1-q3)'."""
    q1, q3 = quartiles(t.samples[name])
    return f"{n / t.median(name) / 1e6:.0f} ({n / q3 / 1e6:.0f}-{n / q1 / 1e6:.0f})"


def _us(t: Timings, name: str, inner: bool = False, scale: float = 1e6, digits: int = 0) -> str:
    xs = (t.inner if inner else t.samples)[name]
    q1, q3 = quartiles(xs)
    return (f"{statistics.median(xs) * scale:.{digits}f} "
            f"({q1 * scale:.{digits}f}-{q3 * scale:.{digits}f})")


def _x(r, digits: int = 2) -> str:
    def f(v):
        return f"{v:.{digits}f}" if v >= 0.1 else f"{v:.2g}"
    return f"{f(r[0])}x ({f(r[1])}-{f(r[2])})"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _load(report: dict, name: str) -> str:
    d = report.get("load", {}).get(name)
    if not d:
        return ""
    b, a = d["before"], d["after"]
    return (f"Load average (1/5/15 min) before {b[0]:.2f}/{b[1]:.2f}/{b[2]:.2f}, after "
            f"{a[0]:.2f}/{a[1]:.2f}/{a[2]:.2f}; {d['seconds']:.0f} s.")


def main_markdown(report, n, cuda) -> list[str]:
    cfg = report["config"]
    rows = report["main"]
    L = [f"## Default step, {n / 1e6:.1f}M float32 parameters in {cfg['tensors']} "
         "transformer-shaped tensors", "",
         _load(report, "main"), "",
         "*inertia* is the default step (`nonfinite=\"guard\"`); *unchecked* is "
         "`nonfinite=None`; *guard cost* = time(default) / time(unchecked). *vs best peer* = "
         "time(best peer) / time(inertia), higher is better. GB/s = bytes per parameter at "
         "the memory floor x parameters / time; *of roofline* = that over the higher of the "
         "two bandwidth probes of the same rounds.", "",
         "| optimizer | B/param | inertia Mparam/s | unchecked Mparam/s | guard cost "
         "(target <= 1.05x) | best peer, Mparam/s | vs best peer | target | GB/s | "
         "of roofline | path |",
         "|---|---:|---:|---:|---:|---|---:|---|---:|---:|---|"]
    for r in rows:
        t = r["timings"]
        roof = max(r["bandwidth"].values())
        gbs = r["bytes"] * n / t.median("inertia") / 1e9
        best = f"{r['best']} {_rate(t, r['best'], n)}" if r["best"] else "-"
        need = 2.0 if r["name"] in TWO_X else 0.95
        vs = _x(r["vs_best"]) if r["vs_best"] else "-"
        met = _met(r["vs_best"][0] >= need) if r["vs_best"] else "-"
        if cuda and r["name"] in ("SGD", "Adam", "AdamW") and "torch fused" in t.samples:
            # the GPU targets: >= 1.0x torch fused and >= 0.85x the copy roofline
            fused = inverse(t.ratio("inertia", "torch fused"))
            of_copy = r["bytes"] * n / t.median("inertia") / r["bandwidth"]["copy"]
            met += (f"; >= 1.0x torch fused: {_met(fused[0] >= 1.0)} ({_x(fused)}); >= 0.85x "
                    f"copy: {_met(of_copy >= 0.85)} ({of_copy:.2f})")
        paths = ", ".join(f"{k} {v}" for k, v in sorted(r["paths"].items()))
        L.append(f"| {r['name']} | {r['bytes']} | {_rate(t, 'inertia', n)} | "
                 f"{_rate(t, 'inertia unchecked', n)} | {_x(r['guard'], 3)} "
                 f"{_met(r['guard'][0] <= 1.05)} | {best} | {vs} | >= {need:g}x: {met} | "
                 f"{gbs:.1f} | {gbs * 1e9 / roof:.2f} | {paths} |")
    bws = [r["bandwidth"] for r in rows]
    L += ["", "Bandwidth probes in the same rounds (GB/s, median per table, range over the "
          "tables): " + "; ".join(
              f"{k} {min(b[k] for b in bws) / 1e9:.1f}-{max(b[k] for b in bws) / 1e9:.1f}"
              for k in PROBE_BYTES if all(k in b for b in bws)) + ".", "",
          "### Every contender, Mparam/s", "",
          "| optimizer | contenders (median, interquartile range) | skipped |", "|---|---|---|"]
    for r in rows:
        t = r["timings"]
        L.append(f"| {r['name']} | " + "; ".join(
            f"{k} {_rate(t, k, n)}" for k in t.samples if k not in PROBE_BYTES)
            + " | " + ("; ".join(f"{k}: {v}" for k, v in t.skipped.items()) or "-") + " |")
    threads = report.get("threads")
    if threads and "main" in threads:
        L += ["", "### What the C++ runner buys: the same table with `INERTIA_NATIVE=0` "
              "(Python threads)", "",
              "A child process of this run, after the table above. "
              + _load(threads, "main") + " The child times the best peer of each row above "
              "again: each ratio is within its own process; the absolute rates of two "
              "processes on a shared machine compare only roughly.",
              "", "| optimizer | native: vs best peer | threads: vs the same peer | native: "
              "inertia Mparam/s | threads: inertia Mparam/s | threads: guard cost |",
              "|---|---:|---:|---:|---:|---:|"]
        theirs = {r["name"]: r for r in threads["main"]}
        for r in rows:
            o = theirs.get(r["name"])
            if o is None:
                continue
            L.append(f"| {r['name']} | {_x(r['vs_best']) if r['vs_best'] else '-'} "
                     f"({r['best']}) | {_x(o['vs_best']) if o['vs_best'] else '-'} "
                     f"({o['best']}) | {_rate(r['timings'], 'inertia', n)} | "
                     f"{_rate(o['timings'], 'inertia', n)} | {_x(o['guard'], 3)} |")
    L.append("")
    return L


def small_markdown(report) -> list[str]:
    L = ["## Small model: 100 tensors x 1k float32 elements, microseconds per step", "",
         _load(report, "small"), "",
         "| optimizer | contender | us per step | time / torch's (target for inertia's "
         "default: <= 1.2x) |",
         "|---|---|---:|---:|"]
    for name, t in report["small"].items():
        for k in t.samples:
            base = _small_baseline(k, t)
            ratio = t.ratio(k, base) if base else None
            mine = k == "inertia" or k == "inertia, CUDA graph"
            target = f" {_met(ratio[0] <= 1.2)}" if ratio and mine else ""
            L.append(f"| {name} | {k} | {_us(t, k)} | "
                     + (f"{_x(ratio)} {base}{target}" if ratio else "-") + " |")
    L.append("")
    return L


def _small_baseline(contender: str, t: Timings) -> str | None:
    """What a small-model contender is compared with: torch fused (``capturable=True`` where
    it exists, on CUDA), a CUDA-graph replay with torch's graph replay."""
    if contender.endswith(", CUDA graph"):
        return next((k for k in t.samples if k.startswith("torch") and k.endswith("graph")),
                    None)
    return next((k for k in ("torch fused capturable", "torch fused") if k in t.samples), None)


def loop_markdown(report) -> list[str]:
    L = ["## Training loop: a 5.25M-parameter MLP (batch 32), the step right after backward",
         "", _load(report, "loop"), "",
         "Each iteration: `zero_grad(set_to_none=True)`, forward, backward, `step()`; the step "
         "is timed on its own. *step alone* is the same optimizer on fixed gradients with no "
         "backward before it: the difference is what the backward pass's threads cost the "
         "step. Milliseconds.", "",
         "| optimizer | contender | step after backward | step alone | iteration | "
         "step vs torch fused's step |", "|---|---|---:|---:|---:|---:|"]
    L += _loop_rows(report["loop"])
    threads = report.get("threads")
    if threads and "loop" in threads:
        L += ["", "With `INERTIA_NATIVE=0` (Python threads), in the child process. "
              + _load(threads, "loop"), "",
              "| optimizer | contender | step after backward | step alone | iteration | "
              "step vs torch fused's step |", "|---|---|---:|---:|---:|---:|"]
        L += _loop_rows(threads["loop"])
    L.append("")
    return L


def _loop_rows(loop) -> list[str]:
    L = []
    for name, t in loop.items():
        for who in ("inertia", "torch fused"):
            vs = inverse(t.ratio(who, "torch fused", inner=True))
            L.append(f"| {name} | {who} | {_us(t, who, True, 1e3, 2)} | "
                     f"{_us(t, who + ', step alone', True, 1e3, 2)} | "
                     f"{_us(t, who, False, 1e3, 1)} | {_x(vs)} |")
    return L


def clip_markdown(report) -> list[str]:
    t, n = report["clip"]
    ours, theirs = "inertia max_grad_norm=1.0", "torch clip_grad_norm_ + fused AdamW"
    vs = inverse(t.ratio(ours, theirs))
    roof = max(PROBE_BYTES[k] * n / t.median(k) for k in PROBE_BYTES)
    L = [f"## Clipping: AdamW, global norm 1.0, {n / 1e6:.1f}M parameters", "",
         _load(report, "clip"), "",
         f"inertia clipped is **{_x(vs)}** faster than `clip_grad_norm_(foreach=True)` + "
         f"`torch.optim.AdamW(fused=True)`: target >= 1.15x, {_met(vs[0] >= 1.15)} (the limit "
         f"is 40/32 = 1.25x: one read of the gradients saved out of eight arrays of traffic)."
         + (" A ratio above that limit does not come from memory traffic: torch's passes "
            "stalled on this machine (see the note above)." if vs[0] > 1.3 else ""),
         "", "| contender | Mparam/s (probes: Melem/s) | B/param | GB/s | of roofline |",
         "|---|---:|---:|---:|---:|"]
    nbytes = {ours: CLIP_BYTES["inertia"], theirs: CLIP_BYTES["torch"],
              "inertia, no clipping": 28, "torch fused AdamW, no clipping": 28}
    for k in t.samples:
        b = nbytes.get(k) or PROBE_BYTES[k]
        gbs = b * n / t.median(k) / 1e9
        L.append(f"| {k} | {_rate(t, k, n)} | {b} | {gbs:.1f} | {gbs * 1e9 / roof:.2f} |")
    L += ["", f"Clipping's own cost: inertia {_x(t.ratio(ours, 'inertia, no clipping'))}, "
          f"torch {_x(t.ratio(theirs, 'torch fused AdamW, no clipping'))} (time with / "
          "without).", ""]
    return L


def first_step_markdown(report) -> list[str]:
    fs = report["first_step"]
    cfg = report["config"]
    L = ["## The first step in a fresh process (seconds)", "", _load(report, "first step"), "",
         "Two fresh processes share new, empty cache directories: *cold* compiles every kernel"
         + (" and builds the native runner (empty `TORCH_EXTENSIONS_DIR`)" if cfg["cold_native"]
            else " (the native runner was already built: `--quick` does not rebuild it)")
         + "; *warm* loads them. Each optimizer's first step is taken on two small tensors, "
         "one optimizer after the other in the same process.", ""]
    if any("error" in fs.get(k, {}) for k in ("cold", "warm")):
        L += [f"Failed: {fs}", ""]
        return L
    cold, warm = fs["cold"], fs["warm"]
    L += ["| | cold | warm |", "|---|---:|---:|"]
    for key in ("import torch", "import inertia", "runner load", "process"):
        if key in cold:
            L.append(f"| {key} | {cold[key]:.2f} | {warm[key]:.2f} |")
    for name in cold["steps"]:
        c, w = cold["steps"][name], warm["steps"][name]
        L.append(f"| {name}: first step (second) | {c[0]:.2f} ({c[1] * 1e3:.2f} ms) | "
                 f"{w[0]:.2f} ({w[1] * 1e3:.2f} ms) |")
    L += ["", f"Runner: {cold.get('runner', '-')} (cold), {warm.get('runner', '-')} (warm).", ""]
    return L


def modern_markdown(report) -> list[str]:
    """The newer optimizers against their peers, float32 and bfloat16, and their state bytes."""
    m = report["modern"]
    lines = ["## Modern optimizers: step time against torch.optim and the packages they "
             "replace", "", _load(report, "modern"), "",
             f"{m['threads']} torch thread(s). Problem: a transformer of width {m['width']}, "
             f"about {m['params'] / 1e6:.1f}M parameters (Muon: its matrices only), fixed "
             f"gradients; {m['rounds']} rounds of about {m['block']} s blocks per "
             "contender. CPU figures only (this section runs on the CPU).", "",
             "Speed-up = the peer's median step time / inertia's (> 1: inertia faster), with "
             "the interquartile range of the per-round ratios. Target: the issue's (2x over "
             "the best peer for Muon, Adafactor, Schedule-Free; 1.5x over torch's fastest "
             "step for NAdam, RAdam, Adamax, Adadelta). Load average (1 min) before / after "
             "each row: the machine is shared with other jobs.", "",
             "| optimizer | dtype | params (tensors) | inertia ms | peers: ms (speed-up [IQR]) "
             "| best peer | met | load |", "|---|---|---|---|---|---|---|---|"]
    for key, row in m["results"].items():
        name, dtype = key.rsplit(" ", 1)
        med = row["median_s"]
        peers = [c for c in med if c != "inertia"]
        cells = "; ".join(f"{c} {1e3 * med[c]:.2f} ({row['speedup'][c][0]:.2f}x "
                          f"[{row['speedup'][c][1]:.2f}, {row['speedup'][c][2]:.2f}])"
                          for c in peers) if "inertia" in med else "-"
        for c, why in row["skipped"].items():
            cells += f"; {c}: skipped ({why})"
        best = min(peers, key=lambda c: med[c]) if peers else None
        got = row["speedup"][best][0] if best and "inertia" in med else float("nan")
        met = "yes" if got >= TARGET[name] else "no"
        load = m["load"][key]
        lines.append(f"| {name} | {dtype} | {row['n'] / 1e6:.2f}M ({row['tensors']}) | "
                     f"{1e3 * med.get('inertia', float('nan')):.2f} | {cells} | "
                     f"{best} {got:.2f}x | {met} (>= {TARGET[name]}x) | "
                     f"{load['before'][0]:.1f} / {load['after'][0]:.1f} |")
    lines += ["", "### Optimizer state, bytes per parameter (float32, after one step)", "",
              "| optimizer | " + " | ".join(["inertia", "peers"]) + " |", "|---|---|---|"]
    for name, per in m["state_bytes"].items():
        # (0 for a peer: its state is not tensors in ``optimizer.state``, heavyball's)
        fmt = lambda v: (f"{v:.2f}" if v else "n/a") if isinstance(v, float) else str(v)  # noqa: E731
        lines.append(f"| {name} | {fmt(per.get('inertia'))} | "
                     + "; ".join(f"{c} {fmt(v)}" for c, v in per.items() if c != "inertia")
                     + " |")
    lines.append("")
    return lines

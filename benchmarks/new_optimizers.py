"""Step time of the modern optimizers (issue 16) against torch.optim and the packages they replace.

    python benchmarks/new_optimizers.py [--quick] [--rounds R] [--block S] [--width W]
                                        [--params N] [--threads T] [--only NAME ...] [--tag T]

Contenders, each optimizer's default step as a user writes it, in one process and in the
same rounds (the timing method of ``step_throughput.py``: per round every contender once,
for a block of about ``--block`` seconds, in an order rotated each round; a round's sample
is the median step of its block; reported the median over rounds, ratios of medians and the
interquartile range of the per-round ratios; the load average before and after each
section, since the machine may be shared):

* **Muon** on the 2-D weights of a transformer (per layer of width d: four d x d, d x 4d,
  4d x d) against ``torch.optim.Muon`` (a loop over matrices) and heavyball's ``Muon``
  (``compile_step=True``); inertia batches the Newton-Schulz matmuls of equal shapes.
* **Adafactor** on the whole transformer (matrices and vectors) against
  ``torch.optim.Adafactor`` (for-loop and foreach).
* **AdamWScheduleFree / SGDScheduleFree** against the ``schedulefree`` package's (foreach)
  and heavyball's ``SFAdamW``.
* **NAdam, RAdam, Adamax, Adadelta** against torch.optim's foreach and for-loop steps (torch
  has no fused CPU kernel for them).

Each in float32 and in bfloat16 parameters (optimizer state in the parameter's dtype for
every library, as torch keeps it). ``--threads`` sets torch's intra-op threads (default 1:
on a shared machine a parallel region whose second thread loses its core stalls a step). Also reported, not timed: bytes of optimizer state
per parameter. Writes ``benchmarks/results/new_optimizers[_quick].md`` and ``.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import step_throughput as B  # noqa: E402  (the timing method and the problem shapes)

import inertia  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _peer(module: str, attr: str) -> Callable | None:
    try:
        return getattr(__import__(module), attr)
    except (ImportError, AttributeError):
        return None


def _train(opt):
    opt.train()  # schedule-free optimizers step in train mode
    return opt


def contenders(name: str) -> dict[str, Callable]:
    """``label -> make(params)`` for one optimizer: inertia first, then its peers."""
    sf = _peer("schedulefree", "AdamWScheduleFree"), _peer("schedulefree", "SGDScheduleFree")
    hb_muon, hb_sf = _peer("heavyball", "Muon"), _peer("heavyball", "SFAdamW")
    torch_cls = getattr(torch.optim, name, None)
    kw = {"Muon": dict(lr=0.02), "Adafactor": dict(lr=1e-2), "NAdam": dict(lr=2e-3),
          "RAdam": dict(lr=1e-3), "Adamax": dict(lr=2e-3), "Adadelta": dict(lr=1.0),
          "AdamWScheduleFree": dict(lr=2.5e-3, weight_decay=0.01),
          "SGDScheduleFree": dict(lr=1.0, weight_decay=0.01)}[name]
    out: dict[str, Callable] = {"inertia": lambda ps: getattr(inertia, name)(ps, **kw)}
    if name == "Muon":
        out["torch"] = lambda ps: torch.optim.Muon(ps, **kw)
        if hb_muon is not None:
            out["heavyball"] = lambda ps: hb_muon(ps, lr=0.02, betas=(0.95, 0.95),
                                                  weight_decay=0.1, compile_step=True)
    elif name == "AdamWScheduleFree":
        if sf[0] is not None:
            out["schedulefree"] = lambda ps: _train(sf[0](ps, **kw, foreach=True))
        if hb_sf is not None:
            out["heavyball"] = lambda ps: hb_sf(ps, **kw, betas=(0.9, 0.999), eps=1e-8,
                                                compile_step=True)
    elif name == "SGDScheduleFree":
        if sf[1] is not None:
            out["schedulefree"] = lambda ps: _train(sf[1](ps, **kw, foreach=True))
    else:
        out["torch foreach"] = lambda ps: torch_cls(ps, **kw, foreach=True)
        out["torch for-loop"] = lambda ps: torch_cls(ps, **kw, foreach=False)
    return out


def muon_shapes(total: float, width: int) -> list[tuple[int, int]]:
    return [s for s in B.transformer_shapes(total, width) if len(s) == 2]


def builder(make: Callable, shapes, dtype, regrad: bool) -> B.Builder:
    """A contender on parameters of ``dtype`` (with ``step_throughput``'s fixed gradients);
    ``regrad``: the gradients given back before each step (heavyball clears them)."""
    def build() -> B.Step:
        params = B.make_params(shapes, "cpu")
        for p in params:
            p.data, p.grad = p.data.to(dtype), p.grad.to(dtype)
        opt = make(params)
        grads = [p.grad for p in params]

        def step():
            if regrad:
                for p, g in zip(params, grads):
                    p.grad = g
            opt.step()
        step.opt, step.params = opt, params  # type: ignore[attr-defined]
        return step
    return build


def state_bytes(make: Callable, shapes) -> float:
    """Bytes of optimizer state per parameter after one float32 step (tensors only)."""
    params = B.make_params(shapes, "cpu")
    opt = make(params)
    for p in params:  # heavyball clears gradients; give them each time
        p.grad = p.grad if p.grad is not None else torch.zeros_like(p)
    opt.step()
    seen, total = set(), 0
    for state in opt.state.values():
        for v in state.values() if isinstance(state, dict) else ():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and id(v) not in seen:
                seen.add(id(v))
                total += v.numel() * v.element_size()
    return total / sum(math.prod(s) for s in shapes)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    names = args.only or ["Muon", "Adafactor", "AdamWScheduleFree", "SGDScheduleFree",
                          "NAdam", "RAdam", "Adamax", "Adadelta"]
    report: dict = {"machine": B._machine(), "versions": B._versions(),
                    "torch": torch.__version__, "threads": args.threads,
                    "params": args.params, "width": args.width, "rounds": args.rounds,
                    "block": args.block, "results": {}, "state_bytes": {}}
    for name in names:
        shapes = (muon_shapes if name == "Muon" else B.transformer_shapes)(args.params, args.width)
        makes = contenders(name)
        report["state_bytes"][name] = {}
        for label, make in makes.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    report["state_bytes"][name][label] = state_bytes(make, shapes)
                except Exception as error:  # noqa: BLE001 - reported, the rest goes on
                    report["state_bytes"][name][label] = f"{type(error).__name__}"
        for dname, dtype in DTYPES.items():
            key = f"{name} {dname}"
            with B.section(report, key):
                builders = {label: builder(make, shapes, dtype, regrad=label == "heavyball")
                            for label, make in makes.items()}
                t = B.interleaved(builders, args.rounds, args.block, "cpu")
            row = {"n": sum(math.prod(s) for s in shapes), "tensors": len(shapes),
                   "median_s": {c: t.median(c) for c in t.samples},
                   "samples": t.samples, "skipped": t.skipped}
            if "inertia" in t.samples:
                row["speedup"] = {c: _inv(t.ratio("inertia", c)) for c in t.samples
                                  if c != "inertia"}
            report["results"][key] = row
            print(f"   {key}: " + ", ".join(f"{c} {1e3 * m:.2f} ms"
                                             for c, m in row["median_s"].items()), flush=True)
    return report


def _inv(r):
    """time(inertia)/time(peer) as the peer's time over inertia's (a speed-up), with the
    per-round quartiles inverted in turn."""
    return 1 / r[0], 1 / r[2], 1 / r[1]


TARGET = {"Muon": 2.0, "Adafactor": 2.0, "AdamWScheduleFree": 2.0, "SGDScheduleFree": 2.0,
          "NAdam": 1.5, "RAdam": 1.5, "Adamax": 1.5, "Adadelta": 1.5}


def markdown(report: dict, seconds: float) -> str:
    lines = ["# Modern optimizers: step time against torch.optim and the packages they replace",
             "", f"`python benchmarks/new_optimizers.py {report['argv']}` "
             f"({seconds:.0f} s). Machine: {report['machine']}; torch {report['torch']}, "
             f"{report['threads']} torch thread(s); {report['versions']}. "
             f"Problem: a transformer of width {report['width']}, about "
             f"{report['params'] / 1e6:.1f}M parameters (Muon: its matrices only), fixed "
             f"gradients; {report['rounds']} rounds of about {report['block']} s blocks per "
             "contender. No GPU here: CPU figures only.", "",
             "Speed-up = the peer's median step time / inertia's (> 1: inertia faster), with "
             "the interquartile range of the per-round ratios. Target: the issue's (2x over "
             "the best peer for Muon, Adafactor, Schedule-Free; 1.5x over torch's fastest "
             "step for NAdam, RAdam, Adamax, Adadelta). Load average (1 min) before / after "
             "each row: the machine is shared with other jobs.", "",
             "| optimizer | dtype | params (tensors) | inertia ms | peers: ms (speed-up [IQR]) "
             "| best peer | met | load |", "|---|---|---|---|---|---|---|---|"]
    for key, row in report["results"].items():
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
        load = report["load"][key]
        lines.append(f"| {name} | {dtype} | {row['n'] / 1e6:.2f}M ({row['tensors']}) | "
                     f"{1e3 * med.get('inertia', float('nan')):.2f} | {cells} | "
                     f"{best} {got:.2f}x | {met} (>= {TARGET[name]}x) | "
                     f"{load['before'][0]:.1f} / {load['after'][0]:.1f} |")
    lines += ["", "## Optimizer state, bytes per parameter (float32, after one step)", "",
              "| optimizer | " + " | ".join(["inertia", "peers"]) + " |", "|---|---|---|"]
    for name, per in report["state_bytes"].items():
        # (0 for a peer: its state is not tensors in ``optimizer.state``, heavyball's)
        fmt = lambda v: (f"{v:.2f}" if v else "n/a") if isinstance(v, float) else str(v)  # noqa: E731
        lines.append(f"| {name} | {fmt(per.get('inertia'))} | "
                     + "; ".join(f"{c} {fmt(v)}" for c, v in per.items() if c != "inertia")
                     + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small problem, few rounds")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--block", type=float, default=None, help="seconds per contender block")
    ap.add_argument("--params", type=float, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--tag", default="", help="suffix of the result files (a partial rerun)")
    args = ap.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (3 if quick else 7)
    args.block = args.block or (0.1 if quick else 0.3)
    args.params = args.params or (2e5 if quick else 2e6)
    args.width = args.width or (128 if quick else 256)
    start = time.perf_counter()
    report = run(args)
    report["argv"] = " ".join(argv)
    seconds = report["seconds"] = time.perf_counter() - start
    out = B.RESULTS / f"new_optimizers{'_quick' if quick else ''}{'_' + args.tag if args.tag else ''}"
    out.parent.mkdir(exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, default=str))
    text = markdown(report, seconds)
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

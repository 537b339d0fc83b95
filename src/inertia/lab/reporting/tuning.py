"""The tuning part of a report: what each study searched, found and cost, in words, a table and a plot.

Reads the stored studies (:meth:`inertia.lab.store.Store.tunings`) scored by
:mod:`inertia.lab.scoring.tuning`; nothing here trains or imports Optuna.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import format as fmt
from . import plots
from .document import Paragraph, Table


def _range(space: dict[str, Any]) -> str:
    return f"{fmt.lr(space['low'])}–{fmt.lr(space['high'])}"


def searched(study: dict[str, Any]) -> str:
    """The lr range a study searched, with the widened part when there is one."""
    plan = study["plan"]
    text = f"{_range(plan['space'])} around its {_CENTRE[plan['space']['centre_from']]} {fmt.lr(plan['space']['centre'])}"
    p2 = study.get("phase2") or {}
    if p2.get("widened"):
        text += f", widened {'down' if p2['widened'] == 'down' else 'up'} to {_range(p2)}"
    return text


_CENTRE = {"default": "library default", "entry": "typed lr", "workload": "workload's lr"}


def knobs_text(hparams: dict[str, Any]) -> str:
    """The chosen values other than lr (``momentum 0.95``), or an empty string."""
    parts = []
    for k, v in hparams.items():
        if k == "lr":
            continue
        if isinstance(v, (list, tuple)):
            v = "(" + ", ".join(fmt.number(float(x), 4) for x in v) + ")"
        elif isinstance(v, float):
            v = fmt.number(v, 3)
        parts.append(f"{k} {v}")
    return ", ".join(parts)


def band_text(b: dict[str, Any] | None, metric: str) -> str:
    if not b:
        return "n/a (too few trials trained far)"
    return (f"{fmt.lr(b['low'])}–{fmt.lr(b['high'])} (x{b['width']:.3g}; {b['good']} of {b['of']} trials within "
            f"{fmt.metric_difference(b['threshold'], metric)} of the best at step {b['step']})")


def default_text(d: dict[str, Any] | None, metric: str) -> str:
    """What the untuned default (slot 0) scored against the chosen trial."""
    if not d:
        return "n/a"
    if d.get("same"):
        return f"the default lr {fmt.lr(d['lr'])} was the best trial"
    if d.get("step") is None:
        return f"{d['outcome']} at the default lr {fmt.lr(d['lr'])}"
    return (f"{fmt.metric(d['default'], metric)} at the default lr {fmt.lr(d['lr'])} vs {fmt.metric(d['tuned'], metric)} "
            f"tuned, at step {d['step']} ({fmt.metric_difference(d['difference'], metric)} "
            f"{'lost' if d['difference'] > 0 else 'gained'} by not tuning)")


def study_line(label: str, study: dict[str, Any], metric: str) -> dict[str, Any]:
    """One entry's tuning as table cells and as data."""
    f = study["found"]
    chosen = (study.get("chosen") or {}).get("hparams") or {}
    c, spent = f["counts"], study.get("spent") or {}
    full = study["full_steps"]
    trained = spent.get("steps", f["cost"]["steps"])
    budgeted = spent.get("budgeted_steps", trained)
    cost = f"{trained:,} steps ({trained / full:.2f} full runs)"
    if budgeted != trained:
        cost += f"; {budgeted:,} budgeted ({budgeted / full:.2f})"
    return {"cells": [label, fmt.lr(chosen.get("lr")) + (f" ({knobs_text(chosen)})" if knobs_text(chosen) else ""),
                      searched(study),
                      f"{c['completed']} to the end, {c['pruned']} stopped at a rung"
                      + "".join(f", {c[k]} {k}" for k in ("diverged", "failed") if c.get(k)),
                      band_text(f["band"], metric), default_text(f["default"], metric), cost,
                      fmt.seconds(spent.get("seconds", f["cost"]["seconds"]))],
            "edge": f["edge"]}


def blocks(tuned: dict[str, dict[str, Any]], info: dict[str, Any], out: Path) -> list:
    """The tuning paragraph, table and sensitivity figure of one workload (empty when not tuned)."""
    if not tuned:
        return []
    metric = info["metric"]
    any_study = next(iter(tuned.values()))
    plan = any_study["plan"]
    b, r = plan["budget"], plan["rungs"]
    knobs = f" and {', '.join(b['tune_also'])}" if b["tune_also"] else ""
    halving = (f"successive halving: every trial trains to step {r['stops'][0]}, the best "
               + ", then ".join(f"{n} to step {s}" for n, s in zip(r["counts"][1:], r["stops"][1:]))
               + f"; {r['planned_steps']:,} steps budgeted per entry, {r['multiple']:.2f} full runs"
               if r["steps"] else f"no pruning: every trial trains all {r['full']} steps ({r['multiple']:.0f} full runs)")
    lines = [study_line(label, s, metric) for label, s in tuned.items()]
    drawn = ("quasirandomly (the same scrambled Sobol points for every entry, relative to its centre)"
             if b["sampler"] == "quasirandom" else "quasirandomly, then by Optuna's TPE")
    intro = (f"**Tuning.** Every entry got the same budget: {b['trials']} trials of lr{knobs}, drawn {drawn} "
             f"from a log-uniform range 30x either side of the entry's lr (its library default unless typed), "
             f"widened by another 30x when the best of the first {plan['first_phase']} lay at an edge; {halving}. "
             f"Trials train on seed {b['seed']} and are scored on the validation {metric}; each entry's best trial is "
             "re-run on the seeds above and judged on test.")
    edges = [f"{label} ({'smallest' if line['edge'] == 'down' else 'largest'} lr tried)"
             for label, line in zip(tuned, lines) if line["edge"]]
    note = ("Band of good learning rates: the trials within the practical threshold of the best, at the latest step "
            "at least three trials reached. Default: slot 0 of every study is the entry's untuned lr, compared with "
            "the chosen trial at the latest step both trained to.")
    if edges:
        note += (" The chosen lr is at the edge of what was searched for " + ", ".join(edges)
                 + ": the best lr may lie beyond; tune with a larger budget.")
    table = Table(["entry", "tuned lr", "searched", "trials", "band of good lrs", "untuned default", "tuning cost",
                   "tuning time"], [line["cells"] for line in lines], note=note, terminal=False)
    return [Paragraph(intro), table, plots.sensitivity(tuned, info, out / f"{info['name']}-tuning.png")]


def advice_line(workload: str, tuned: dict[str, dict[str, Any]], metric: str) -> str | None:
    """One advice line: each entry's tuned lr, band and what its default would have cost."""
    if not tuned:
        return None
    parts = []
    for label, s in tuned.items():
        f = s["found"]
        lr = ((s.get("chosen") or {}).get("hparams") or {}).get("lr")
        text = f"{label} lr {fmt.lr(lr)}"
        b = f["band"]
        if b:
            text += (f" (good from {fmt.lr(b['low'])} to {fmt.lr(b['high'])}, x{b['width']:.3g}, "
                     f"{b['good']} of {b['of']} trials at step {b['step']}")
            if lr is not None and not b["low"] <= lr <= b["high"]:
                text += "; the chosen lr, best further on, was not among them there"
            text += ")"
        d = f["default"]
        if d and not d.get("same") and d.get("step") is not None:
            text += (f", untuned {fmt.metric_difference(abs(d['difference']), metric)} "
                     f"{'worse' if d['difference'] > 0 else 'better'} at step {d['step']}")
        parts.append(text)
    widths = {k: (s["found"]["band"] or {}).get("width", 0.0) for k, s in tuned.items()}
    top = sorted(widths.values(), reverse=True)
    widest = max(widths, key=widths.get)
    sens = (f" Least sensitive to the learning rate (widest band): {widest}."
            if top[0] > 1 and (len(top) == 1 or top[0] > top[1]) else "")
    return f"**{workload}, tuned** (validation): " + "; ".join(parts) + "." + sens


__all__ = ["blocks", "advice_line", "searched", "study_line"]

"""The report's pictures (matplotlib, Agg backend), each with a text alternative.

Every curve over seeds is drawn as its median with a shaded min–max band and a thin line
per seed, so a reader sees at once whether two entries differ by more than the seed to
seed spread, and a seed that diverged still shows where it went. Legends sit outside the
axes and name each entry with its learning rate. A run that blew up is cut off at the top
of the axes (marked with an x where it left) instead of flattening everyone else's curve.

Each function writes one PNG and returns a :class:`~.document.Figure` whose ``alt`` says
in words what the picture shows, from the same numbers.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..records import RunRecord  # noqa: E402
from . import format as fmt  # noqa: E402
from .document import Figure  # noqa: E402

DPI = 110
STYLES = ("-", "--", "-.", ":")
MAX_PANELS = 16  # trajectory panels per figure


def legend_label(label: str, lr: float | None, source: str = "entry") -> str:
    """An entry as a legend shows it: its label and learning rate (marked when tuned or an untuned default)."""
    if lr is None or lr != lr or "lr=" in label or "lr " in label:
        return label
    return f"{label}, lr {fmt.lr(lr)}" + {"default": " (untuned default)", "tuned": " (tuned)"}.get(source, "")


def groups_of(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    out: dict[str, list[RunRecord]] = {}
    for r in records:
        out.setdefault(r.label, []).append(r)
    return out


def colors_for(labels: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def _stack(series: list[list[float]]) -> np.ndarray:
    """Runs of unequal length (a diverged run stops early) padded with NaN; non-finite as NaN."""
    n = max((len(s) for s in series), default=0)
    out = np.full((len(series), n), np.nan)
    for i, s in enumerate(series):
        out[i, :len(s)] = np.asarray(s, dtype=float)
    out[~np.isfinite(out)] = np.nan
    return out


def _band(ax, x: np.ndarray, ys: np.ndarray, color, label: str, style: str = "-") -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after a divergence
        med, lo, hi = np.nanmedian(ys, 0), np.nanmin(ys, 0), np.nanmax(ys, 0)
    x = x[:len(med)]
    ax.plot(x, med, color=color, lw=1.6, ls=style, label=label)
    if len(ys) > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
        for y in ys:
            ax.plot(x, y[:len(x)], color=color, lw=0.5, alpha=0.45, ls=style)


def _legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, borderaxespad=0)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _log_ok(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return v.size > 0 and bool((v > 0).all()) and v.max() / max(v.min(), 1e-300) > 20


def _clip_top(ax, ys_all: list[np.ndarray], starts: list[float]) -> bool:
    """Keep exploding runs from squashing the others: cap the axis at 100x the largest start."""
    finite = np.concatenate([y[np.isfinite(y)] for y in ys_all]) if ys_all else np.array([])
    if not finite.size or not starts:
        return False
    cap = 100 * max(abs(s) for s in starts if s == s) if any(s == s for s in starts) else None
    if cap and finite.max() > cap:
        ax.set_ylim(top=cap)
        return True
    return False


def loss_curves(groups, colors, legends, info, path: Path, x_axis: str, shared: bool) -> Figure:
    """Training loss against steps, training seconds or epochs."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    stacks, starts, words, marks = [], [], [], []
    n_train = (info.get("extras") or {}).get("n_train")
    for i, (label, runs) in enumerate(groups.items()):
        ys = _stack([r.losses for r in runs])
        if ys.size == 0:
            words.append(f"{legends[label]}: no steps")
            continue
        stacks.append(ys.ravel())
        first = [r.losses[0] for r in runs if r.losses]
        starts += first
        if x_axis == "steps":
            x = np.arange(1, ys.shape[1] + 1, dtype=float)
        elif x_axis == "seconds":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                x = np.nanmedian(_stack([r.times for r in runs]), 0)
        else:
            bs = min(runs[0].batch_size or 1, n_train)
            x = np.arange(1, ys.shape[1] + 1) * bs / n_train
        _band(ax, x, ys, colors[label], legends[label], STYLES[i % len(STYLES)])
        stopped = [r for r in runs if r.status != "completed"]
        for r in stopped:
            finite = [v for v in r.losses if math.isfinite(v)]
            if r.losses and finite and len(x):
                marks.append((x[min(len(r.losses), len(x)) - 1], finite[-1], colors[label]))
        last = [r.losses[-1] for r in runs if r.losses and r.status == "completed"]
        words.append(f"{legends[label]}: from {fmt.number(float(np.median(first)), 3) if first else 'n/a'} to "
                     f"{fmt.number(float(np.median(last)), 3) if last else 'n/a'} (median over completed seeds)"
                     + (f", {len(stopped)} of {len(runs)} seeds stopped early (x)" if stopped else ""))
    allv = np.concatenate(stacks) if stacks else np.array([])
    if _log_ok(allv):
        ax.set_yscale("log")
    clipped = _clip_top(ax, [allv], starts)
    top = ax.get_ylim()[1]
    for mx, my, color in marks:  # where a stopped run left, on the axes even when it left through the top
        ax.plot(mx, min(my, top), marker="x", color=color, ms=8, ls="none")
    xlabel = {"steps": "step", "seconds": "training time (s)" + (", runs sharing the machine" if shared else ""),
              "epochs": "epoch (passes over the training split)"}[x_axis]
    ax.set_xlabel(xlabel)
    if x_axis == "epochs":
        ax.set_xscale("log")
    ax.set_ylabel("training loss (mini-batch)")
    ax.set_title(f"{info['name']}: training loss vs {x_axis} (median, band = seed range)")
    ax.grid(alpha=0.3)
    _legend(ax)
    alt = (f"Training loss against {x_axis}. " + "; ".join(words) + "."
           + (" The vertical axis is cut at 100 times the starting loss; diverging runs leave through the top." if clipped else ""))
    return Figure(_save(fig, path), f"Training loss vs {x_axis}", alt)


def metric_curves(groups, colors, legends, info, path: Path) -> Figure:
    """The validation metric at each evaluation, with the target line."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    vals, words = [], []
    for i, (label, runs) in enumerate(groups.items()):
        steps = max((r.evals for r in runs), key=len)
        x = np.array([e[0] for e in steps], dtype=float)
        ys = _stack([[e[2] for e in r.evals] for r in runs])
        vals.append(ys.ravel())
        _band(ax, x, ys, colors[label], legends[label], STYLES[i % len(STYLES)])
        finals = [r.evals[-1][2] for r in runs if r.evals and r.status == "completed"]
        best = ys[np.isfinite(ys)]
        words.append(f"{legends[label]}: ends at {fmt.metric(float(np.median(finals)) if finals else math.nan, info['metric'])}"
                     f" (median), best {fmt.metric((best.max() if info['higher_is_better'] else best.min()) if best.size else math.nan, info['metric'])}")
    ax.axhline(info["target"], color="k", ls="--", lw=1, label=f"target {fmt.metric(info['target'], info['metric'])}")
    allv = np.concatenate(vals) if vals else np.array([])
    if not info["higher_is_better"] and _log_ok(allv):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"validation {info['metric']}")
    better = "higher" if info["higher_is_better"] else "lower"
    ax.set_title(f"{info['name']}: validation {info['metric']} vs steps ({better} is better)")
    ax.grid(alpha=0.3)
    _legend(ax)
    alt = (f"Validation {info['metric']} against steps, target {fmt.metric(info['target'], info['metric'])} dashed. "
           + "; ".join(words) + ".")
    return Figure(_save(fig, path), f"Validation {info['metric']} vs steps", alt)


def time_to_target(summary: pd.DataFrame, frame: pd.DataFrame, colors, legends, info, path: Path,
                   shared: bool) -> Figure:
    """Median steps and seconds to target per entry, interval whiskers, one dot per seed; misses hatched."""
    labels = list(summary["optimizer"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.55 * len(labels) + 2.0), squeeze=False)
    words = []
    for ax, col, unit in ((axes[0][0], "steps_to_target", "steps"), (axes[0][1], "seconds_to_target", "seconds")):
        cap_vals = frame[col][np.isfinite(frame[col])]
        cap = (max(cap_vals) * 1.1 if len(cap_vals) else 1.0) if unit == "seconds" else float(info["steps"])
        for i, label in enumerate(labels):
            row = summary[summary["optimizer"] == label].iloc[0]
            v = np.asarray(frame.loc[frame["optimizer"] == label, col], dtype=float)
            finite = v[np.isfinite(v)]
            med, lo, hi = row[col], row[col + "_lo"], row[col + "_hi"]
            if math.isfinite(med):
                ax.barh(i, med, color=colors[label], alpha=0.75)
                ax.plot([lo, hi if math.isfinite(hi) else cap], [i, i], color="k", lw=1.2)
            else:
                ax.barh(i, cap, color="none", edgecolor=colors[label], hatch="//")
                d = int(row["diverged"]) + int(row["failed"])
                ax.text(cap * 0.02, i, f"not reached on {len(v) - len(finite)} of {len(v)} seeds"
                        + (f" ({d} stopped early)" if d else ""), va="center", fontsize=8)
            ax.scatter(finite, np.full(len(finite), i), color="k", s=10, zorder=3)
            if unit == "steps":
                words.append(f"{legends[label]} {fmt.steps(med)}" + (f" [{fmt.steps(lo)}–{fmt.steps(hi)}]" if lo != hi else ""))
        ax.set_yticks(range(len(labels)), [legends[label] for label in labels], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"{unit} to target" + (" (runs sharing the machine)" if unit == "seconds" and shared else ""))
        ax.grid(axis="x", alpha=0.3)
    axes[0][1].set_yticklabels([])
    op = ">=" if info["higher_is_better"] else "<="
    fig.suptitle(f"{info['name']}: time to hold validation {info['metric']} {op} {fmt.metric(info['target'], info['metric'])}")
    fig.tight_layout()
    alt = ("Steps to target, median [interval] per entry (dots: seeds; hatched: not reached on most seeds): "
           + "; ".join(words) + "." + (" Seconds were measured while runs shared the machine." if shared else ""))
    return Figure(_save(fig, path), "Time to target", alt)


def trajectories(groups, colors, legends, info, path: Path) -> Figure:
    """Each entry's paths (all seeds) over the workload's contour plot, one panel per entry."""
    contour = (info.get("extras") or {}).get("contour")
    labels = list(groups)[:MAX_PANELS]  # groups come in rank order: the best entries are shown
    left_out = len(groups) - len(labels)
    cols = min(len(labels), 2 if len(labels) <= 4 else 4)
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.4 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.ravel()[len(labels):]:
        ax.axis("off")
    words = []
    for ax, label in zip(axes.ravel(), labels):
        if contour:
            X, Y, Z = np.asarray(contour["x"]), np.asarray(contour["y"]), np.asarray(contour["z"])
            if contour.get("log"):
                levels = np.logspace(np.log10(max(Z.min(), 1e-3)), np.log10(Z.max()), 18)
                ax.contour(X, Y, Z, levels=levels, cmap="Greys", linewidths=0.6, norm=matplotlib.colors.LogNorm())
            else:
                ax.contour(X, Y, Z, levels=18, cmap="Greys", linewidths=0.6)
            ax.plot(*contour["minimum"], marker="*", color="k", ms=10)
            ax.set_xlim(X.min(), X.max())
            ax.set_ylim(Y.min(), Y.max())
        ends = []
        for i, r in enumerate(groups[label]):
            t = np.asarray(r.trajectory or [], dtype=float)
            if t.size:
                t = np.where(np.isfinite(t), t, np.nan)
                ax.plot(t[:, 0], t[:, 1], color=colors[label], lw=1.0 if i == 0 else 0.6,
                        alpha=1.0 if i == 0 else 0.45, marker="." if i == 0 else None, ms=2)
                ax.plot(t[0, 0], t[0, 1], "o", color=colors[label], ms=4)
                ends.append(t[-1])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(legends[label], fontsize=9)
        if ends:
            e = np.nanmedian(np.asarray(ends), 0)
            words.append(f"{legends[label]} ends near ({fmt.number(float(e[0]), 3)}, {fmt.number(float(e[1]), 3)})")
    fig.suptitle(f"{info['name']}: trajectories on the contours (star: minimum; first seed dotted)")
    fig.tight_layout()
    minimum = (contour or {}).get("minimum")
    alt = (f"Paths of the parameters (x, y) over the contour lines of the loss, minimum at {tuple(minimum) if minimum else 'n/a'}: "
           + "; ".join(words) + "." + (f" The {left_out} lowest-ranked entries are not drawn." if left_out else ""))
    return Figure(_save(fig, path), "Trajectories on the contours", alt)


def lr_schedules(groups, colors, legends, info, path: Path) -> Figure:
    """The learning rate each entry used at every step (first seed); dashes keep equal lines apart."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    words = []
    for i, (label, runs) in enumerate(groups.items()):
        lrs = np.asarray(runs[0].lrs, dtype=float)
        x = np.arange(1, len(lrs) + 1)
        ax.plot(x, lrs, color=colors[label], ls=STYLES[i % len(STYLES)], lw=1.6, label=legends[label],
                marker="os^vD<>"[i % 7], markevery=(i * 7 % max(1, len(x) // 8 or 1), max(1, len(x) // 8)), ms=4)
        if len(lrs):
            words.append(f"{legends[label]}: " + (f"constant {fmt.lr(lrs[0])}" if np.allclose(lrs, lrs[0])
                                                  else f"{fmt.lr(lrs[0])} to {fmt.lr(lrs[-1])}"))
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    vals = np.concatenate([np.asarray(r[0].lrs, dtype=float) for r in groups.values()] or [np.zeros(1)])
    if _log_ok(vals):
        ax.set_yscale("log")
    ax.set_title(f"{info['name']}: learning rate of each entry over the budget")
    ax.grid(alpha=0.3)
    _legend(ax)
    return Figure(_save(fig, path), "Learning rates", "Learning rate used at each step: " + "; ".join(words) + ".")


def profile_plot(rho: pd.DataFrame, legends: dict[str, str], path: Path, clock: str, n_workloads: int) -> Figure:
    """Performance profiles: fraction of workloads within a factor tau of the best."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    colors = colors_for(list(rho.index))
    words = []
    for i, (label, row) in enumerate(rho.iterrows()):
        ax.step(list(row.index), list(row.values), where="post", color=colors[label], ls=STYLES[i % len(STYLES)],
                lw=1.6, label=legends.get(label, label))
        words.append(f"{legends.get(label, label)}: fastest on {fmt.percent(row.iloc[0])}, "
                     f"within 2x on {fmt.percent(row[row.index <= 2.0].iloc[-1])}, "
                     f"reaches the target on {fmt.percent(row.iloc[-1])}")
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"tau: ratio to the best {'steps' if clock == 'steps_to_target' else 'seconds'} to target")
    ax.set_ylabel(f"fraction of {n_workloads} workloads")
    ax.set_title("Performance profiles (higher and further left is better)")
    ax.grid(alpha=0.3)
    _legend(ax)
    return Figure(_save(fig, path), f"Performance profiles ({'steps' if clock == 'steps_to_target' else 'seconds'})",
                  "Fraction of workloads on which each entry holds the target within tau times the best entry's time: "
                  + "; ".join(words) + " (up to a factor of 16).")


def sensitivity(tuned: dict[str, dict[str, Any]], info: dict[str, Any], path: Path) -> Figure:
    """Each entry's trials against their learning rate: how sensitive it is, and what was chosen.

    One panel per entry (the ranges differ by optimizer), sharing the metric axis. Every
    trial is a point at the validation value of the last step it trained to: small hollow
    points stopped at the first rung, larger filled ones trained further, a black ring the
    chosen trial, a square the untuned default (slot 0), x a diverged trial (drawn at the
    bottom of the panel); the shaded band is the band of good learning rates.
    """
    labels = list(tuned)[:MAX_PANELS]
    cols = min(len(labels), 4)
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 0.6, 3.0 * rows + 0.6), squeeze=False, sharey=True)
    for ax in axes.ravel()[len(labels):]:
        ax.axis("off")
    metric, words = info["metric"], []
    values = [t["value"] for s in tuned.values() for t in s["trials"] if t.get("value") is not None]
    floor = (min(values) if info["higher_is_better"] else max(values)) if values else 0.0
    for ax, label in zip(axes.ravel(), labels):
        study, f = tuned[label], tuned[label]["found"]
        stops = study["plan"]["rungs"]["stops"]
        chosen = f["chosen"]
        for t in study["trials"]:
            lr = t["params"].get("lr")
            if lr is None:
                continue
            if t["outcome"] in ("diverged", "failed") or t.get("value") is None:
                ax.plot(lr, floor, "x", color="tab:red", ms=6)
                continue
            depth = stops.index(t["step"]) if t["step"] in stops else 0
            ax.plot(lr, t["value"], "o", ms=4 + 2.5 * depth, mfc="tab:blue" if depth else "none", mec="tab:blue",
                    alpha=0.85)
            if t["slot"] == 0:
                ax.plot(lr, t["value"], "s", ms=9, mfc="none", mec="tab:orange", mew=1.5)
        if chosen is not None and chosen.get("value") is not None:
            ax.plot(chosen["params"]["lr"], chosen["value"], "o", ms=13, mfc="none", mec="black", mew=1.5)
        if f["band"]:
            ax.axvspan(f["band"]["low"], f["band"]["high"], color="tab:green", alpha=0.12, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        lr = ((study.get("chosen") or {}).get("hparams") or {}).get("lr")
        band = f["band"]
        words.append(f"{label}: chose lr {fmt.lr(lr)}"
                     + (f", good band {fmt.lr(band['low'])} to {fmt.lr(band['high'])} at step {band['step']}" if band else "")
                     + f", {f['counts']['completed']} of {len(study['trials'])} trials trained to the end"
                     + (f", {f['counts']['diverged']} diverged" if f["counts"]["diverged"] else ""))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"validation {metric}")
    fig.suptitle(f"{info['name']}: tuning trials against the learning rate (size: how far each trained; ring: chosen; "
                 "square: untuned default; x: diverged; shaded: good band)", fontsize=9)
    fig.tight_layout()
    alt = ("Each entry's tuning trials, validation " + metric + " at the last step each trained to against its "
           "learning rate: " + "; ".join(words) + ".")
    return Figure(_save(fig, path), "Tuning: trials against the learning rate", alt)

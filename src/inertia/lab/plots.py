"""The report's pictures (matplotlib, Agg backend: no display needed), one PNG per figure.

Every curve over seeds is drawn as its median with a shaded min–max band, so a reader sees
at once whether two optimizers' differences are larger than the seed-to-seed spread.
:func:`workload_figures` draws all figures for one workload and returns their paths.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runner import RunRecord  # noqa: E402

DPI = 110


def _groups(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    out: dict[str, list[RunRecord]] = {}
    for r in records:
        out.setdefault(r.label, []).append(r)
    return out


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def _stack(series: list[list[float]]) -> np.ndarray:
    """Runs of unequal length (a diverged run stops early) padded with NaN."""
    n = max(len(s) for s in series)
    out = np.full((len(series), n), np.nan)
    for i, s in enumerate(series):
        out[i, :len(s)] = np.asarray(s, dtype=float)
    out[~np.isfinite(out)] = np.nan
    return out


def _band(ax, x: np.ndarray, ys: np.ndarray, color, label: str) -> None:
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after a divergence
            med, lo, hi = np.nanmedian(ys, 0), np.nanmin(ys, 0), np.nanmax(ys, 0)
    ax.plot(x[:len(med)], med, color=color, lw=1.4, label=label)
    if len(ys) > 1:
        ax.fill_between(x[:len(med)], lo, hi, color=color, alpha=0.2, lw=0)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _log_ok(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return v.size > 0 and (v > 0).all() and v.max() / max(v.min(), 1e-300) > 20


def loss_curves(groups, colors, info, path: Path, x_axis: str) -> Path:
    """Training loss against steps, training seconds or epochs (median and min–max band)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    allv = []
    n_train = (info.get("extras") or {}).get("n_train")
    for label, runs in groups.items():
        ys = _stack([r.losses for r in runs])
        if ys.size == 0:
            continue
        allv.append(ys.ravel())
        if x_axis == "steps":
            x = np.arange(1, ys.shape[1] + 1)
        elif x_axis == "seconds":
            x = np.nanmedian(_stack([r.times for r in runs]), 0)
        else:  # epochs
            bs = min(runs[0].batch_size or 1, n_train)
            x = np.arange(1, ys.shape[1] + 1) * bs / n_train
        _band(ax, x, ys, colors[label], label)
    if allv and _log_ok(np.concatenate(allv)):
        ax.set_yscale("log")
    ax.set_xlabel({"steps": "step", "seconds": "training time (s)", "epochs": "epoch"}[x_axis])
    if x_axis == "epochs":
        ax.set_xscale("log")
    ax.set_ylabel("training loss (per-step batch)")
    ax.set_title(f"{info['name']}: training loss vs {x_axis} (median, min–max over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def metric_curves(groups, colors, info, path: Path) -> Path:
    """The evaluation metric at each evaluation, with the target line."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    vals = []
    for label, runs in groups.items():
        steps = max((r.evals for r in runs), key=len)
        x = np.array([e[0] for e in steps], dtype=float)
        ys = _stack([[e[2] for e in r.evals] for r in runs])
        vals.append(ys.ravel())
        _band(ax, x, ys, colors[label], label)
    ax.axhline(info["target"], color="k", ls="--", lw=1, label=f"target {info['target']:g}")
    if vals and not info["higher_is_better"] and _log_ok(np.concatenate(vals)):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(info["metric"])
    ax.set_title(f"{info['name']}: {info['metric']} vs steps ({'higher' if info['higher_is_better'] else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def time_to_target_bars(frame, colors, info, path: Path) -> Path:
    """Median steps and seconds to target per entry, min–max whiskers, one dot per seed.

    Entries that never reached the target on some seed get a hatched bar to the budget and
    the label "not reached" rather than disappearing from the picture.
    """
    labels = list(dict.fromkeys(frame["optimizer"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.6 * len(labels) + 1.8), squeeze=False)
    for ax, col, unit in ((axes[0][0], "steps_to_target", "steps"), (axes[0][1], "seconds_to_target", "seconds")):
        cap_vals = frame[col][np.isfinite(frame[col])]
        cap = (max(cap_vals) * 1.1 if len(cap_vals) else 1.0) if unit == "seconds" else float(info["steps"])
        for i, label in enumerate(labels):
            v = np.asarray(frame.loc[frame["optimizer"] == label, col], dtype=float)
            finite = v[np.isfinite(v)]
            med = np.median(np.where(np.isfinite(v), v, np.inf))
            if math.isfinite(med):
                ax.barh(i, med, color=colors[label], alpha=0.8)
                if len(finite) > 1:
                    ax.plot([finite.min(), finite.max()], [i, i], color="k", lw=1)
            else:
                ax.barh(i, cap, color="none", edgecolor=colors[label], hatch="//")
                ax.text(cap * 0.02, i, "not reached (median)", va="center", fontsize=8)
            ax.scatter(finite, np.full(len(finite), i), color="k", s=10, zorder=3)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"{unit} to target")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{info['name']}: time to {info['metric']} {'>=' if info['higher_is_better'] else '<='} {info['target']:g}")
    return _save(fig, path)


def trajectories(groups, colors, info, path: Path) -> Path:
    """Each entry's paths (all seeds) over the workload's contour plot, one panel per entry."""
    contour = (info.get("extras") or {}).get("contour")
    labels = list(groups)
    cols = min(2, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.ravel()[len(labels):]:
        ax.axis("off")
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
        for i, r in enumerate(groups[label]):
            t = np.asarray(r.trajectory or [], dtype=float)
            if t.size:
                ax.plot(t[:, 0], t[:, 1], color=colors[label], lw=1.0 if i == 0 else 0.6,
                        alpha=1.0 if i == 0 else 0.45, marker="." if i == 0 else None, ms=2)
                ax.plot(t[0, 0], t[0, 1], "o", color=colors[label], ms=4)
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"{info['name']}: trajectories on the contours (seed paths; first seed dotted)")
    return _save(fig, path)


def lr_schedules(groups, colors, info, path: Path) -> Path:
    """The learning rate each entry used at every step (first seed)."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for label, runs in groups.items():
        lrs = runs[0].lrs
        ax.plot(np.arange(1, len(lrs) + 1), lrs, color=colors[label], label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    vals = np.concatenate([np.asarray(r[0].lrs, dtype=float) for r in groups.values()] or [np.zeros(1)])
    if _log_ok(vals):
        ax.set_yscale("log")
    ax.set_title(f"{info['name']}: learning-rate schedule of each entry")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def workload_figures(records: Sequence[RunRecord], frame, info: dict[str, Any], out: Path) -> list[tuple[str, Path]]:
    """All figures for one workload: ``[(caption, path), …]`` written under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    groups = _groups(records)
    colors = _colors(list(groups))
    stem = info["name"]
    figs = [
        ("Training loss vs steps", loss_curves(groups, colors, info, out / f"{stem}-loss-steps.png", "steps")),
        ("Training loss vs wall time", loss_curves(groups, colors, info, out / f"{stem}-loss-time.png", "seconds")),
    ]
    sizes = {r.batch_size for r in records}
    if (info.get("extras") or {}).get("n_train") and len(sizes) > 1:
        figs.append(("Training loss vs epochs",
                     loss_curves(groups, colors, info, out / f"{stem}-loss-epochs.png", "epochs")))
    figs += [
        (f"{info['metric']} vs steps", metric_curves(groups, colors, info, out / f"{stem}-metric.png")),
        ("Time to target", time_to_target_bars(frame, colors, info, out / f"{stem}-time-to-target.png")),
    ]
    if info.get("trajectory") and any(r.trajectory for r in records):
        figs.append(("Trajectories on the contours", trajectories(groups, colors, info, out / f"{stem}-trajectories.png")))
    figs.append(("Learning-rate schedules", lr_schedules(groups, colors, info, out / f"{stem}-lr.png")))
    return figs

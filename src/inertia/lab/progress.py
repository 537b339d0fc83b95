"""Terminal feedback: progress bars while training, a summary table afterwards.

Bars (tqdm, on stderr) appear only when stderr is a terminal and ``quiet`` is off, so
logs and pipes stay clean: one bar for the whole comparison (runs done, ETA) and one for
the current run (steps, loss, ETA). :func:`format_table` renders the summary as plain
text for stdout in every case.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd


class Bars:
    """Progress for a whole comparison: ``begin(total_runs)``, then :meth:`start` per run."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.overall = None
        self.bar = None

    def begin(self, total_runs: int, skipped: int = 0) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm
        self.overall = tqdm(total=total_runs, initial=skipped, desc="runs", unit="run", position=0,
                            dynamic_ncols=True, file=sys.stderr)

    # the runner's Progress protocol, for the current run
    def start(self, total: int, description: str) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, desc=description, unit="step", position=1, leave=False,
                        dynamic_ncols=True, file=sys.stderr, mininterval=0.2)

    def update(self, steps: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.n = steps
            if steps % 10 == 0:
                self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            self.bar.refresh() if steps == self.bar.total else self.bar.update(0)

    def finish(self, status: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.overall is not None:
            self.overall.update(1)

    def end(self) -> None:
        if self.overall is not None:
            self.overall.close()
            self.overall = None


def bars(quiet: bool = False) -> Bars:
    """Bars that show only on a terminal and when not ``quiet``."""
    return Bars(enabled=not quiet and sys.stderr.isatty())


def fmt_steps(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.0f}"


def fmt_seconds(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.2f}s"


def fmt_range(med: float, lo: float, hi: float, kind: str) -> str:
    """``"120 [100-140]"``: the median and the min–max over seeds."""
    f = {"steps": fmt_steps, "seconds": fmt_seconds, "metric": lambda v: "nan" if v != v else f"{v:.4g}"}[kind]
    if med != med:
        return "n/a"
    if lo == hi:
        return f(med)
    return f"{f(med)} [{f(lo)}–{f(hi)}]"


def summary_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The summary as display strings (shared by the terminal and the markdown report)."""
    rows = []
    for _, r in summary.iterrows():
        rows.append({
            "workload": r["workload"], "#": int(r["rank"]), "optimizer": r["optimizer"],
            "reached": r["reached"],
            "steps to target": fmt_range(r["steps_to_target"], r["steps_to_target_min"], r["steps_to_target_max"], "steps"),
            "time to target": fmt_range(r["seconds_to_target"], r["seconds_to_target_min"], r["seconds_to_target_max"], "seconds"),
            f"final metric": fmt_range(r["final_metric"], r["final_metric_min"], r["final_metric_max"], "metric"),
            "steps/s": f"{r['steps_per_s']:.0f}" if r["steps_per_s"] == r["steps_per_s"] else "n/a",
        })
    return rows


def format_table(summary: pd.DataFrame) -> str:
    """A fixed-width text table: median [min–max] over seeds."""
    rows = summary_rows(summary)
    if not rows:
        return "(no runs)"
    cols = list(rows[0])
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    line = "  ".join(c.ljust(width[c]) for c in cols)
    out = [line, "  ".join("-" * width[c] for c in cols)]
    last = None
    for r in rows:
        if last is not None and r["workload"] != last:
            out.append("")
        last = r["workload"]
        out.append("  ".join(str(r[c]).ljust(width[c]) for c in cols))
    return "\n".join(out)

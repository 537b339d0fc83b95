"""Terminal feedback: progress bars while training, a summary table afterwards.

A status line (on stderr) appears only when stderr is a terminal and ``quiet`` is off,
so logs and pipes stay clean: the comparison's position and ETA and the current run's
bar, steps, loss and ETA. :func:`format_table` renders the summary as plain
text for stdout in every case.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from typing import Any

import pandas as pd


class Bars:
    """Progress for a whole comparison: :meth:`begin`, then the runner's protocol per run.

    One status line on stderr, rewritten in place (``\\r``) at most 5 times a second::

        [ 5/24] mnist-cnn adam seed 1  |#####-----|  150/300 steps  loss 0.412  run ETA 3s  all ETA 1m12s

    The run's ETA extrapolates its own step rate; the comparison's ETA assumes the remaining
    runs take as long as the finished ones on average (runs skipped on resume count as free).
    Written by hand rather than with tqdm so that it has no dependency and one line only.
    """

    def __init__(self, enabled: bool, stream=None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.total_runs = self.done_runs = 0
        self.run_seconds = 0.0
        self._t0 = self._last = 0.0
        self.total = 0
        self.description = ""

    def begin(self, total_runs: int, skipped: int = 0) -> None:
        self.total_runs, self.done_runs, self.trained = total_runs, skipped, 0

    def start(self, total: int, description: str) -> None:
        self.total, self.description = total, description
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._draw(0, float("nan"))

    def update(self, steps: int, loss: float) -> None:
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.2 or steps == self.total):
            self._last = now
            self._draw(steps, loss)

    def finish(self, status: str) -> None:
        self.run_seconds += time.perf_counter() - self._t0
        self.done_runs += 1
        self.trained = getattr(self, "trained", 0) + 1
        if self.enabled:
            self.stream.write("\r\033[K")  # clear the line; the summary table follows
            self.stream.flush()

    def end(self) -> None:
        pass

    def _draw(self, steps: int, loss: float) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._t0
        frac = steps / self.total if self.total else 0.0
        run_eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        trained = getattr(self, "trained", 0)
        per_run = self.run_seconds / trained if trained else (elapsed / frac if frac > 0 else float("nan"))
        remaining = self.total_runs - self.done_runs - 1
        all_eta = (run_eta if run_eta == run_eta else 0.0) + max(remaining, 0) * per_run
        bar = "#" * int(frac * 10) + "-" * (10 - int(frac * 10))
        width = len(str(self.total_runs))
        line = (f"[{self.done_runs + 1:>{width}}/{self.total_runs}] {self.description}  |{bar}|  "
                f"{steps}/{self.total} steps  loss {loss:.4g}  run ETA {_dur(run_eta)}  all ETA {_dur(all_eta)}")
        self.stream.write("\r\033[K" + line[: _width() - 1])
        self.stream.flush()


def _dur(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _width() -> int:
    # shutil falls back to 100 columns where the terminal reports none (some ptys, CI)
    return shutil.get_terminal_size((100, 20)).columns


def bars(quiet: bool = False) -> Bars:
    """Progress that shows only on a terminal (stderr) and when not ``quiet``."""
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
            "final metric": fmt_range(r["final_metric"], r["final_metric_min"], r["final_metric_max"], "metric"),
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

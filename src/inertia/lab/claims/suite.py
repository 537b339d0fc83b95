"""Running the seed-claims suite through the lab, resumably, and writing its report."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from .protocol import curves_table, entries, runs_table, scenarios
from .report import write_report
from .verdicts import baseline_of

def _load() -> str:
    """The 1-minute load average: timings on a shared machine mean little without it."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):  # not on every platform
        return "?"


def run(out: str, quick: bool = False, quiet: bool = False, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Run (or resume) the suite and write its report into ``out``; return the runs table.

    Each scenario is one :func:`inertia.lab.compare` call sharing the database
    ``out/runs.sqlite`` (so finished runs are skipped on resume) and writing the lab's own
    report (curves, time to target, memory) into ``out/<scenario>/``; ``out/report.md`` and
    ``report.html`` hold the verdicts. A scenario whose extras are missing is skipped, and
    the report says what to install.
    """
    from ..api import compare
    from ..store import Store
    from ..workloads import get

    seeds = list(seeds) if seeds is not None else [0, 1]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "runs.sqlite"
    started, load0 = time.perf_counter(), _load()
    keys: list[str] = []
    skipped: list[str] = []
    for sc in scenarios(quick):
        try:
            work = get(sc.workload, **sc.options)
        except ImportError as exc:
            skipped.append(f"{sc.key}: {exc}")
            if not quiet:
                print(f"[seed-claims] skipping {sc.key}: {exc}")
            continue
        specs = [spec for _, spec in entries(sc, dict(work.default_lr))]
        t0 = time.perf_counter()
        compare([work], specs, seeds=seeds, out=out_dir / sc.key, db=db, quiet=quiet,
                title=f"seed-claims: {sc.title}",
                command=f"inertia compare --suite seed-claims{' --quick' if quick else ''}")
        with Store(db, readonly=True) as store:
            keys += store.comparison()["run_keys"]
        if not quiet:
            print(f"[seed-claims] {sc.key}: {len(specs) * len(seeds)} runs, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    with Store(db, readonly=True) as store:
        records = store.runs(keys)
        infos = {r.workload: store.workload_info(r.workload_config) for r in records}
    table = runs_table(records, {n: baseline_of(i) for n, i in infos.items()})
    meta = {"quick": quick, "seeds": seeds, "wall_time": time.perf_counter() - started,
            "device": records[0].device if records else "?", "skipped": skipped,
            "load": f"{load0} at the start, {_load()} at the end"}
    if not table.empty:
        path = write_report(table, curves_table(records), out_dir, meta, infos)
        if not quiet:
            print(f"[seed-claims] report: {path} ({meta['wall_time']:.0f} s)")
    return table


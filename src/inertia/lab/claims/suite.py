"""Running the seed-claims suite through the lab, resumably, and writing its report."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..running.runner import load_average
from ..scoring import practical_threshold
from .protocol import FULL_TRIALS, QUICK_COVERAGE, QUICK_TRIALS, entries, library_lrs, scenarios
from .report import write_report
from .table import baseline_of, curves_table, runs_table, trials_table


def load(db: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]], pd.DataFrame]:
    """The runs table, the curves, the workload infos and the tuning trials of a stored database."""
    from ..store import Store

    with Store(db, readonly=True) as store:
        records = store.runs()
        infos = {r.workload: store.workload_info(r.workload_config) for r in records}
        trials = trials_table(store.tunings().values())
    return _tables(records, infos) + (infos, trials)


def _tables(records, infos) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = runs_table(records, {n: baseline_of(i) for n, i in infos.items()}, library_lrs(),
                       {n: practical_threshold(i) for n, i in infos.items()})
    return table, curves_table(records)


def run(out: str, quick: bool = False, quiet: bool = False, seeds: Sequence[int] | None = None,
        jobs: int | None = None, tune: Any = None) -> pd.DataFrame:
    """Run (or resume) the suite and write its report into ``out``; return the runs table.

    Each scenario is one :func:`inertia.lab.compare` call with tuning (``tune``: trials per
    family or a :class:`~inertia.lab.tuning.Budget`; default :data:`~.protocol.FULL_TRIALS`,
    :data:`~.protocol.QUICK_TRIALS` for ``quick``) sharing the database ``out/runs.sqlite``
    and the study storage ``out/studies.sqlite`` (so finished trials and runs are skipped on
    resume) and writing the lab's own report into ``out/<scenario>/``; ``out/report.md`` and
    ``report.html`` hold the verdicts. A scenario whose extras are missing is skipped, and
    the report says what to install.
    """
    from ..api import compare, resolve_budget
    from ..store import Store
    from ..workloads import get

    budget = resolve_budget(tune if tune is not None else (QUICK_TRIALS if quick else FULL_TRIALS))
    seeds = list(seeds) if seeds is not None else [0, 1]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "runs.sqlite"
    started, load0 = time.perf_counter(), load_average()
    keys: list[str] = []
    tunings: list[str] = []
    skipped: list[str] = []
    from ..tuning import study
    for sc in scenarios(quick):
        try:
            work = get(sc.workload, **sc.options)
        except ImportError as exc:
            skipped.append(f"{sc.key}: {exc}")
            if not quiet:
                print(f"[seed-claims] skipping {sc.key}: {exc}")
            continue
        specs = [spec for _, spec in entries(sc)]
        t0 = time.perf_counter()
        compare([work], specs, seeds=seeds, out=out_dir / sc.key, db=db, quiet=quiet, jobs=jobs, tune=budget,
                storage=study.storage_url(None, out_dir), title=f"seed-claims: {sc.title}",
                command=f"inertia compare --suite seed-claims{' --quick' if quick else ''}")
        with Store(db, readonly=True) as store:
            comp = store.comparison()
            keys += comp["run_keys"]
            tunings += comp["meta"].get("tunings") or []
        if not quiet:
            print(f"[seed-claims] {sc.key}: {len(specs) * len(seeds)} runs, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    with Store(db, readonly=True) as store:
        records = store.runs(keys)
        infos = {r.workload: store.workload_info(r.workload_config) for r in records}
        trials = trials_table(store.tunings(tunings).values())
    table, curves = _tables(records, infos)
    meta = {"quick": quick, "seeds": seeds, "wall_time": time.perf_counter() - started, "budget": budget.describe(),
            "device": records[0].device if records else "?", "skipped": skipped,
            "load": f"{load0:.1f} at the start, {load_average():.1f} at the end",
            "notes": [f"**Quick version** (`--suite seed-claims --quick`): {QUICK_COVERAGE}"] if quick else []}
    if not table.empty:
        path = write_report(table, curves, out_dir, meta, infos, trials)
        if not quiet:
            print(f"[seed-claims] report: {path} ({meta['wall_time']:.0f} s)")
    return table

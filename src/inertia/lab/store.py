"""The results database: one SQLite file (default ``<out>/runs.sqlite``) holding every run.

Why SQLite: it is embedded (no server), one file to copy or archive, and transactional,
which is what makes resuming safe. Each run is written by :meth:`Store.save` in a single
transaction, so an interrupted comparison leaves only whole runs behind, and re-running
the same command skips them (:meth:`Store.has`, by :func:`inertia.lab.runner.run_key`).

Tables (schema version :data:`SCHEMA_VERSION`):

* ``schema_version(version)`` – one row; a database of another version is refused with
  :class:`IncompatibleDatabaseError` before anything is written. Version 1 databases (before
  validation splits) are refused rather than migrated: their runs measured the test split
  during training, so they cannot be scored under the validation/test protocol at all.
* ``workloads(hash, name, info)`` – what the report needs about each workload (config,
  description, contour grid …) as JSON, so a report can be rebuilt from the file alone.
* ``runs(key, …)`` – one row per run: full configuration and resolved hyperparameters,
  status, final test metric, timings, threads, concurrency, memory, device, library
  versions (JSON columns for the nested parts).
* ``series(run_key, name, data)`` – per-step arrays as JSON: ``losses``, ``lrs``, ``times``,
  ``evals``, ``trajectory``.
* ``comparisons(id, created, title, command, run_keys, meta)`` – which runs each ``compare``
  call covered and how it ran (wall time, parallel jobs, load, the tuning studies it used),
  so ``inertia report DB`` regenerates that comparison's report.
* ``tunings(key, workload, workload_hash, label, data)`` – what each tuning study found
  (:mod:`inertia.lab.tuning`): its plan, search space and every trial's parameters, outcome
  and validation curve, copied from the study storage when the study is finished, so a
  report is rebuilt without Optuna or the study storage.

Version 2 databases (before tuning) are migrated in place by adding the ``tunings`` table;
nothing else changes.

A failed run is stored (the report shows it) but does not count as done: re-running the
comparison retries it.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from .records import FAILED, RunRecord

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE workloads (hash TEXT PRIMARY KEY, name TEXT NOT NULL, info TEXT NOT NULL);
CREATE TABLE runs (
    key TEXT PRIMARY KEY, workload TEXT NOT NULL, workload_hash TEXT NOT NULL, label TEXT NOT NULL,
    optimizer TEXT NOT NULL, seed INTEGER NOT NULL, lr REAL, lr_source TEXT NOT NULL, schedule TEXT,
    batch_size INTEGER, status TEXT NOT NULL, error TEXT, steps INTEGER NOT NULL, steps_done INTEGER NOT NULL,
    test_metric REAL, wall_time REAL, train_time REAL, time_per_step REAL, state_bytes INTEGER,
    peak_memory INTEGER, peak_memory_kind TEXT, skipped_steps INTEGER, device TEXT, threads INTEGER,
    concurrency INTEGER, created TEXT,
    workload_config TEXT NOT NULL, spec TEXT NOT NULL, hparams TEXT NOT NULL, load TEXT NOT NULL,
    versions TEXT NOT NULL
);
CREATE TABLE series (run_key TEXT NOT NULL REFERENCES runs(key), name TEXT NOT NULL, data TEXT NOT NULL,
                     PRIMARY KEY (run_key, name));
CREATE TABLE comparisons (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, title TEXT,
                          command TEXT, run_keys TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}');
""" + """
CREATE TABLE tunings (key TEXT PRIMARY KEY, workload TEXT NOT NULL, workload_hash TEXT NOT NULL, label TEXT NOT NULL,
                      data TEXT NOT NULL, created TEXT NOT NULL);
"""
#: what turns a database of an older version into the current one (additive only)
_MIGRATIONS = {2: _SCHEMA[_SCHEMA.index("CREATE TABLE tunings"):]}

_SERIES = ("losses", "lrs", "times", "evals", "trajectory")
_SCALARS = ("workload", "label", "optimizer", "seed", "lr", "lr_source", "schedule", "batch_size", "status", "error",
            "steps", "steps_done", "test_metric", "wall_time", "train_time", "time_per_step", "state_bytes",
            "peak_memory", "peak_memory_kind", "skipped_steps", "device", "threads", "concurrency", "created")
_JSON = ("workload_config", "spec", "hparams", "load", "versions")


class StoreError(RuntimeError):
    """The database cannot be used (unreadable, not ours, unwritable); nothing was changed."""


class IncompatibleDatabaseError(StoreError):
    """The database was written by an incompatible version of inertia; nothing was changed."""


def workload_hash(config: dict[str, Any]) -> str:
    import hashlib
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def _dumps(value: Any) -> str:
    # NaN/inf are valid in Python's JSON dialect; the loader reads them back
    return json.dumps(value, default=repr)


class Store:
    """An open results database. Use as a context manager or call :meth:`close`.

    ``Store(path)`` creates the file (and schema) when it does not exist; ``readonly=True``
    requires it to exist and never writes. Either way an existing file is checked first:
    not SQLite, not an inertia database, or another schema version raises
    :class:`StoreError` / :class:`IncompatibleDatabaseError` and leaves the file untouched.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly, self.legacy = readonly, False
        exists = self.path.exists() and self.path.stat().st_size > 0
        if readonly and not exists:
            raise StoreError(f"no results database at {self.path}")
        try:
            uri = f"file:{self.path.resolve()}?mode={'ro' if readonly else 'rwc'}"
            self.conn = sqlite3.connect(uri, uri=True, timeout=30)
            if exists:
                self._check()
            else:
                with self.conn:
                    self.conn.executescript(_SCHEMA)
                    self.conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use {self.path} as a results database: {exc}") from None

    def _check(self) -> None:
        try:
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StoreError(f"{self.path} is not an SQLite database ({exc}); nothing was changed") from None
        if "schema_version" not in tables:
            self.conn.close()
            raise IncompatibleDatabaseError(
                f"{self.path} is not an inertia results database (no schema_version table); "
                "nothing was changed: choose another --db or output folder")
        row = self.conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else None
        if version in _MIGRATIONS and not self.readonly:
            with self.conn:
                self.conn.executescript(_MIGRATIONS[version])
                self.conn.execute("UPDATE schema_version SET version=?", (SCHEMA_VERSION,))
            version = SCHEMA_VERSION
        if version in _MIGRATIONS:  # read-only: the old tables read as they are, with no tuning in them
            version, self.legacy = SCHEMA_VERSION, True
        if version != SCHEMA_VERSION:
            self.conn.close()
            raise IncompatibleDatabaseError(
                f"{self.path} was written with results schema version {version}, and this inertia reads "
                f"version {SCHEMA_VERSION}; nothing was changed: use the inertia version that wrote it, "
                "or choose another --db or output folder"
                + (" (version 1 runs measured the test split during training, so they cannot be scored "
                   "under the validation/test protocol)" if version == 1 else ""))

    # ------------------------------------------------------------------ writing

    def has(self, key: str) -> bool:
        """Whether a finished run with this key is stored (a failed run is retried, so it does not count)."""
        row = self.conn.execute("SELECT status FROM runs WHERE key=?", (key,)).fetchone()
        return row is not None and row[0] != FAILED

    def save(self, record: RunRecord, workload_info: dict[str, Any]) -> None:
        """Write one run (and its workload's info) in a single transaction: all or nothing."""
        info = dict(workload_info)
        whash = workload_hash(record.workload_config)
        data = record.to_dict()
        with self.conn:  # commits on success, rolls back on any exception
            self.conn.execute("INSERT OR IGNORE INTO workloads VALUES (?, ?, ?)",
                              (whash, record.workload, _dumps(info)))
            cols = ("key", "workload_hash") + _SCALARS + _JSON
            vals = (record.key, whash) + tuple(data[c] for c in _SCALARS) + tuple(_dumps(data[c]) for c in _JSON)
            self.conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                              vals)
            self.conn.executemany("INSERT OR REPLACE INTO series VALUES (?, ?, ?)",
                                  [(record.key, name, _dumps(data[name])) for name in _SERIES])

    def add_comparison(self, run_keys: Iterable[str], title: str = "", command: str = "",
                       meta: dict[str, Any] | None = None) -> int:
        """Remember which runs one comparison covered, and how it ran; returns its id."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO comparisons (created, title, command, run_keys, meta) VALUES (?, ?, ?, ?, ?)",
                (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), title, command, json.dumps(list(run_keys)),
                 _dumps(meta or {})))
        return int(cur.lastrowid)

    def save_tuning(self, key: str, workload: str, workload_config: dict[str, Any], label: str,
                    data: dict[str, Any]) -> None:
        """Store (or replace) what a tuning study found, in one transaction."""
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO tunings VALUES (?, ?, ?, ?, ?, ?)",
                              (key, workload, workload_hash(workload_config), label, _dumps(data),
                               time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))

    # ------------------------------------------------------------------ reading

    def tunings(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Stored tuning studies by key (all, or these keys; missing keys are skipped)."""
        if self.legacy:
            return {}
        rows = self.conn.execute("SELECT key, workload, workload_hash, label, data FROM tunings ORDER BY rowid")
        wanted = None if keys is None else set(keys)
        return {k: {"workload": w, "workload_hash": h, "label": lab, **json.loads(d)}
                for k, w, h, lab, d in rows if wanted is None or k in wanted}

    def comparison(self, which: int | None = None) -> dict[str, Any] | None:
        """A comparison by id, or the latest one; None when there is none."""
        q = "SELECT id, created, title, command, run_keys, meta FROM comparisons "
        row = (self.conn.execute(q + "WHERE id=?", (which,)) if which is not None
               else self.conn.execute(q + "ORDER BY id DESC LIMIT 1")).fetchone()
        if row is None:
            return None
        return {"id": row[0], "created": row[1], "title": row[2], "command": row[3], "run_keys": json.loads(row[4]),
                "meta": json.loads(row[5])}

    def keys(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT key FROM runs ORDER BY rowid")]

    def runs(self, keys: Iterable[str] | None = None) -> list[RunRecord]:
        """Load runs (all, or these keys, in this order; missing keys are skipped)."""
        keys = self.keys() if keys is None else list(keys)
        cols = ("key",) + _SCALARS + _JSON
        out = []
        for key in keys:
            row = self.conn.execute(f"SELECT {', '.join(cols)} FROM runs WHERE key=?", (key,)).fetchone()
            if row is None:
                continue
            data = dict(zip(cols, row))
            for c in _JSON:
                data[c] = json.loads(data[c])
            for name, blob in self.conn.execute("SELECT name, data FROM series WHERE run_key=?", (key,)):
                data[name] = json.loads(blob)
            out.append(RunRecord.from_dict(data))
        return out

    def workload_info(self, config: dict[str, Any]) -> dict[str, Any]:
        row = self.conn.execute("SELECT info FROM workloads WHERE hash=?", (workload_hash(config),)).fetchone()
        return json.loads(row[0]) if row else {**config, "description": "", "extras": {}}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

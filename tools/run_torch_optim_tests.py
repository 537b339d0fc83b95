"""Run torch's own optimizer test suite (``test/test_optim.py``) against inertia's classes.

torch's ``TestOptimRenewed`` suite is driven by ``optim_db`` from
``torch.testing._internal.common_optimizers`` (shipped in the wheel); the test file itself is
not in the wheel and is not part of this repository. Fetch the version that matches your torch
and pass its path::

    python tools/run_torch_optim_tests.py /path/to/test_optim.py              # inertia's classes
    python tools/run_torch_optim_tests.py /path/to/test_optim.py --impl torch # torch's, for reference
    python tools/run_torch_optim_tests.py /path/to/test_optim.py --dynamo     # PYTORCH_TEST_WITH_DYNAMO=1

How it works: the script re-runs itself as a pytest plugin (``-p``) in a child process. Before
collection, the plugin (1) registers empty stand-ins for the three sibling modules that
test_optim.py imports from torch's test tree (``optim.test_lrscheduler``, ``optim.test_optim``,
``optim.test_swa_utils``: other suites, not ours) and (2) replaces ``optim_cls`` on the
``optim_db`` entries for the optimizers inertia shares with torch. The tests are generated
from those entries when test_optim.py is imported, so every generated test then constructs
inertia's class. Only the CPU instantiation of TestOptimRenewed runs, and only the tests
parametrized by one of the swapped optimizers. The same selection runs for ``--impl torch``,
so both counts are over the same tests.

Each test's outcome is appended to a JSON-lines log as it finishes, so a run cut short by
``--timeout`` still reports what it got. The summary prints passed / failed / skipped counts and the failures grouped by cause: the
exception type and the first line of its message (numbers and addresses folded so that the
same cause groups together), with the test names under each.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import types
import json
from collections import defaultdict
from pathlib import Path

#: the optim_db entries whose optim_cls is swapped for inertia's class of the same name
#: (``--optimizers`` picks some of them; the child process reads the choice from the environment)
ALL_SHARED = ("Adagrad", "Adam", "AdamW", "RMSprop", "SGD",
              "NAdam", "RAdam", "Adamax", "Adadelta", "Adafactor", "Muon")
_ENV_ONLY = "INERTIA_TORCH_TESTS_OPTIMIZERS"
SWAPPED = tuple(n for n in os.environ.get(_ENV_ONLY, ",".join(ALL_SHARED)).split(",") if n)
#: a test generated for one of them on CPU: test_<what>_<Optimizer>_cpu[_<dtype>]...
_SELECTED = re.compile(r"_(%s)_cpu(_|$)" % "|".join(SWAPPED))

_ENV_IMPL = "INERTIA_TORCH_TESTS_IMPL"
_ENV_LOG = "INERTIA_TORCH_TESTS_LOG"


# ------------------------------------------------------------------ the pytest plugin (child)

def _stub_sibling_modules() -> None:
    """test_optim.py imports three other suites from torch's test tree; give it empty ones."""
    import unittest

    from torch.testing._internal.common_utils import TestCase

    package = types.ModuleType("optim")
    package.__path__ = []  # a package, so that "optim.x" imports resolve to the stubs below
    sys.modules.setdefault("optim", package)
    for name, classes in {
        "optim.test_lrscheduler": ("TestLRScheduler",),
        "optim.test_optim": ("TestDifferentiableOptimizer",),
        "optim.test_swa_utils": ("TestSWAUtils",),
    }.items():
        module = types.ModuleType(name)
        for cls in classes:
            # no test methods: instantiate_device_type_tests accepts it and generates nothing
            setattr(module, cls, type(cls, (TestCase,), {"__module__": name}))
        sys.modules.setdefault(name, module)
    del unittest


def _swap_optim_db() -> list[str]:
    import inertia
    from torch.testing._internal import common_optimizers

    swapped = []
    for info in common_optimizers.optim_db:
        name = info.optim_cls.__name__
        if name in SWAPPED:
            info.optim_cls = getattr(inertia, name)
            swapped.append(name)
    missing = set(SWAPPED) - set(swapped)
    if missing:
        raise RuntimeError(f"optim_db has no entry for {sorted(missing)}")
    return swapped


def pytest_configure(config) -> None:  # noqa: D103 - pytest hook
    _stub_sibling_modules()
    if os.environ.get(_ENV_IMPL) == "inertia":
        _swap_optim_db()


def pytest_collection_modifyitems(session, config, items) -> None:  # noqa: D103 - pytest hook
    keep, drop = [], []
    for item in items:
        cls = getattr(item, "cls", None)
        ok = cls is not None and cls.__name__ == "TestOptimRenewedCPU" and _SELECTED.search(item.name)
        (keep if ok else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_runtest_logreport(report) -> None:  # noqa: D103 - pytest hook
    """Append each test's outcome to a JSON-lines log as it finishes (so a timed-out run counts)."""
    log = os.environ.get(_ENV_LOG)
    if not log or not (report.when == "call" or report.outcome != "passed"):
        return
    message = ""
    if report.outcome != "passed":
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is not None:
            message = crash.message
        elif isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
            message = str(report.longrepr[-1])
        else:
            message = str(report.longrepr)
    with open(log, "a") as fh:
        fh.write(json.dumps({"test": report.nodeid.split("::")[-1], "when": report.when,
                             "outcome": report.outcome, "message": message[:2000]}) + "\n")


# ------------------------------------------------------------------ the driver (parent)

_NUMBER = re.compile(r"(?<![\w.])-?\d+(\.\d+)?(e[-+]?\d+)?")


def _cause(message: str) -> str:
    """Exception type and first line, with numbers and hex addresses folded."""
    first = next((line.strip() for line in message.splitlines() if line.strip()), "(no message)")
    first = re.sub(r"0x[0-9a-f]+", "0x…", first)
    first = _NUMBER.sub("N", first)
    return first[:200]


def _summarize(log: Path) -> tuple[dict[str, int], dict[str, list[str]]]:
    outcome: dict[str, tuple[str, str]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        rec = json.loads(line)
        previous = outcome.get(rec["test"])
        if previous is None or previous[0] == "passed":  # a failing teardown overrides a pass
            outcome[rec["test"]] = (rec["outcome"], rec["message"])
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    causes: dict[str, list[str]] = defaultdict(list)
    for name, (result, message) in outcome.items():
        counts[result] += 1
        if result == "failed":
            causes[_cause(message)].append(name)
    return counts, causes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test_file", type=Path, help="torch's test/test_optim.py for your torch version")
    parser.add_argument("--impl", choices=("inertia", "torch"), default="inertia",
                        help="whose classes optim_db points at (default: inertia)")
    parser.add_argument("--dynamo", action="store_true", help="set PYTORCH_TEST_WITH_DYNAMO=1")
    parser.add_argument("--optimizers", default=",".join(ALL_SHARED),
                        help="comma-separated optim_db names to swap and run (default: all shared)")
    parser.add_argument("-k", dest="keyword", default=None,
                        help="an extra pytest -k expression (e.g. a subset for the dynamo run)")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds for the whole run; the counts so far are reported (default 3600)")
    parser.add_argument("--per-test-timeout", type=int, default=600)
    parser.add_argument("--log", type=Path, default=None, help="keep the per-test JSON-lines log here")
    parser.add_argument("--show", type=int, default=6, help="test names listed per cause")
    args = parser.parse_args(argv)

    test_file = args.test_file.resolve()
    if not test_file.is_file():
        parser.error(f"no such file: {test_file}")
    log = args.log or Path(tempfile.mkdtemp(prefix="torch-optim-")) / "results.jsonl"
    log.unlink(missing_ok=True)
    env = dict(os.environ)
    env[_ENV_IMPL] = args.impl
    env[_ENV_LOG] = str(log)
    env[_ENV_ONLY] = args.optimizers
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))
    if args.dynamo:
        env["PYTORCH_TEST_WITH_DYNAMO"] = "1"
    else:
        env.pop("PYTORCH_TEST_WITH_DYNAMO", None)
    keyword = "TestOptimRenewedCPU" + (f" and ({args.keyword})" if args.keyword else "")
    cmd = [sys.executable, "-m", "pytest", str(test_file), "-p", Path(__file__).stem,
           "-k", keyword, "-q", "-rN", "--no-header", "-p", "no:cacheprovider",
           "--rootdir", str(test_file.parent), "-o", "addopts=",
           f"--timeout={args.per_test_timeout}"]
    print(f"impl={args.impl} dynamo={args.dynamo} file={test_file}", flush=True)
    timed_out = False
    try:
        proc = subprocess.run(cmd, env=env, cwd=test_file.parent, timeout=args.timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    except subprocess.TimeoutExpired as exc:
        timed_out = True
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        tail = out.strip().splitlines()[-1:]
    counts, causes = _summarize(log)
    if not any(counts.values()):
        print("no test ran" + (" (the run timed out)" if timed_out else "") + ":", *tail)
        return 2
    total = sum(counts.values())
    print(f"{'TIMED OUT after %ss; partial: ' % args.timeout if timed_out else ''}"
          f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
          f" ({total} tests)")
    for cause, names in sorted(causes.items(), key=lambda kv: -len(kv[1])):
        print(f"\n[{len(names)}] {cause}")
        for name in sorted(names)[: args.show]:
            print(f"      {name}")
        if len(names) > args.show:
            print(f"      ... and {len(names) - args.show} more")
    return 1 if counts["failed"] or timed_out else 0


if __name__ == "__main__":
    sys.exit(main())

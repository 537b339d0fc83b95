"""The ``inertia`` command: parse arguments and dispatch to :mod:`inertia.lab`; nothing else.

    inertia compare [--workload W ...] [--optimizer ENTRY ...] [--seeds 0,1,2] [--out DIR] [--jobs N] [--threads N]
                    [--tune N [--pruner P] [--sampler S] [--tune-also KNOBS] [--storage URL [--worker]]]
    inertia compare --suite NAME [--quick]
    inertia report DB --out DIR
    inertia workloads
    inertia optimizers

Errors a user can fix (unknown names, invalid hyperparameters, an unusable output folder or
database) print one line naming the argument and exit with status 2; no traceback. A run
that diverges or fails is an outcome in the report, never a crash of the command.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

ENTRY_HELP = """\
optimizer entries (--optimizer, repeatable):
  NAME[:KEY=VALUE,...][;schedule=SCHEDULE][;batch=N][;label=TEXT]
    adam                                 the workload's default lr for adam
    "adam:lr=1e-3,betas=(0.9,0.99)"      values are Python literals
    "sgd:lr=0.1,momentum=0.9;schedule=cosine"
    "sgd:lr=0.5;batch=1;label=stochastic"   batch size (workloads with one: minibatch, mnist-*)
  names: see `inertia optimizers`; a NAME with a dot is an optimizer class by import path,
    a peer run beside inertia's: "torch.optim.AdamW:lr=3e-4,weight_decay=0.1"
  quote entries in the shell: ';' and '(' are special there.

schedules (all start from the entry's lr; they count steps):
  constant | cosine[(lr_min=..,T=..)] | exponential(k=..) | inverse_time(k=..)
  | step(every=..,factor=..) | warmup(steps=..), joined by '+': "warmup(steps=50)+cosine"
  (a part that is not last needs a length: warmup uses steps=, others len=)

workloads (--workload, repeatable): NAME[:OPTION=VALUE,...], e.g. valley-noisy:noise=0.5
  (see `inertia workloads`), or your own: MODULE:FUNCTION[:OPTION=VALUE,...], a function
  returning a Workload (mypkg.mymodule:make_workload, or path/to/file.py:make_workload;
  the current directory is importable). Walk-through: docs/lab-own-model.md.

tuning (--tune N): every entry gets the same budget, N trials of lr (and --tune-also knobs)
  log-uniform over [lr/30, lr*30] around its library default (or typed lr), quasirandom,
  widened 30x when the best lies at an edge; trials train on seed 1000 and are scored on
  validation; successive halving (--pruner halving) stops the worst two thirds at each rung,
  so every entry costs the same stated number of steps. The best trial is re-run on --seeds
  and judged on test. Studies live in OUT/studies.sqlite, or --storage postgresql://... so
  that other machines can help: `inertia compare <same arguments> --worker`.

outcomes: a run "reached" the target when its validation metric met it at some evaluation
  and at every later one; "diverged" when loss, metric or parameters became NaN/inf or the
  loss exploded; "failed" when an exception stopped it (message kept, retried next time).
verdicts: "A beats B" needs an exact rank test over seeds, Holm-corrected, below 0.05 and a
  difference above the workload's practical threshold; fewer than 5 seeds per entry give
  intervals and "too few seeds for a verdict". Details: docs/lab.md.

With no arguments, `inertia compare` runs the lesson's headline comparison (Adam, RMSprop,
Momentum, SGD on mnist-cnn and valley, each tuned with 8 trials, 3 seeds) into
./inertia-report/. Small models train single-threaded, --jobs at a time (default: one per
core that other work leaves idle). Results go to DIR/runs.sqlite; rerunning the same
command skips finished trials and runs, so an interrupted comparison resumes.
"""


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seeds {text!r} (expected e.g. 0,1,2)") from None
    if not seeds:
        raise argparse.ArgumentTypeError("need at least one seed")
    return seeds


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (must be a whole number >= 0)")
    return n


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (must be a positive integer)")
    return n


def _suites_help() -> str:
    from .lab.suites import SUITES

    import textwrap

    return "suites (--suite NAME; --quick runs a short version):\n" + "\n".join(
        f"  {name}: {s.description}\n" + textwrap.fill(f"--quick: {s.quick}", 92, initial_indent="    ",
                                                       subsequent_indent="      ")
        for name, s in SUITES.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inertia", description="Compare gradient-descent optimizers side by side.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compare", help="run optimizers side by side and write a report",
                       description="Run optimizer entries on workloads over seeds; write a report.",
                       epilog=ENTRY_HELP + "\n" + _suites_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("-w", "--workload", action="append", metavar="W", help="workload (repeatable); default: mnist-cnn and valley")
    c.add_argument("-o", "--optimizer", action="append", metavar="ENTRY",
                   help="optimizer entry (repeatable); default: each workload's own entries, else adam, rmsprop, momentum, sgd")
    c.add_argument("--seeds", type=_seeds, default=None, help="comma-separated seeds (default 0,1,2)")
    c.add_argument("--steps", type=_positive, default=None, help="override every workload's step budget")
    c.add_argument("--out", default="inertia-report", help="report folder (default ./inertia-report)")
    c.add_argument("--db", default=None, help="results database (default OUT/runs.sqlite)")
    c.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    c.add_argument("--jobs", type=_positive, default=None,
                   help="runs at a time for small models, in worker processes (default: one per idle core; 1: one by one)")
    c.add_argument("--threads", type=_positive, default=None,
                   help="torch threads per run (default: the workload's choice, 1 for small models)")
    c.add_argument("--tune", type=_count, default=None, metavar="N",
                   help="tune every entry with N trials first, the same budget for each (0: no tuning; default: "
                        "8 for the main job with no arguments, none when entries or workloads are given)")
    c.add_argument("--pruner", default="halving", choices=("halving", "none"),
                   help="with --tune: successive halving (default) or every trial to the end")
    c.add_argument("--sampler", default="quasirandom", choices=("quasirandom", "tpe"),
                   help="with --tune: Sobol points (default), or Optuna's TPE after the first two thirds")
    c.add_argument("--tune-also", default="", metavar="KNOBS",
                   help="with --tune: other hyperparameters to tune, comma-separated: momentum, beta1, beta2, "
                        "weight_decay, eps (for the entries that have them)")
    c.add_argument("--storage", default=None, metavar="URL",
                   help="with --tune: the study storage, e.g. postgresql://user@host/db (default OUT/studies.sqlite)")
    c.add_argument("--worker", action="store_true",
                   help="with --tune and --storage: only help run the trials of a comparison started elsewhere "
                        "with the same arguments")
    c.add_argument("--title", default="", help="report title")
    c.add_argument("--suite", default=None, help="run a named suite instead (headline, surfaces, minibatch, large-batch, seed-claims)")
    c.add_argument("--quick", action="store_true",
                   help="with --suite: a short version; the report says what it covers and cannot test")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bars (they only show on a terminal anyway)")

    r = sub.add_parser("report", help="regenerate a report from a results database alone")
    r.add_argument("db", help="results database (e.g. inertia-report/runs.sqlite)")
    r.add_argument("--out", required=True, help="report folder")
    r.add_argument("--comparison", type=int, default=None, help="comparison id (default: the latest)")
    r.add_argument("--all", action="store_true", help="every run in the database, not one comparison")

    sub.add_parser("workloads", help="list the workloads")
    sub.add_parser("optimizers", help="list the optimizers and their defaults")
    return parser


def _fail(message: str, code: int = 2) -> int:
    print(f"inertia: error: {message}", file=sys.stderr)
    return code


def _compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .lab import api, suites
    from .lab.reporting.render import text

    from .lab.tuning import Budget

    main_job = not (args.workload or args.optimizer or args.suite)
    trials = args.tune if args.tune is not None else (api.DEFAULT_TUNE if main_job else 0)
    if not trials and (args.worker or args.storage or args.tune_also):
        return _fail("--worker, --storage and --tune-also need --tune N")
    if args.worker and not args.storage:
        return _fail("--worker needs --storage URL: the study storage the other processes use")
    budget = Budget(trials, pruner=args.pruner, sampler=args.sampler,
                    tune_also=tuple(k.strip() for k in args.tune_also.split(",") if k.strip())) if trials else None
    if args.suite:
        if args.workload or args.optimizer:
            return _fail("--suite runs its own workloads and optimizers; drop --workload/--optimizer")
        table = suites.run_suite(args.suite, out=args.out, quick=args.quick, quiet=args.quiet, seeds=args.seeds,
                                 jobs=args.jobs, tune=(budget or 0) if args.tune is not None else None)
    else:
        if args.quick:
            return _fail("--quick applies to --suite only; use --steps to shorten a comparison")
        table = api.compare(args.workload, args.optimizer, seeds=args.seeds or api.DEFAULT_SEEDS, out=args.out,
                            db=args.db, steps=args.steps, device=args.device, threads=args.threads, jobs=args.jobs,
                            quiet=args.quiet, title=args.title, command=" ".join(["inertia", *map(shlex.quote, argv)]),
                            tune=budget, storage=args.storage, worker=args.worker)
        if args.worker:
            print(f"worker: ran {table} trials; the comparison's own process writes the report")
            return 0
    doc = getattr(table, "attrs", {}).get("document")
    if doc is not None:
        print(text(doc))
    else:  # a suite with its own table (seed-claims: one row per run) prints its own summary
        print(f"{len(table)} runs")
    print(f"\nreport: {args.out}/report.html (also report.md, summary.json, PNGs)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .lab import api
    from .lab.reporting.render import text

    result = api.report(args.db, args.out, comparison=args.comparison, all_runs=args.all)
    print(text(result["document"]))
    print(f"\nreport: {args.out}/report.html")
    return 0


def _workloads() -> int:
    from .lab.workloads import describe

    rows = describe()
    width = max(len(n) for n, _ in rows)
    for name, text in rows:
        print(f"{name.ljust(width)}  {text}")
    return 0


def _optimizers() -> int:
    from .lab.specs import describe_optimizers

    rows = describe_optimizers()
    width = max(len(n) for n, _, _ in rows)
    for name, text, defaults in rows:
        args = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        print(f"{name.ljust(width)}  {text}\n{' ' * width}  defaults: {args}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    from .lab.api import OutputError
    from .lab.specs import SpecError
    from .lab.store import StoreError
    from .lab.workloads import UnknownWorkloadError

    try:
        if args.command == "compare":
            return _compare(args, argv)
        if args.command == "report":
            return _report(args)
        if args.command == "workloads":
            return _workloads()
        return _optimizers()
    except (SpecError, UnknownWorkloadError, StoreError, OutputError, ValueError, ImportError) as exc:
        # the optimizers' own ValueError messages ("Invalid learning rate: -1 ...") pass through as is
        return _fail(str(exc))
    except KeyboardInterrupt:
        db = getattr(args, "db", None) or f"{getattr(args, 'out', 'inertia-report')}/runs.sqlite"
        return _fail(f"interrupted; finished runs are saved in {db}: rerun the same command to resume", 130)


if __name__ == "__main__":
    sys.exit(main())

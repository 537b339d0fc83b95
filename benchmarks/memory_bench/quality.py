"""``quality``: the lab's workloads with Adam and each state policy, the lr chosen per
policy on validation, the test metric per seed at that lr."""
from __future__ import annotations

import statistics
from pathlib import Path

from .report import header, write


def quality_section(args) -> None:
    from inertia.lab import api
    from inertia.lab.tuning import choose
    from inertia.lab.workloads import get

    policies = {"float32 state": "", "bfloat16 state": ",state_dtype=bfloat16",
                "8-bit state": ",state_dtype=8bit",
                "8-bit state, min size 0": ",state_dtype=8bit,state_min_size=0"}
    seeds = [int(s) for s in args.seeds.split(",")]
    report, data = [], {}
    for wname in args.workloads.split(","):
        work = get(wname)
        centre = work.default_lr["adam"]
        untuned = wname in args.untuned.split(",")
        factors = (1,) if untuned else (1 / 3, 1, 3)
        entries = []
        for label, extra in policies.items():
            if (untuned or wname in args.lean.split(",")) and \
                    label not in ("float32 state", "8-bit state"):
                continue  # the time it takes: float32 against the 8-bit state only
            if wname != "mnist-cnn" and "min size 0" in label:
                continue  # reviews' matrices are all far above the threshold
            if wname == "mnist-cnn" and label == "8-bit state":
                continue  # every tensor is below the threshold: the float32 runs, bit for bit
            for f in factors:
                lr = float(f"{centre * f:.3g}")
                entries.append(f"adam:lr={lr}{extra};label={label} lr={lr}")
        db = Path(args.work) / f"quality_{wname}.sqlite"
        db.parent.mkdir(parents=True, exist_ok=True)
        api.compare([wname], entries, seeds=seeds, steps=args.quality_steps,
                    out=str(Path(args.work) / f"report_{wname}"),
                    db=str(db), threads=1, jobs=args.jobs, quiet=True, write_report=False,
                    title=f"state policies on {wname}")
        runs = api.load_runs(db)
        lrs = {float(f"{centre * f:.3g}") for f in factors}  # this run's entries only
        runs = runs[(runs["workload"] == wname) & runs["lr"].isin(lrs)].copy()
        runs["policy"] = runs["optimizer"].str.rsplit(" lr=", n=1).str[0]
        runs["higher_is_better"] = work.higher_is_better
        chosen = choose(runs, group="policy")
        rows = {}
        for policy, lr in chosen.items():
            sel = runs[(runs["policy"] == policy) & (runs["lr"] == lr)]
            tests = [float(x) for x in sel["final_metric"]]
            rows[policy] = {"lr": lr, "test": tests, "val": [float(x) for x in sel["val_final"]]}
        data[wname] = rows
        base = rows["float32 state"]["test"]
        lo, hi = min(base), max(base)
        report += [f"## {wname}", "", f"{work.description}; metric {work.metric} (test split, at "
                   f"the end of {args.quality_steps or work.steps} steps). float32's seed spread: {lo:.4f}-{hi:.4f}.", "",
                   "| state | chosen lr | test, per seed | mean | within float32's spread |",
                   "|---|---:|---|---:|---|"]
        for policy, r in rows.items():
            mean = statistics.fmean(r["test"])
            inside = "yes" if lo <= mean <= hi else ("above" if mean > hi else "below")
            report.append(f"| {policy} | {r['lr']:g} | {', '.join(f'{x:.4f}' for x in r['test'])} | "
                          f"{mean:.4f} | {inside} |")
        report.append("")
    lines = header("Held-out quality of each state policy", f"python benchmarks/memory.py quality "
                   f"--workloads {args.workloads} --seeds {args.seeds}"
                   + (f" --untuned {args.untuned}" if args.untuned else "")
                   + (f" --lean {args.lean}" if args.lean else "")
                   + (f" --jobs {args.jobs}" if args.jobs != 1 else ""))
    lines += ["Adam on the lab's workloads with each state policy; the lr chosen per policy on "
              "the validation split (mean over seeds of the final validation metric, "
              "`inertia.lab.tuning.choose`) from the workload's Adam rate times 1/3, 1 and 3; the "
              f"test metric at that rate for seeds {args.seeds}. *within float32's spread*: "
              "whether the policy's mean lies between float32's lowest and highest seed. "
              "`mnist-cnn`'s tensors all have fewer than 4,096 elements, so its default 8-bit "
              "policy keeps float32 state everywhere (its runs would be float32's, bit for bit, "
              "so they are not repeated); *min size 0* quantises every tensor whose "
              "rows hold 16+ elements (all but the stem convolution's, 9 wide)."
              + (f" Workloads run untuned ({args.untuned}): at the workload's own Adam rate only, "
                 "float32 against the 8-bit state (no bfloat16 row), for the time a run takes on "
                 "this machine." if args.untuned else "")
              + (f" Workloads run lean ({args.lean}): float32 against the 8-bit state only (no "
                 "bfloat16 row), for the time a run takes on this machine." if args.lean else ""),
              ""] + report
    write("quality", lines, data)

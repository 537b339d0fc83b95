"""The words of a comparison report: verdicts, claims, advice, tables, measured facts.

Everything here turns scored data (:mod:`inertia.lab.scoring`) into sentences and table
cells, with numbers formatted by :mod:`.format`; :mod:`.comparison` puts them in order.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..records import LR_SOURCES
from ..scoring.stats import ALPHA, MIN_SEEDS
from ..scoring.table import TIMING_SPREAD
from ..scoring.verdict import WorkloadVerdict
from . import format as fmt
from . import plots
from .document import Table

RULE = ("A beats B only when an exact two-sided rank test over the seeds (the permutation distribution of the "
        f"difference in mean ranks) gives a p-value below {ALPHA:g} after Holm's correction for all of the winner's "
        "comparisons, and the difference of the medians exceeds the workload's practical threshold; with fewer "
        f"than {MIN_SEEDS} seeds per entry (or too few to survive the correction) no verdict is given. Otherwise: "
        "no clear difference.")

RANKING = ("Entries are ranked by the final test metric (median over seeds; a diverged or failed run counts as the "
           "worst value), in tiers as wide as the practical threshold; within a tier by median steps to target "
           "(never reached = infinite), or by seconds for workloads whose entries differ in cost per step. The "
           "winner is tested against each other entry on the criterion that separated them.")


def entry_name(row: Any) -> str:
    """An entry with its learning rate, as claims and advice name it."""
    return plots.legend_label(row["optimizer"], row["lr"], row["lr_source"])


def outcome_text(row: Any) -> str:
    n = int(row["seeds"])
    parts = [f"{row['n_reached']}/{n} reached"]
    for key, word in (("n_diverged", "diverged"), ("n_failed", "failed")):
        if row[key]:
            parts.append(f"{row[key]} {word}")
    return ", ".join(parts)


def _interval(row: Any, col: str, kind: str, metric: str = "") -> str:
    f = {"steps": fmt.steps, "seconds": fmt.seconds,
         "metric": lambda v: fmt.metric(v, metric, missing="diverged")}[kind]
    return fmt.interval(row[col], row[col + "_lo"], row[col + "_hi"], f)


def _coverage_note(summary: pd.DataFrame) -> str:
    conf = sorted({round(float(c), 3) for c in summary["final_metric_conf"] if c == c})
    seeds = sorted({int(s) for s in summary["seeds"]})
    if not conf:
        return ""
    if max(seeds) == 1:
        return "One seed per entry: no intervals, and no verdict is possible."
    if min(conf) >= 0.95:
        return "Brackets: the 95% interval for the median over seeds (order statistics)."
    return (f"Brackets: the interval for the median over seeds; with {', '.join(map(str, seeds))} seeds per entry "
            f"it is the seed range, which covers the median with {fmt.percent(min(conf))} confidence "
            "(6 or more seeds give a 95% interval).")


def verdict_sentence(v: WorkloadVerdict, by: dict[str, Any]) -> str:
    """One sentence: who ranks first and what the seeds support about it."""
    if v.winner is None:
        return "No runs."
    w = entry_name(by[v.winner])
    if not v.tests:
        return f"**{w}** is the only entry; there is nothing to compare it with."
    if v.too_few_seeds:
        return (f"**Too few seeds for a verdict.** {w} ranks first and {entry_name(by[v.runner_up])} second, but with "
                f"{v.seeds} {'seed' if v.seeds == 1 else 'seeds'} per entry no difference can be shown: the exact rank test needs at least {v.needed} "
                f"seeds per entry for {v.comparisons} comparison{'s' if v.comparisons > 1 else ''} at {ALPHA:g} after "
                "Holm's correction. The medians and intervals below are what the runs say.")
    if v.clear_winner:
        return f"**{w} wins**: it beats every other entry ({_criteria(v.tests)}), each difference statistically clear and larger than the practical threshold."
    if not v.beaten:
        return (f"**No clear winner.** {w} ranks first, but shows no clear difference from any other entry "
                f"({', '.join(entry_name(by[t.other]) for t in v.ties)}).")
    return (f"**{w} ranks first**: it beats {', '.join(entry_name(by[t.other]) for t in v.beaten)}, but shows no clear "
            f"difference from {', '.join(entry_name(by[t.other]) for t in v.ties)}.")


def _criteria(tests) -> str:
    kinds = sorted({t.criterion for t in tests})
    return " and ".join(kinds)


def _gap(t, metric: str) -> str:
    if t.criterion == "final metric":
        return f"{fmt.metric_difference(t.difference, metric)} higher final test {metric}" if not math.isinf(t.difference) \
            else "the other diverged or failed"
    return f"{fmt.steps(t.difference)} fewer steps to target" if not math.isinf(t.difference) else "the other never held the target"


def claims_for(v: WorkloadVerdict, by: dict[str, Any], metric: str) -> tuple[list[str], list[dict[str, Any]]]:
    """A handful of claims (text and data): the winner, whom it beats, the ties, the failures."""
    if v.winner is None:
        return [], []
    correction = f"Holm over {v.comparisons} comparison{'s' if v.comparisons != 1 else ''}"
    lines, data = [], []
    w = by[v.winner]
    lines.append(f"Ranked first: {entry_name(w)}: final test {metric} {_interval(w, 'final_metric', 'metric', metric)}, "
                 f"steps to target {_interval(w, 'steps_to_target', 'steps')}, {outcome_text(w)}.")
    data.append({"kind": "first", "entry": v.winner, "lr": w["lr"], "final_metric": w["final_metric"],
                 "final_metric_interval": [w["final_metric_lo"], w["final_metric_hi"]],
                 "steps_to_target": w["steps_to_target"],
                 "steps_to_target_interval": [w["steps_to_target_lo"], w["steps_to_target_hi"]]})

    def side(t) -> str:
        o = by[t.other]
        col, kind = ("final_metric", "metric") if t.criterion == "final metric" else ("steps_to_target", "steps")
        return f"{entry_name(o)} {_interval(o, col, kind, metric)}"

    def record(kind: str, t) -> dict[str, Any]:
        o = by[t.other]
        col = "final_metric" if t.criterion == "final metric" else "steps_to_target"
        return {"kind": kind, "winner": v.winner, "other": t.other, "criterion": t.criterion,
                "difference": t.difference, "p": t.p, "p_adjusted": t.p_adjusted, "correction": correction,
                "other_median": o[col], "other_interval": [o[col + "_lo"], o[col + "_hi"]]}

    if v.too_few_seeds and v.tests:
        lines.append(f"Too few seeds for a verdict: {v.seeds} per entry, {v.needed} needed for {v.comparisons} "
                     f"comparison{'s' if v.comparisons != 1 else ''} ({correction}).")
        data.append({"kind": "too few seeds", "seeds": v.seeds, "needed": v.needed, "correction": correction})
    else:
        if v.beaten:
            shown = v.beaten if len(v.beaten) <= 4 else v.beaten[:3]
            text = "; ".join(f"{side(t)} ({_gap(t, metric)}, adjusted {fmt.pvalue(t.p_adjusted)})" for t in shown)
            more = f"; and {len(v.beaten) - len(shown)} more, largest adjusted {fmt.pvalue(max(t.p_adjusted for t in v.beaten))}" \
                if len(v.beaten) > len(shown) else ""
            lines.append(f"{entry_name(w)} beats: {text}{more} ({correction}).")
            data += [record("beats", t) for t in v.beaten]
        if v.ties:
            shown = v.ties if len(v.ties) <= 4 else v.ties[:3]
            text = "; ".join(f"{side(t)} (adjusted {fmt.pvalue(t.p_adjusted)}"
                             + ("" if t.practical else ", gap below the threshold") + ")" for t in shown)
            more = f"; and {len(v.ties) - len(shown)} more" if len(v.ties) > len(shown) else ""
            lines.append(f"No clear difference between {entry_name(w)} and: {text}{more} ({correction}).")
            data += [record("no clear difference", t) for t in v.ties]
    if v.failures:
        parts = []
        for f in v.failures:
            what = ", ".join(f"{n} of {f['seeds']} {word}" for n, word in ((f["diverged"], "diverged"), (f["failed"], "failed")) if n)
            parts.append(f"{entry_name(by[f['entry']])} ({what}" + (f"; {f['errors'][0]}" if f["errors"] else "") + ")")
        lines.append("Stopped early: " + "; ".join(parts) + ". Such runs count as the worst final metric and as never reaching the target.")
        data += [{"kind": "stopped early", **f} for f in v.failures]
    misses = [m for m in v.misses if m["not_reached"]]
    if misses:
        untuned = [m for m in misses if m["lr_source"] == "default"]
        groups: dict[tuple[int, int], list[str]] = {}
        for m in misses:  # one clause per "k of n seeds", so many entries still make one short claim
            groups.setdefault((m["not_reached"], m["seeds"]), []).append(entry_name(by[m["entry"]]))
        lines.append("Did not hold the target to the end: " + "; ".join(
            f"on {k} of {n} seeds: {', '.join(names)}" for (k, n), names in sorted(groups.items(), reverse=True)) + "."
            + (f" {', '.join(entry_name(by[m['entry']]) for m in untuned)} ran at the library-default learning rate, "
               "untuned: a miss there says nothing about the optimizer at a tuned rate." if untuned else ""))
        data += [{"kind": "not reached", **m} for m in misses]
    if v.met_at_start:
        lines.append(f"The target was already met before training for {', '.join(v.met_at_start)}: it is too easy "
                     "to tell these entries apart by time to target.")
        data.append({"kind": "target met at start", "entries": v.met_at_start})
    return lines, data


def measured_facts(g: pd.DataFrame, info: dict[str, Any]) -> list[str]:
    """Measured facts that bear on the ranking (numbers only; the figures show the rest)."""
    out = []
    if info.get("trajectory"):
        d = g[g["detour"] == g["detour"]].sort_values("detour")
        if len(d):
            parts = [f"{r['optimizer']} {r['detour']:.2f}" for _, r in d.iterrows()]
            out.append("Detour, path length over straight-line distance (1 = straight; median over seeds): "
                       + ", ".join(parts) + f". Most zig-zag: {d.iloc[-1]['optimizer']}; straightest: {d.iloc[0]['optimizer']}.")
    rough = g[g["roughness"] == g["roughness"]].sort_values("roughness")
    if len(rough):
        out.append("Noise of the training-loss curve (median |change of log loss| per step): "
                   + ", ".join(f"{r['optimizer']} {r['roughness']:.3f}" for _, r in rough.iterrows()) + ".")
    n_train = (info.get("extras") or {}).get("n_train")
    if n_train and g["batch_size"].nunique() > 1:
        parts = []
        for _, r in g.iterrows():
            bs = min(int(r["batch_size"]), n_train)
            per = r["time_per_step"]
            parts.append(f"{r['optimizer']}: batch {bs}, {fmt.seconds(per)}/update, {n_train / bs:.0f} updates/epoch, "
                         f"{fmt.seconds(per * n_train / bs)}/epoch, {r['epochs']:.2f} epochs in the budget")
        out.append("Cost per update and per epoch (measured one run at a time): " + "; ".join(parts) + ".")
    out.append("Optimizer state at the end: " + ", ".join(f"{r['optimizer']} {fmt.nbytes(r['state_bytes'])}"
                                                          for _, r in g.iterrows()) + ".")
    return out


def entry_table(g: pd.DataFrame, info: dict[str, Any]) -> Table:
    metric = info["metric"]
    shared = bool((g["concurrency"] > 1).any())
    rows = []
    for _, r in g.iterrows():
        rows.append([str(int(r["rank"])), r["optimizer"], fmt.lr(r["lr"]),
                     {"entry": "entry", "workload": "workload", "default": "library default",
                      "tuned": "tuned"}[r["lr_source"]],
                     outcome_text(r), _interval(r, "steps_to_target", "steps"),
                     _interval(r, "seconds_to_target", "seconds")
                     + (" (noisy)" if r["timing_noisy"] and math.isfinite(r["seconds_to_target"]) else ""),
                     _interval(r, "final_metric", "metric", metric), _interval(r, "best_metric", "metric", metric),
                     _interval(r, "val_final", "metric", metric),
                     f"{r['steps_per_s']:.0f}" if r["steps_per_s"] == r["steps_per_s"] else "n/a"])
    note = " ".join(x for x in [
        _coverage_note(g),
        f"Practical threshold: {fmt.metric_difference(g['threshold'].iloc[0], metric)} of {metric}; "
        f"{fmt.steps(max(float(info['eval_every']), 0.05 * float(info['steps'])))} steps to target.",
        "Time to target counts training time only." + (" Seconds were measured while runs shared the machine "
                                                         "(parallel runs): compare steps, not seconds." if shared else ""),
        f"(noisy): the slowest seed took more than {TIMING_SPREAD:g}x the fastest per step, so its seconds are noise."
        if (g["timing_noisy"] & g["seconds_to_target"].map(math.isfinite)).any() else ""] if x)
    return Table(["#", "optimizer", "lr", "lr from", "outcome", "steps to target", "time to target",
                  f"final test {metric}", f"best val {metric}", f"final val {metric}", "steps/s"],
                 rows, align=["r", "l", "r", "l", "l", "r", "r", "r", "r", "r", "r"], note=note)


def advice(vs: dict[str, WorkloadVerdict], summary: pd.DataFrame, infos: dict[str, dict[str, Any]],
           tuned: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """"Which optimizer to pick", written from these runs (and the tuning that chose their learning rates)."""
    from .tuning import advice_line

    lines = []
    for workload, v in vs.items():
        g = summary[summary["workload"] == workload]
        by = {r["optimizer"]: r for _, r in g.iterrows()}
        metric = infos[workload]["metric"]
        if v.winner is None:
            continue
        w = by[v.winner]
        if v.runner_up is None:
            lines.append(f"**{workload}**: only {entry_name(w)} ran.")
            continue
        r = by[v.runner_up]
        t = next(t for t in v.tests if t.other == v.runner_up)
        gap = (f"final test {metric} {fmt.metric(w['final_metric'], metric, 'diverged')} vs "
               f"{fmt.metric(r['final_metric'], metric, 'diverged')}" if t.criterion == "final metric" else
               f"{fmt.steps(w['steps_to_target'])} vs {fmt.steps(r['steps_to_target'])} steps to target at a practically equal final {metric}")
        if v.too_few_seeds:
            text = (f"**{workload}**: {entry_name(w)} ranks first and {entry_name(r)} second ({gap}); with {v.seeds} "
                    f"seed{'s' if v.seeds != 1 else ''} that is a ranking, not a verdict: rerun with at least {v.needed} seeds "
                    f"(`--seeds {','.join(str(i) for i in range(v.needed))}`) to find out.")
        elif t.clear:
            text = (f"**{workload}**: pick **{entry_name(w)}**: ahead of the runner-up {entry_name(r)} ({gap}; "
                    f"adjusted {fmt.pvalue(t.p_adjusted)})" + ("; it beats every entry." if v.clear_winner else "."))
        else:
            tied = [entry_name(by[x.other]) for x in v.ties]
            text = (f"**{workload}**: no clear winner: {entry_name(w)} and {', '.join(tied)} are not clearly different "
                    f"({gap}); choose among them by cost or tune their learning rates.")
        untuned = [entry_name(by[e]) for e in v.untuned if e in (v.winner, v.runner_up)]
        if untuned:
            text += f" {', '.join(untuned)} ran at an untuned library-default learning rate."
        lines.append(text)
        line = advice_line(workload, (tuned or {}).get(workload, {}), metric)
        if line:
            lines.append(line)
    sources = summary.groupby("lr_source")["optimizer"].apply(lambda s: sorted(set(s))) if len(summary) else {}
    if len(summary):
        parts = [f"{LR_SOURCES[src]}: {', '.join(names)}" for src, names in sources.items()
                 if src not in ("entry", "tuned")]
        if parts:
            lines.append("Learning rates neither typed nor tuned — " + "; ".join(parts)
                         + ". A loss there may be the learning rate's, not the optimizer's: tune them with "
                         "`--tune 20` (`compare(..., tune=20)`).")
    lines.append("These verdicts hold for these workloads, budgets, learning rates and seeds only.")
    return lines

"""``rounding``: the whole model in bfloat16, Adam's update rounded to nearest or
stochastically, against the float32 model: the final test metric and the validation
curves (``memory_rounding.png``)."""
from __future__ import annotations

import statistics

import torch

import inertia

from . import RESULTS
from .report import header, write


class Bf16(torch.nn.Module):
    """A model in bfloat16 that takes and returns float32 (the workload's data and metric)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner.to(torch.bfloat16)

    def forward(self, *args):
        args = [a.to(torch.bfloat16) if torch.is_tensor(a) and a.is_floating_point() else a
                for a in args]
        return self.inner(*args).float()

    def __getattr__(self, name: str):
        # the workload's loss may reach into its model (movielens' penalty reads model.user)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)


def rounding_section(args) -> None:
    from inertia.lab.workloads import get

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    cases = [("movielens", dict(sparse=False), ("adam", 1e-3), 1500),
             ("movielens", dict(sparse=False), ("adam", 1e-2), 1500),
             ("mnist-mlp", {}, ("adam", 1e-4), 600),
             ("mnist-mlp", {}, ("adam", 1e-3), 300)]
    modes = ("float32", "bfloat16, to nearest", "bfloat16, stochastic")
    curves, finals = {}, {}
    for wname, options, (opt_name, lr), steps in cases:
        work = get(wname, **options).with_budget(steps=steps, eval_every=max(steps // 15, 1))
        for mode in modes:
            for seed in seeds:
                model = work.init_model(seed, torch.device("cpu"))
                if mode != "float32":
                    model = Bf16(model)
                opt = inertia.Adam(model.parameters(), lr=lr,
                                   stochastic_rounding=mode.endswith("stochastic"))
                batches = work.make_batches(seed, torch.device("cpu"))
                evals = [(0, work.evaluate(model, torch.device("cpu"), "validation"))]
                for step in range(1, steps + 1):
                    loss = work.loss(model, next(batches))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if step % work.eval_every == 0 or step == steps:
                        evals.append((step, work.evaluate(model, torch.device("cpu"), "validation")))
                key = f"{wname} {opt_name} lr={lr:g} | {mode}"
                curves.setdefault(key, []).append(evals)
                finals.setdefault(key, []).append(work.evaluate(model, torch.device("cpu"), "test"))
                print(key, seed, finals[key][-1], flush=True)
    lines = header("Pure-bfloat16 training: rounding to nearest against stochastic rounding",
                   f"python benchmarks/memory.py rounding --seeds {args.seeds}")
    lines += ["The whole model in bfloat16 (weights and activations; inputs cast at the door, "
              "outputs back to float32 for the loss and metric); the optimizer computes the "
              "update in float32 and stores the new weights in bfloat16, rounded to nearest or "
              "stochastically (`stochastic_rounding=True`). Against the float32 model with the "
              f"same seeds ({args.seeds}). `movielens` with dense embedding gradients "
              "(a regression: RMSE, lower is better), `mnist-mlp` (accuracy). *gap*: the mean "
              "test metric minus float32's (RMSE: positive is worse; accuracy: negative is "
              "worse).", "",
              "| workload, optimizer | float32 | bf16 nearest | gap | bf16 stochastic | gap |",
              "|---|---:|---:|---:|---:|---:|"]
    for wname, options, (opt_name, lr), steps in cases:
        base = f"{wname} {opt_name} lr={lr:g}"
        f = statistics.fmean(finals[f"{base} | float32"])
        ne = statistics.fmean(finals[f"{base} | bfloat16, to nearest"])
        sr = statistics.fmean(finals[f"{base} | bfloat16, stochastic"])
        lines.append(f"| {base}, {steps} steps | {f:.4f} | {ne:.4f} | {ne - f:+.4f} | {sr:.4f} | "
                     f"{sr - f:+.4f} |")
    plot = _plot_rounding(cases, curves)
    lines += ["", f"![validation curves]({plot.name})" if plot else "(matplotlib missing: no plot)"]
    write("rounding", lines, {"curves": curves, "finals": finals})


def _plot_rounding(cases, curves):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.4))
    colours = {"float32": "black", "bfloat16, to nearest": "tab:red",
               "bfloat16, stochastic": "tab:blue"}
    for ax, (wname, _, (opt_name, lr), steps) in zip(axes, cases):
        for mode, colour in colours.items():
            runs = curves[f"{wname} {opt_name} lr={lr:g} | {mode}"]
            xs = [s for s, _ in runs[0]]
            mean = [statistics.fmean(r[i][1] for r in runs) for i in range(len(xs))]
            ax.plot(xs, mean, color=colour, label=mode)
        ax.set_title(f"{wname}, Adam lr={lr:g}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("validation " + ("RMSE" if wname == "movielens" else "accuracy"))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = RESULTS / "memory_rounding.png"
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    return path

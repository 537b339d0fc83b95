"""Your own model and data as a workload: :meth:`Workload.from_tensors`, checked before any training.

A comparison that fails at step 300 of its fourth run because the labels were floats is
an hour lost; so everything that can be checked is checked here, when the workload is
built, and every message names the argument and the value::

    Invalid model: got a Linear instance; pass a factory that builds a fresh model, e.g. model=lambda: ...
    Invalid Y: 255 rows, but X has 256
    Invalid Y: labels must be in [0, 2) for a model with 2 outputs, got 5

What can be converted without changing the problem is converted, and said once (one
:class:`LabNote` warning listing every conversion): NumPy arrays and lists become
tensors, floating inputs take the model's dtype (a float64 array meeting a float32 model),
integral float labels become class indices for ``cross_entropy``.

The splits: pass ``X_val``/``Y_val`` and ``X_test``/``Y_test`` when you have them. A
missing pair is held out of the training data by a seeded random split
(``val_fraction``, ``test_fraction`` of the examples, ``split_seed``), the same for every
training seed, and said once.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .common import count_parameters, loss_fn, metric_fn, tensor_batches

#: models up to this many parameters train on one thread (and several runs in parallel)
SMALL_MODEL = 1_000_000


class LabNote(UserWarning):
    """Something the lab converted or decided for you, said once."""


def _bad(arg: str, problem: str) -> ValueError:
    return ValueError(f"Invalid {arg}: {problem}")


def _tensor(value: Any, arg: str, notes: list[str]) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        notes.append(f"{arg}: NumPy {value.dtype} array converted to a tensor")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (list, tuple)):
        try:
            out = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise _bad(arg, f"could not make a tensor of the {type(value).__name__} ({exc})") from None
        notes.append(f"{arg}: {type(value).__name__} converted to a tensor")
        return out
    raise _bad(arg, f"expected a tensor or NumPy array, got {type(value).__name__}")


def _model_dtype(net: torch.nn.Module) -> torch.dtype:
    for p in net.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def _check_factory(model: Any) -> torch.nn.Module:
    if isinstance(model, torch.nn.Module):
        raise _bad("model", f"got a {type(model).__name__} instance; pass a factory that builds a fresh model, "
                            "e.g. model=lambda: torch.nn.Linear(20, 2), so that every seed starts from its own weights")
    if not callable(model):
        raise _bad("model", f"expected a zero-argument factory returning a torch.nn.Module, got {type(model).__name__}")
    torch.manual_seed(0)
    try:
        net = model()
    except Exception as exc:  # noqa: BLE001 - the user's code: report it as the argument's problem
        raise _bad("model", f"calling the factory failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(net, torch.nn.Module):
        raise _bad("model", f"the factory returned a {type(net).__name__}, expected a torch.nn.Module")
    return net


def _positive_int(value: Any, arg: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise _bad(arg, f"{value!r} (must be a positive integer)")
    return int(value)


def _name(f: Any) -> str:
    """A loss or metric as part of the workload's identity: its name, or a function's import path
    (never ``repr``, whose memory address differs in every process)."""
    if isinstance(f, str):
        return f
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__name__)}"


def _fingerprint(*tensors: torch.Tensor) -> str:
    """A short hash of tensors' shapes and contents, so new data means new runs."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(json.dumps([list(t.shape), str(t.dtype)]).encode())
        h.update(t.numpy().tobytes() if t.numel() < 50_000_000 else t.flatten()[::97].numpy().tobytes())
    return h.hexdigest()[:16]


def build(
    cls: type,
    name: str,
    model: Callable[[], torch.nn.Module],
    X: Any,
    Y: Any,
    *,
    X_val: Any = None,
    Y_val: Any = None,
    X_test: Any = None,
    Y_test: Any = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "cross_entropy",
    metric: str | Callable[[torch.Tensor, torch.Tensor], float] = "accuracy",
    higher_is_better: bool | None = None,
    target: float,
    steps: int = 500,
    batch_size: int = 64,
    eval_every: int | None = None,
    default_lr: Mapping[str, float] | None = None,
    description: str | None = None,
    cpu_threads: int | None | str = "auto",
    min_difference: float | None = None,
) -> Any:
    """A workload (of class ``cls``) from a model factory and data tensors or NumPy arrays.

    This is :meth:`inertia.lab.Workload.from_tensors`; call it that way.

    Args:
        name: the workload's name in reports.
        model: a zero-argument factory; the runner seeds torch before calling it, so each
            seed gets its own (reproducible) initial weights. Not a model instance.
        X, Y: training inputs and targets (examples are rows).
        X_val, Y_val, X_test, Y_test: the validation and test splits; a missing pair is held
            out of X, Y (``val_fraction``, ``test_fraction``, by ``split_seed``).
        loss: ``"cross_entropy"`` (Y: class indices), ``"mse"`` or ``(outputs, targets) -> scalar tensor``.
        metric: ``"accuracy"``, ``"loss"``, ``"rmse"`` or ``(outputs, targets) -> float``.
        higher_is_better: direction of the metric; inferred for the named metrics.
        target: the validation metric that counts as reached (it must hold to the end).
        steps, batch_size, eval_every: the budget, the mini-batch size, the evaluation period
            (default: 20 evaluations over the budget).
        default_lr: learning rates per optimizer name for entries that give none.
        cpu_threads: torch threads per run on the CPU; ``"auto"``: 1 for models up to
            :data:`SMALL_MODEL` parameters (their runs then train several at a time in
            parallel processes), torch's setting for bigger ones; None: torch's setting.
        min_difference: the smallest metric difference that matters (see
            :attr:`Workload.min_difference`).

    Raises:
        ValueError: naming the argument and its value, for anything that would fail or
            silently mislead later: a model instance, mismatched lengths, empty splits,
            labels out of range, a target outside the metric's range, a model that cannot
            run on the data.
    """
    notes: list[str] = []
    if not isinstance(name, str) or not name.strip():
        raise _bad("name", f"{name!r} (must be a non-empty string)")
    net = _check_factory(model)
    dtype = _model_dtype(net)
    loss_f = loss_fn(loss)
    metric_f, default_hib = metric_fn(metric, loss_f)
    hib = default_hib if higher_is_better is None else bool(higher_is_better)
    if hib is None:
        raise _bad("higher_is_better", "None (say whether your metric is higher-is-better)")
    if isinstance(target, bool) or not isinstance(target, (int, float, np.number)) or not math.isfinite(target):
        raise _bad("target", f"{target!r} (must be a finite number)")
    if metric == "accuracy" and not 0 < target <= 1:
        raise _bad("target", f"{target!r} (accuracy targets lie in (0, 1])")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    eval_every = _positive_int(eval_every, "eval_every") if eval_every is not None else max(1, steps // 20)
    classes = loss == "cross_entropy" or metric == "accuracy"

    splits: dict[str, list[torch.Tensor]] = {}
    for split, x, y, xa, ya in (("train", X, Y, "X", "Y"), ("validation", X_val, Y_val, "X_val", "Y_val"),
                                ("test", X_test, Y_test, "X_test", "Y_test")):
        if x is None and y is None and split != "train":
            continue
        if x is None or y is None:
            given, missing = (xa, ya) if y is None else (ya, xa)
            raise _bad(missing, f"None while {given} is given (pass both or neither)")
        xt, yt = _tensor(x, xa, notes), _tensor(y, ya, notes)
        if xt.dim() == 0 or len(xt) == 0:
            raise _bad(xa, f"no examples (shape {tuple(xt.shape)})")
        if yt.dim() == 0 or len(yt) != len(xt):
            raise _bad(ya, f"{len(yt) if yt.dim() else 0} rows, but {xa} has {len(xt)}")
        if xt.is_floating_point() and xt.dtype != dtype:
            notes.append(f"{xa}: {xt.dtype} converted to the model's {dtype}")
            xt = xt.to(dtype)
        if classes:
            if yt.is_floating_point():
                if not torch.equal(yt, yt.round()):
                    raise _bad(ya, f"class labels must be whole numbers, got {yt.flatten()[~torch.eq(yt, yt.round()).flatten()][0].item()!r}")
                notes.append(f"{ya}: whole-number {yt.dtype} labels converted to class indices (int64)")
                yt = yt.long()
            elif yt.dtype == torch.bool or yt.dtype.is_complex:
                raise _bad(ya, f"class labels must be integers, got {yt.dtype}")
            yt = yt.long()
        elif yt.is_floating_point() and yt.dtype != dtype:
            notes.append(f"{ya}: {yt.dtype} converted to the model's {dtype}")
            yt = yt.to(dtype)
        elif not yt.is_floating_point() and loss in ("mse",):
            notes.append(f"{ya}: {yt.dtype} targets converted to {dtype} for the mse loss")
            yt = yt.to(dtype)
        splits[split] = [xt, yt]

    held = [s for s in ("validation", "test") if s not in splits]
    if held:
        fractions = {"validation": val_fraction, "test": test_fraction}
        for s in held:
            f = fractions[s]
            if not isinstance(f, (int, float)) or not 0 < f < 1:
                raise _bad(f"{'val' if s == 'validation' else 'test'}_fraction", f"{f!r} (must be between 0 and 1)")
        x, y = splits["train"]
        n = len(x)
        sizes = {s: max(1, int(round(fractions[s] * n))) for s in held}
        if n - sum(sizes.values()) < 1:
            raise _bad("X", f"{n} examples are too few to hold out {' and '.join(held)} and keep a training split; "
                            f"pass {' and '.join('X_val/Y_val' if s == 'validation' else 'X_test/Y_test' for s in held)} "
                            "or more data")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
        start = 0
        for s in held:
            idx = order[start:start + sizes[s]]
            splits[s] = [x[idx], y[idx]]
            start += sizes[s]
        rest = order[start:]
        splits["train"] = [x[rest], y[rest]]
        notes.append("held out " + ", ".join(f"{sizes[s]} examples as {s}" for s in held)
                     + f" (seeded split, split_seed={split_seed}), leaving {len(rest)} to train on")

    # run the model once on a few rows of every split: shapes, labels and the loss, before any training
    probe_rows = 2
    for split, (x, y) in splits.items():
        xa = {"train": "X", "validation": "X_val", "test": "X_test"}[split]
        ya = "Y" + xa[1:]
        try:
            with torch.no_grad():
                out = net(x[:probe_rows])
        except Exception as exc:  # noqa: BLE001 - the user's model: say which argument it choked on
            raise _bad("model", f"calling it on {min(probe_rows, len(x))} rows of {xa} (shape "
                                f"{tuple(x[:probe_rows].shape)}, {x.dtype}) failed: {type(exc).__name__}: {exc}") from None
        if classes:
            if out.dim() != 2:
                raise _bad("model", f"outputs of shape {tuple(out.shape)}; {loss if loss == 'cross_entropy' else metric} "
                                    "needs (rows, classes) logits")
            n_classes = out.shape[1]
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= n_classes:
                raise _bad(ya, f"labels must be in [0, {n_classes}) for a model with {n_classes} outputs, "
                               f"got {hi if hi >= n_classes else lo}")
        try:
            value = loss_f(out, y[:probe_rows])
        except Exception as exc:  # noqa: BLE001
            raise _bad("loss", f"{loss!r} failed on the model's outputs (shape {tuple(out.shape)}) and {ya} "
                               f"(shape {tuple(y[:probe_rows].shape)}): {type(exc).__name__}: {exc}") from None
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise _bad("loss", f"{loss!r} must return a scalar tensor, got {type(value).__name__}"
                               f"{'' if not isinstance(value, torch.Tensor) else ' of shape ' + str(tuple(value.shape))}")

    n_params = count_parameters(net)
    if cpu_threads == "auto":
        cpu_threads = 1 if n_params <= SMALL_MODEL else None
    elif cpu_threads is not None:
        cpu_threads = _positive_int(cpu_threads, "cpu_threads")
    (Xtr, Ytr), (Xv, Yv), (Xte, Yte) = splits["train"], splits["validation"], splits["test"]
    if batch_size > len(Xtr):
        notes.append(f"batch_size {batch_size} exceeds the {len(Xtr)} training examples: every step is full-batch")
    if notes:
        warnings.warn(LabNote(f"workload {name!r}: " + "; ".join(notes)), stacklevel=3)

    eval_sets = {"validation": (Xv, Yv), "test": (Xte, Yte)}

    def init_model(seed: int, device: torch.device) -> torch.nn.Module:
        torch.manual_seed(seed)
        return model().to(device)

    def batches(seed: int, device: torch.device, batch_size: int = batch_size):
        return tensor_batches(Xtr.to(device), Ytr.to(device), batch_size, seed)

    def train_loss(net: torch.nn.Module, batch) -> torch.Tensor:
        xb, yb = batch
        return loss_f(net(xb), yb)

    @torch.no_grad()
    def evaluate(net: torch.nn.Module, device: torch.device, split: str = "validation") -> float:
        x, y = eval_sets[split]
        net.eval()
        try:
            # in chunks, so a large held-out set never needs one huge forward pass
            out = torch.cat([net(x[i:i + 4096].to(device)) for i in range(0, len(x), 4096)])
            return float(metric_f(out, y.to(device)))
        finally:
            net.train()

    metric_name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    return cls(
        name=name,
        description=description or (f"user workload: {len(Xtr)}/{len(Xv)}/{len(Xte)} train/validation/test examples, "
                                    f"{n_params:,} parameters, {loss if isinstance(loss, str) else 'custom'} loss"),
        init_model=init_model, batches=batches, loss=train_loss, evaluate=evaluate,
        metric=metric_name, higher_is_better=hib, target=float(target), steps=steps,
        eval_every=eval_every, default_lr=dict(default_lr or {}),
        extras={"n_train": len(Xtr), "n_validation": len(Xv), "n_test": len(Xte), "parameters": n_params},
        # the data's fingerprint makes it part of the identity: new data, new runs
        options={"data": _fingerprint(Xtr, Ytr, Xv, Yv, Xte, Yte), "loss": _name(loss), "metric": _name(metric)},
        batch_size=batch_size, cpu_threads=cpu_threads, min_difference=min_difference,
    )

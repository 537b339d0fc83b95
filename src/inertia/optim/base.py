"""The bookkeeping every inertia optimizer shares: groups, lazy state, policies, dispatch.

A subclass supplies two things: ``check(group)``, which validates one parameter
group's hyperparameters, and ``rule(group)``, which returns the
:class:`~inertia.optim.transforms.Transform` that *is* the algorithm. This class
does the rest: it creates state lazily, counts steps, applies ``maximize``, the
non-finite-gradient policy and the sparse-gradient mode, and hands the work to
a fused kernel where one exists (:mod:`inertia.kernels`) or to the reference
transform otherwise.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from . import _checks
from .transforms import Transform

NONFINITE_POLICIES = ("raise", "skip")
SPARSE_MODES = ("dense", "lazy")


class NonFiniteGradientError(FloatingPointError):
    """A gradient held NaN or infinity and the policy is ``nonfinite="raise"``."""


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype arithmetic happens in: float64 stays, anything narrower is done in float32."""
    out = torch.float32
    for d in dtypes:
        out = torch.promote_types(out, d)
    return out


class Optimizer(torch.optim.Optimizer):
    """Base class: state and groups. The math lives in ``rule``.

    Options every inertia optimizer takes (keyword-only, stored per group):

    * ``maximize`` (False): ascend instead of descend.
    * ``nonfinite`` (``"raise"``): what a NaN/inf gradient does. ``"raise"`` raises
      :class:`NonFiniteGradientError` before anything changes; ``"skip"`` skips the whole
      step, leaving parameters and state untouched, and counts it in ``skipped_steps``.
      Either way the state is never poisoned.
    * ``sparse`` (``"dense"``): how sparse (COO) gradients are applied. ``"dense"`` is exactly
      the update of the densified gradient; ``"lazy"`` updates only the rows present, and only
      their state (like torch's SparseAdam), which is what embedding tables want. The step
      count is global, and the trust ratios of LAMB/LARS are taken over the rows present.
    * ``state_dtype`` (None): dtype of the optimizer state; None keeps the parameter's dtype.
      ``torch.bfloat16`` halves the state's memory traffic; the update is still computed in
      float32.
    * ``fused`` / ``foreach`` (None): None picks the fastest implementation available;
      False forces the readable reference implementation.
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any], **options: Any) -> None:
        maximize = options.pop("maximize", False)
        nonfinite = options.pop("nonfinite", "raise")
        sparse = options.pop("sparse", "dense")
        state_dtype = options.pop("state_dtype", None)
        fused = options.pop("fused", None)
        foreach = options.pop("foreach", None)
        for flag in ("capturable", "differentiable"):
            if options.pop(flag, False):
                raise ValueError(f"Invalid {flag} value: True (not supported by inertia optimizers)")
        if options:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(options))}")
        defaults = dict(
            defaults,
            maximize=bool(maximize),
            nonfinite=nonfinite,
            sparse=sparse,
            state_dtype=state_dtype,
            fused=fused,
            foreach=foreach,
        )
        self.skipped_steps = 0
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ what subclasses give

    @classmethod
    def check(cls, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid hyperparameter of ``group``."""

    @staticmethod
    def rule(group: dict[str, Any]) -> Transform:
        """The update rule for one group, as a chain of transformations."""
        raise NotImplementedError

    # ------------------------------------------------------------------ groups and checkpoints

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _checks.choice("nonfinite policy", group["nonfinite"], NONFINITE_POLICIES)
        _checks.choice("sparse mode", group["sparse"], SPARSE_MODES)
        sd = group["state_dtype"]
        if sd is not None and not (isinstance(sd, torch.dtype) and sd.is_floating_point):
            _checks._fail("state_dtype", sd, "must be a floating-point torch.dtype or None")
        self.check(group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # Checkpoints written before an option existed load with its default.
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self.__dict__.setdefault("skipped_steps", 0)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # torch casts loaded state to the parameter's dtype; put it back in the state dtype
        # so that training continues bit-identically, and accept integer steps of old files.
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    continue
                step = state.get("step")
                if step is not None and not isinstance(step, Tensor):
                    state["step"] = torch.tensor(float(step), dtype=torch.float32)
                target = group["state_dtype"] or p.dtype
                for key, value in state.items():
                    if key != "step" and isinstance(value, Tensor) and value.is_floating_point():
                        state[key] = value.to(dtype=target)

    # ------------------------------------------------------------------ the step

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step. ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                work.append((group, params))
        if not self._gradients_finite(work):
            self.skipped_steps += 1
            return loss
        for group, params in work:
            if not self._fused_update(group, params):
                self._reference_update(group, params)
        return loss

    def _gradients_finite(self, work: list[tuple[dict, list[Tensor]]]) -> bool:
        """Check every gradient before anything is written; apply the group's policy."""
        bad_policy = None
        for group, params in work:
            grads = [_stored_values(p.grad) for p in params]
            if _all_finite(grads):
                continue
            if group["nonfinite"] == "raise":
                index = self.param_groups.index(group)
                raise NonFiniteGradientError(
                    f"non-finite gradient in parameter group {index}; nothing was updated "
                    "(pass nonfinite='skip' to skip such steps instead)"
                )
            bad_policy = "skip"
        return bad_policy is None

    def _fused_update(self, group: dict[str, Any], params: list[Tensor]) -> bool:
        """Run a fused kernel for this group if one applies; return whether it did."""
        if group["fused"] is False or group["foreach"] is False:
            return False
        from .. import kernels

        return kernels.fused_step(self, group, params)

    def _state_for(self, p: Tensor, rule: Transform, group: dict[str, Any]) -> dict[str, Tensor]:
        state = self.state[p]
        if "step" not in state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            dtype = group["state_dtype"] or p.dtype
            for key, value in rule.init(p).items():
                state[key] = value.to(dtype)
        return state

    def _reference_update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """The readable path: apply ``rule(group)`` to one tensor at a time."""
        rule = self.rule(group)
        for p in params:
            state = self._state_for(p, rule, group)
            grad = -p.grad if group["maximize"] else p.grad
            state["step"] += 1
            cd = compute_dtype(p.dtype, *(v.dtype for k, v in state.items() if k != "step"))
            if grad.is_sparse and group["sparse"] == "lazy":
                _lazy_apply(rule, p, grad, state, cd)
                continue
            if grad.is_sparse:
                grad = grad.to_dense()
            current = {k: (v if k == "step" else v.to(cd)) for k, v in state.items()}
            param = p.to(cd)
            update, changed = rule.update(grad.to(cd), current, param)
            p.copy_(param + update)
            for key, value in changed.items():
                state[key].copy_(value)


def _lazy_apply(rule: Transform, p: Tensor, grad: Tensor, state: dict, cd: torch.dtype) -> None:
    """Apply ``rule`` to the rows a sparse gradient touches, and to their state only."""
    grad = grad.coalesce()
    rows = tuple(grad.indices())
    current = {k: (v if k == "step" else v[rows].to(cd)) for k, v in state.items()}
    param = p[rows].to(cd)
    update, changed = rule.update(grad.values().to(cd), current, param)
    p[rows] = (param + update).to(p.dtype)
    for key, value in changed.items():
        state[key][rows] = value.to(state[key].dtype)


def _stored_values(grad: Tensor) -> Tensor:
    """The numbers a gradient holds: itself, or the values of a sparse COO gradient."""
    if grad.layout == torch.strided:
        return grad
    if grad.layout != torch.sparse_coo:
        _checks._fail("gradient layout", grad.layout, "only strided and sparse COO are supported")
    return grad._values()


def _all_finite(tensors: list[Tensor]) -> bool:
    """Whether every element of every tensor is finite (see :func:`inertia.kernels.all_finite`)."""
    from .. import kernels

    return kernels.all_finite(tensors)

"""The bookkeeping every inertia optimizer shares: groups, lazy state, policies, dispatch.

A subclass supplies two things: ``check(group)``, which validates one parameter
group's hyperparameters, and ``rule(group)``, which returns the
:class:`~inertia.optim.transforms.Transform` that *is* the algorithm. This class
does the rest: it validates input before anything moves, creates state lazily, counts
steps, applies ``maximize``, the non-finite-gradient policy and the sparse-gradient
mode, and hands the work to a fused kernel where one exists (:mod:`inertia.kernels`) or
to the reference transform otherwise. Checkpoints follow torch's format exactly
(:mod:`inertia.optim.checkpoint`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from . import _checks, checkpoint
from .transforms import Transform

NONFINITE_POLICIES = ("raise", "skip")
SPARSE_MODES = ("dense", "lazy")

#: Group keys every inertia optimizer has, with torch.optim's defaults.
STANDARD_DEFAULTS: dict[str, Any] = dict(
    maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
)
#: inertia's own options. A checkpoint carries one only when its value differs from this.
EXTRA_DEFAULTS: dict[str, Any] = dict(nonfinite="raise", sparse="dense", state_dtype=None)


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
    * ``differentiable`` (False): record the step with autograd (reference path), so that a
      loss after the step can be differentiated with respect to the parameters, gradients,
      state or tensor hyperparameters before it, as torch.optim defines it.

    Complex parameters are updated as real views (real and imaginary parts as two real
    coordinates), as torch.optim does.
    """

    #: The group keys torch's optimizer of the same name writes to its checkpoints; ``None``
    #: for an optimizer torch does not have (then: its hyperparameters + ``STANDARD_DEFAULTS``).
    torch_group_keys: tuple[str, ...] | None = None
    #: State entries kept in memory but not in checkpoints (SGD keeps no ``step`` in torch).
    hidden_state_keys: tuple[str, ...] = ()

    def __init__(self, params: Iterable, defaults: dict[str, Any], **options: Any) -> None:
        unknown = set(options) - set(EXTRA_DEFAULTS) - set(STANDARD_DEFAULTS)
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
        defaults = {**STANDARD_DEFAULTS, **defaults, **EXTRA_DEFAULTS, **options}
        # Hyperparameters are checked before the parameters are read, as torch.optim does,
        # so a bad value is reported as such even when ``params`` is also wrong.
        self._check_group(defaults)
        self._constructor_options = set(options) & set(EXTRA_DEFAULTS)
        self._pinned: list[set[str]] = []
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

    # ------------------------------------------------------------------ groups

    def _check_group(self, group: dict[str, Any]) -> None:
        _checks.choice("nonfinite policy", group["nonfinite"], NONFINITE_POLICIES)
        _checks.choice("sparse mode", group["sparse"], SPARSE_MODES)
        sd = group["state_dtype"]
        if sd is not None and not (isinstance(sd, torch.dtype) and sd.is_floating_point):
            _checks._fail("state_dtype", sd, "must be a floating-point torch.dtype or None")
        for key in ("maximize", "capturable", "differentiable"):
            _checks.flag(key, group[key])
        for key in ("foreach", "fused"):
            if group[key] is not None:
                _checks.flag(key, group[key])
        self.check(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        given = set(param_group) if isinstance(param_group, dict) else set()
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._check_group(group)
        for p in group["params"]:
            if not (p.is_floating_point() or p.is_complex()):
                _checks._fail("parameter dtype", p.dtype,
                              "inertia optimizers update floating-point or complex tensors")
        if group["fused"] and group["differentiable"]:
            raise RuntimeError("`fused` does not support `differentiable`")
        if group["fused"]:
            bad = [p for p in group["params"] if p.device.type not in ("cpu", "cuda")]
            if bad:
                raise RuntimeError(
                    "`fused=True` requires all the params to be floating point Tensors of "
                    f"supported devices: ['cpu', 'cuda'] but {bad[0].dtype} and "
                    f"{bad[0].device.type}")
        # Options the user chose for this group (in the constructor or the group's dict)
        # survive load_state_dict; see inertia.optim.checkpoint.
        self._pinned.append(set(self.__dict__.get("_constructor_options", ()))
                            | (given & set(EXTRA_DEFAULTS)))

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # Checkpoints and pickles written before an option existed load with its default.
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self.__dict__.setdefault("skipped_steps", 0)
        self.__dict__.setdefault("_constructor_options", set())
        pinned = self.__dict__.setdefault("_pinned", [])
        pinned.extend(set() for _ in range(len(self.param_groups) - len(pinned)))

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_group_keys(self) -> set[str]:
        """The group keys always written to a checkpoint (torch's, for a torch optimizer)."""
        if self.torch_group_keys is not None:
            return set(self.torch_group_keys)
        return set(self.defaults) - set(EXTRA_DEFAULTS)

    def state_dict(self) -> dict[str, Any]:
        """torch's format: torch's group and state keys exactly, plus an inertia option only
        where it differs from its default (see :mod:`inertia.optim.checkpoint`)."""
        return checkpoint.export(self, super().state_dict())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint of this optimizer or of torch's optimizer of the same name.

        The checkpoint is validated against the parameters first (a wrong shape raises and
        changes nothing). Options passed to this optimizer's constructor (``state_dtype``,
        ``nonfinite``, ...) are kept, and the loaded state is converted to them.
        """
        checkpoint.validate(self, state_dict)
        pins = [{k: g[k] for k in pinned if k in g}
                for g, pinned in zip(self.param_groups, self._pinned)]
        super().load_state_dict(state_dict)
        checkpoint.adopt(self, pins)

    # ------------------------------------------------------------------ state

    def _template(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        """The fresh state of ``p`` without ``step``: the rule's zeros in the state dtype."""
        dtype = group["state_dtype"]
        out = {}
        for key, value in self.rule(group).init(p).items():
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            elif dtype is not None and value.is_complex():
                value = value.to(torch.complex128 if dtype == torch.float64 else torch.complex64)
            out[key] = value
        return out

    def _state_for(self, p: Tensor, rule: Transform, group: dict[str, Any]) -> dict[str, Tensor]:
        """``p``'s state, created on first use; keys a new option needs are added as zeros."""
        state = self.state[p]
        if "step" not in state:
            if state and "step" in self.hidden_state_keys:
                # torch's SGD keeps no step: a momentum buffer means a step was taken.
                state["step"] = torch.tensor(1.0, dtype=torch.float32)
            elif state:
                raise ValueError(f"Invalid optimizer state: parameter of shape {tuple(p.shape)} "
                                 f"has state {sorted(state)} but no 'step'")
            else:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
            for key, value in self._template(p, group).items():
                state.setdefault(key, value)
        return state

    # ------------------------------------------------------------------ the step

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step. ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            self._step()
        return loss

    def _step(self) -> None:
        work = []
        for index, group in enumerate(self.param_groups):
            params, grads = [], []
            for p in group["params"]:
                if p.grad is not None:
                    params.append(p)
                    grads.append(_prepared_grad(p, index))
            if params:
                work.append((group, params, grads))
        if not self._gradients_finite(work):
            self.skipped_steps += 1
            return
        for group, params, grads in work:
            if not self._fused_update(group, params, grads):
                self._reference_update(group, params, grads)

    def _gradients_finite(self, work: list[tuple[dict, list[Tensor], list[Tensor]]]) -> bool:
        """Check every gradient before anything is written; apply the group's policy."""
        bad_policy = None
        for group, params, grads in work:
            if _all_finite([_stored_values(g) for g in grads]):
                continue
            if group["nonfinite"] == "raise":
                index = self.param_groups.index(group)
                raise NonFiniteGradientError(
                    f"non-finite gradient in parameter group {index}; nothing was updated "
                    "(pass nonfinite='skip' to skip such steps instead)"
                )
            bad_policy = "skip"
        return bad_policy is None

    def _fused_update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> bool:
        """Run a fused kernel for this group if one applies; return whether it did."""
        if group["fused"] is False or group["foreach"] is False or group["differentiable"]:
            return False
        from .. import kernels

        return kernels.fused_step(self, group, params, grads)

    def _reference_update(self, group: dict[str, Any], params: list[Tensor],
                          grads: list[Tensor]) -> None:
        """The readable path: apply ``rule(group)`` to one tensor at a time."""
        rule = self.rule(group)
        for p, grad in zip(params, grads):
            state = self._state_for(p, rule, group)
            if group["maximize"]:
                grad = -grad
            state["step"] += 1
            if p.is_complex():
                # torch.optim's convention: a complex number is two real coordinates.
                p, grad = torch.view_as_real(p), torch.view_as_real(
                    grad.to_dense() if grad.is_sparse else grad)
                state = {k: (v if k == "step" else torch.view_as_real(v)) for k, v in state.items()}
            cd = compute_dtype(p.dtype, *(v.dtype for k, v in state.items() if k != "step"))
            if grad.is_sparse and group["sparse"] == "lazy":
                _lazy_apply(rule, p, grad, state, cd)
                continue
            if grad.is_sparse:
                grad = grad.to_dense()
            # Under autograd (differentiable=True) the rule must read copies: it may save its
            # inputs for backward, and the in-place writes below would invalidate them.
            record = torch.is_grad_enabled()
            current = {k: (v if k == "step" else v.to(cd, copy=record)) for k, v in state.items()}
            param = p.to(cd, copy=record)
            update, changed = rule.update(grad.to(cd), current, param)
            p.copy_(param + update)
            for key, value in changed.items():
                state[key].copy_(value)


def _meta(p: Tensor) -> Tensor:
    return torch.empty_like(p, device="meta")


def _prepared_grad(p: Tensor, group_index: int) -> Tensor:
    """``p.grad``, checked against ``p`` before anything is written; sparse ones coalesced
    (duplicate entries summed), so the non-finite check sees the values that will be used."""
    g = p.grad
    if g.layout not in (torch.strided, torch.sparse_coo):
        _checks._fail("gradient layout", g.layout, "only strided and sparse COO are supported")
    if g.shape != p.shape:
        raise ValueError(f"Invalid gradient shape: {tuple(g.shape)} for a parameter of shape "
                         f"{tuple(p.shape)} in parameter group {group_index}")
    if g.dtype != p.dtype:
        raise TypeError(f"Invalid gradient dtype: {g.dtype} for a parameter of dtype {p.dtype} "
                        f"in parameter group {group_index}")
    if g.device != p.device:
        raise ValueError(f"Invalid gradient device: {g.device} for a parameter on {p.device} "
                         f"in parameter group {group_index}")
    if g.is_sparse:
        g = g.coalesce()
        rows = g._indices()
        if rows.numel() and (int(rows.min()) < 0 or bool((rows.max(dim=1).values
                                                          >= torch.tensor(g.shape[:g.sparse_dim()],
                                                                          device=rows.device)).any())):
            # COO tensors are not validated on construction; an index past the end would
            # write outside the parameter.
            raise IndexError(f"sparse gradient index out of range for a parameter of shape "
                             f"{tuple(p.shape)} in parameter group {group_index}")
    return g


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
    """The numbers a gradient holds: itself, or the values of a (coalesced) sparse gradient."""
    return grad._values() if grad.is_sparse else grad


def _all_finite(tensors: list[Tensor]) -> bool:
    """Whether every element of every tensor is finite (see :func:`inertia.kernels.all_finite`)."""
    from .. import kernels

    return kernels.all_finite(tensors)

"""The bookkeeping every inertia optimizer shares: groups, lazy state, policies, dispatch.

A subclass supplies two things: ``check(group)``, which validates one parameter
group's hyperparameters, and ``rule(group)``, which returns the
:class:`~inertia.rules.transforms.Transform` that *is* the algorithm. This class keeps
the groups, the options and torch-compatible checkpoints
(:mod:`inertia.optim.checkpoint`); the step engine (:mod:`inertia.engine`) does the
rest: state, non-finite policies, clipping, AMP, and the fused kernels derived from the
rule (:mod:`inertia.backends`), or the reference path.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from .. import engine
from ..engine import distributed
from ..engine import state as state_policy
from ..rules.transforms import Transform
from . import _checks, checkpoint

NONFINITE_POLICIES = ("guard", "raise", "skip", None)
SPARSE_MODES = ("dense", "lazy")

#: Group keys every inertia optimizer has, with torch.optim's defaults.
STANDARD_DEFAULTS: dict[str, Any] = dict(
    maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
)
#: inertia's own options. A checkpoint carries one only when its value differs from this.
EXTRA_DEFAULTS: dict[str, Any] = dict(nonfinite="guard", sparse="dense", state_dtype=None,
                                      max_grad_norm=None, state_block_size=256,
                                      state_min_size=4096, stochastic_rounding=False,
                                      rounding_seed=0)


class Optimizer(torch.optim.Optimizer):
    """Base class: state and groups. The math lives in ``rule``.

    Options every inertia optimizer takes (keyword-only, stored per group):

    * ``maximize`` (False): ascend instead of descend.
    * ``nonfinite`` (``"guard"``): what a NaN/inf gradient does. ``"guard"``: the kernels
      check each block of the gradient as they update it and leave a block holding NaN/inf
      (and its state) unchanged, while the rest of the step applies (LAMB and LARS: the whole
      tensor; the reference path: the whole tensor); almost free. ``"raise"`` raises
      :class:`NonFiniteGradientError` before anything changes; ``"skip"`` skips the whole
      step, leaving parameters and state untouched. Both need a separate read of every
      gradient first (on a GPU, a synchronisation). ``None``: no check. Steps that met a
      non-finite gradient are counted in ``nonfinite_steps`` (a 0-d tensor on the device).
      Under AMP the ``GradScaler``'s own check decides instead.
    * ``max_grad_norm`` (None): clip the gradients to this global L2 norm over all groups
      first, as ``torch.nn.utils.clip_grad_norm_`` does, fused into the update (one extra
      read of the gradients instead of three passes); the norm is kept in
      ``last_grad_norm``.
    * ``sparse`` (``"dense"``): how sparse (COO) gradients are applied. ``"dense"`` is exactly
      the update of the densified gradient; ``"lazy"`` updates only the rows present, and only
      their state (like torch's SparseAdam), which is what embedding tables want. The step
      count is global, and the trust ratios of LAMB/LARS are taken over the rows present.
    * ``state_dtype`` (None): how the optimizer state is stored; None keeps the parameter's
      dtype. ``torch.bfloat16`` (or its name, ``"bfloat16"``) halves the state's memory;
      the update is still computed in float32. ``"8bit"``: each state tensor in bytes, in
      blocks of ``state_block_size``
      (256; a power of two from 32 to 4096) elements within a row, with a float32 scale per
      block (Adam: about 2.04 bytes per parameter instead of 8); tensors of fewer than
      ``state_min_size`` (4096) elements, of one dimension or with rows of fewer than 16
      elements keep float32 state. The kernels decode, update and re-encode each block in
      one pass; see ``docs/memory.md`` (codes, error, checkpoints, measurements).
    * ``stochastic_rounding`` (False): bfloat16 parameters take the float32 update rounded
      stochastically (unbiased) instead of to nearest, so updates smaller than half a
      bfloat16 unit are not lost; the random bits are a hash of (``rounding_seed``, the
      parameter's position in the optimizer, the step, the element's index in the whole
      tensor), so the result does not depend on threads, shards or backend and a resumed
      run continues exactly. No effect on other parameters.
    * ``fused`` / ``foreach`` (None): None picks the fastest implementation available;
      False forces the readable reference implementation.
    * ``differentiable`` (False): record the step with autograd (reference path), so that a
      loss after the step can be differentiated with respect to the parameters, gradients,
      state or tensor hyperparameters before it, as torch.optim defines it.

    Complex parameters are updated as real views (real and imaginary parts as two real
    coordinates), as torch.optim does.
    """

    #: torch.amp.GradScaler hands this optimizer ``grad_scale`` and ``found_inf`` instead of
    #: unscaling the gradients itself: the kernels unscale as they read them.
    _step_supports_amp_scaling = True

    #: The group keys torch's optimizer of the same name writes to its checkpoints; ``None``
    #: for an optimizer torch does not have (then: its hyperparameters + ``STANDARD_DEFAULTS``).
    torch_group_keys: tuple[str, ...] | None = None
    #: Whether ``state["step"]`` exists (torch's SGD keeps no count: SGD sets False, and the
    #: engine keeps the count beside the state, see :mod:`inertia.engine.state`).
    step_in_state: bool = True

    # Construction, groups and checkpoints run eagerly even inside a compiled function, as
    # torch.optim's do: they set attributes the rest of the class reads at once.
    @torch._disable_dynamo
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
        self._plans: dict = {}
        self._steps: dict = {}  # step counts kept beside the state (step_in_state=False)
        # built by torch's ZeroRedundancyOptimizer: its process group (see engine.distributed)
        self._partition_group = distributed.partition_group()
        self._state_version = 0
        self._grad_norm: Tensor | None = None
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
        _checks.state_storage(group)
        for key in ("maximize", "capturable", "differentiable"):
            _checks.flag(key, group[key])
        for key in ("foreach", "fused"):
            if group[key] is not None:
                _checks.flag(key, group[key])
        if group["max_grad_norm"] is not None:
            _checks.positive("max_grad_norm", group["max_grad_norm"])
        self.check(group)

    @torch._disable_dynamo
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
        first = self.param_groups[0]
        if group["max_grad_norm"] != first["max_grad_norm"] or (
                group["nonfinite"] != first["nonfinite"] and group["max_grad_norm"] is not None):
            raise ValueError(
                f"Invalid max_grad_norm: {group['max_grad_norm']!r} (every parameter group "
                f"must share one max_grad_norm and nonfinite policy: the norm is taken over "
                f"all of them; the first group has {first['max_grad_norm']!r})")
        self._state_version = self.__dict__.get("_state_version", 0) + 1
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
        self.__dict__.setdefault("_constructor_options", set())
        self.__dict__["_plans"] = {}
        self.__dict__["_steps"] = {}  # derived again from the state (see engine.state)
        self.__dict__.setdefault("_partition_group", None)
        self.__dict__["_state_version"] = self.__dict__.get("_state_version", 0) + 1
        pinned = self.__dict__.setdefault("_pinned", [])
        pinned.extend(set() for _ in range(len(self.param_groups) - len(pinned)))

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_group_keys(self) -> set[str]:
        """The group keys always written to a checkpoint (torch's, for a torch optimizer)."""
        if self.torch_group_keys is not None:
            return set(self.torch_group_keys)
        return set(self.defaults) - set(EXTRA_DEFAULTS)

    @torch._disable_dynamo
    def state_dict(self) -> dict[str, Any]:
        """torch's format: torch's group and state keys exactly, plus an inertia option only
        where it differs from its default (see :mod:`inertia.optim.checkpoint`)."""
        return checkpoint.export(self, super().state_dict())

    @torch._disable_dynamo
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint of this optimizer or of torch's optimizer of the same name.

        The checkpoint is validated against the parameters first (a wrong shape raises and
        changes nothing). Options passed to this optimizer's constructor (``state_dtype``,
        ``nonfinite``, ...) are kept, and the loaded state is converted to them.
        """
        checkpoint.validate(self, state_dict)
        pins = [{k: g[k] for k in pinned if k in g}
                for g, pinned in zip(self.param_groups, self._pinned)]
        kept = checkpoint.set_aside(self, state_dict)  # 8-bit codes torch would cast
        super().load_state_dict(state_dict)
        checkpoint.adopt(self, pins, kept)
        self._steps.clear()  # counts kept beside the state are derived from it again
        self._state_version += 1

    @torch._disable_dynamo
    def torch_state_dict(self) -> dict[str, Any]:
        """This optimizer's checkpoint in torch.optim's own format: state decoded to the
        parameters' dtype (8-bit and bfloat16 state included), no inertia keys or options;
        ``torch.optim.Adam`` and the others load it (:func:`inertia.optim.checkpoint.to_torch`)."""
        return checkpoint.to_torch(self)

    # ------------------------------------------------------------------ state

    def _template(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        """The fresh state of ``p`` without ``step``: the rule's zeros in the state dtype."""
        return state_policy.template(self.rule(group), p, group)

    def _state_for(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        """``p``'s state, created on first use (see :mod:`inertia.engine.state`)."""
        return state_policy.ensure(self, p, self.rule(group), group)

    @property
    def last_grad_norm(self) -> Tensor | None:
        """With ``max_grad_norm``: the L2 norm of all gradients at the last step, before
        clipping (unscaled under AMP), as a 0-d float64 tensor on the device; else None."""
        return self.__dict__.get("_grad_norm")

    @property
    def nonfinite_steps(self) -> Tensor:
        """Steps that met a NaN/inf gradient, as a 0-d int64 tensor on the parameters' device
        (reading it as a number synchronises; keeping it does not)."""
        return self.nonfinite_counter()

    @property
    def skipped_steps(self) -> int:
        """``int(nonfinite_steps)``: for ``nonfinite="skip"``, the steps skipped."""
        return int(self.nonfinite_counter())

    def nonfinite_counter(self) -> Tensor:
        counter = self.__dict__.get("_nonfinite")
        if counter is None:
            counter = self._nonfinite = torch.zeros((), dtype=torch.int64,
                                                    device=self._counter_device())
        return counter

    def _met_flag(self) -> Tensor:
        """A 0-d int64 flag on the counter's device, zeroed: set by a step's kernel calls
        when the non-finite guard skips anything (made once, so a compiled or captured
        step reuses it)."""
        flag = self._met  # made at plan time (engine.init_group), outside any compiled graph
        flag.zero_()
        return flag

    def _counter_device(self) -> torch.device:
        for group in self.param_groups:
            for p in group["params"]:
                return p.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ the step

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step. ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            engine.step(self)
        return loss

    def _init_group(self, group, params, grads, states, steps, index, amp):
        """Gather ``group``'s tensors for its kernels (see :func:`inertia.engine.init_group`).

        Named as torch.optim's method so that ``torch.compile`` runs it once, eagerly, at
        trace time, instead of tracing the bookkeeping."""
        return engine.init_group(self, group, params, grads, states, steps, index, amp)


def _meta(p: Tensor) -> Tensor:
    return torch.empty_like(p, device="meta")

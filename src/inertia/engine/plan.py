"""Plans: how one parameter group's tensors go to kernels, decided once and reused.

A plan sorts a group's parameters into *buckets* one kernel call takes (same device,
parameter dtype and state dtype, memory laid out alike) and routes the rest: lazy sparse
rows to the row kernel, anything a kernel cannot take to the reference path (saying so
once, with the reason). It keeps the lists of parameters, state tensors and step counters
the operators receive, the kernels' names, and the per-device buffers the step writes
into (hyperparameters, non-finite counts), so a step only gathers the gradients.

A bucket's kernel is generated for its storage: the parameter dtype (bfloat16 parameters
with ``stochastic_rounding`` get their own kernel) and the state's (a dtype, or 8-bit blocks
whose codes and scales are two tensors per state key, see :mod:`inertia.backends.quantize`).
Kernels that need per-tensor facts beyond the tensors themselves (the row width of blocks,
the shard's offset in the whole tensor and the random stream's key) get them in ``meta``, an
int64 ``(tensors, 3)`` table made with the plan.

A plan stays valid while the same parameters have gradients of the same kind, the group
keeps its structure (the flags and the answers to the rule's guards) and the optimizer's
state has not been replaced (``load_state_dict``, new state); otherwise the next step
builds a new one. The operators check every tensor again (sizes, dtypes, layout), so a
plan can never make a kernel read or write out of bounds.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import repeat
from operator import is_not
from typing import Any

import torch
from torch import Tensor

from ..backends import ops
from ..backends import quantize as Q
from ..backends.graph import NotTraceable, RuleGraph, trace
from ..backends.layout import flat
from . import distributed as D
from . import state as S

KERNEL_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


@dataclass(eq=False)
class Bucket:
    """Tensors ``start:stop`` of the plan's lists, all taken by one kernel call."""

    device: torch.device
    pdtype: torch.dtype
    sdtype: torch.dtype
    apply: str                 # kernel names (see backends.ops)
    reduce: str | None
    reductions: int
    start: int
    stop: int
    hyper: Tensor              # float64, the group's hyperparameters (filled each step)
    bad: Tensor                # int64 per tensor: blocks the non-finite guard skipped
    clip: str | None = None    # the kernel summing squared gradients (max_grad_norm)
    groups: tuple = ()         # per tensor: process groups its sums are added over (sharded)
    written: tuple | None = None  # (numbers, their pinned source) last copied into hyper
    met: Tensor | None = None  # the bucket's own step flag (used when not guarding)
    slots: tuple = ()          # the state keys of each tensor, in the kernel's table order
    state_start: int = 0       # where this bucket's states begin in the plan's flat list
    meta: Tensor | None = None  # int64 (tensors, 3): row width, shard offset, stream key


@dataclass(eq=False)
class Plan:
    graph: RuleGraph | None
    rule: Any
    version: int
    signature: tuple
    with_grad: tuple[int, ...]        # indices of the group's parameters that had gradients
    order: list[int]                  # group indices of the fused tensors, in bucket order
    buckets: list[Bucket]
    params: list[Tensor]
    states: list[Tensor]              # flat: each tensor's slots in the kernel's order
    steps: list[Tensor]
    views: tuple[bool, ...]           # per fused tensor: complex (take real views)
    dense: tuple[bool, ...]           # per fused tensor: a sparse gradient to densify
    reference: list[int] = field(default_factory=list)  # group indices on the reference path
    rows: list[tuple[int, Any]] = field(default_factory=list)  # (group index, row kernel)
    any_views: bool = False
    any_dense: bool = False
    any_dtensor: bool = False         # gradients arrive as DTensors: kernels take local shards
    requested_reference: bool = False  # fused=False / differentiable: not a fallback
    batched: bool = False             # the reference tensors go through rule.many at once
    identity: bool = False            # every parameter, in group order, on the kernels
    constants: dict = field(default_factory=dict)  # (device, sign) -> 0-d float64 tensor
    rounding: dict = field(default_factory=dict)  # group index -> (stream key, shard offset)

    def constant(self, device: torch.device, group: dict | None) -> Tensor:
        """The gradient's sign for ``maximize`` (1 without a group) as a float64 tensor on
        ``device``, made once per plan: a step reads it, nothing is created or copied."""
        sign = -1.0 if group is not None and group["maximize"] else 1.0
        key = (device, sign)
        if key not in self.constants:
            self.constants[key] = torch.tensor(sign, dtype=torch.float64, device=device)
        return self.constants[key]


def _scalars(group: dict[str, Any]) -> dict[str, Any]:
    """``group`` with its one-element tensor hyperparameters as 0-d views: an lr given as
    ``torch.tensor([[1e-3]])`` must scale a tensor, not broadcast it to another shape. Views,
    so a value filled in place later (a scheduler) is still seen."""
    def fix(v):
        return v.reshape(()) if isinstance(v, Tensor) and v.dim() > 0 and v.numel() == 1 else v

    return {k: (tuple(fix(x) for x in v) if isinstance(v, tuple) else fix(v))
            for k, v in group.items()}


def signature(group: dict[str, Any]) -> tuple:
    """What makes two groups the same algorithm besides their numbers."""
    return tuple((k, v) for k, v in group.items()
                 if k != "params" and (v is None or isinstance(v, (bool, str, torch.dtype))))


def with_grad(grads: list) -> tuple[int, ...]:
    """Indices of the parameters that have a gradient (the common case, all, without a
    Python loop over them)."""
    if all(map(is_not, grads, repeat(None))):  # (`None in grads` would call Tensor.__eq__)
        return _all_indices(len(grads))
    return tuple(i for i, g in enumerate(grads) if g is not None)


_ranges: dict[int, tuple[int, ...]] = {}


def _all_indices(n: int) -> tuple[int, ...]:
    hit = _ranges.get(n)
    if hit is None:
        hit = _ranges[n] = tuple(range(n))
    return hit


def valid(plan: Plan | None, optimizer, group: dict[str, Any], grads: list) -> bool:
    if plan is None or plan.version != optimizer._state_version:
        return False
    if with_grad(grads) != plan.with_grad or signature(group) != plan.signature:
        return False
    return plan.graph is None or plan.graph.holds(group)


# ----------------------------------------------------------------------------- building

_warned: set = set()


def _fallback(optimizer, reason: str, group_index: int, count: int) -> None:
    """Say once per optimizer and reason that some tensors take the slower reference path."""
    key = (id(optimizer), reason)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"inertia.{type(optimizer).__name__}: {count} parameter(s) of group "
                      f"{group_index} take the reference path ({reason}); results are the "
                      "same, the step is slower", stacklevel=4)


def _graph(optimizer, group: dict[str, Any], like: Tensor) -> RuleGraph | None | str:
    """The traced rule of ``group`` (cached per optimizer class), or a reason it has none."""
    cache = _graphs.setdefault(type(optimizer).rule, {})
    sig = signature(group)
    for graph in cache.get(sig, ()):
        if graph.holds(group):
            return graph
    try:
        graph = trace(type(optimizer).rule, group, like)
    except NotTraceable as error:
        return f"its rule cannot be traced into a kernel: {error}"
    cache.setdefault(sig, []).append(graph)
    return graph


_graphs: dict = {}


def _kernel_reason(p: Tensor, g: Tensor, state: dict, slots: tuple, sdtype,
                   scalars: int = 0) -> str | None:
    real = p.real.dtype if p.is_complex() else p.dtype
    if isinstance(sdtype, Q.Blockwise):
        return _blockwise_reason(p, g, state, slots, sdtype, scalars)
    if real not in KERNEL_DTYPES or sdtype not in KERNEL_DTYPES:
        return f"{real} parameters or {sdtype} state have no kernel"
    if not flat(p, p):
        return "a parameter with gaps or overlaps in memory"
    if not g.is_sparse and not flat(g, p):
        return "a gradient laid out unlike its parameter"
    for key in slots[len(slots) - scalars:]:
        value = state.get(key)
        if value is None or value.dim() != 0 or value.dtype != torch.float32:
            return f"scalar state {key!r} is not a float32 scalar"
    for key in slots[:len(slots) - scalars]:
        value = state.get(key)
        if value is None or value.shape != p.shape or not flat(value, p):
            return f"state {key!r} laid out unlike its parameter"
        if (value.real.dtype if value.is_complex() else value.dtype) != sdtype:
            return f"state {key!r} is {value.dtype}, not the group's state dtype"
    return None


def _blockwise_reason(p: Tensor, g: Tensor, state: dict, slots: tuple, storage,
                      scalars: int) -> str | None:
    """Why 8-bit state of ``p`` cannot go to a kernel: blocks are rows of row-major memory."""
    if p.dtype not in KERNEL_DTYPES:
        return f"{p.dtype} parameters have no kernel"
    if not (p.is_contiguous() and g.is_contiguous()):
        return "8-bit state of a parameter or gradient not in row-major order"
    rows, _, nb = Q.layout(tuple(p.shape), storage.block)
    for key in slots[:len(slots) - scalars]:
        codes, scales = state.get(key), state.get(Q.scale_key(key))
        if codes is None or scales is None or codes.dtype != torch.uint8 \
                or codes.shape != p.shape or not codes.is_contiguous():
            return f"state {key!r} is not 8-bit codes shaped like its parameter"
        if scales.dtype != torch.float32 or tuple(scales.shape) != (rows, nb) \
                or not scales.is_contiguous():
            return f"state {key!r} has no float32 block scales of shape {(rows, nb)}"
    for key in slots[len(slots) - scalars:]:
        value = state.get(key)
        if value is None or value.dim() != 0 or value.dtype != torch.float32:
            return f"scalar state {key!r} is not a float32 scalar"
    return None


def kernel_slots(graph: RuleGraph, sdtype) -> tuple[str, ...]:
    """The state keys a kernel for ``sdtype`` storage addresses, in its table's order: each
    elementwise slot (and, in 8-bit blocks, its scales), then the scalar slots."""
    if not isinstance(sdtype, Q.Blockwise):
        return graph.all_slots
    return tuple(k for key in graph.slots for k in (key, Q.scale_key(key))) + graph.scalars


def stream_key(group: dict[str, Any], position: int) -> int:
    """The key of the random stream of the parameter at ``position`` in the optimizer."""
    o = Q.TorchOps
    key = Q.tensor_key(o, o.u32(torch.tensor(int(group["rounding_seed"]))),
                       o.u32(torch.tensor(position)))
    return int(key.t)


def _rows_ok(graph: RuleGraph, p: Tensor, g: Tensor) -> bool:
    return (not graph.reductions and p.dim() > 0 and not p.is_complex()
            and g.sparse_dim() == 1 and g.dense_dim() == p.dim() - 1)


def _backend(device: torch.device) -> str | None:
    if device.type == "cpu":
        try:
            import numba  # noqa: F401
        except ImportError:
            return None
        return "cpu"
    if device.type == "cuda":
        from ..backends import triton_gpu

        return "cuda" if triton_gpu.available() else None
    return None


def kernels(graph: RuleGraph, device: str, pdtype, sdtype, guard: bool,
            stochastic: bool = False):
    """(apply, reduce) kernel names for this choice, compiled and registered on first use."""
    if device == "cpu":
        from ..backends import numba_cpu as backend
    else:
        from ..backends import triton_gpu as backend
    names = {}
    phases = (("apply",) if graph.outputs else ()) + (("reduce",) if graph.reductions else ())
    for phase in phases:
        k = backend.kernel(graph, phase, pdtype, sdtype, guard,
                           stochastic=stochastic and phase == "apply")
        ops.register(k.name, k, device)
        names[phase] = k.name
    return names.get("apply"), names.get("reduce")


def build(optimizer, group: dict[str, Any], index: int, grads: list, guard: bool,
          clip: bool) -> Plan:
    """A new plan for ``group``; validates every gradient and creates missing state."""
    rule = optimizer.rule(_scalars(group))
    params = group["params"]
    present = with_grad(grads)
    for i in present:
        _check_gradient(params[i], grads[i], index)
    fused = not (group["fused"] is False or group["foreach"] is False or group["differentiable"])
    # a rule with whole-tensor transformations (Muon, Adafactor) runs on torch ops, batched
    # over the group (backends.reference.apply_many): its own fast path, not a fallback
    batched = rule.many is not None
    if group["fused"]:
        # As torch.optim: fused=True is a promise of fused kernels, refused where none runs
        # (checked at the step, so moving a meta model to a device afterwards works).
        bad = [params[i] for i in present if params[i].device.type not in ("cpu", "cuda")]
        if bad:
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of "
                f"supported devices: ['cpu', 'cuda'] but {bad[0].dtype} and "
                f"{bad[0].device.type}")
    graph = None
    buckets: dict[tuple, list[int]] = {}
    reference: list[int] = []
    rows: list[int] = []
    reasons: dict[str, int] = {}
    # the parameters' positions in the optimizer: their random streams' keys
    base = sum(len(g["params"]) for g in optimizer.param_groups[:index])
    rounding: dict[int, tuple[int, int]] = {}
    for i in present:
        p, g = params[i], grads[i]
        state = S.ensure(optimizer, p, rule, group)
        stochastic = group["stochastic_rounding"] and p.dtype == torch.bfloat16
        if stochastic:
            if not D.whole_rows(p):
                raise ValueError(
                    f"Invalid stochastic_rounding: True for a parameter of shape "
                    f"{tuple(p.shape)} in parameter group {index} sharded as {p.placements} "
                    "(the random stream numbers the elements of whole rows: shard along the "
                    "first dimension only)")
            rounding[i] = (stream_key(group, base + i), D.global_offset(p))
        if not fused or batched:
            reference.append(i)
            continue
        if graph is None:
            real = torch.view_as_real(p.detach()) if p.is_complex() else p
            graph = _graph(optimizer, group, real)
        reason = graph if isinstance(graph, str) else None
        backend = _backend(p.device) if reason is None else None
        if reason is None and backend is None:
            reason = (f"no kernel backend for {p.device.type} (numba for CPU, triton for "
                      "CUDA)")
        sdtype = S.state_dtype(group, p)
        if reason is None:
            if D.is_dtensor(p):  # kernels see this rank's shard
                p, g, state = D.local(p), D.local(g), {k: D.local(v) for k, v in state.items()}
            if g.is_sparse and group["sparse"] == "lazy":
                if backend == "cpu" and not stochastic and _rows_ok(graph, p, g) and \
                        _kernel_reason(p, p, state, graph.all_slots, sdtype,
                                       len(graph.scalars)) is None:
                    rows.append(i)
                    continue
                reason = ("lazy sparse update of a norm-based rule, of non-row indices or "
                          "with stochastic rounding")
            else:
                reason = _kernel_reason(p, g, state, graph.all_slots, sdtype,
                                        len(graph.scalars))
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
            reference.append(i)
            continue
        real = p.real.dtype if p.is_complex() else p.dtype
        buckets.setdefault((p.device, real, sdtype, stochastic), []).append(i)
    for reason, count in reasons.items():
        _fallback(optimizer, reason, index, count)
    if isinstance(graph, str):
        graph = None
    order: list[int] = []
    plan_buckets: list[Bucket] = []
    hypers: dict[torch.device, Tensor] = {}
    states: list[Tensor] = []
    for (device, pdtype, sdtype, stochastic), members in buckets.items():
        apply, reduce = kernels(graph, device.type, pdtype, sdtype, guard, stochastic)
        clip_name = None
        if clip:
            clip_name = kernels(_grad_norm(), device.type, pdtype, pdtype, False)[1]
        if device not in hypers:
            hypers[device] = torch.zeros(max(1, len(graph.hypers)), dtype=torch.float64,
                                         device=device)
        start = len(order)
        order.extend(members)
        slots = kernel_slots(graph, sdtype)
        meta = None
        if isinstance(sdtype, Q.Blockwise) or stochastic:
            block = sdtype.block if isinstance(sdtype, Q.Blockwise) else 1
            meta = torch.tensor(
                [(max(1, Q.layout(tuple(D.local(params[i]).shape), block)[1]),
                  rounding[i][1] if stochastic else 0, rounding[i][0] if stochastic else 0)
                 for i in members], dtype=torch.int64, device=device).reshape(len(members), 3)
        plan_buckets.append(Bucket(device, pdtype, sdtype, apply, reduce, len(graph.reductions),
                                   start, len(order), hypers[device],
                                   torch.zeros(len(members), dtype=torch.int64, device=device),
                                   clip_name,
                                   tuple(D.reduction_groups(params[i]) for i in members),
                                   met=torch.zeros((), dtype=torch.int64, device=device),
                                   slots=slots, state_start=len(states), meta=meta))
        # (after ensure) the local shards of sharded (DTensor) parameters and state
        states += [D.local(optimizer.state[params[i]][k]) for i in members for k in slots]
    row_jobs = []
    for i in rows:
        p = params[i]
        from ..backends import numba_cpu

        row_jobs.append((i, numba_cpu.kernel(graph, "rows", p.dtype, S.state_dtype(group, p),
                                             guard)))
    constants = {}
    for i in present:
        for sign in (-1.0, 1.0):
            device = params[i].device
            if (device, sign) not in constants:
                constants[(device, sign)] = torch.tensor(sign, dtype=torch.float64, device=device)
    fused_params = [params[i] for i in order]
    return Plan(graph=graph, rule=rule, version=optimizer._state_version,
                signature=signature(group), with_grad=present, order=order,
                identity=order == list(range(len(params))),
                buckets=plan_buckets, params=[D.local(p) for p in fused_params], states=states,
                steps=[S.step_of(optimizer, p) for p in fused_params],
                views=tuple(p.is_complex() for p in fused_params),
                dense=tuple(grads[i].is_sparse for i in order),
                reference=reference, rows=row_jobs,
                any_views=any(p.is_complex() for p in fused_params),
                any_dense=any(grads[i].is_sparse for i in order),
                any_dtensor=any(D.is_dtensor(p) for p in fused_params),
                requested_reference=not fused, constants=constants, batched=batched,
                rounding={i: rounding[i] for i in reference if i in rounding})


_grad_norm_graph: RuleGraph | None = None


def _grad_norm() -> RuleGraph:
    """A rule with one reduction, the squared norm of the gradient: clipping's first pass."""
    global _grad_norm_graph
    if _grad_norm_graph is None:
        from ..rules.expr import load, norm

        g = load("grad")
        n = norm(g)
        _grad_norm_graph = RuleGraph(slots=(), written=(), hypers=(), outputs={},
                                     reductions=(n,), guards=(), inputs={"grad": g},
                                     key="grad-norm")
    return _grad_norm_graph


def _check_gradient(p: Tensor, g: Tensor, group_index: int) -> None:
    """A gradient that does not fit its parameter is refused before anything is written."""
    if g.layout not in (torch.strided, torch.sparse_coo):
        raise ValueError(f"Invalid gradient layout: {g.layout} (only strided and sparse COO "
                         f"are supported) in parameter group {group_index}")
    if g.shape != p.shape:
        raise ValueError(f"Invalid gradient shape: {tuple(g.shape)} for a parameter of shape "
                         f"{tuple(p.shape)} in parameter group {group_index}")
    if g.dtype != p.dtype:
        raise TypeError(f"Invalid gradient dtype: {g.dtype} for a parameter of dtype {p.dtype} "
                        f"in parameter group {group_index}")
    if g.device != p.device:
        raise ValueError(f"Invalid gradient device: {g.device} for a parameter on {p.device} "
                         f"in parameter group {group_index}")
    if g.is_sparse and D.is_dtensor(p):
        raise ValueError(f"Invalid gradient layout: a sparse gradient for a sharded (DTensor) "
                         f"parameter of shape {tuple(p.shape)} in parameter group {group_index} "
                         "(sparse gradients cannot be sharded: keep this parameter out of "
                         "fully_shard, or make its gradient dense)")
    if g.is_sparse:
        rows = g._indices()
        if rows.numel():
            limits = torch.tensor(g.shape[:g.sparse_dim()], device=rows.device).unsqueeze(1)
            if bool(((rows < 0) | (rows >= limits)).any()):
                # COO tensors are not validated on construction; an index past the end
                # would write outside the parameter.
                raise IndexError(f"sparse gradient index out of range for a parameter of "
                                 f"shape {tuple(p.shape)} in parameter group {group_index}")

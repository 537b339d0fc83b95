"""One optimisation step: policies around the kernels, with no host work on the device path.

Order of events in :func:`step`, for all parameter groups:

1. **Plans** (:mod:`.plan`): each group's tensors gathered for its kernels (rebuilt only
   when the group changes). Under ``torch.compile`` this runs once, at trace time, through
   the optimizer's ``_init_group`` (dynamo calls that method eagerly, as for torch.optim).
2. **Non-finite policy** ``"raise"``/``"skip"``: a separate read of every gradient before
   anything is written (on a GPU it synchronises; the docs say so). ``"guard"`` (the
   default) needs no separate pass: the kernels skip blocks whose gradient is not finite.
   Under AMP, :class:`torch.amp.GradScaler` has already read every gradient and hands over
   ``found_inf``, which decides instead.
3. **Clipping** (``max_grad_norm``): one pass summing squared gradients over every tensor
   of every group (float64), then torch's coefficient ``max_norm / (norm + 1e-6)`` clamped
   to 1, applied inside the update kernels through the gradient multiplier ``gmul``.
4. **Update**: per bucket, the reduce pass if the rule has norms, then the apply pass;
   the reference path for the rest; the lazy sparse row kernel for embedding rows.
5. **Accounting**: ``optimizer.nonfinite_steps`` (a 0-d tensor on the parameters' device)
   counts steps that met a non-finite gradient; on the CPU the first one is named in a
   warning.

The gradient multiplier ``gmul`` of a group is ``(-1 if maximize else 1) * clip / scale``:
one multiplication per element inside the kernel instead of passes over the gradients.
"""
from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..backends import ops
from ..backends import reference as ref
from ..backends.graph import hyper_value
from . import distributed as D
from . import plan as P
from . import state as S

CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s

#: How often each path ran since import ("cpu:native", "cpu:threads", "cuda:triton",
#: "cpu:rows", "reference"), so tests can prove a fast path really ran.
path_counts: Counter = Counter()


class NonFiniteGradientError(FloatingPointError):
    """A gradient held NaN or infinity and the policy is ``nonfinite="raise"``."""


def init_group(optimizer, group: dict[str, Any], params: list, grads: list, states: list,
               steps: list, index: int, amp: bool) -> str | None:
    """Fill the lists for ``group``'s fused kernels and return its plan's key (or None when
    no parameter has a gradient). The optimizer's ``_init_group`` is this function."""
    all_grads = [p.grad for p in group["params"]]
    if all(g is None for g in all_grads):
        return None
    key = f"{index}:{int(amp)}"
    plan = optimizer._plans.get(key)
    if not P.valid(plan, optimizer, group, all_grads):
        guard = group["nonfinite"] == "guard" and not amp
        clip = group.get("max_grad_norm") is not None
        plan = P.build(optimizer, group, index, all_grads, guard, clip)
        if optimizer.__dict__.get("_met") is None:  # the step's non-finite flag
            optimizer._met = torch.zeros((), dtype=torch.int64,
                                         device=optimizer._counter_device())
        if clip and optimizer.__dict__.get("_grad_norm") is None:
            device = next((p.device for p in group["params"]), torch.device("cpu"))
            optimizer._grad_norm = torch.full((), float("nan"), dtype=torch.float64,
                                              device=device)
        optimizer._plans[key] = plan
    params.extend(plan.params)
    if plan.any_dtensor:
        grads.extend(D.local(all_grads[i]) for i in plan.order)
    elif plan.identity:
        grads.extend(all_grads)
    else:
        grads.extend(all_grads[i] for i in plan.order)
    states.extend(plan.states)
    steps.extend(plan.steps)
    return key


class _Stale(Exception):
    """An operator refused a tensor of a plan (its checks ran before any write)."""


def step(optimizer) -> None:
    try:
        _step(optimizer)
    except _Stale as stale:
        if torch.compiler.is_compiling():
            raise stale.__cause__ from None
        # The gradients changed kind since the plan was made (a sparse or non-contiguous
        # one, a wrong shape through ``.data``): nothing was written. Plan again, which
        # validates every gradient (raising the precise error) and reroutes what kernels
        # cannot take, then run the step once more.
        optimizer._plans.clear()
        optimizer._state_version += 1
        try:
            _step(optimizer)
        except _Stale as again:
            raise again.__cause__ from None


def _op(name: str, *args):
    try:
        return getattr(torch.ops.inertia, name)(*args)
    except (ValueError, TypeError, RuntimeError) as error:
        raise _Stale() from error


class Job(NamedTuple):
    """One group's part of a step: its plan and the lists its operators take."""

    index: int
    group: dict
    plan: Any
    params: list
    grads: list
    states: list
    steps: list


def _step(optimizer) -> None:
    amp_scale = getattr(optimizer, "grad_scale", None)
    found_inf = getattr(optimizer, "found_inf", None)
    amp = found_inf is not None
    jobs: list[Job] = []
    for index, group in enumerate(optimizer.param_groups):
        params, grads, states, steps = [], [], [], []
        key = optimizer._init_group(group, params, grads, states, steps, index, amp)
        if key is not None:
            plan = optimizer._plans[key]
            jobs.append(Job(index, group, plan, params, _gathered(plan, grads), states, steps))
    if not jobs:
        return
    for job in jobs:
        # Tensors off the kernels are checked here, each step, before anything is written
        # (the operators check their own tensors).
        for i in job.plan.reference + [i for i, _ in job.plan.rows]:
            p = job.group["params"][i]
            P._check_gradient(p, p.grad, job.index)

    if not amp and not _policies_allow(optimizer, jobs):
        return  # "skip": nothing changed, counted

    skip_all, norm_scale = found_inf, None
    if jobs[0].group.get("max_grad_norm") is not None:
        norm_scale, nonfinite_norm = _clip(optimizer, jobs, amp_scale)
        if jobs[0].group["nonfinite"] == "guard" and not amp:
            # The global norm has read every gradient: a non-finite one skips the whole step
            # (nothing changes) at no extra cost, instead of scaling everything by NaN.
            skip_all = nonfinite_norm

    if sum(len(job.plan.buckets) for job in jobs) > 1:
        # Several kernel calls: check every one's tensors before the first writes anything.
        for job in jobs:
            for b in job.plan.buckets:
                _op("fused_check", b.apply, *_bucket_lists(job, b))

    # ``met``: one flag for the step (a 0-d tensor on the counter's device) that every kernel
    # call and the reference path set when they skip a non-finite value; added to the
    # counter once, with no host synchronisation.
    guarded = any(job.group["nonfinite"] == "guard" for job in jobs) and not amp
    met = optimizer._met_flag() if guarded else None
    if met is not None and skip_all is not None:
        torch.maximum(met, skip_all.reshape(()).to(met), out=met)
    _run_buckets(optimizer, jobs, norm_scale, amp_scale, skip_all, amp, met)
    flagged: list[tuple[Tensor, Tensor]] = []  # (flag, parameter) for the warning
    for job in jobs:
        if job.plan.reference or job.plan.rows:
            guard = job.group["nonfinite"] == "guard" and not amp
            flags = _reference_and_rows(optimizer, job, norm_scale, amp_scale, skip_all, guard)
            for flag, _ in flags:
                torch.maximum(met, flag.reshape(()).to(met), out=met)
            flagged += flags
    if met is not None:
        counter = optimizer.nonfinite_counter()
        counter.add_(met)
        if counter.device.type == "cpu" and not torch.compiler.is_compiling() and met.item():
            _warn_first_nonfinite(optimizer, jobs, flagged)


def _clip(optimizer, jobs: list[Job], amp_scale) -> tuple[Tensor, Tensor]:
    """The clipping coefficient (torch's: ``max_norm / (norm + 1e-6)``, at most 1) and
    whether the global norm is non-finite, both device tensors."""
    total = _global_norm(optimizer, jobs)
    if amp_scale is not None:
        total = total / amp_scale.to(total.device, torch.float64)
    # into a buffer made at plan time: an attribute set inside torch.compile would be traced
    # as a side effect, an in-place copy is part of the graph
    optimizer._grad_norm.copy_(total.to(optimizer._grad_norm.device))
    max_norm = jobs[0].group["max_grad_norm"]
    return torch.clamp(max_norm / (total + CLIP_EPS), max=1.0), ~torch.isfinite(total)


def _run_buckets(optimizer, jobs: list[Job], norm_scale, amp_scale, skip_all, amp,
                 met: Tensor | None) -> None:
    """Every kernel call: the reduce passes first (norms of LAMB, LARS...), their sums
    added across shards in one all_reduce per process group for the whole step, then the
    apply passes, which set ``met`` when the guard skipped anything."""
    calls = []
    for job in jobs:
        for b in job.plan.buckets:
            gmul = _gmul(job.plan.constant(b.device, job.group), norm_scale, amp_scale)
            _fill_hyper(b.hyper, job.group, job.plan.graph.hypers, b)
            lists = _bucket_lists(job, b)
            sums = None
            if b.reduce is not None:
                sums = _op("fused_reduce", b.reduce, *lists, b.hyper, gmul, b.meta)
            calls.append((job.group, b, gmul, lists, sums))
    sharded = [(sums[i], b.groups[i]) for _, b, _, _, sums in calls if sums is not None
               for i in range(len(b.groups)) if b.groups[i]]
    if sharded:
        D.all_reduce_rows([row for row, _ in sharded], [g for _, g in sharded])

    for group, b, gmul, lists, sums in calls:
        guard = group["nonfinite"] == "guard" and not amp
        inputs = skip = None
        if sums is not None:
            inputs = sums[:, :b.reductions]
            if guard:
                skip = (sums[:, b.reductions] > 0).to(torch.int64)
        fi = None if skip_all is None else skip_all.to(b.device).reshape(())
        flag = b.met if met is None or b.met.device != met.device else met
        _op("fused_apply", b.apply, *lists, b.hyper, inputs, skip, gmul, fi, b.bad, flag,
            b.meta)
        if met is not None and flag is not met:  # a bucket on another device
            torch.maximum(met, flag.to(met.device), out=met)
            flag.zero_()
        if not torch.compiler.is_compiling():
            path_counts[_path_name(b.device)] += 1


def _path_name(device: torch.device) -> str:
    if device.type == "cpu":
        return "cpu:" + ops.cpu_implementation()
    return f"{device.type}:triton"


def _bucket_lists(job: Job, b) -> tuple[list, list, list, list]:
    """The operator arguments of bucket ``b``: its params, grads, flat states and steps."""
    K = len(b.slots)  # per tensor (8-bit state: codes and scales of each slot)
    sl = slice(b.start, b.stop)
    p_, g_, st_ = job.params[sl], job.grads[sl], job.steps[sl]
    s_ = job.states[b.state_start:b.state_start + (b.stop - b.start) * K]
    if job.plan.any_views:
        p_ = _real_views(p_, job.plan.views[sl])
        s_ = _real_views(s_, job.plan.views[sl], each=K)
    return p_, g_, s_, st_


def _gathered(plan, grads: list) -> list:
    """The gradients as kernels take them: sparse ones coalesced (and densified unless
    they go to the row kernel), complex ones as real views."""
    if not (plan.any_dense or plan.any_views):
        return grads
    out = []
    for g, dense, view in zip(grads, plan.dense, plan.views):
        if dense:
            g = g.coalesce().to_dense()
        if view:
            g = torch.view_as_real(g)
        out.append(g)
    return out


def _real_views(tensors: list, flags: tuple, each: int = 1) -> list:
    out = []
    for i, t in enumerate(tensors):
        out.append(torch.view_as_real(t) if flags[i // each] and t.is_complex() else t)
    return out


def _gmul(sign: Tensor, norm_scale, amp_scale) -> Tensor:
    """The gradient multiplier: ``sign`` (the plan's -1/1 tensor for ``maximize``) times the
    clipping coefficient, over AMP's scale; device tensors all, so nothing syncs."""
    g = sign
    if norm_scale is not None:
        g = g * norm_scale.to(sign.device)
    if amp_scale is not None:
        g = g / amp_scale.to(sign.device, torch.float64)
    return g


def _fill_hyper(hyper: Tensor, group: dict[str, Any], names: tuple[str, ...],
                memo: Any = None) -> None:
    """Write the group's hyperparameters into the kernels' float64 buffer ``hyper``.

    Numbers are copied only when they changed (a constant learning rate copies nothing;
    on a GPU a changed one is one small asynchronous copy from pinned memory); tensor
    hyperparameters are copied on the device every step, so a CUDA graph replays them."""
    values = [hyper_value(group, n) for n in names]
    if not values:
        return
    if all(not isinstance(v, Tensor) for v in values):
        key = tuple(float(v) for v in values)
        if memo is not None and memo.written is not None and memo.written[0] == key:
            return
        host = torch.tensor(key, dtype=torch.float64)
        if hyper.device.type == "cpu":
            hyper.copy_(host)
        else:
            host = host.pin_memory()
            hyper.copy_(host, non_blocking=True)
        if memo is not None:
            memo.written = (key, host)  # the pinned source outlives its copy
        return
    hyper.copy_(torch.stack([v.detach().to(hyper.device, torch.float64).reshape(())
                             if isinstance(v, Tensor)
                             else torch.tensor(v, dtype=torch.float64, device=hyper.device)
                             for v in values]))


def _policies_allow(optimizer, jobs: list[Job]) -> bool:
    """``"raise"``/``"skip"``: one read of every gradient of those groups before any write."""
    skipped = False
    for job in jobs:
        if job.group["nonfinite"] not in ("raise", "skip"):
            continue
        others = job.plan.reference + [i for i, _ in job.plan.rows]
        values = [_values(g) for g in job.grads]
        values += [_values(job.group["params"][i].grad) for i in others]
        if _all_finite(values):
            continue
        if job.group["nonfinite"] == "raise":
            raise NonFiniteGradientError(
                f"non-finite gradient in parameter group {job.index}; nothing was updated "
                "(pass nonfinite='skip' to skip such steps, or 'guard' to skip only the "
                "affected blocks)")
        skipped = True
    if skipped:
        optimizer.nonfinite_counter().add_(1)
        return False
    return True


def _values(g: Tensor) -> Tensor:
    return g.coalesce()._values() if g.is_sparse else g


def _all_finite(tensors: list[Tensor]) -> bool:
    """Whether every element is finite: numba on contiguous CPU tensors, torch otherwise
    (a sum is non-finite whenever an element is; huge finite values whose sum overflows
    are confirmed element by element)."""
    tensors = [t for t in tensors if t.numel()]
    by_dtype: dict = {}
    rest = []
    for t in tensors:
        if t.device.type == "cpu" and t.dtype in P.KERNEL_DTYPES and t.is_contiguous() \
                and P._backend(t.device) == "cpu":
            by_dtype.setdefault(t.dtype, []).append(t)
        else:
            rest.append(t)
    if by_dtype:
        from ..backends import cpu

        if not all(cpu.all_finite(group) for group in by_dtype.values()):
            return False
    if not rest:
        return True
    rest = [torch.view_as_real(t) if t.is_complex() else t for t in rest]
    sums = torch.stack([t.sum(dtype=torch.promote_types(t.dtype, torch.float32)).double()
                        for t in rest])
    if bool(torch.isfinite(sums).all()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in rest)


def _global_norm(optimizer, jobs: list[Job]) -> Tensor:
    """The L2 norm of every gradient of every group, as one float64 0-d tensor."""
    parts: list[Tensor] = []
    rows, groups, bucket_sums = [], [], []
    for job in jobs:
        plan, group = job.plan, job.group
        for b in plan.buckets:
            sl = slice(b.start, b.stop)
            one = plan.constant(b.device, None)
            sums = _op("fused_reduce", b.clip, job.params[sl], job.grads[sl], [],
                       job.steps[sl], b.hyper, one)
            for i, g in enumerate(b.groups):
                if g:  # a shard: its squares are added across the mesh first
                    rows.append(sums[i])
                    groups.append(g)
            bucket_sums.append(sums)
        for i in plan.reference + [i for i, _ in plan.rows]:
            g = _values(group["params"][i].grad)
            g = torch.view_as_real(g) if g.is_complex() else g
            square = torch.linalg.vector_norm(g, dtype=torch.float64) ** 2
            parts.append(square.full_tensor() if D.is_dtensor(square) else square)
    if rows:  # rows are views of bucket_sums: added across shards in place
        D.all_reduce_rows(rows, groups)
    parts += [sums[:, 0].sum() for sums in bucket_sums]
    device = parts[0].device
    total_sq = torch.stack([x.to(device) for x in parts]).sum()
    if optimizer._partition_group is not None:  # ZeRO: each rank holds part of the tensors
        total_sq = D.add_partitions(total_sq, optimizer._partition_group)
    return total_sq.sqrt()


def _finite(x: Tensor) -> Tensor:
    """A 0-d bool tensor: every element of ``x`` is finite. One read of ``x`` (``aminmax``
    propagates NaN, and an infinity shows at one end), where ``isfinite(x).all()`` makes
    three passes and temporaries; no host synchronisation."""
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    if x.is_complex():
        x = torch.view_as_real(x)
    lo, hi = torch.aminmax(x.detach())
    return torch.isfinite(lo) & torch.isfinite(hi)


def _reference_and_rows(optimizer, job: Job, norm_scale, amp_scale, skip_all, guard):
    """The tensors no dense kernel takes: the reference path and the lazy row kernel."""
    from ..backends import cpu

    group, plan = job.group, job.plan
    met = []
    lazy = group["sparse"] == "lazy"
    # the rule with the group's numbers of this step (the plan's was built with those of
    # its first step: a float lr changed since, or Schedule-Free's step count, would be lost)
    rule = optimizer.rule(P._scalars(group)) if plan.reference else None
    if plan.batched and plan.reference:
        met += _batched(optimizer, job, rule, norm_scale, amp_scale, skip_all, guard)
    for i in plan.reference if not plan.batched else ():
        p = group["params"][i]
        g = p.grad.coalesce() if p.grad.is_sparse else p.grad
        gmul = _gmul(plan.constant(p.device, group), norm_scale, amp_scale)
        keep = advance = None
        if guard:
            keep = _finite(_values(g))
            met.append(((~keep).to(optimizer._counter_device()), p))
        if skip_all is not None:
            advance = ~skip_all.to(p.device).reshape(()).to(torch.bool)
            keep = advance if keep is None else keep & advance
        ref.apply(rule, p, g, optimizer.state.get(p, {}), S.step_of(optimizer, p), gmul,
                  lazy=lazy and g.is_sparse, keep=keep, advance=advance,
                  block=group["state_block_size"], rounding=plan.rounding.get(i))
        if not torch.compiler.is_compiling():
            path_counts["reference:requested" if plan.requested_reference else "reference"] += 1
    for i, kernel in plan.rows:
        p = group["params"][i]
        g = p.grad.coalesce()
        if skip_all is not None and bool(skip_all):
            continue
        gmul = _gmul(plan.constant(p.device, group), norm_scale, amp_scale)
        state = optimizer.state.get(p, {})
        hyper = torch.zeros(max(1, len(plan.graph.hypers)), dtype=torch.float64)
        _fill_hyper(hyper, group, plan.graph.hypers)
        values = g._values().contiguous()
        rows = g._indices()[0].numpy()
        bad = cpu.rows_apply(kernel, p, values, rows, [state[k] for k in plan.graph.all_slots],
                             S.step_of(optimizer, p), hyper, gmul)
        if guard:
            met.append((torch.tensor(bad > 0), p))
        path_counts["cpu:rows"] += 1
    return met


def _batched(optimizer, job: Job, rule, norm_scale, amp_scale, skip_all, guard) -> list:
    """A group whose rule has whole-tensor transformations (Muon, Adafactor): all its
    tensors in one call of ``rule.many``, each guarded whole, as on the reference path."""
    group, plan = job.group, job.plan
    ps = [group["params"][i] for i in plan.reference]
    met: list = []
    # (a whole step to skip: read on the CPU at no cost; the torch-ops path does the skip)
    if rule.kernel is not None and not plan.requested_reference and not torch.is_grad_enabled() \
            and not torch.compiler.is_compiling() \
            and (skip_all is None or (skip_all.device.type == "cpu" and not bool(skip_all))):
        ps, met = _hand_fused(optimizer, job, rule, ps, norm_scale, amp_scale, guard)
        if not ps:
            return met
    grads = [p.grad for p in ps]
    gmuls = [_gmul(plan.constant(p.device, group), norm_scale, amp_scale) for p in ps]
    keeps: list | None = None
    advance = None
    if guard:
        # per tensor, over all its shards (one all_reduce for the sharded ones): every rank
        # keeps or skips the same tensors
        bad = [(~_finite(D.local(g))).to(torch.float64).reshape(1) for g in grads]
        groups = [D.reduction_groups(p) for p in ps]
        if any(groups):
            D.all_reduce_rows(bad, groups)
        keeps = [b[0] == 0 for b in bad]
        met += [((~k).to(optimizer._counter_device()), p) for k, p in zip(keeps, ps)]
    if skip_all is not None:
        advance = ~skip_all.reshape(()).to(torch.bool)
        keeps = [advance.to(p.device) & k if keeps else advance.to(p.device)
                 for p, k in zip(ps, keeps or [None] * len(ps))]
    ref.apply_many(rule, ps, grads, [optimizer.state.get(p, {}) for p in ps],
                   [S.step_of(optimizer, p) for p in ps], gmuls, keeps, advance,
                   block=group["state_block_size"],
                   roundings=[plan.rounding.get(i) for i in plan.reference])
    if not torch.compiler.is_compiling():
        path_counts["reference:batched"] += 1
    return met


def _hand_fused(optimizer, job: Job, rule, ps: list, norm_scale, amp_scale,
                guard: bool) -> tuple[list, list]:
    """The tensors of a batched group that a hand-fused sweep of its rule (``rule.kernel``,
    Adafactor's on the CPU) takes, stepped by it; returns the others (for the rule on torch
    ops) and the guard's flags. One sweep per storage dtype pair."""
    name, numbers = rule.kernel
    if name != "adafactor" or P._backend(torch.device("cpu")) != "cpu":  # (numba missing)
        return ps, []
    from ..backends import factored_cpu  # (imports numba)

    plan, group = job.plan, job.group
    runs: dict[tuple, list[int]] = {}
    rest = []
    for k, (i, p) in enumerate(zip(plan.reference, ps)):
        state = optimizer.state.get(p, {})
        if factored_cpu.takes(p, p.grad, state, plan.rounding.get(i)):
            first = state["row_var" if p.dim() > 1 else "variance"]
            runs.setdefault((p.dtype, first.dtype), []).append(k)
        else:
            rest.append(p)
    met = []
    for members in runs.values():
        chosen = [ps[k] for k in members]
        # CPU tensors: reading the multiplier (sign, clipping, AMP scale) costs no sync
        gmul = float(_gmul(plan.constant(chosen[0].device, group), norm_scale, amp_scale))
        skipped = factored_cpu.step(chosen, [p.grad for p in chosen],
                                    [optimizer.state[p] for p in chosen],
                                    [S.step_of(optimizer, p) for p in chosen], gmul,
                                    numbers, guard)
        flag = torch.ones((), dtype=torch.bool, device=optimizer._counter_device())
        met += [(flag, chosen[k]) for k in skipped]
    if runs and not torch.compiler.is_compiling():
        path_counts["cpu:factored"] += 1
    return rest, met


def _warn_first_nonfinite(optimizer, jobs, flagged) -> None:
    if getattr(optimizer, "_warned_nonfinite", False):
        return
    optimizer._warned_nonfinite = True
    hit = None
    for job in jobs:
        for b in job.plan.buckets:
            rows = b.bad.nonzero().flatten().tolist()
            if rows and hit is None:
                hit = (job.index, job.group["params"][job.plan.order[b.start + rows[0]]])
        for flag, p in flagged:
            if hit is None and bool(flag) and any(p is q for q in job.group["params"]):
                hit = (job.index, p)
    if hit is None:
        what = ("non-finite gradient norm: the whole step was skipped (nonfinite='guard' with "
                "max_grad_norm)")
    else:
        index, p = hit
        position = next(i for i, q in enumerate(optimizer.param_groups[index]["params"])
                        if q is p)
        what = (f"non-finite gradient in parameter {position} of group {index} (shape "
                f"{tuple(p.shape)}); the blocks holding it were left unchanged "
                "(nonfinite='guard')")
    warnings.warn(f"inertia.{type(optimizer).__name__}: {what}. Such steps are counted in "
                  "optimizer.nonfinite_steps; this warning is shown once.", stacklevel=3)

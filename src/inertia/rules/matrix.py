r"""Transformations that need whole tensors: Muon's orthogonalisation, Adafactor's factored
second moment, and what goes with them.

The rule language of :mod:`inertia.rules.expr` describes coordinates (and whole-tensor
norms); these transformations multiply matrices and reduce rows and columns, so they are
written with torch ops on tensors and are never traced into elementwise kernels. Each has
a batched form (:attr:`Transform.many <inertia.rules.transforms.Transform>`) that takes all
the tensors of a parameter group at once, which is where their speed comes from: the
Newton-Schulz matmuls of every matrix of one shape run as one ``bmm``.

Sharded tensors (FSDP2's ``DTensor``). Orthogonalisation needs the whole matrix: it is
gathered (:func:`whole`), orthogonalised, and each rank keeps its shard of the result
(:func:`shard_like`). Adafactor's row and column statistics and its norms are torch
reductions on the ``DTensor`` itself, which DTensor adds across shards.

Nothing here imports the rest of inertia.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .transforms import State, Transform, _no_state, add_decayed_weights, chain, each

#: Keller Jordan's quintic Newton-Schulz coefficients (a, b, c), as ``torch.optim.Muon``'s.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
NS_EPS = 1e-7


# ----------------------------------------------------------------------------- sharding

def _dtensor(t) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch without distributed support
        return False
    return isinstance(t, DTensor)


def whole(t: Tensor) -> Tensor:
    """``t`` itself, or the full tensor a ``DTensor`` is a shard of (an all-gather)."""
    return t.full_tensor() if _dtensor(t) else t


def shard_like(full: Tensor, like: Tensor) -> Tensor:
    """``full`` as ``like`` holds it: for a ``DTensor``, this rank's shard of ``full`` with
    ``like``'s placements (a local slice, no communication)."""
    if not _dtensor(like):
        return full
    from torch.distributed.tensor import DTensor, Replicate

    mesh = like.device_mesh
    replicated = DTensor.from_local(full, mesh, [Replicate()] * mesh.ndim, run_check=False)
    return replicated.redistribute(mesh, like.placements)


# ----------------------------------------------------------------------------- Muon

def newton_schulz(x: Tensor, coefficients=NS_COEFFICIENTS, steps: int = NS_STEPS,
                  eps: float = NS_EPS, dtype: torch.dtype = torch.bfloat16) -> Tensor:
    r"""The orthogonal factor of ``x`` (``(m, n)`` or a batch ``(b, m, n)``), approximately.

    With :math:`X_0 = G / \max(\|G\|_F, \epsilon)` (so every singular value is at most 1)
    and, on the wide orientation (:math:`m \le n`, a tall matrix is transposed first),

    .. math::
        A = X X^\top,\qquad X \leftarrow aX + (bA + cA^2) X

    repeated ``steps`` times. The odd polynomial :math:`\phi(s) = as + bs^3 + cs^5` acts on
    the singular values alone, so :math:`X \to U \phi^{(k)}(S) V^\top` for
    :math:`G = USV^\top`. Keller Jordan's coefficients (3.4445, -4.7750, 2.0315) maximise
    the slope at zero, pushing small singular values up fast; the price is that they end
    in roughly [0.7, 1.2] instead of exactly 1, which does not hurt training. The iteration
    runs in ``dtype`` (bfloat16 by default, as torch's Muon); the result is in ``dtype``.
    A batch gives bit for bit the result of each matrix alone (the same kernels).
    """
    a, b, c = coefficients
    batch = x.dim() == 3
    X = x.to(dtype)
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.mT
    if batch:
        X = X / torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True).clamp(min=eps)
    else:
        X = X / X.norm().clamp(min=eps)
    mm = torch.baddbmm if batch else torch.addmm
    for _ in range(steps):
        A = X @ X.mT
        B = mm(A, A, A, beta=b, alpha=c)
        X = mm(X, B, X, beta=a)
    return X.mT if tall else X


def orthogonalize(coefficients=NS_COEFFICIENTS, steps: int = NS_STEPS, eps: float = NS_EPS,
                  dtype: torch.dtype = torch.bfloat16) -> Transform:
    r"""``u <- NS(u)``: the update's orthogonal factor (:func:`newton_schulz`), per matrix.

    Batched, the matrices of a group are sorted by shape and each shape's Newton-Schulz
    iteration is one stack of ``bmm`` calls, bit for bit the per-matrix result (tested).
    Sharded matrices are gathered first (:func:`whole`).
    """

    def one(u: Tensor) -> Tensor:
        return newton_schulz(u, coefficients, steps, eps, dtype)

    def update(u, state, p):
        return shard_like(one(whole(u)).to(u.dtype, memory_format=torch.contiguous_format),
                          u), {}

    def many(us, states, ps):
        full = [whole(u) for u in us]
        out: list = [None] * len(us)
        shapes: dict[tuple, list[int]] = {}
        for i, u in enumerate(full):
            shapes.setdefault((u.device, u.dtype, tuple(u.shape)), []).append(i)
        for members in shapes.values():
            if len(members) == 1:
                out[members[0]] = one(full[members[0]])
                continue
            # (a tall matrix is not batched with the transposes of wide ones: the same
            # numbers laid out transposed take another matmul path, which can round a
            # bfloat16 element differently from torch's Muon)
            result = newton_schulz(torch.stack([full[i] for i in members]), coefficients,
                                   steps, eps, dtype)
            for k, i in enumerate(members):
                out[i] = result[k]
        # row-major again: a tall matrix's factor comes out transposed, and the update's
        # elementwise passes with a transposed operand run several times slower on a CPU
        return [shard_like(o.to(u.dtype, memory_format=torch.contiguous_format), u)
                for o, u in zip(out, us)], [{} for _ in us]

    return Transform(_no_state, update, many)


def ema_lerp(beta, nesterov: bool, key: str = "momentum_buffer") -> Transform:
    r"""Muon's momentum, :func:`~inertia.rules.transforms.ema_velocity`'s math
    (``b <- \beta b + (1-\beta) g``; ``u <- b``, Nesterov ``\beta b + (1-\beta) g``)
    computed with ``torch.lerp`` as ``torch.optim.Muon`` does, so that the matrix handed to
    the bfloat16 iteration is bit for bit torch's. Batched with ``torch._foreach_lerp``."""

    def init(p):
        return {key: torch.zeros_like(p, memory_format=torch.preserve_format)}

    def update(u, state, p):
        buf = torch.lerp(state[key], u, 1 - beta)
        return (torch.lerp(u, buf, beta) if nesterov else buf), {key: buf}

    def many(us, states, ps):
        bufs = torch._foreach_lerp([s[key] for s in states], us, 1 - beta) if us else []
        outs = torch._foreach_lerp(us, bufs, beta) if nesterov and us else bufs
        return list(outs), [{key: b} for b in bufs]

    return Transform(init, update, many)


def matrix_lr_ratio(shape, adjust_lr_fn: str | None) -> float:
    r"""Muon's shape-dependent step scale: ``"original"`` (the default, Keller Jordan's)
    :math:`\sqrt{\max(1, m/n)}`, which gives tall matrices the update RMS of wide ones;
    ``"match_rms_adamw"`` (Moonshot's, Liu et al. 2025) :math:`0.2\sqrt{\max(m, n)}`, which
    gives the update the RMS of a typical AdamW update, so AdamW's lr and decay carry over."""
    m, n = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, m / n))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(m, n))
    raise ValueError(f"Invalid adjust_lr_fn: {adjust_lr_fn!r} (expected None, 'original' or "
                     "'match_rms_adamw')")


def muon_step(lr, weight_decay, adjust_lr_fn: str | None) -> Transform:
    r"""Muon's step with decoupled weight decay:
    ``p <- (1 - lr wd) p - lr ratio(shape) u`` (:func:`matrix_lr_ratio`).

    The two factors are computed as torch's Muon computes them, in the learning rate's own
    type: a float32 tensor ``lr`` gives float32 factors there, so they are taken the same
    way here (a Python float, float64)."""

    def update(u, state, p):
        shrink = 1 - lr * weight_decay
        return (shrink - 1) * p - (lr * matrix_lr_ratio(p.shape, adjust_lr_fn)) * u, {}

    return Transform(_no_state, update)


def by_shape(matrix: Transform, other: Transform) -> Transform:
    """``matrix`` for 2-D tensors, ``other`` for the rest (the biases and gains that share a
    Muon group go to its AdamW). Batched: each side gets its tensors at once."""

    def pick(p: Tensor) -> Transform:
        return matrix if p.dim() == 2 else other

    def init(p):
        return pick(p).init(p)

    def update(u, state, p):
        return pick(p).update(u, state, p)

    def many(us, states, ps):
        out_u: list = [None] * len(us)
        out_c: list = [None] * len(us)
        for side in (matrix, other):
            idx = [i for i, p in enumerate(ps) if pick(p) is side]
            if not idx:
                continue
            u2, c2 = each(side, [us[i] for i in idx], [states[i] for i in idx],
                          [ps[i] for i in idx])
            for k, i in enumerate(idx):
                out_u[i], out_c[i] = u2[k], c2[k]
        return out_u, out_c

    return Transform(init, update, many)


def with_own_step(inner: Transform, key: str) -> Transform:
    """``inner`` with a step count of its own, kept as the per-tensor scalar state ``key``
    (float32, exact to 2**24 steps). For a transformation that needs ``t`` (AdamW's bias
    corrections) inside an optimizer whose torch twin keeps no count (Muon): the optimizer's
    own count is then not in its checkpoints, this one is."""

    def init(p):
        return {**inner.init(p), key: torch.zeros((), dtype=torch.float32, device=p.device)}

    def update(u, state, p):
        t = state[key] + 1
        u, changed = inner.update(u, {**state, "step": t}, p)
        return u, {**changed, key: t}

    return Transform(init, update)


# ----------------------------------------------------------------------------- Adafactor

def _numel(t: Tensor) -> int:
    return t.numel()


def rms(x: Tensor, lead: int = 0) -> Tensor:
    """Root mean square of a whole tensor (torch's ``norm / sqrt(numel)``, as Adafactor);
    with ``lead=1``, of each tensor of a stack (shaped to broadcast against it)."""
    if not lead:
        return x.norm(2) / (_numel(x) ** 0.5)
    per = x.reshape(x.shape[0], -1)
    return _per(per.norm(2, dim=1) / (per.shape[1] ** 0.5), x)


def _lead(state) -> int:
    """1 when ``update`` is given a stack of tensors of one shape (:func:`stacked`: the step
    counts then form a vector, one per tensor), 0 for one tensor."""
    step = state.get("step")
    return step.dim() if isinstance(step, Tensor) else 0


def _per(v, like: Tensor):
    """A per-tensor value (0-d, or one per stacked tensor) shaped to broadcast against ``like``."""
    if isinstance(v, Tensor) and v.dim() == 1:
        return v.reshape(v.shape + (1,) * (like.dim() - 1))
    return v


def scale_by_factored_rms(beta2_decay, eps1) -> Transform:
    r"""Adafactor's second moment (Shazeer & Stern, 2018), factored for matrices.

    With :math:`\hat\beta_{2,t} = 1 - t^{\,c}` (``c = beta2_decay`` < 0: an average over
    all past steps that forgets ever more slowly), for a gradient :math:`G` of shape
    :math:`(\dots, n, m)`:

    .. math::
        R \leftarrow \hat\beta_{2,t} R + (1-\hat\beta_{2,t}) \operatorname{mean}_j G_{ij}^2,\quad
        C \leftarrow \hat\beta_{2,t} C + (1-\hat\beta_{2,t}) \operatorname{mean}_i G_{ij}^2,\quad
        \hat V = \frac{R C}{\max(\operatorname{mean}_i R_i, \epsilon_1)}

    the rank-one estimate of the elementwise second moment that keeps
    :math:`n + m` numbers per matrix instead of :math:`nm` (state ``row_var``, ``col_var``;
    a vector keeps its full ``variance``). Then :math:`u = G / \sqrt{\max(\hat V, \epsilon_1^2)}`.
    ``eps1=None`` is the machine epsilon of the compute dtype.
    """

    def init(p):
        if p.dim() > 1:
            return {"row_var": p.new_zeros(p.shape[:-1] + (1,)),
                    "col_var": p.new_zeros(p.shape[:-2] + (1, p.shape[-1]))}
        return {"variance": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def update(u, state, p):
        t = state["step"]
        lead = _lead(state)
        weight = _per(t ** beta2_decay, u)  # 1 - beta2_t
        e1 = eps1 if eps1 is not None else torch.finfo(u.dtype).eps
        if u.dim() - lead > 1:
            w = weight.to(u.dtype) if isinstance(weight, Tensor) else weight
            row_mean = torch.norm(u, dim=-1, keepdim=True).square() / u.size(-1)
            row = torch.lerp(state["row_var"], row_mean, w)
            # a sum down the columns of a row-major matrix is one contiguous sweep; torch's
            # norm over dim=-2 walks it with a stride (measured ~15x slower on a CPU)
            col_mean = (u * u).sum(dim=-2, keepdim=True) / u.size(-2)
            col = torch.lerp(state["col_var"], col_mean, w)
            var = row @ col
            denominator = row.mean(dim=-2, keepdim=True).clamp(min=e1)
            changed: State = {"row_var": row, "col_var": col}
            if not torch.is_grad_enabled():
                # ``var`` is this step's own temporary: finish in place, the same operations
                # without a fresh tensor (fresh pages) for each (autograd needs them apart)
                return var.div_(denominator).clamp_(min=e1 * e1).rsqrt_().mul_(u), changed
            var = var / denominator
        else:
            w = weight.to(u.dtype) if isinstance(weight, Tensor) else weight
            var = torch.lerp(state["variance"], u * u, w)
            changed = {"variance": var}
        return var.clamp(min=e1 * e1).rsqrt() * u, changed

    return Transform(init, update, _looped(update))


def clip_by_block_rms(d) -> Transform:
    r"""``u <- u / max(1, RMS(u) / d)``: Adafactor's update clipping (per tensor)."""

    def update(u, state, p):
        return u / torch.clamp(rms(u, _lead(state)) / d, min=1.0), {}

    return Transform(_no_state, update, _looped(update))


def scale_by_relative_step(eps2, lr, flip_sign: bool = True) -> Transform:
    r"""``u <- -max(eps2, RMS(p)) min(lr, 1/sqrt(t)) u``: Adafactor's step, relative to the
    parameter's own scale, of size :math:`\rho_t = \min(\eta, 1/\sqrt t)`, for descent
    (``flip_sign``). The two per-tensor factors are multiplied first, so the update is
    scaled in one pass, as torch's ``param.add_(update, alpha=-alpha)`` does."""
    sign = -1.0 if flip_sign else 1.0

    def update(u, state, p):
        lead = _lead(state)
        rho = _per(torch.clamp(1 / state["step"].sqrt(), max=lr).to(u.dtype), u)
        return u * (torch.clamp(rms(p, lead), min=eps2) * rho * sign), {}

    return Transform(_no_state, update, _looped(update))


def adafactor(lr, beta2_decay, eps1, eps2, d, weight_decay) -> Transform:
    r"""Adafactor as ``torch.optim.Adafactor`` defines it: the factored second moment, the
    update clipped to RMS ``d``, the step relative to the parameter's RMS, then decoupled
    weight decay :math:`-\eta\lambda p` (after the sign flip: :math:`-(a u + \eta\lambda p)
    = -a u + (-\eta\lambda) p` exactly), batched by shape (:func:`stacked`).

    Tagged ``kernel=("adafactor", numbers)``: on the CPU the whole chain also runs as one
    compiled sweep per tensor (:mod:`inertia.backends.factored_cpu`), tested equal to it.
    """
    # a float 0 adds no pass (this chain runs on torch ops, never traced into kernels)
    no_decay = isinstance(weight_decay, (int, float)) and weight_decay == 0
    rule = stacked(chain(
        scale_by_factored_rms(beta2_decay, eps1),
        clip_by_block_rms(d),
        scale_by_relative_step(eps2, lr),
        *(() if no_decay else (add_decayed_weights(-lr * weight_decay),)),
    ))
    numbers = dict(lr=lr, beta2_decay=beta2_decay, eps1=eps1, eps2=eps2, d=d,
                   weight_decay=weight_decay)
    return rule._replace(kernel=("adafactor", numbers))


#: the most elements :func:`stacked` puts in one stack
STACK_ELEMENTS = 1 << 16


def stacked(inner: Transform) -> Transform:
    """``inner``, whose ``update`` also takes a stack of tensors of one shape (a leading
    dimension, one step count per tensor: every per-tensor reduction of Adafactor's
    transformations is written for it), with a batched form that stacks the tensors of a
    group by shape and dtype: one call of each torch op per shape instead of one per
    tensor, which is what a step of many small tensors spends its time on. Sharded
    tensors (``DTensor``) and tensors alone of their shape go one by one."""

    def many(us, states, ps):
        out_u: list = [None] * len(us)
        out_c: list = [None] * len(us)
        shapes: dict[tuple, list[int]] = {}
        for i, (u, p, state) in enumerate(zip(us, ps, states)):
            if _dtensor(u) or _dtensor(p):
                key: tuple = ("alone", i)
            else:
                key = (tuple(u.shape), u.dtype, p.dtype, u.device,
                       tuple((k, state[k].dtype, tuple(state[k].shape)) for k in sorted(state)))
            shapes.setdefault(key, []).append(i)
        # stacks of at most STACK_ELEMENTS elements: a large stack's temporaries would be
        # fresh pages each op (the allocator returns big blocks to the system), and a large
        # tensor's per-op cost is its data, not the call
        groups = [members[k:k + max(1, STACK_ELEMENTS // max(1, us[members[0]].numel()))]
                  for members in shapes.values()
                  for k in range(0, len(members), max(1, STACK_ELEMENTS
                                                      // max(1, us[members[0]].numel())))]
        for members in groups:
            if len(members) == 1:
                i = members[0]
                out_u[i], out_c[i] = inner.update(us[i], states[i], ps[i])
                continue
            first = states[members[0]]
            u, changed = inner.update(torch.stack([us[i] for i in members]),
                                      {k: torch.stack([states[i][k] for i in members])
                                       for k in first},
                                      torch.stack([ps[i] for i in members]))
            for k, i in enumerate(members):
                out_u[i], out_c[i] = u[k], {key: v[k] for key, v in changed.items()}
        return out_u, out_c

    return Transform(inner.init, inner.update, many)


def _looped(update: Callable) -> Callable:
    """The batched form of a per-tensor ``update``: one call per tensor (the transform
    needs whole tensors, so it keeps its group off the elementwise kernels)."""

    def many(us, states, ps):
        out = [update(u, s, p) for u, s, p in zip(us, states, ps)]
        return [u for u, _ in out], [c for _, c in out]

    return many

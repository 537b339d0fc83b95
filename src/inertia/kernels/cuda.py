"""Triton kernels for CUDA parameters: the CPU design (:mod:`.cpu`) on a GPU.

UNVERIFIED ON HARDWARE: written without a GPU; ``tests/test_kernels.py`` has CUDA tests
(skipped without one) that compare every optimizer with the reference.

One launch sweeps every tensor of a bucket: the grid is a table of chunks ``(tensor,
start)``, each program streams ``CHUNK`` elements of one tensor in ``BLOCK``-wide vectors,
loading the tensor's addresses from a ``(T, 5)`` int64 table (param, grad, three state
slots) and casting them to typed pointers. The algorithm and the storage dtypes are
``constexpr``, so each gets its own specialised binary; variants (amsgrad, nesterov,
centered, ...) are runtime flags. Math is in float32 (float64 for float64 tensors); bf16
state is loaded, widened, and stored with round-to-nearest-even like ``tensor.to``.

The rules mirror :mod:`inertia.kernels.rules` line for line (same ``h``/``c`` layouts from
:mod:`inertia.kernels.algos`). torch's fused CUDA Adam/SGD/Adagrad are not used: they want
the step counters on the GPU, while inertia keeps them as CPU float32 scalars (checkpoints
stay device-independent); here the counters are advanced on the host and only the bias
corrections travel, as a small ``(T, 3)`` tensor.

LAMB/LARS: a norms launch writes per-chunk partial sums, ``index_add_`` reduces them per
tensor, the trust ratio is computed on the device (no host sync) and the apply launch reads
it from ``c``.
"""
from __future__ import annotations

import torch

from .algos import ADAGRAD, ADAM, LAMB_APPLY, LAMB_NORMS, LARS_APPLY, LARS_NORMS, LION, MOMENTUM
from .algos import RMSPROP, SGD, chunks

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: without it CUDA groups use the reference
    triton = None

CHUNK = 1 << 14
BLOCK = 1024


def available() -> bool:
    return triton is not None and torch.cuda.is_available()


if triton is not None:

    @triton.jit
    def _sweep(ptrs, sizes, chunk_t, chunk_start, h, c, out,
               KIND: tl.constexpr, PT: tl.constexpr, ST: tl.constexpr, CT: tl.constexpr,
               CHUNK: tl.constexpr, BLOCK: tl.constexpr):
        k = tl.program_id(0)
        t = tl.load(chunk_t + k)
        start = tl.load(chunk_start + k)
        n = tl.load(sizes + t)
        p_ptr = tl.load(ptrs + t * 5 + 0).to(tl.pointer_type(PT))
        g_ptr = tl.load(ptrs + t * 5 + 1).to(tl.pointer_type(PT))
        s0 = tl.load(ptrs + t * 5 + 2).to(tl.pointer_type(ST))
        s1 = tl.load(ptrs + t * 5 + 3).to(tl.pointer_type(ST))
        s2 = tl.load(ptrs + t * 5 + 4).to(tl.pointer_type(ST))
        c0 = tl.load(c + t * 3 + 0).to(CT)
        c1 = tl.load(c + t * 3 + 1).to(CT)
        c2 = tl.load(c + t * 3 + 2).to(CT)
        h0 = tl.load(h + 0).to(CT)
        h1 = tl.load(h + 1).to(CT)
        h2 = tl.load(h + 2).to(CT)
        h3 = tl.load(h + 3).to(CT)
        h4 = tl.load(h + 4).to(CT)
        h5 = tl.load(h + 5).to(CT)
        h6 = tl.load(h + 6).to(CT)
        h7 = tl.load(h + 7).to(CT)
        h8 = tl.load(h + 8).to(CT)
        h9 = tl.load(h + 9).to(CT)
        h10 = tl.load(h + 10).to(CT)
        acc_a = tl.zeros([BLOCK], dtype=CT)
        acc_b = tl.zeros([BLOCK], dtype=CT)
        for off in range(0, CHUNK, BLOCK):
            i = start + off + tl.arange(0, BLOCK)
            m = i < n
            g = tl.load(g_ptr + i, mask=m, other=0).to(CT) * h0
            w = tl.load(p_ptr + i, mask=m, other=0).to(CT)
            if KIND == 0:  # SGD: h = (sign, -lr, wd, mu, 1-damp, nesterov, has_momentum)
                if h2 != 0:
                    g = g + h2 * w
                u = g
                if h6 != 0:
                    if c0 != 0:
                        b = g
                    else:
                        b = h3 * tl.load(s0 + i, mask=m, other=0).to(CT) + h4 * g
                    tl.store(s0 + i, b.to(ST), mask=m)
                    if h5 != 0:
                        u = g + h3 * b
                    else:
                        u = b
                tl.store(p_ptr + i, (w + u * h1).to(PT), mask=m)
            elif KIND == 1:  # Momentum: h = (sign, -lr, wd, beta, 1-beta, nesterov)
                if h2 != 0:
                    g = g + h2 * w
                v = h3 * tl.load(s0 + i, mask=m, other=0).to(CT) + h4 * g
                tl.store(s0 + i, v.to(ST), mask=m)
                u = v
                if h5 != 0:
                    u = h3 * v + h4 * g
                tl.store(p_ptr + i, (w + u * h1).to(PT), mask=m)
            elif KIND == 2:  # RMSprop: h = (sign, -lr, wd, alpha, 1-alpha, eps, centered, mu)
                if h2 != 0:
                    g = g + h2 * w
                sq = h3 * tl.load(s0 + i, mask=m, other=0).to(CT) + h4 * g * g
                tl.store(s0 + i, sq.to(ST), mask=m)
                if h6 != 0:
                    a = h3 * tl.load(s1 + i, mask=m, other=0).to(CT) + h4 * g
                    tl.store(s1 + i, a.to(ST), mask=m)
                    u = g / (tl.sqrt(sq - a * a) + h5)
                else:
                    u = g / (tl.sqrt(sq) + h5)
                if h7 > 0:
                    u = h7 * tl.load(s2 + i, mask=m, other=0).to(CT) + u
                    tl.store(s2 + i, u.to(ST), mask=m)
                tl.store(p_ptr + i, (w + u * h1).to(PT), mask=m)
            elif KIND == 4:  # Adagrad: h = (sign, -lr, wd, eps); c0 = 1 + (t-1) lr_decay
                if h2 != 0:
                    g = g + h2 * w
                s = tl.load(s0 + i, mask=m, other=0).to(CT) + g * g
                tl.store(s0 + i, s.to(ST), mask=m)
                tl.store(p_ptr + i, (w + (g / (tl.sqrt(s) + h3)) / c0 * h1).to(PT), mask=m)
            elif KIND == 5:  # Lion: h = (sign, -lr, wd, b1, 1-b1, b2, 1-b2)
                mo = tl.load(s0 + i, mask=m, other=0).to(CT)
                x = h3 * mo + h4 * g
                u = tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, 0.0)).to(CT)
                tl.store(s0 + i, (h5 * mo + h6 * g).to(ST), mask=m)
                if h2 != 0:
                    u = u + h2 * w
                tl.store(p_ptr + i, (w + u * h1).to(PT), mask=m)
            elif KIND == 3 or KIND == 6 or KIND == 7:
                # Adam / LAMB: h = (sign, -lr, b1, 1-b1, b2, 1-b2, eps, wd, amsgrad, decoupled,
                # narrow state); c = (1/(1-b1^t), 1/sqrt(1-b2^t), trust ratio). LAMB with
                # full-precision state writes the moments in the norms pass (6) and re-reads
                # them in the apply pass (7); with narrow state, 6 only reads and 7
                # recomputes and writes.
                if h9 == 0:
                    if h7 != 0:
                        g = g + h7 * w
                m_ld = tl.load(s0 + i, mask=m, other=0).to(CT)
                v_ld = tl.load(s1 + i, mask=m, other=0).to(CT)
                mm = h2 * m_ld + h3 * g
                vv = h4 * v_ld + h5 * g * g
                if KIND == 3:
                    tl.store(s0 + i, mm.to(ST), mask=m)
                    tl.store(s1 + i, vv.to(ST), mask=m)
                    if h8 != 0:
                        vv = tl.maximum(tl.load(s2 + i, mask=m, other=0).to(CT), vv)
                        tl.store(s2 + i, vv.to(ST), mask=m)
                elif KIND == 6:
                    if h10 == 0:
                        tl.store(s0 + i, mm.to(ST), mask=m)
                        tl.store(s1 + i, vv.to(ST), mask=m)
                else:
                    if h10 != 0:
                        tl.store(s0 + i, mm.to(ST), mask=m)
                        tl.store(s1 + i, vv.to(ST), mask=m)
                    else:
                        mm = m_ld
                        vv = v_ld
                u = (mm * c0) / (tl.sqrt(vv) * c1 + h6)
                if h9 != 0:
                    if h7 != 0:
                        u = u + h7 * w
                if KIND == 6:
                    acc_a += tl.where(m, w * w, 0).to(CT)
                    acc_b += tl.where(m, u * u, 0).to(CT)
                elif KIND == 7:
                    tl.store(p_ptr + i, (w + (u * c2) * h1).to(PT), mask=m)
                else:
                    tl.store(p_ptr + i, (w + u * h1).to(PT), mask=m)
            elif KIND == 8 or KIND == 9:  # LARS: h = (sign, lr, wd, mu, nesterov); c0 = ratio
                if h2 != 0:
                    g = g + h2 * w
                if KIND == 8:
                    acc_a += tl.where(m, w * w, 0).to(CT)
                    acc_b += tl.where(m, g * g, 0).to(CT)
                else:
                    u = g * c0 * h1
                    b = h3 * tl.load(s0 + i, mask=m, other=0).to(CT) + u
                    tl.store(s0 + i, b.to(ST), mask=m)
                    if h4 != 0:
                        u = u + h3 * b
                    else:
                        u = b
                    tl.store(p_ptr + i, (w + u * -1.0).to(PT), mask=m)
        if KIND == 6 or KIND == 8:
            tl.store(out + k * 2 + 0, tl.sum(acc_a, axis=0))
            tl.store(out + k * 2 + 1, tl.sum(acc_b, axis=0))

    _TL = {torch.float32: tl.float32, torch.float64: tl.float64, torch.bfloat16: tl.bfloat16}

_tables: dict = {}


def _chunk_table(sizes: tuple[int, ...], device):
    key = (sizes, device)
    hit = _tables.get(key)
    if hit is None:
        n, t, start, _ = chunks(sizes, CHUNK)
        hit = tuple(torch.as_tensor(a, dtype=torch.int64, device=device) for a in (n, t, start))
        if len(_tables) > 256:
            _tables.clear()
        _tables[key] = hit
    return hit


def _launch(kind, ptrs, sizes, ct, cs, h, c, out, pdtype, sdtype, cdtype):
    _sweep[(ct.numel(),)](ptrs, sizes, ct, cs, h, c, out, KIND=kind, PT=_TL[pdtype],
                          ST=_TL[sdtype], CT=_TL[cdtype], CHUNK=CHUNK, BLOCK=BLOCK)


def dense_step(algo, group, params, grads, states, sdtype) -> None:
    """One step of ``algo`` for same-dtype contiguous CUDA tensors with existing state."""
    device = params[0].device
    pdtype = params[0].dtype
    cdtype = torch.float64 if torch.float64 in (pdtype, sdtype) else torch.float32
    slots = (tuple(algo.slots(group)) + (None, None, None))[:3]
    ptrs = torch.tensor([[p.data_ptr(), g.data_ptr(),
                          *(s[k].data_ptr() if k else p.data_ptr() for k in slots)]
                         for p, g, s in zip(params, grads, states)], dtype=torch.int64)
    ptrs = ptrs.to(device, non_blocking=True)
    sizes, ct, cs = _chunk_table(tuple(p.numel() for p in params), device)
    steps = [s["step"] for s in states]  # CPU float32 scalars, as the base class keeps them
    torch._foreach_add_(steps, 1.0)
    consts = algo.consts(torch.stack(steps).double().numpy(), group)
    hyper = tuple(algo.hyper(group)) + (float(sdtype == torch.bfloat16),)
    h = torch.tensor(hyper + (0.0,) * (11 - len(hyper)), dtype=torch.float64).to(device)
    c = torch.as_tensor(consts, dtype=torch.float64).to(device)
    if algo.norms_kind is not None:
        part = torch.empty((ct.numel(), 2), dtype=torch.float64, device=device)
        _launch(algo.norms_kind, ptrs, sizes, ct, cs, h, c, part, pdtype, sdtype, cdtype)
        sums = torch.zeros((len(params), 2), dtype=torch.float64, device=device)
        sums.index_add_(0, ct, part)
        pn, un = sums[:, 0].sqrt(), sums[:, 1].sqrt()
        coef, eps = algo.trust(group)
        ratio = torch.where((pn > 0) & (un > 0), coef * pn / (un + eps), torch.ones_like(pn))
        c[:, algo.ratio_slot] = ratio
    _launch(algo.kind, ptrs, sizes, ct, cs, h, c, h, pdtype, sdtype, cdtype)


assert (SGD, MOMENTUM, RMSPROP, ADAM, ADAGRAD, LION, LAMB_NORMS, LAMB_APPLY, LARS_NORMS,
        LARS_APPLY) == tuple(range(10)), "the KIND numbers in _sweep follow algos.py"

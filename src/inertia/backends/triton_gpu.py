"""GPU kernels written from a traced rule (:mod:`.graph`) in Triton.

The same design as the CPU kernels (:mod:`.numba_cpu`), from the same graph: one launch
sweeps every tensor of a bucket. The grid is a table of chunks ``(tensor, start)``; each
program streams ``CHUNK`` elements of one tensor in ``BLOCK``-wide vectors, reading the
tensor's addresses from an int64 table (parameter, gradient, step, state slots), computing
the rule's per-tensor scalars once in float64 (step, bias corrections, reduced norms) and
its elementwise expressions in the compute dtype.

Storage: bfloat16 is loaded and stored as its 16-bit pattern and converted by integer
arithmetic (round to nearest even, NaN kept quiet), exactly like ``tensor.to`` and the
CPU kernels, so a bf16 state is bit-identical across backends (and the Triton interpreter,
whose own bf16 casts truncate, gives the GPU's results).

The non-finite guard checks each ``BLOCK`` of the gradient before writing it, skips a
block holding NaN/inf and counts it for its tensor (an atomic add); two-pass rules skip
whole tensors flagged by their reduce pass. Nothing here synchronises with the host: the
step counts, hyperparameters, gradient multiplier and ``found_inf`` are device tensors,
and address tables are cached on the device by the addresses they hold.

Without a GPU, ``TRITON_INTERPRET=1`` runs these kernels on CPU tensors (slowly, exactly),
which is how the tests check them against the reference.
"""
from __future__ import annotations

import os

import torch

from . import cache
from . import quantize as Q
from .graph import RuleGraph, scalar_program, topological

try:
    import triton  # noqa: F401
    _TRITON = True
except ImportError:  # triton is optional: without it CUDA groups use the reference path
    _TRITON = False

CHUNK = 1 << 14
BLOCK = 1024

_TL = {torch.float32: "tl.float32", torch.float64: "tl.float64", torch.bfloat16: "tl.uint16"}
_OPS = {"add": "({} + {})", "sub": "({} - {})", "mul": "({} * {})", "div": "({} / {})",
        "neg": "(-{})", "lt": "({} < {})", "le": "({} <= {})", "gt": "({} > {})",
        "ge": "({} >= {})", "eq": "({} == {})", "ne": "({} != {})", "and": "({} & {})",
        "or": "({} | {})", "sqrt": "tl.sqrt({})", "abs": "tl.abs({})", "exp": "tl.exp({})",
        "log": "tl.log({})", "where": "tl.where({}, {}, {})",
        "round_f32": "({}).to(tl.float32).to(tl.float64)",
        # a ** b as exp(b log a) (bases >= 0, as the rules' beta ** t): libdevice.pow has no
        # interpreter implementation, and GPU and interpreter must run the same code
        "pow": "tl.exp({1} * tl.log({0}))",
        "sign": "tl.where({0} > 0, 1.0, tl.where({0} < 0, -1.0, {0} * 0.0))",
        "max": "tl.where(({0} >= {1}) | ({0} != {0}), {0}, {1})",
        "min": "tl.where(({0} <= {1}) | ({0} != {0}), {0}, {1})"}


_COMPARE = {"lt", "le", "gt", "ge", "eq", "ne", "and", "or"}
# float32 division and square root as IEEE rounds them (the CPU kernels and torch do):
# Triton's ``/`` and ``tl.sqrt`` are approximate on a GPU (2 ulp), which cancellations such
# as centered RMSprop's sqrt(s - a^2) amplify. float64 ``/`` and sqrt are IEEE already.
_IEEE_F32 = {"div": "tl.math.div_rn({}, {})", "sqrt": "tl.math.sqrt_rn({})"}


def available() -> bool:
    return _TRITON and (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1")


def _literal(x: float) -> str:
    if x != x:
        return 'float("nan")'
    if x in (float("inf"), float("-inf")):
        return 'float("inf")' if x > 0 else '(-float("inf"))'
    return repr(float(x))


def _inline(algorithm, *names: str) -> str:
    """The text of one of :mod:`.quantize`'s algorithms applied to the variables ``names``
    (written by :class:`.quantize.TextOps`; inlined: the interpreter pays for every call of
    a jit function)."""
    o = Q.TextOps
    return algorithm(o, *(o.var(n) for n in names)).s


def source(graph: RuleGraph, phase: str, pdtype: torch.dtype, sdtype, guard: bool,
           stochastic: bool = False) -> str:
    """The Python source of one Triton kernel module (``"apply"`` or ``"reduce"``).

    ``sdtype``: the state's dtype, or :class:`.quantize.Blockwise` (8-bit blocks: one
    program's loop visits the blocks that start in its chunk, a block of ``block`` elements
    being one vector: decoded, updated, its absmax a vector maximum, encoded).
    ``stochastic``: bfloat16 parameters are stored with stochastic rounding."""
    from .numba_cpu import compute_dtype

    blockwise = isinstance(sdtype, Q.Blockwise)
    cd = "tl.float64" if compute_dtype(
        pdtype, torch.float32 if blockwise else sdtype) == torch.float64 else "tl.float32"
    reduce = phase == "reduce"
    stochastic = stochastic and pdtype == torch.bfloat16 and not reduce
    roots = [r.args[0] for r in graph.reductions] if reduce else [
        v for k, v in graph.outputs.items() if k not in graph.scalars]
    order = topological(graph, roots)
    names: dict[int, str] = {}
    scalar_lines: list[str] = []
    elem_lines: list[str] = []
    casts: dict[int, str] = {}
    slot = {k: i for i, k in enumerate(graph.slots)}
    reductions = {id(r): j for j, r in enumerate(graph.reductions)}
    R = len(graph.reductions)

    def elem_ref(node) -> str:
        if node.kind == "elem":
            return names[id(node)]
        if node.kind == "const":
            return names[id(node)]  # a Python number: Triton keeps the tensor's dtype
        if node.op in _COMPARE:
            return names[id(node)]  # a truth value: used as a condition, never converted
        if id(node) not in casts:
            casts[id(node)] = f"c{len(casts)}"
            scalar_lines.append(f"{casts[id(node)]} = ({names[id(node)]}).to({cd})")
        return casts[id(node)]

    def load(ptr: str, dtype: torch.dtype, index: str = "i") -> str:
        if dtype == torch.bfloat16:
            return f"bf16_load({ptr} + {index}, m)"
        return f"tl.load({ptr} + {index}, mask=m, other=0).to({cd})"

    def store(ptr: str, dtype: torch.dtype, value: str) -> str:
        if dtype == torch.bfloat16:
            return f"bf16_store({ptr} + i, {value}, w)"
        return f"tl.store({ptr} + i, ({value}).to({_TL[dtype]}), mask=w)"

    for n in order:
        var = f"v{len(names)}"
        names[id(n)] = var
        if n.op == "const":
            names[id(n)] = _literal(n.name)
        elif n.op == "hyper":
            names[id(n)] = f"h{graph.hypers.index(n.name)}"
        elif n.op == "step":
            names[id(n)] = "stp"
        elif n.op == "sload":
            names[id(n)] = f"ss{graph.scalars.index(n.name)}"
        elif n.op == "norm":
            scalar_lines.append(f"{var} = tl.sqrt(tl.load(inputs + t * {max(R, 1)} + "
                                f"{reductions[id(n)]}))")
        elif n.op == "load":
            if n.name == "grad":
                elem_lines.append(f"{var} = {load('g_ptr', pdtype)} * gm")
            elif n.name == "param":
                elem_lines.append(f"{var} = {load('p_ptr', pdtype)}")
            elif blockwise:  # decoded as read: the byte times the block's factor
                j, code = slot[n.name], Q.code_for(n.name)
                elem_lines.append(f"c{var} = tl.load(s{2 * j} + i, mask=m, other=0).to(tl.uint32)")
                elem_lines.append(f"{var} = ({_inline(lambda o, c: Q.decode(o, code, c), 'c' + var)}"
                                  f" * f{j}).to({cd})")
            else:
                elem_lines.append(f"{var} = {load(f's{slot[n.name]}', sdtype)}")
        elif n.kind == "elem":
            template = (_IEEE_F32.get(n.op) if cd == "tl.float32" else None) or _OPS[n.op]
            elem_lines.append(f"{var} = {template.format(*[elem_ref(a) for a in n.args])}")
        else:
            scalar_lines.append(f"{var} = {_OPS[n.op].format(*[names[id(a)] for a in n.args])}")
    if reduce:
        body = [f"acc{j} += tl.where(m, {elem_ref(r.args[0])}.to(tl.float64) * "
                f"{elem_ref(r.args[0])}.to(tl.float64), 0.0)" for j, r in enumerate(graph.reductions)]
    else:
        new_p = elem_ref(graph.outputs["param"])
        if stochastic:  # the element's random bits: its index in the whole tensor, this key
            body = [f"xs = ({new_p}).to(tl.float32)", "ix = moff + i",
                    "lo = (ix & 0xFFFFFFFF).to(tl.uint32)", "hi = (ix >> 32).to(tl.uint32)",
                    "rb = " + _inline(Q.random_bits, "skey", "lo", "hi"),
                    f"tl.store(p_ptr + i, ({_inline(Q.round_bf16_stochastic, 'xs', 'rb')})"
                    ".to(tl.uint16), mask=w)"]
        else:
            body = [store("p_ptr", pdtype, new_p)]
        for k in graph.written:
            if blockwise:  # the block's new values: absmax, then encoded with it
                j, code = slot[k], Q.code_for(k)
                body += [f"n{j} = ({elem_ref(graph.outputs[k])}).to(tl.float32)",
                         f"A{j} = tl.max(tl.where(m, {_inline(Q.magnitude_bits, f'n{j}')}, 0), "
                         "axis=0).to(tl.float32, bitcast=True)",
                         f"I{j} = tl.where(A{j} > 0, tl.math.div_rn(tl.full([], {code.fmax!r}, "
                         f"tl.float32), A{j}), 0.0)",
                         f"e{j} = n{j} * I{j}",
                         f"tl.store(s{2 * j} + i, ({_inline(lambda o, y: Q.encode(o, code, y), f'e{j}')})"
                         ".to(tl.uint8), mask=w)",
                         f"tl.store(s{2 * j + 1} + jb, A{j}, mask=keep)"]
            else:
                body.append(store(f"s{slot[k]}", sdtype, elem_ref(graph.outputs[k])))
    K = 2 * len(graph.slots) if blockwise else len(graph.slots)
    ncol = 3 + K + len(graph.scalars)
    ptype = "tl.uint16" if pdtype == torch.bfloat16 else _TL[pdtype]
    if blockwise:
        slot_lines = "\n".join(
            f"    s{2 * j} = tl.load(table + t * {ncol} + {3 + 2 * j}).to(tl.pointer_type(tl.uint8))"
            f"\n    s{2 * j + 1} = tl.load(table + t * {ncol} + {4 + 2 * j})"
            f".to(tl.pointer_type(tl.float32))" for j in range(len(graph.slots)))
    else:
        stype = "tl.uint16" if sdtype == torch.bfloat16 else _TL[sdtype]
        slot_lines = "\n".join(
            f"    s{j} = tl.load(table + t * {ncol} + {3 + j}).to(tl.pointer_type({stype}))"
            for j in range(len(graph.slots)))
    hyper_lines = "\n".join(f"    h{j} = tl.load(hyper + {j})" for j in range(len(graph.hypers)))
    hyper_lines += "".join(
        f"\n    ss{j} = tl.load(tl.load(table + t * {ncol} + {3 + K + j})"
        f".to(tl.pointer_type(tl.float32))).to(tl.float64)" for j in range(len(graph.scalars)))
    if stochastic:
        hyper_lines += ("\n    moff = tl.load(meta + t * 3 + 1)"
                        "\n    tkey = tl.load(meta + t * 3 + 2).to(tl.uint32)"
                        "\n    tstep = stp.to(tl.uint32)"
                        f"\n    skey = {_inline(Q.step_key, 'tkey', 'tstep')}")
    ind = "        "
    loop = "\n".join(ind + line for line in elem_lines + body)
    scalars = "\n".join("    " + line for line in scalar_lines)
    raw_g = ("bf16_load(g_ptr + i, m)" if pdtype == torch.bfloat16
             else "tl.load(g_ptr + i, mask=m, other=0)")
    if reduce:
        width = "QB" if blockwise else "BLOCK"
        head = "\n".join(f"    acc{j} = tl.zeros([{width}], dtype=tl.float64)" for j in range(R))
        head += "\n    nbad = tl.full([], 0, tl.int32)"
        check = f"""\
        graw = {raw_g}
        nbad += tl.sum(tl.where(m & ((graw != graw) | (tl.abs(graw) == float("inf"))), 1, 0), axis=0)
        w = m"""
        tail = "\n".join(f"    tl.store(out + k * {R + 1} + {j}, tl.sum(acc{j}, axis=0))"
                         for j in range(R))
        tail += f"\n    tl.store(out + k * {R + 1} + {R}, (nbad > 0).to(tl.float64))"
    elif guard:
        head = "    blocks = tl.full([], 0, tl.int64)"
        check = f"""\
        graw = {raw_g}
        bad = tl.sum(tl.where(m & ((graw != graw) | (tl.abs(graw) == float("inf"))), 1, 0), axis=0)
        w = m & ((i * 0 + bad) == 0)
        keep = bad == 0
        blocks += (bad > 0).to(tl.int64)"""
        tail = "    tl.atomic_add(out + t, blocks, mask=blocks > 0)"
    else:
        head, check, tail = "", "        w = m\n        keep = n >= 0", ""
    skip = "    if HAS_SKIP:\n        if tl.load(skip + t) != 0:\n            return\n" if (
        graph.reductions and not reduce) else ""
    if blockwise:
        factors = "".join(f"\n        f{slot[k]} = tl.math.div_rn(tl.load(s{2 * slot[k] + 1} + jb), "
                          f"tl.full([], {Q.code_for(k).fmax!r}, tl.float32))" for k in graph.slots)
        sweep = f"""\
    W = tl.load(meta + t * 3)
    nb = (W + QB - 1) // QB
    stop = tl.minimum(start + CHUNK, n)
    jlo = (start // W) * nb + (start % W + QB - 1) // QB
    jhi = (stop // W) * nb + (stop % W + QB - 1) // QB
{head}
    for jb in range(jlo, jhi):
        r = jb // nb
        bl = r * W + (jb - r * nb) * QB
        i = bl + tl.arange(0, QB)
        m = (i < tl.minimum(bl + QB, r * W + W)) & (i < n)
{check}{factors}
{loop}
{tail}"""
    else:
        sweep = f"""\
{head}
    for off in range(0, CHUNK, BLOCK):
        i = start + off + tl.arange(0, BLOCK)
        m = i < n
{check}
{loop}
{tail}"""
    consts = f"QB = tl.constexpr({sdtype.block})\n" if blockwise else ""
    return f'''\
# Generated by inertia.backends.triton_gpu from rule graph {graph.key} ({phase} pass).
# Do not edit: the cache key is this text's hash.
import triton
import triton.language as tl

{consts}

@triton.jit
def bf16_load(ptr, m):
    bits = tl.load(ptr, mask=m, other=0).to(tl.uint32)
    return (bits << 16).to(tl.float32, bitcast=True)


@triton.jit
def bf16_store(ptr, x, m):
    bits = x.to(tl.float32).to(tl.uint32, bitcast=True)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # to nearest, ties to even
    rounded = tl.where(x != x, 0x7FC0, rounded)  # NaN stays a quiet NaN
    tl.store(ptr, rounded.to(tl.uint16), mask=m)


@triton.jit
def kernel(table, sizes, chunk_t, chunk_start, hyper, inputs, out, gmul, skip, found_inf, meta,
           HAS_FOUND_INF: tl.constexpr, HAS_SKIP: tl.constexpr, CHUNK: tl.constexpr,
           BLOCK: tl.constexpr):
    k = tl.program_id(0)
    t = tl.load(chunk_t + k)
    if HAS_FOUND_INF:
        if tl.load(found_inf) != 0:
            return
{skip}    start = tl.load(chunk_start + k)
    n = tl.load(sizes + t)
    p_ptr = tl.load(table + t * {ncol} + 0).to(tl.pointer_type({ptype}))
    g_ptr = tl.load(table + t * {ncol} + 1).to(tl.pointer_type({ptype}))
    stp = tl.load(tl.load(table + t * {ncol} + 2).to(tl.pointer_type(tl.float32))).to(tl.float64) + 1.0
{slot_lines}
{hyper_lines}
    gm = tl.load(gmul).to({cd})
{scalars}
{sweep}
{_finish_source(graph, ncol) if not reduce else ""}'''


def _finish_source(graph: RuleGraph, ncol: int) -> str:
    """``finish``: one program per tensor writes its new per-tensor scalar state, after the
    sweep (during which every program reads the old values)."""
    if not graph.scalars_written:
        return ""
    names, lines = scalar_program(graph, [graph.outputs[k] for k in graph.scalars_written],
                                  _OPS, _literal, lambda i: f"tl.load(hyper + {i})")
    K = len(graph.slots)
    reads = [f"ss{j} = tl.load(tl.load(table + t * {ncol} + {3 + K + j})"
             f".to(tl.pointer_type(tl.float32))).to(tl.float64)" for j in range(len(graph.scalars))]
    writes = [f"tl.store(tl.load(table + t * {ncol} + {3 + K + graph.scalars.index(k)})"
              f".to(tl.pointer_type(tl.float32)), ({names[id(graph.outputs[k])]}).to(tl.float32))"
              for k in graph.scalars_written]
    body = "\n".join("    " + line for line in reads + lines + writes)
    return f'''

@triton.jit
def finish(table, hyper, found_inf, HAS_FOUND_INF: tl.constexpr):
    t = tl.program_id(0)
    if HAS_FOUND_INF:
        if tl.load(found_inf) != 0:
            return
    stp = tl.load(tl.load(table + t * {ncol} + 2).to(tl.pointer_type(tl.float32))).to(tl.float64) + 1.0
{body}
'''


class Kernel:
    """One Triton kernel and what it expects (named by the hash of its source)."""

    def __init__(self, module, graph: RuleGraph, phase: str, pdtype, sdtype, guard: bool,
                 stochastic: bool = False):
        self.name = "t" + module.__name__.rsplit(".", 1)[-1]
        self.fn = module.kernel
        self.finish = getattr(module, "finish", None)
        self.block = sdtype.block if isinstance(sdtype, Q.Blockwise) else 0
        #: the state tensors of each parameter, in table order (8-bit: codes, scales, ...)
        self.slots = (tuple(x for k in graph.slots for x in (k, Q.scale_key(k))) + graph.scalars
                      if self.block else graph.all_slots)
        self.scalar_slots = len(graph.scalars)
        self.reductions = len(graph.reductions)
        self.phase, self.pdtype, self.sdtype, self.guard = phase, pdtype, sdtype, guard
        self.stochastic = stochastic and pdtype == torch.bfloat16 and phase != "reduce"
        self.needs_meta = bool(self.block) or self.stochastic


def kernel(graph: RuleGraph, phase: str, pdtype: torch.dtype, sdtype, guard: bool,
           stochastic: bool = False) -> Kernel:
    """The kernel for these choices (written on first use; Triton compiles at first launch)."""
    text = source(graph, phase, pdtype, sdtype, guard, stochastic)
    return cache.compiled(text, lambda module: Kernel(module, graph, phase, pdtype, sdtype,
                                                      guard, stochastic))


# ----------------------------------------------------------------------------- launching

_tables: dict = {}
_chunks: dict = {}
_captured: list = []  # (device, pinned host) pairs a captured CUDA graph reads


def to_device(host: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``host`` copied to ``device`` without a host synchronisation, and the pinned source,
    which the caller keeps alive with the copy: a CUDA graph captured while copying replays
    that copy from the same host memory."""
    if device.type != "cuda":
        return host.to(device), host
    pinned = host.pin_memory()
    return pinned.to(device, non_blocking=True), pinned


def _chunk_table(sizes: tuple[int, ...], device):
    key = (sizes, device, CHUNK)
    hit = _chunks.get(key)
    if hit is None:
        import numpy as np

        n = np.asarray(sizes, dtype=np.int64)
        per = np.maximum(1, -(-n // CHUNK))
        t = np.repeat(np.arange(len(n)), per)
        first = np.cumsum(per) - per
        start = (np.arange(len(t)) - first[t]) * CHUNK
        hit = tuple(to_device(torch.as_tensor(a, dtype=torch.int64), device)
                    for a in (n, t, start))
        _chunks[key] = hit  # kept for the process: a captured graph may replay its copy
    return tuple(d for d, _ in hit)


def _address_table(params, grads, states, steps, K: int, device):
    """The (T, 3 + K) int64 table of addresses, on the device, cached by its contents: a
    step with the same tensors copies nothing (and a CUDA graph replays the same table)."""
    rows = []
    for t, (p, g, s) in enumerate(zip(params, grads, steps)):
        rows.append((p.data_ptr(), g.data_ptr(), s.data_ptr(),
                     *(states[t * K + j].data_ptr() for j in range(K))))
    key = (tuple(rows), device)
    hit = _tables.get(key)
    if hit is None:
        host = torch.tensor(rows, dtype=torch.int64).reshape(len(rows), 3 + K)
        capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
        if len(_tables) > 64 and not capturing and not _captured:
            _tables.clear()
        hit = _tables[key] = to_device(host, device)
        if capturing:  # a graph replays this copy: its pinned source must outlive it
            _captured.append(hit)
    return hit[0]


def check(k: Kernel, params, grads, states, steps, meta=None) -> None:
    """Refuse, before anything is written, a tensor the kernel would read out of bounds."""
    from .layout import flat

    T, K = len(params), len(k.slots)
    if len(grads) != T or len(steps) != T or len(states) != T * K:
        raise ValueError(f"inertia::fused_apply: {T} params, {len(grads)} grads, "
                         f"{len(steps)} steps and {len(states)} states for {K} slots")
    for t, (p, g, s) in enumerate(zip(params, grads, steps)):
        if g.numel() != p.numel():
            raise ValueError(f"Invalid gradient shape: {tuple(g.shape)} for a parameter of "
                             f"shape {tuple(p.shape)} (tensor {t})")
        for what, x in (("parameter", p), ("gradient", g)):
            if x.dtype != k.pdtype or x.device != p.device or not flat(x, p):
                raise TypeError(f"Invalid {what} {t}: {x.dtype} on {x.device}; the kernel "
                                f"takes {k.pdtype} tensors laid out like the parameter")
        if s.dtype != torch.float32 or s.numel() != 1 or s.device != p.device:
            raise TypeError(f"Invalid step {t}: a float32 scalar on {p.device} is needed")
        if k.block:  # (meta's widths are read on the CPU only: on a GPU that would sync)
            Q.check_blocks(k, t, p, states[t * K:(t + 1) * K - k.scalar_slots],
                           meta if meta is not None and meta.device.type == "cpu" else None)
        for j in range(K):
            x = states[t * K + j]
            if k.block and j < K - k.scalar_slots:
                continue  # checked above
            if j >= K - k.scalar_slots:  # per-tensor scalar state: one float32
                if x.numel() != 1 or x.dtype != torch.float32 or x.device != p.device:
                    raise ValueError(f"Invalid state {k.slots[j]!r} of tensor {t}: a float32 "
                                     f"scalar on {p.device} is needed")
                continue
            if x.numel() != p.numel() or x.dtype != k.sdtype or not flat(x, p) \
                    or x.device != p.device:
                raise ValueError(f"Invalid state {k.slots[j]!r} of tensor {t}: {x.dtype} "
                                 f"{tuple(x.shape)}; the kernel needs {k.sdtype} "
                                 f"{tuple(p.shape)} laid out like the parameter")


def _launch(k: Kernel, params, grads, states, steps, hyper, gmul, inputs, skip, found_inf, out,
            meta=None):
    device = params[0].device
    K = len(k.slots)
    # bf16 storage is addressed as 16-bit patterns (see the module docstring)
    view = (lambda x: x.view(torch.uint16)) if k.pdtype == torch.bfloat16 else (lambda x: x)
    sview = (lambda x: x.view(torch.uint16)) if k.sdtype == torch.bfloat16 else (lambda x: x)
    table = _address_table([view(p) for p in params], [view(g) for g in grads],
                           [sview(s) for s in states], steps, K, device)
    sizes, ct, cs = _chunk_table(tuple(p.numel() for p in params), device)
    dummy = hyper
    k.fn[(ct.numel(),)](table, sizes, ct, cs, hyper, dummy if inputs is None else inputs, out,
                        gmul, dummy if skip is None else skip,
                        dummy if found_inf is None else found_inf,
                        dummy if meta is None else meta,
                        HAS_FOUND_INF=found_inf is not None, HAS_SKIP=skip is not None,
                        CHUNK=CHUNK, BLOCK=min(BLOCK, CHUNK))
    if k.finish is not None and k.phase != "reduce":  # per-tensor scalar state, after
        k.finish[(len(params),)](table, hyper, dummy if found_inf is None else found_inf,
                                 HAS_FOUND_INF=found_inf is not None)


def _needs(k: Kernel, meta, T: int, op: str):
    if k.needs_meta and (meta is None or tuple(meta.shape) != (T, 3)):
        raise ValueError(f"inertia::{op}: kernel {k.name} needs meta, one row per tensor")
    return None if meta is None else meta.contiguous()


def fused_apply(kernel, params, grads, states, steps, hyper, inputs, skip, gmul, found_inf, bad,
                met, meta=None):
    from .ops import KERNELS

    k = KERNELS[kernel]
    check(k, params, grads, states, steps, meta)
    meta = _needs(k, meta, len(params), "fused_apply")
    if not params:
        return
    bad.zero_()
    inputs = None if inputs is None else inputs.to(torch.float64).contiguous()
    skip = None if skip is None else skip.to(torch.int64).contiguous()
    fi = None if found_inf is None else found_inf.reshape(1).to(torch.float32)
    _launch(k, params, grads, states, steps, hyper, gmul.reshape(1).to(torch.float64), inputs,
            skip, fi, bad, meta)
    if skip is not None:
        bad.add_(skip)  # tensors the reduce pass refused were skipped whole
    torch.maximum(met, (bad > 0).any().to(met.dtype), out=met)
    if fi is None:
        torch._foreach_add_(list(steps), 1.0)
    else:  # AMP: the steps advance unless found_inf (no host sync either way)
        torch._foreach_add_(list(steps), (1.0 - (fi != 0).to(torch.float32)).reshape(()))


def fused_reduce(kernel, params, grads, states, steps, hyper, gmul, meta=None):
    from .ops import KERNELS

    k = KERNELS[kernel]
    check(k, params, grads, states, steps, meta)
    meta = _needs(k, meta, len(params), "fused_reduce")
    R = k.reductions
    device = params[0].device if params else hyper.device
    if not params:
        return torch.zeros((0, R + 1), dtype=torch.float64, device=device)
    sizes, ct, cs = _chunk_table(tuple(p.numel() for p in params), device)
    out = torch.zeros((ct.numel(), R + 1), dtype=torch.float64, device=device)
    _launch(k, params, grads, states, steps, hyper, gmul.reshape(1).to(torch.float64), None,
            None, None, out, meta)
    sums = torch.zeros((len(params), R + 1), dtype=torch.float64, device=device)
    sums.index_add_(0, ct, out)
    return sums


def fused_check(kernel, params, grads, states, steps):
    from .ops import KERNELS

    check(KERNELS[kernel], params, grads, states, steps)

"""CPU kernels written from a traced rule (:mod:`.graph`) and compiled by numba.

For each (rule graph, pass, parameter storage, state storage, compute dtype, options)
this module writes the source of a small Python module to the kernel cache
(:mod:`.cache`), imports it, and hands out two entry points to the same compiled loop:

* ``run(args, lo, hi)``: a ``nogil`` numba function, called from Python threads
  (:mod:`.threads`) when the native runner is not available;
* ``address``: a C function ``void(int64* args, int64 lo, int64 hi)`` that the native
  runner (:mod:`.native`) calls from torch's own thread pool.

``args`` is an int64 array describing one call (see :data:`ARGS`). The loop visits chunks
``lo:hi`` of a chunk table; for each chunk it turns the table row of its tensor into array
views, computes the per-tensor scalars of the rule once (in float64: step, bias
corrections, reduced norms, hyperparameters), then streams the chunk's elements through
the rule's elementwise expressions in the compute dtype, which LLVM vectorises.

The non-finite guard. With ``guard=True`` the elements go in blocks of :data:`BLOCK`: the
block's gradient is first checked (an integer maximum of the exponent bits, which
vectorises without fast-math), and a block holding NaN or infinity is skipped, its
parameters and state untouched, and counted for its tensor. The update then re-reads the
gradient from L1, so the check costs almost nothing. Two-pass rules are guarded per tensor
(the reduce pass counts, the apply pass skips the whole tensor).

8-bit state (:mod:`.quantize`). The loop visits the state's blocks instead of elements (a
chunk takes the blocks that *start* in it, so every block is one thread's): per block it
decodes each state element as it reads it (one byte and the block's scale), updates,
writes the parameter, and keeps the new state values in a block-sized float32 buffer (in
L1) with their running absmax; then encodes the buffer with the new scale. Each state byte
is read once and written once per pass. The guard checks the block's gradient first. The
codes' arithmetic is :mod:`.quantize`'s, emitted as 32-bit LLVM instructions
(``numba_support.enc_signed`` ...), so it vectorises.

Stochastic rounding of bfloat16 parameters: the store of the new parameter adds the random
bits of the element's index in the whole tensor (the shard's offset, from ``meta``, plus
``i``) under the tensor's key for this step.
"""
from __future__ import annotations

import torch

from . import cache
from . import quantize as Q
from .graph import RuleGraph, scalar_program, topological

BLOCK = 1024          # elements checked together by the guard (4 KiB of float32 gradient)
CHUNK = 1 << 15       # elements per chunk: 128 KiB of float32, a few arrays' worth fits in L2
#: Layout of the int64 ``args`` array of a kernel call.
ARGS = ("tensors", "table", "sizes", "chunks", "n_chunks", "hyper", "inputs", "out", "gmul",
        "skip", "width", "meta")
A = {name: i for i, name in enumerate(ARGS)}

_STORAGE = {torch.float32: ("F32", "np.float32"), torch.float64: ("F64", "np.float64"),
            torch.bfloat16: ("U16", "np.float32")}
_BITS = {torch.float32: ("U32", "np.uint32(0x7F800000)"),
         torch.float64: ("U64", "np.uint64(0x7FF0000000000000)"),
         torch.bfloat16: ("U16", "np.uint16(0x7F80)")}
_OPS = {"add": "({} + {})", "sub": "({} - {})", "mul": "({} * {})", "div": "({} / {})",
        "pow": "({} ** {})", "neg": "(-{})", "lt": "({} < {})", "le": "({} <= {})",
        "gt": "({} > {})", "ge": "({} >= {})", "eq": "({} == {})", "ne": "({} != {})",
        "and": "({} & {})", "or": "({} | {})", "sqrt": "np.sqrt({})", "sign": "sign_({})",
        "abs": "abs({})", "exp": "np.exp({})", "log": "np.log({})", "max": "max_({}, {})",
        "min": "min_({}, {})", "where": "({1} if {0} else {2})",
        "round_f32": "np.float64(np.float32({}))"}
_COMPARE = {"lt", "le", "gt", "ge", "eq", "ne", "and", "or"}


def columns(graph: RuleGraph, sdtype=None) -> int:
    """Columns of the tensor table: parameter, gradient, step, then one per state slot
    (elementwise slots, two each in 8-bit blocks: codes and scales; then per-tensor scalar
    ones)."""
    return 3 + _elementwise_columns(graph, sdtype) + len(graph.scalars)


def _elementwise_columns(graph: RuleGraph, sdtype) -> int:
    return len(graph.slots) * (2 if isinstance(sdtype, Q.Blockwise) else 1)


def _code_name(key: str) -> str:
    """The name of the numba_support codec of state ``key`` (``signed``/``unsigned``)."""
    return "unsigned" if Q.code_for(key) is Q.UNSIGNED else "signed"


def _finish_source(graph: RuleGraph, sdtype=None) -> str:
    """``finish(args)``: the new per-tensor scalar state, once per tensor, after the sweep
    (during it every chunk reads the old values; one writer per tensor, no race)."""
    if not graph.scalars_written:
        return ""
    names, lines = scalar_program(graph, [graph.outputs[k] for k in graph.scalars_written],
                                  _OPS, _literal, lambda i: f"h[{i}]")
    K = _elementwise_columns(graph, sdtype)
    reads = [f"ss{j} = np.float64(carray(address(tab[t, {3 + K + j}], F32), 1)[0])"
             for j in range(len(graph.scalars))]
    writes = [f"carray(address(tab[t, {3 + K + graph.scalars.index(k)}], F32), 1)[0] = "
              f"np.float32({names[id(graph.outputs[k])]})" for k in graph.scalars_written]
    body = "\n".join("        " + line for line in reads + lines + writes)
    return f'''

@njit(nogil=True, cache=True, error_model="numpy")
def finish(a):
    T = a[0]
    tab = carray(address(a[1], I64), (T, {columns(graph, sdtype)}))
    h = carray(address(a[5], F64), {max(1, len(graph.hypers))})
    for t in range(T):
        stp = np.float64(carray(address(tab[t, 2], F32), 1)[0]) + 1.0
{body}


@cfunc(types.void(types.CPointer(types.int64)), nogil=True, cache=True)
def finish_entry(args):
    finish(carray(args, {len(ARGS)}))
'''


def compute_dtype(pdtype: torch.dtype, sdtype: torch.dtype) -> torch.dtype:
    """float64 if either storage is float64, else float32 (bfloat16 is widened)."""
    return torch.float64 if torch.float64 in (pdtype, sdtype) else torch.float32


def _literal(x: float) -> str:
    if x != x:
        return "np.nan"
    if x in (float("inf"), float("-inf")):
        return "np.inf" if x > 0 else "(-np.inf)"
    return repr(float(x))


def source(graph: RuleGraph, phase: str, pdtype: torch.dtype, sdtype, guard: bool,
           stochastic: bool = False) -> str:
    """The Python source of one kernel module.

    ``phase``: ``"reduce"`` (sums of squares of the norms' arguments, per chunk),
    ``"apply"`` (the update over chunks of whole tensors) or ``"rows"`` (the update of the
    rows a coalesced sparse gradient touches, in one tensor: ``sparse="lazy"``).
    ``sdtype``: the state's dtype, or :class:`.quantize.Blockwise` (8-bit blocks).
    ``stochastic``: bfloat16 parameters are stored with stochastic rounding.
    """
    blockwise = isinstance(sdtype, Q.Blockwise)
    cd = compute_dtype(pdtype, torch.float32 if blockwise else sdtype)
    cdt = "np.float64" if cd == torch.float64 else "np.float32"
    pm, sm = _STORAGE[pdtype][0], (None if blockwise else _STORAGE[sdtype][0])
    bits_marker, exponent = _BITS[pdtype]
    # the guard's running maximum, typed as the bits themselves: ``exponent * 0`` made numba
    # widen it to int64, which kept the reduction from vectorising (the guard then cost
    # 1.6-1.8x an unchecked step instead of about 1.0x)
    zero_bits = exponent.split("(")[0] + "(0)"
    reduce = phase == "reduce"
    rows = phase == "rows"
    if blockwise and rows:
        raise ValueError("8-bit state has no lazy sparse row kernel")
    stochastic = stochastic and pdtype == torch.bfloat16 and not reduce
    gi = "gi" if rows else "i"
    roots = [r.args[0] for r in graph.reductions] if reduce else [
        v for k, v in graph.outputs.items() if k not in graph.scalars]
    order = topological(graph, roots)
    names: dict[int, str] = {}
    scalar_lines: list[str] = []   # per tensor, float64
    hoisted: list[str] = []        # per call: constants in the compute dtype
    elem_lines: list[str] = []     # per element, compute dtype
    casts: dict[int, str] = {}     # scalar node -> its compute-dtype copy
    slot = {k: i for i, k in enumerate(graph.slots)}
    reductions = {id(r): j for j, r in enumerate(graph.reductions)}

    def elem_ref(node) -> str:
        # a value used by elementwise code: scalars and constants cast to the compute dtype
        if node.kind == "elem":
            return names[id(node)]
        if node.op in _COMPARE:
            return names[id(node)]  # a truth value: used as a condition, never converted
        if id(node) not in casts:
            casts[id(node)] = f"c{len(casts)}"
            line = f"{casts[id(node)]} = {cdt}({names[id(node)]})"
            # leaf constants once per call; anything computed, where it is computed
            (hoisted if node.op == "const" else scalar_lines).append(line)
        return casts[id(node)]

    for n in order:
        var = f"v{len(names)}"
        names[id(n)] = var
        if n.op == "const":
            names[id(n)] = _literal(n.name)
            continue
        if n.op == "hyper":
            names[id(n)] = f"h[{graph.hypers.index(n.name)}]"
            continue
        if n.op == "step":
            names[id(n)] = "stp"
            continue
        if n.op == "sload":
            names[id(n)] = f"ss{graph.scalars.index(n.name)}"
            continue
        if n.op == "norm":
            if reduce:
                raise AssertionError("the reduce pass stops at the norms' arguments")
            scalar_lines.append(f"{var} = np.sqrt(red[t, {reductions[id(n)]}])")
            continue
        if n.op == "load":
            if n.name == "grad":
                elem_lines.append(f"{var} = ld(g, {gi}) * gm")
            elif n.name == "param":
                elem_lines.append(f"{var} = ld(p, i)")
            elif blockwise:  # decoded as read: the byte times the block's factor
                j = slot[n.name]
                elem_lines.append(f"{var} = {cdt}(dec_{_code_name(n.name)}(q{j}[i]) * f{j})")
            else:
                elem_lines.append(f"{var} = ld(s{slot[n.name]}, i)")
            continue
        template = _OPS[n.op]
        if n.kind == "elem":
            args = [elem_ref(a) for a in n.args]
            elem_lines.append(f"{var} = {template.format(*args)}")
        else:
            args = [names[id(a)] for a in n.args]
            scalar_lines.append(f"{var} = {template.format(*args)}")
    if reduce:
        body = [f"acc{j} += np.float64({elem_ref(r.args[0])}) * np.float64({elem_ref(r.args[0])})"
                for j, r in enumerate(graph.reductions)]
    else:
        new_p = elem_ref(graph.outputs['param'])
        body = [f"st_sr(p, i, {new_p}, skey, moff + i)" if stochastic else f"st(p, i, {new_p})"]
        for k in graph.written:
            j = slot[k]
            if blockwise:  # kept for the block's encoding, with the running absmax
                body += [f"n{j}[i - bl] = np.float32({elem_ref(graph.outputs[k])})",
                         f"m{j} = max(m{j}, absbits(n{j}[i - bl]))"]
            else:
                body.append(f"st(s{j}, i, {elem_ref(graph.outputs[k])})")
    ncol = columns(graph, sdtype)
    K = _elementwise_columns(graph, sdtype)
    if blockwise:
        views = "\n".join(
            f"        q{i} = carray(address(tab[t, {3 + 2 * i}], U8), n)\n"
            f"        a{i} = carray(address(tab[t, {4 + 2 * i}], F32), (n // W) * nb)"
            for i in range(len(graph.slots)))
    else:
        views = "\n".join(f"        s{i} = carray(address(tab[t, {3 + i}], {sm}), n)"
                          for i in range(len(graph.slots)))
    views += "".join(f"\n        ss{j} = np.float64(carray(address(tab[t, {3 + K + j}], F32), 1)[0])"
                     for j in range(len(graph.scalars)))
    if stochastic:
        views += ("\n        moff = np.uint64(meta[t, 1])"
                  "\n        skey = step_key(np.uint32(meta[t, 2]), np.uint32(stp))")
    if blockwise:
        views = ("        W = np.uint64(meta[t, 0])\n"
                 f"        nb = (W + np.uint64({sdtype.block - 1})) // np.uint64({sdtype.block})\n"
                 + views)
    loop = "\n".join("                " + line for line in elem_lines + body)
    plain_loop = "\n".join("            " + line for line in elem_lines + body)
    scalars = "\n".join("        " + line for line in scalar_lines) or "        pass"
    consts = "\n".join("    " + line for line in hoisted)
    R = len(graph.reductions)
    if blockwise:
        sweep = _block_sweep(graph, sdtype.block, reduce, guard, loop, zero_bits, exponent, R)
        consts += "".join(f"\n    n{slot[k]} = np.empty({sdtype.block}, np.float32)"
                          for k in graph.written if not reduce)
    elif reduce:
        init = "\n".join(f"        acc{j} = 0.0" for j in range(R))
        finish = "\n".join(f"        out[k, {j}] = acc{j}" for j in range(R))
        sweep = f"""\
{init}
        worst = {zero_bits}
        for i in range(start, stop):
            worst = max(worst, gb[i] & {exponent})
{plain_loop}
{finish}
        out[k, {R}] = 1.0 if worst == {exponent} else 0.0"""
    elif rows:
        check = f"""\
            worst = {zero_bits}
            for gi in range(src, src + width):
                worst = max(worst, gb[gi] & {exponent})
            if worst == {exponent}:
                bad += 1
                continue
""" if guard else ""
        row_loop = loop  # the block loop's body is indented as the row loop's body
        sweep = f"""\
        bad = 0
        width = np.uint64(a[10])
        for r in range(np.uint64(lo), np.uint64(hi)):
            base = np.uint64(ch[r, 0]) * width
            src = r * width
{check}            for j in range(width):
                i = base + j
                gi = src + j
{row_loop}
        out[lo] = bad"""
    elif guard:
        sweep = f"""\
        bad = 0
        for b in range(start, stop, np.uint64({BLOCK})):
            e = min(b + np.uint64({BLOCK}), stop)
            worst = {zero_bits}
            for i in range(b, e):
                worst = max(worst, gb[i] & {exponent})
            if worst == {exponent}:
                bad += 1
                continue
            for i in range(b, e):
{loop}
        out[k] = bad"""
    else:
        sweep = f"""\
        for i in range(start, stop):
{plain_loop}"""
    skip = "        if a[9] != 0 and skipv[t] != 0:\n            continue\n" if (
        graph.reductions and not reduce) else ""
    out_view = (f"carray(address(a[7], F64), (a[4], {R + 1}))" if reduce
                else "carray(address(a[7], I64), a[4])")
    # rows: one tensor, whose chunk table is the list of touched rows, (row, 0, 0) each;
    # the caller splits the rows with lo:hi
    head_range = "range(0, 1)" if rows else "range(lo, hi)"
    gsize = "a[4] * np.int64(a[10])" if rows else "n"
    # reassoc lets LLVM keep partial sums per vector lane in the reduce pass (one running sum
    # is a dependency chain); nothing that pass computes is stored, and the apply pass keeps
    # strict IEEE arithmetic.
    flags = ', fastmath={"reassoc"}' if reduce else ""
    meta = ("\n    meta = carray(address(a[11], I64), (T, 3))" if blockwise or stochastic
            else "")
    imports = ("from inertia.backends.numba_support import (F32, F64, I64, U8, U16, U32, U64, "
               "FMAX_signed,\n    FMAX_unsigned, absbits, address, dec_signed, dec_unsigned, "
               "enc_signed, enc_unsigned, from_bits,\n    ld, max_, min_, sign_, st, st_sr, "
               "step_key)"
               if blockwise or stochastic else
               "from inertia.backends.numba_support import (F32, F64, I64, U16, U32, U64, "
               "address, ld, max_,\n                                            min_, sign_, st)")
    return f'''\
# Generated by inertia.backends.numba_cpu from rule graph {graph.key} ({phase} pass).
# Do not edit: the cache key is this text's hash.
import numpy as np
from numba import carray, cfunc, njit, types
{imports}


@njit(nogil=True, cache=True, error_model="numpy"{flags})
def run(a, lo, hi):
    T = a[0]
    tab = carray(address(a[1], I64), (T, {ncol}))
    sizes = carray(address(a[2], I64), T)
    ch = carray(address(a[3], I64), (a[4], 3))
    h = carray(address(a[5], F64), {max(1, len(graph.hypers))})
    red = carray(address(a[6] if a[6] != 0 else a[5], F64), (T if a[6] != 0 else 1, {max(1, R)}))
    out = {out_view}
    gm = {cdt}(carray(address(a[8], F64), 1)[0])
    skipv = carray(address(a[9] if a[9] != 0 else a[2], I64), T if a[9] != 0 else 1){meta}
{consts}
    for k in {head_range}:
        t = {"0" if rows else "ch[k, 0]"}
        n = sizes[t]
{skip if not rows else ""}        p = carray(address(tab[t, 0], {pm}), n)
        g = carray(address(tab[t, 1], {pm}), {gsize})
        gb = carray(address(tab[t, 1], {bits_marker}), {gsize})
        stp = np.float64(carray(address(tab[t, 2], F32), 1)[0]) + 1.0
{views}
{scalars}
        start = np.uint64(ch[k, 1])
        stop = np.uint64(ch[k, 2])
{sweep}


@cfunc(types.void(types.CPointer(types.int64), types.int64, types.int64), nogil=True,
       cache=True)
def entry(args, lo, hi):
    run(carray(args, {len(ARGS)}), lo, hi)
{_finish_source(graph, sdtype) if phase != "reduce" else ""}'''


def _block_sweep(graph: RuleGraph, block: int, reduce: bool, guard: bool, loop: str,
                 zero_bits: str, exponent: str, R: int) -> str:
    """The sweep over 8-bit blocks: the blocks that start in ``start:stop``, each decoded,
    updated and (apply pass) encoded with its new absmax."""
    B = f"np.uint64({block})"
    slot = {k: i for i, k in enumerate(graph.slots)}
    read = [k for k in graph.slots]  # every slot is decoded with its block's factor
    factors = "\n".join(f"            f{slot[k]} = a{slot[k]}[j] / FMAX_{_code_name(k)}"
                        for k in read)
    lines = [f"""\
        jlo = (start // W) * nb + (start % W + np.uint64({block - 1})) // {B}
        jhi = (stop // W) * nb + (stop % W + np.uint64({block - 1})) // {B}"""]
    if reduce:
        lines += [f"        acc{j} = 0.0" for j in range(R)]
        lines.append(f"        worst = {zero_bits}")
    else:
        lines.append("        bad = 0")
    lines.append(f"""\
        for j in range(jlo, jhi):
            r = j // nb
            bl = r * W + (j - r * nb) * {B}
            bh = min(bl + {B}, r * W + W)""")
    if reduce:
        lines.append(f"""\
            for i in range(bl, bh):
                worst = max(worst, gb[i] & {exponent})""")
    elif guard:
        lines.append(f"""\
            worst = {zero_bits}
            for i in range(bl, bh):
                worst = max(worst, gb[i] & {exponent})
            if worst == {exponent}:
                bad += 1
                continue""")
    if factors:
        lines.append(factors)
    if not reduce:
        lines += [f"            m{slot[k]} = np.uint32(0)" for k in graph.written]
    lines.append("            for i in range(bl, bh):")
    lines.append(loop)
    if reduce:
        lines += [f"        out[k, {j}] = acc{j}" for j in range(R)]
        lines.append(f"        out[k, {R}] = 1.0 if worst == {exponent} else 0.0")
        return "\n".join(lines)
    for k in graph.written:
        j, code = slot[k], _code_name(k)
        lines.append(f"""\
            A{j} = from_bits(m{j})
            I{j} = FMAX_{code} / A{j} if A{j} > np.float32(0) else np.float32(0)
            for i in range(bl, bh):
                q{j}[i] = enc_{code}(n{j}[i - bl] * I{j})
            a{j}[j] = A{j}""")
    lines.append("        out[k] = bad")
    return "\n".join(lines)


class Kernel:
    """One compiled kernel: ``run`` for Python threads, ``address`` for the native runner,
    and what it expects (its name is the hash of its source)."""

    def __init__(self, module, graph: RuleGraph, phase: str, pdtype, sdtype, guard: bool,
                 stochastic: bool = False):
        self.name = module.__name__.rsplit(".", 1)[-1]
        self.run = module.run
        self.address = module.entry.address
        self.finish = getattr(module, "finish", None)
        self.finish_address = module.finish_entry.address if self.finish is not None else 0
        self.block = sdtype.block if isinstance(sdtype, Q.Blockwise) else 0
        #: the state tensors of each parameter, in table order (8-bit: codes, scales, ...)
        self.slots = (tuple(x for k in graph.slots for x in (k, Q.scale_key(k))) + graph.scalars
                      if self.block else graph.all_slots)
        self.scalar_slots = len(graph.scalars)
        self.reductions = len(graph.reductions)
        self.phase, self.pdtype, self.sdtype, self.guard = phase, pdtype, sdtype, guard
        self.stochastic = stochastic and pdtype == torch.bfloat16 and phase != "reduce"
        #: whether the kernel reads ``meta`` (row widths, shard offsets, stream keys)
        self.needs_meta = bool(self.block) or self.stochastic


def kernel(graph: RuleGraph, phase: str, pdtype: torch.dtype, sdtype, guard: bool,
           stochastic: bool = False) -> Kernel:
    """The compiled kernel for these choices (written and compiled on first use)."""
    text = source(graph, phase, pdtype, sdtype, guard, stochastic)
    return cache.compiled(text, lambda module: Kernel(module, graph, phase, pdtype, sdtype,
                                                      guard, stochastic))

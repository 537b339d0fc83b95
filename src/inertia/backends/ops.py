"""The fused step as torch operators, so ``torch.compile`` and CUDA graphs see it.

Two operators, declared once with the arguments they mutate and a fake (meta)
implementation, so that dynamo puts them in the graph as they are (no graph break, no
recompilation when a learning rate changes: hyperparameters arrive as a tensor):

``inertia::fused_apply(kernel, params!, grads, states!, steps!, hyper, inputs?, skip?,
gmul, found_inf?, bad!, met!, meta?)``
    One pass of a generated kernel over every tensor: reads each gradient (times ``gmul``,
    which holds the sign for ``maximize``, 1/``grad_scale`` under AMP and the clipping
    coefficient), updates parameters and state in place, then advances each step counter.
    ``states`` is flat: the kernel's slots for tensor 0, then for tensor 1, ... ``inputs``
    are per-tensor reduced values (the sums of squares of a two-pass rule), ``skip``
    per-tensor flags (tensors the guard refuses), ``bad`` receives per-tensor counts of
    blocks the non-finite guard skipped (plus ``skip``), and ``met``, a 0-d int64 flag
    shared by every call of a step, is set to 1 if any was. A non-zero ``found_inf`` skips
    the whole step. ``meta`` (int64, one row per tensor: row width, the shard's offset in
    the whole tensor, the random stream's key) is what kernels for 8-bit state or
    stochastic rounding need beyond the tensors; the others take None.

``inertia::fused_reduce(kernel, params, grads, states, steps, hyper, gmul, meta?) -> Tensor``
    The first pass of a rule with norms: per tensor, the sums of squares of each norm's
    argument and a non-finite flag, float64, shape ``(T, R + 1)``.

``inertia::fused_check(kernel, params, grads, states, steps)``
    The checks the two others start with, alone: a step with several kernel calls runs
    them all first, so that a bad tensor in the last call is refused before the first
    one writes anything.

``kernel`` names a generated kernel (the hash of its source; see :func:`register`), so a
graph compiled in one process never carries an address from another.

Implementations: on CPU the native runner (:mod:`.native`, torch's thread pool, all
bookkeeping in C++) or, without a compiler, Python threads over the same numba code
(:mod:`.cpu`); on CUDA the Triton kernels (:mod:`.triton_gpu`).
"""
from __future__ import annotations

import threading
from typing import Any

import torch

_lib = torch.library.Library("inertia", "DEF")
_lib.define(
    "fused_apply(str kernel, Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] states, "
    "Tensor(c!)[] steps, Tensor hyper, Tensor? inputs, Tensor? skip, Tensor gmul, "
    "Tensor? found_inf, Tensor(d!) bad, Tensor(e!) met, Tensor? meta=None) -> ()")
_lib.define(
    "fused_reduce(str kernel, Tensor[] params, Tensor[] grads, Tensor[] states, "
    "Tensor[] steps, Tensor hyper, Tensor gmul, Tensor? meta=None) -> Tensor")
_lib.define(
    "fused_check(str kernel, Tensor[] params, Tensor[] grads, Tensor[] states, "
    "Tensor[] steps) -> ()")

#: generated kernels by name, for the Python implementations
KERNELS: dict[str, Any] = {}
_cpu_impl: str | None = None  # "native" or "threads", decided at the first CPU kernel
_lock = threading.Lock()


@torch.library.register_fake("inertia::fused_apply", lib=_lib)
def _apply_fake(kernel, params, grads, states, steps, hyper, inputs, skip, gmul, found_inf, bad,
                met, meta=None):
    return None


@torch.library.register_fake("inertia::fused_check", lib=_lib)
def _check_fake(kernel, params, grads, states, steps):
    return None


@torch.library.register_fake("inertia::fused_reduce", lib=_lib)
def _reduce_fake(kernel, params, grads, states, steps, hyper, gmul, meta=None):
    width = KERNELS[kernel].reductions + 1 if kernel in KERNELS else 1
    return params[0].new_empty((len(params), width), dtype=torch.float64)


def register(name: str, kernel: Any, device: str) -> None:
    """Make generated kernel ``kernel`` callable by name on ``device`` (``"cpu"``/``"cuda"``)."""
    if device == "cpu":
        cpu_implementation()
        if _cpu_impl == "native":
            from . import native

            native.register(name, kernel)
    KERNELS[name] = kernel


def cpu_implementation() -> str:
    """Which CPU implementation runs the kernels: ``"native"`` (C++ in torch's thread pool)
    or ``"threads"`` (Python threads); chosen once per process, on first use."""
    global _cpu_impl
    if _cpu_impl is None:
        with _lock:
            if _cpu_impl is None:
                from . import native

                if native.load():
                    _cpu_impl = "native"  # the extension registered its CPU kernels itself
                else:
                    from . import cpu

                    _lib.impl("fused_apply", cpu.fused_apply, "CPU")
                    _lib.impl("fused_reduce", cpu.fused_reduce, "CPU")
                    _lib.impl("fused_check", cpu.fused_check, "CPU")
                    _cpu_impl = "threads"
    return _cpu_impl


def _register_cuda() -> None:
    from . import triton_gpu

    _lib.impl("fused_apply", triton_gpu.fused_apply, "CUDA")
    _lib.impl("fused_reduce", triton_gpu.fused_reduce, "CUDA")
    _lib.impl("fused_check", triton_gpu.fused_check, "CUDA")


_cuda_registered = False


def cuda_implementation() -> None:
    global _cuda_registered
    if not _cuda_registered:
        with _lock:
            if not _cuda_registered:
                _register_cuda()
                _cuda_registered = True


def set_parallel_min(elements: int) -> int:
    """Steps of fewer elements run on the calling thread (default 262,144: handing a few
    microseconds of work to other threads costs more than it saves). Returns the old value."""
    from . import cpu

    old, cpu.PARALLEL_MIN = cpu.PARALLEL_MIN, elements
    if cpu_implementation() == "native":
        torch.ops.inertia_native.set_parallel_min(elements)
    return old

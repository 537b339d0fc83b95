"""The native CPU runner: the fused step's bookkeeping in C++, its work in torch's threads.

Why. The generated numba kernels are at memory speed, but the step around them was not:
building address tables in Python costs ~1 µs per tensor, and numba's or our own thread
pools fight torch's OpenMP threads, which keep spinning after a backward pass on the
cores the kernels need (measured up to 35% lost in a training loop). This small C++
extension is the CPU implementation of the ``inertia::fused_apply`` and
``inertia::fused_reduce`` operators (:mod:`.ops`): it checks every tensor (sizes, dtypes,
contiguity; a wrong one raises before anything is written), builds the tables, and calls
the kernel's C entry point (a numba ``cfunc``) from ``at::parallel_for``, i.e. on torch's
own intra-op thread pool, then advances the step counters.

How it is built. At first use, against the torch that is installed, with
``torch.utils.cpp_extension.load_inline`` (cached under ``~/.cache/torch_extensions``;
about 30 s once). ``pip install`` never compiles anything, so it can never build against
a different torch. Without a working compiler, or with ``INERTIA_NATIVE=0``, the Python
runner (:mod:`.cpu`) takes over; :func:`inertia.backends.ops.cpu_implementation` says
which one runs.
"""
from __future__ import annotations

import logging
import os
import threading

import torch

log = logging.getLogger("inertia")

_SOURCE = r"""
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using Kernel = void (*)(const int64_t*, int64_t, int64_t);
// The layout of the argument array the generated kernels read (numba_cpu.ARGS).
enum Arg { TENSORS, TABLE, SIZES, CHUNKS, N_CHUNKS, HYPER, INPUTS, OUT, GMUL, SKIP, WIDTH, META,
           N_ARGS };

using Finish = void (*)(const int64_t*);
// slots: state tensors per parameter; the last `scalars` of them are per-tensor float32
// scalars (read during the sweep, written by `finish` after it). block > 0: the state is in
// 8-bit blocks of that many elements (per slot: uint8 codes, then float32 scales). meta: the
// kernel reads the per-tensor int64 table (row width, shard offset, random stream key).
struct Entry { Kernel fn; Finish finish; int64_t slots; int64_t scalars; c10::ScalarType param;
               c10::ScalarType state; int64_t block; bool meta; };
std::mutex mu;
std::unordered_map<std::string, Entry>& kernels() {
  static std::unordered_map<std::string, Entry> table;
  return table;
}

void register_kernel(std::string name, int64_t address, int64_t finish, int64_t slots,
                     int64_t scalars, int64_t param, int64_t state, int64_t block, bool meta) {
  std::lock_guard<std::mutex> lock(mu);
  kernels()[name] = Entry{reinterpret_cast<Kernel>(address), reinterpret_cast<Finish>(finish),
                          slots, scalars, static_cast<c10::ScalarType>(param),
                          static_cast<c10::ScalarType>(state), block, meta};
}

Entry find(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = kernels().find(name);
  TORCH_CHECK(it != kernels().end(), "inertia: kernel ", name, " is not registered in this process");
  return it->second;
}

std::string shape(at::IntArrayRef sizes) {  // as Python prints a tuple: (7, 5), (17,), ()
  std::string out = "(";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + (sizes.size() == 1 ? ",)" : ")");
}

// Memory a kernel can sweep as the parameter's: same strides, no gaps or overlaps.
bool flat(const at::Tensor& x, const at::Tensor& p) {
  return x.strides() == p.strides() && (x.is_contiguous() || x.is_non_overlapping_and_dense());
}

// 8-bit state of tensor t: per slot uint8 codes shaped like p and float32 scales, one per
// block of each row (rows along dim 0); with meta, p's row width. Else a kernel would index
// past the scales.
void check_blocks(const Entry& k, int64_t t, const at::Tensor& p, at::TensorList states,
                  const at::Tensor* meta) {
  TORCH_CHECK_TYPE(p.is_contiguous(), "Invalid parameter ", t, ": 8-bit state needs row-major parameters");
  const int64_t n = p.numel();
  const int64_t rows = p.dim() >= 2 ? p.size(0) : 1;
  const int64_t width = rows ? n / rows : 0;
  const int64_t nb = (width + k.block - 1) / k.block;
  if (meta != nullptr)
    TORCH_CHECK_VALUE(meta->data_ptr<int64_t>()[3 * t] == std::max<int64_t>(width, 1),
                      "Invalid meta for tensor ", t, ": its row width is ", width);
  const int64_t K = k.slots, coded = K - k.scalars;
  for (int64_t j = 0; j < coded; j += 2) {
    const at::Tensor& codes = states[t * K + j];
    const at::Tensor& scales = states[t * K + j + 1];
    TORCH_CHECK_VALUE(codes.scalar_type() == at::kByte && codes.numel() == n && codes.is_contiguous()
                      && codes.device().is_cpu(), "Invalid state slot ", j, " of tensor ", t, ": ",
                      codes.scalar_type(), " ", shape(codes.sizes()), "; the kernel needs uint8 codes shaped ",
                      shape(p.sizes()));
    TORCH_CHECK_VALUE(scales.scalar_type() == at::kFloat && scales.numel() == rows * nb
                      && scales.is_contiguous() && scales.device().is_cpu(), "Invalid state slot ", j + 1,
                      " of tensor ", t, ": ", scales.scalar_type(), " ", shape(scales.sizes()),
                      "; the kernel needs float32 scales of shape (", rows, ", ", nb, ")");
  }
}

void check(const Entry& k, at::TensorList params, at::TensorList grads, at::TensorList states,
           at::TensorList steps, const c10::optional<at::Tensor>& meta = c10::nullopt) {
  const at::Tensor* table = nullptr;
  if (meta.has_value()) {
    TORCH_CHECK_VALUE(meta->scalar_type() == at::kLong && meta->is_contiguous() && meta->dim() == 2
                      && meta->size(0) == static_cast<int64_t>(params.size()) && meta->size(1) == 3
                      && meta->device().is_cpu(), "inertia: meta must be a contiguous int64 CPU "
                      "tensor of shape (tensors, 3)");
    table = &*meta;
  }
  const int64_t T = params.size(), K = k.slots;
  TORCH_CHECK_VALUE(static_cast<int64_t>(grads.size()) == T && static_cast<int64_t>(steps.size()) == T
                    && static_cast<int64_t>(states.size()) == T * K,
                    "inertia::fused_apply: ", T, " params, ", grads.size(), " grads, ", steps.size(),
                    " steps and ", states.size(), " states for ", K, " slots");
  for (int64_t t = 0; t < T; ++t) {
    const at::Tensor& p = params[t];
    const at::Tensor& g = grads[t];
    TORCH_CHECK_VALUE(g.numel() == p.numel(), "Invalid gradient shape: ", shape(g.sizes()),
                      " for a parameter of shape ", shape(p.sizes()), " (tensor ", t, ")");
    TORCH_CHECK_TYPE(p.scalar_type() == k.param && g.scalar_type() == k.param,
                     "Invalid parameter or gradient dtype for tensor ", t, ": ", p.scalar_type(), "/",
                     g.scalar_type(), "; the kernel takes ", k.param);
    TORCH_CHECK(p.device().is_cpu() && g.device().is_cpu() && p.layout() == at::kStrided
                && g.layout() == at::kStrided && flat(p, p) && flat(g, p),
                "inertia: tensor ", t, " must be a strided CPU tensor laid out like its parameter");
    const at::Tensor& s = steps[t];
    TORCH_CHECK_TYPE(s.scalar_type() == at::kFloat && s.numel() == 1 && s.device().is_cpu(),
                     "Invalid step ", t, ": a float32 CPU scalar is needed");
    if (k.block > 0) check_blocks(k, t, p, states, table);
    for (int64_t j = 0; j < K; ++j) {
      const at::Tensor& x = states[t * K + j];
      if (k.block > 0 && j < K - k.scalars) continue;  // checked by check_blocks
      if (j >= K - k.scalars) {
        TORCH_CHECK_VALUE(x.numel() == 1 && x.scalar_type() == at::kFloat && x.device().is_cpu(),
                          "Invalid scalar state slot ", j, " of tensor ", t,
                          ": a float32 CPU scalar is needed");
        continue;
      }
      TORCH_CHECK_VALUE(x.numel() == p.numel() && x.scalar_type() == k.state && flat(x, p)
                        && x.device().is_cpu(),
                        "Invalid state slot ", j, " of tensor ", t, ": ", x.scalar_type(), " ",
                        shape(x.sizes()), "; the kernel needs ", k.state, " ", shape(p.sizes()),
                        " laid out like the parameter");
    }
  }
}

constexpr int64_t CHUNK = 1 << 15;
// Below this many elements a step runs on the calling thread (see set_parallel_min).
std::atomic<int64_t> parallel_min{1 << 18};

int64_t set_parallel_min(int64_t elements) { return parallel_min.exchange(elements); }

struct Call {
  std::vector<int64_t> table, sizes, chunks;
  int64_t args[N_ARGS] = {0};
  double gm = 1.0;
  int64_t total = 0;

  Call(const Entry& k, at::TensorList params, at::TensorList grads, at::TensorList states,
       at::TensorList steps, const at::Tensor& hyper, const at::Tensor& gmul) {
    const int64_t T = params.size(), K = k.slots, cols = 3 + K;
    table.resize(T * cols);
    sizes.resize(T);
    for (int64_t t = 0; t < T; ++t) {
      int64_t* row = table.data() + t * cols;
      row[0] = reinterpret_cast<int64_t>(params[t].data_ptr());
      row[1] = reinterpret_cast<int64_t>(grads[t].data_ptr());
      row[2] = reinterpret_cast<int64_t>(steps[t].data_ptr());
      for (int64_t j = 0; j < K; ++j) row[3 + j] = reinterpret_cast<int64_t>(states[t * K + j].data_ptr());
      const int64_t n = params[t].numel();
      sizes[t] = n;
      total += n;
      int64_t start = 0;
      do {
        chunks.push_back(t);
        chunks.push_back(start);
        chunks.push_back(std::min(start + CHUNK, n));
        start += CHUNK;
      } while (start < n);
    }
    TORCH_CHECK(hyper.scalar_type() == at::kDouble && hyper.is_contiguous() && hyper.device().is_cpu(),
                "inertia: hyperparameters must be a contiguous float64 CPU tensor");
    gm = gmul.item<double>();
    args[TENSORS] = T;
    args[TABLE] = reinterpret_cast<int64_t>(table.data());
    args[SIZES] = reinterpret_cast<int64_t>(sizes.data());
    args[CHUNKS] = reinterpret_cast<int64_t>(chunks.data());
    args[N_CHUNKS] = static_cast<int64_t>(chunks.size() / 3);
    args[HYPER] = reinterpret_cast<int64_t>(hyper.data_ptr());
    args[GMUL] = reinterpret_cast<int64_t>(&gm);
  }

  int64_t n_chunks() const { return args[N_CHUNKS]; }

  void run(Kernel fn) {
    const int64_t C = n_chunks();
    // Small steps take microseconds: handing them to other threads costs more than it saves.
    const int64_t grain = total < parallel_min.load() ? std::max<int64_t>(C, 1) : 1;
    at::parallel_for(0, C, grain, [&](int64_t lo, int64_t hi) { fn(args, lo, hi); });
  }
};

void fused_apply(std::string kernel, at::TensorList params, at::TensorList grads, at::TensorList states,
                 at::TensorList steps, const at::Tensor& hyper, const c10::optional<at::Tensor>& inputs,
                 const c10::optional<at::Tensor>& skip, const at::Tensor& gmul,
                 const c10::optional<at::Tensor>& found_inf, const at::Tensor& bad,
                 const at::Tensor& met, const c10::optional<at::Tensor>& meta) {
  const Entry k = find(kernel);
  TORCH_CHECK_VALUE(!k.meta || meta.has_value(), "inertia::fused_apply: kernel ", kernel, " needs meta");
  check(k, params, grads, states, steps, meta);
  TORCH_CHECK(bad.scalar_type() == at::kLong && bad.numel() == static_cast<int64_t>(params.size())
              && bad.is_contiguous(), "inertia: bad must be an int64 tensor with one entry per tensor");
  TORCH_CHECK(met.scalar_type() == at::kLong && met.numel() == 1 && met.device().is_cpu(),
              "inertia: met must be a 0-d int64 CPU tensor");
  if (found_inf.has_value() && found_inf->item<double>() != 0) return;  // AMP: skip the step
  if (params.empty()) return;
  Call call(k, params, grads, states, steps, hyper, gmul);
  if (meta.has_value()) call.args[META] = reinterpret_cast<int64_t>(meta->data_ptr());
  at::Tensor in, sk;
  if (inputs.has_value()) {
    in = inputs->to(at::kDouble).contiguous();
    call.args[INPUTS] = reinterpret_cast<int64_t>(in.data_ptr());
  }
  if (skip.has_value()) {
    sk = skip->to(at::kLong).contiguous();
    call.args[SKIP] = reinterpret_cast<int64_t>(sk.data_ptr());
  }
  std::vector<int64_t> out(call.n_chunks(), 0);
  call.args[OUT] = reinterpret_cast<int64_t>(out.data());
  call.run(k.fn);
  if (k.finish != nullptr) k.finish(call.args);  // per-tensor scalar state, after the sweep
  int64_t* b = bad.data_ptr<int64_t>();
  std::fill(b, b + params.size(), 0);
  int64_t any = 0;
  for (int64_t c = 0; c < call.n_chunks(); ++c) {
    b[call.chunks[3 * c]] += out[c];
    any |= out[c];
  }
  if (sk.defined()) {  // tensors the reduce pass refused were skipped whole
    const int64_t* s = sk.data_ptr<int64_t>();
    for (size_t t = 0; t < params.size(); ++t) {
      b[t] += s[t];
      any |= s[t];
    }
  }
  if (any) *met.data_ptr<int64_t>() = 1;
  for (const at::Tensor& s : steps) *s.data_ptr<float>() += 1.0f;
}

at::Tensor fused_reduce(std::string kernel, at::TensorList params, at::TensorList grads,
                        at::TensorList states, at::TensorList steps, const at::Tensor& hyper,
                        const at::Tensor& gmul, int64_t reductions,
                        const c10::optional<at::Tensor>& meta) {
  const Entry k = find(kernel);
  TORCH_CHECK_VALUE(!k.meta || meta.has_value(), "inertia::fused_reduce: kernel ", kernel, " needs meta");
  check(k, params, grads, states, steps, meta);
  const int64_t W = reductions + 1;
  at::Tensor sums = at::zeros({static_cast<int64_t>(params.size()), W}, at::dtype(at::kDouble));
  if (params.empty()) return sums;
  Call call(k, params, grads, states, steps, hyper, gmul);
  if (meta.has_value()) call.args[META] = reinterpret_cast<int64_t>(meta->data_ptr());
  std::vector<double> out(call.n_chunks() * W, 0.0);
  call.args[OUT] = reinterpret_cast<int64_t>(out.data());
  call.run(k.fn);
  double* s = sums.data_ptr<double>();
  for (int64_t c = 0; c < call.n_chunks(); ++c)
    for (int64_t j = 0; j < W; ++j) s[call.chunks[3 * c] * W + j] += out[c * W + j];
  return sums;
}

}  // namespace

TORCH_LIBRARY(inertia_native, m) {
  m.def("register_kernel(str name, int address, int finish, int slots, int scalars, int param, "
        "int state, int block, bool meta) -> ()", &register_kernel);
  m.def("set_parallel_min(int elements) -> int", &set_parallel_min);
  m.def("fused_reduce(str kernel, Tensor[] params, Tensor[] grads, Tensor[] states, Tensor[] steps, "
        "Tensor hyper, Tensor gmul, int reductions, Tensor? meta) -> Tensor", &fused_reduce);
}

void fused_check(std::string kernel, at::TensorList params, at::TensorList grads,
                 at::TensorList states, at::TensorList steps) {
  check(find(kernel), params, grads, states, steps);
}

TORCH_LIBRARY_IMPL(inertia, CPU, m) {
  m.impl("fused_apply", &fused_apply);
  m.impl("fused_check", &fused_check);
}
"""

_state = {"loaded": None}
_lock = threading.Lock()
_DTYPES = {torch.float32: 6, torch.float64: 7, torch.bfloat16: 15, torch.uint8: 0}  # c10 codes


def load() -> bool:
    """Build (once per machine) and load the runner; False if it cannot be built here."""
    with _lock:
        if _state["loaded"] is None:
            _state["loaded"] = _build()
        return _state["loaded"]


def _build() -> bool:
    if os.environ.get("INERTIA_NATIVE", "1") == "0":
        return False
    try:
        from torch.utils.cpp_extension import load_inline

        name = "inertia_native_" + _version_tag()
        build_dir = os.path.join(_extensions_root(), name)
        if not os.path.exists(os.path.join(build_dir, f"{name}.so")):
            log.warning("inertia: building the native CPU runner for torch %s (once, about "
                        "30 s); INERTIA_NATIVE=0 skips it", torch.__version__)
        os.makedirs(build_dir, exist_ok=True)
        load_inline(name, cpp_sources=[_SOURCE], functions=None, is_python_module=False,
                    extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"],
                    build_directory=build_dir, verbose=False)
    except Exception as error:  # noqa: BLE001 - no compiler, no headers, ...: use the fallback
        log.warning("inertia: the native CPU runner could not be built (%s); using Python "
                    "threads", str(error).splitlines()[0] if str(error) else type(error).__name__)
        return False
    from .ops import _lib

    def reduce_impl(kernel, params, grads, states, steps, hyper, gmul, meta=None):
        from .ops import KERNELS

        return torch.ops.inertia_native.fused_reduce(kernel, params, grads, states, steps, hyper,
                                                     gmul, KERNELS[kernel].reductions, meta)

    _lib.impl("fused_reduce", reduce_impl, "CPU")
    return True


def _version_tag() -> str:
    import hashlib

    digest = hashlib.sha256((_SOURCE + torch.__version__).encode()).hexdigest()[:12]
    return digest


def _extensions_root() -> str:
    from torch.utils.cpp_extension import _get_build_directory

    return os.path.dirname(_get_build_directory("inertia_probe", verbose=False))


def register(name: str, kernel) -> None:
    """Tell the runner the C entry point of generated kernel ``name``."""
    finish = kernel.finish_address if kernel.phase == "apply" else 0
    state = torch.uint8 if kernel.block else kernel.sdtype  # 8-bit blocks: checked apart
    torch.ops.inertia_native.register_kernel(name, kernel.address, finish, len(kernel.slots),
                                            kernel.scalar_slots, _DTYPES[kernel.pdtype],
                                            _DTYPES[state], kernel.block, kernel.needs_meta)

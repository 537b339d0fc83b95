"""``bytes``: optimizer-state bytes per parameter of each policy on three models, and the
peak resident memory of a training run (MiniLM-L6, 10 steps), measured by ``peak`` in a
fresh process per optimizer (``memory.py _peak NAME``)."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import torch

from . import SCRIPT
from .problems import (
    POLICIES,
    make_optimizer,
    minilm,
    peers,
    state_bytes,
    transformer_shapes,
)
from .report import header, write


def bytes_section(args) -> None:
    from inertia.lab.workloads.mnist import SmallResNet

    torch.set_num_threads(1)
    models = {
        "MiniLM-L6, full fine-tuning": lambda: list(minilm().parameters()),
        "mnist-cnn (small ResNet)": lambda: list(SmallResNet(16, 2).parameters()),
        "transformer-shaped, 12.6M": lambda: [torch.nn.Parameter(torch.randn(s) * 0.02)
                                             for s in transformer_shapes(12_000_000)],
    }
    names = list(POLICIES) + list(peers())
    table, data = {}, {}
    for model_name, make in models.items():
        for name in names:
            torch.manual_seed(0)
            params = make()
            try:
                opt = make_optimizer(name, params)
            except Exception as error:  # noqa: BLE001
                table[(model_name, name)] = str(error)
                continue
            for p in params:
                p.grad = torch.randn_like(p) * 1e-3
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt.step()
            n = sum(p.numel() for p in params)
            b = state_bytes(opt)
            table[(model_name, name)] = (n, b)
            data[f"{model_name} | {name}"] = {"params": n, "state_bytes": b}
    lines = header("Optimizer-state memory", "python benchmarks/memory.py bytes")
    lines += ["Bytes of optimizer state per parameter: the sizes of every state tensor after one "
              "step (codes, scales, maps; torchao's 8-bit tensors counted by their codes and "
              "scales; step counters left out), over the parameters. float32 Adam keeps 8.",
              ""]
    for model_name in models:
        lines += [f"## {model_name}", "", "| optimizer | parameters | state bytes | bytes / parameter | of float32 AdamW |",
                  "|---|---:|---:|---:|---:|"]
        base = table.get((model_name, "torch AdamW (float32 state)"))
        for name in names:
            cell = table.get((model_name, name))
            if isinstance(cell, str):
                lines.append(f"| {name} | | | {cell} | |")
                continue
            n, b = cell
            ratio = b / base[1] if isinstance(base, tuple) and base[1] else float("nan")
            lines.append(f"| {name} | {n:,} | {b:,} | {b / n:.3f} | {ratio:.3f}x |")
        lines.append("")
    # peak resident memory of a training run, one fresh process per policy
    lines += ["## Peak memory of a training run", "",
              "MiniLM-L6 fully fine-tuned (batch 8, 64 tokens, 10 steps) in a fresh process per "
              "optimizer. The peak resident set size is reset (`/proc/self/clear_refs`) once "
              "the model is loaded, so loading the pretrained weights (whose transient copies "
              "otherwise set the peak, the same for every optimizer) does not mask the run; "
              "*peak RSS* is then the process's peak during the 10 steps (interpreter, torch, "
              "model, gradients, activations, optimizer state), *growth* that peak minus the "
              "resident size before the first step: what training added. Before the reset, one "
              "step of the same optimizer on a 64x4096 matrix loads what each library loads on "
              "its first step (inertia: numba, LLVM and the native runner, about 100 MB), so the "
              "growth is gradients, activations and optimizer state. Run with "
              "`MALLOC_MMAP_THRESHOLD_=131072` (set by this script), so that freed large "
              "buffers leave the resident set instead of staying in malloc's heap.", "",
              "| optimizer | peak RSS, MB | growth, MB | growth minus float32 AdamW's, MB |",
              "|---|---:|---:|---:|"]
    peaks = {}
    for name in names:
        out = subprocess.run([sys.executable, str(SCRIPT), "_peak", name], capture_output=True,
                             text=True, timeout=1800,
                             env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})
        last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        peaks[name] = ([float(x) for x in last.split()] if out.returncode == 0 and last
                       else out.stderr.strip()[-200:])
    base = peaks.get("torch AdamW (float32 state)")
    for name, peak in peaks.items():
        if isinstance(peak, str):
            lines.append(f"| {name} | not run: {peak} | | |")
        else:
            grew = peak[0] - peak[1]
            lines.append(f"| {name} | {peak[0]:.0f} | {grew:.0f} | "
                         f"{grew - (base[0] - base[1]):+.0f} |")
    data["peak_rss_mb"] = peaks
    write("bytes", lines, data)


def peak(name: str) -> None:
    """The child process of the peak-memory table: 10 steps of MiniLM-L6 with optimizer
    ``name``; prints the peak resident size during them and the size before, MB."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = minilm()
    head = torch.nn.Linear(384, 2)
    params = list(model.parameters()) + list(head.parameters())
    opt = make_optimizer(name, params, lr=2e-5)
    gen = torch.Generator().manual_seed(0)
    # a step of the same optimizer on a small matrix first, so the runtime it loads on its
    # first step (numba, LLVM and the native runner for inertia: about 100 MB) is resident
    # before the peak is reset: the rows then differ by what the state itself costs
    warm = torch.nn.Parameter(torch.randn(64, 4096))
    warm.grad = torch.randn_like(warm)
    make_optimizer(name, [warm], lr=2e-5).step()
    del warm
    import gc

    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # the peak (VmHWM) restarts from here
        f.write("5")
    before = _status_mb("VmRSS")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(10):
            ids = torch.randint(1000, 20000, (8, 64), generator=gen)
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            loss = torch.nn.functional.cross_entropy(head(out.mean(1)),
                                                     torch.randint(0, 2, (8,), generator=gen))
            opt.zero_grad()
            loss.backward()
            opt.step()
    print(_status_mb("VmHWM"), before)


def _status_mb(field: str) -> float:
    """A size from ``/proc/self/status`` (``VmRSS``: resident now, ``VmHWM``: its peak), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")

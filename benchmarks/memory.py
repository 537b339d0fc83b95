"""Compact optimizer storage, measured: bytes, speed, quality, and stochastic rounding.

    python benchmarks/memory.py codes      # which 8-bit code (update error on real gradients)
    python benchmarks/memory.py bytes      # state bytes per parameter, training-run memory
    python benchmarks/memory.py speed      # step time against torch fused AdamW and peers
    python benchmarks/memory.py quality    # held-out quality, each policy, 3 seeds, tuned lr
    python benchmarks/memory.py rounding   # pure-bfloat16 training: nearest vs stochastic
    python benchmarks/memory.py all

Each section writes ``benchmarks/results/memory_<section>.md`` (and ``.json``, ``.png``
where there is a figure); nothing here is asserted, every number is measured in the run
that writes it, with the machine, versions and load average next to it.

* **codes**: the error of Adam's step when its moments are stored with an 8-bit code,
  against the same moments in float32 fed the same gradients (300 steps of real training
  of ``mnist-mlp`` and ``mnist-cnn``, every tensor with rows of 16+ elements quantised):
  the RMS over the quantised tensors of ``|u_8bit - u_f32| / |u_f32|`` per step, and the
  share of coordinates (with ``|u| > 0.01``) whose step is off by more than half. The
  contenders: inertia's codes (``s1e3m4`` signed / ``e4m4`` with a floor for second
  moments), other splits of the bits, bitsandbytes' dynamic map (blockwise, nearest: what
  its and torchao's 8-bit optimizers use), bfloat16.
* **bytes**: optimizer-state bytes per parameter for each policy (sums of the state
  tensors' sizes, after a step), on three models: MiniLM-L6 fully fine-tuned (22.7M), the
  lab's ``mnist-cnn`` (its tensors are below the 4,096-element threshold: listed with and
  without it) and transformer-shaped tensors; and the peak resident memory of a training
  run (MiniLM-L6, 10 steps) in a fresh process per policy.
* **speed**: the optimizer step alone on ~12.6M transformer-shaped float32 parameters,
  contenders interleaved in rounds (one step timed at a time, each round's sample the
  median step of its block, rounds rotated); the median over rounds with its interquartile
  range. ``--threads`` (default 1: on a shared machine a second thread measures the
  scheduler).
* **quality**: the lab's ``mnist-cnn`` and ``reviews`` with Adam, each state policy, the lr
  chosen per policy on validation (the lab's :func:`inertia.lab.tuning.choose`) from the
  workload's rate times 1/3, 1, 3, seeds 0-2; the test metric at the chosen lr.
* **rounding**: the lab's ``movielens`` (matrix factorisation, a regression, dense
  gradients) and ``mnist-mlp``, the whole model in bfloat16 (weights and activations),
  Adam at a slow and a usual rate, with the update rounded to nearest or stochastically,
  against the float32 model: validation curves (plot) and the final test metric.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent / "src"))

import inertia  # noqa: E402
from inertia.backends import quantize as Q  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def versions() -> str:
    out = []
    for name in ("numba", "torchao", "bitsandbytes"):
        try:
            import importlib.metadata as md

            out.append(f"{name} {md.version(name)}")
        except Exception:  # noqa: BLE001
            out.append(f"{name}: not installed")
    return ", ".join(out)


def header(title: str, command: str) -> list[str]:
    return [f"# {title}", "",
            f"Machine: {machine()}; {versions()}. Command: `{command}`. "
            f"Started {time.strftime('%Y-%m-%d %H:%M')}, load average {load()} (1/5/15 min).",
            ""]


def write(name: str, lines: list[str], data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"memory_{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"memory_{name}.json").write_text(json.dumps(data, indent=1, default=str))
    print("\n".join(lines))


# ============================================================================= codes


def bnb_dynamic_map(signed: bool) -> torch.Tensor:
    """bitsandbytes' ``create_dynamic_map`` (from bitsandbytes itself when installed)."""
    try:
        from bitsandbytes.functional import create_dynamic_map

        return create_dynamic_map(signed=signed).float()
    except Exception:  # noqa: BLE001 - its published definition, reimplemented
        data, mx = [], 7
        for i in range(mx):
            items = 2 ** i + 1 if signed else 2 ** (i + 1) + 1
            b = torch.linspace(0.1, 1, items)
            means = ((b[:-1] + b[1:]) / 2) * 10 ** (-(mx - 1) + i)
            data += means.tolist() + ((-means).tolist() if signed else [])
        data += [0, 1.0]
        data += [0] * (256 - len(data))
        return torch.tensor(sorted(data))


def _blocks_apply(x: torch.Tensor, fn, block: int = Q.DEFAULT_BLOCK) -> torch.Tensor:
    blocks, width = Q._blocks(x.float(), block)
    out = fn(blocks)
    rows = out.shape[0]
    return out.reshape(rows, -1)[:, :width].reshape(x.shape)


def with_map(qmap: torch.Tensor):
    def quantise(x):
        def fn(blocks):
            am = blocks.abs().amax(2, keepdim=True)
            y = torch.where(am > 0, blocks / am, torch.zeros(()))
            i = torch.bucketize(y, qmap).clamp(1, 255)
            lo, hi = qmap[i - 1], qmap[i]
            return torch.where((y - lo).abs() <= (hi - y).abs(), lo, hi) * am
        return _blocks_apply(x, fn)
    return quantise


def with_code(code: Q.Code):
    def quantise(x):
        def fn(blocks):
            o = Q.TorchOps
            am = o.float(Q.magnitude_bits(o, blocks).t.amax(2))
            fmax = torch.tensor(code.fmax)
            inv = torch.where(am > 0, fmax / am, torch.zeros(()))
            c = Q.encode(o, code, blocks * inv.unsqueeze(2))
            return Q.decode(o, code, c) * (am / fmax).unsqueeze(2)
        return _blocks_apply(x, fn)
    return quantise


def code_variants() -> dict:
    codes = {c.name: c for c in Q.CANDIDATES}
    out = {"bfloat16": (lambda x: x.bfloat16().float(),) * 2,
           "bitsandbytes dynamic map": (with_map(bnb_dynamic_map(True)),
                                        with_map(bnb_dynamic_map(False)))}
    for m, v in (("s1e3m4", "e4m4"), ("s1e3m4", "e4m4-flush"), ("s1e4m3", "e5m3"),
                 ("s1e3m4", "e5m3"), ("s1e5m2", "e6m2")):
        label = f"{m} / {v}" + (" (inertia)" if (m, v) == ("s1e3m4", "e4m4") else "")
        out[label] = (with_code(codes[m]), with_code(codes[v]))
    return out


def codes_section(args) -> None:
    from inertia.lab.workloads.mnist import SmallResNet, load_digits

    torch.set_num_threads(1)
    variants = code_variants()
    data = load_digits()
    results = {}
    for kind in ("mnist-mlp", "mnist-cnn"):
        torch.manual_seed(0)
        model = (torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                     torch.nn.Linear(128, 10)) if kind == "mnist-mlp"
                 else SmallResNet(16, 2))
        params = list(model.parameters())
        big = [i for i, p in enumerate(params) if Q.eligible(tuple(p.shape), 0)]
        state = {n: [dict(m=torch.zeros_like(params[i]), v=torch.zeros_like(params[i]))
                     for i in big] for n in variants}
        ref = [dict(m=torch.zeros_like(p), v=torch.zeros_like(p)) for p in params]
        errors = {n: [] for n in variants}
        off = {n: 0 for n in variants}
        counted = 0
        gen = torch.Generator().manual_seed(0)
        X, Y = data["X_train"], data["y_train"]
        b1, b2, eps, lr = 0.9, 0.999, 1e-8, 1e-3
        for t in range(1, args.steps + 1):
            idx = torch.randint(0, len(Y), (64,), generator=gen)
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
            with torch.no_grad():
                def adam(g, st, qm=None, qv=None):
                    m = b1 * st["m"] + (1 - b1) * g
                    v = b2 * st["v"] + (1 - b2) * g * g
                    u = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
                    st["m"], st["v"] = (qm(m), qv(v)) if qm else (m, v)
                    return u

                us = [adam(p.grad, st) for p, st in zip(params, ref)]
                for n, (qm, qv) in variants.items():
                    num = den = 0.0
                    for k, i in enumerate(big):
                        u = adam(params[i].grad, state[n][k], qm, qv)
                        num += float((u - us[i]).square().sum())
                        den += float(us[i].square().sum())
                        large = us[i].abs() > 1e-2
                        off[n] += int((((u - us[i]).abs() > 0.5 * us[i].abs()) & large).sum())
                    errors[n].append(math.sqrt(num / den))
                counted += sum(int((us[i].abs() > 1e-2).sum()) for i in big)
                for p, u in zip(params, us):
                    p.add_(u, alpha=-lr)
        results[kind] = {n: {"mean": statistics.fmean(e), "max": max(e),
                             "off_by_half": off[n] / max(counted, 1)} for n, e in errors.items()}
    lines = header("8-bit codes: the error of Adam's step", "python benchmarks/memory.py codes")
    lines += [f"Adam (lr 1e-3) trained {args.steps} steps in float32; at every step the same "
              "gradients also updated moments stored in each code (blocks of 256 within rows, "
              "per-block absmax; every tensor whose rows hold 16+ elements), and the step "
              "computed from them was compared with float32's. *RMS error*: "
              "||u_code - u_f32|| / ||u_f32|| over the quantised tensors, mean and worst over "
              "the steps; *off by half*: the share of coordinates with |u_f32| > 0.01 whose step "
              "is off by more than 50%. Codes: sMeN = sign, E exponent and N mantissa bits; "
              "the second name is the code of the second moment (non-negative); *flush*: "
              "without the floor (a tiny positive second moment may become 0).", ""]
    for kind, rows in results.items():
        lines += [f"## {kind}", "", "| code (first / second moment) | RMS error, mean | worst | off by half |",
                  "|---|---:|---:|---:|"]
        for n, r in rows.items():
            lines.append(f"| {n} | {r['mean']:.4f} | {r['max']:.4f} | {r['off_by_half']:.2%} |")
        lines.append("")
    write("codes", lines, results)


# ============================================================================= bytes


POLICIES = {
    "torch AdamW (float32 state)": None,
    "inertia float32 state": dict(),
    "inertia bfloat16 state": dict(state_dtype=torch.bfloat16),
    "inertia 8-bit state": dict(state_dtype="8bit"),
    "inertia 8-bit state, every tensor with 16+ wide rows": dict(state_dtype="8bit", state_min_size=0),
}


def state_bytes(opt) -> int:
    total = 0
    for state in opt.state.values():
        for key, value in state.items():
            if key == "step" or not isinstance(value, torch.Tensor):
                continue
            inner = [getattr(value, name) for name in ("codes", "scale", "qmap")
                     if isinstance(getattr(value, name, None), torch.Tensor)]
            for t in inner or [value]:
                total += t.numel() * t.element_size()
    return total


def peers():
    out = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.optim import AdamW8bit

        out["torchao AdamW8bit"] = lambda ps, lr: AdamW8bit(ps, lr=lr)
    except Exception as error:  # noqa: BLE001
        out["torchao AdamW8bit"] = f"not run: {type(error).__name__}: {str(error)[:120]}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import bitsandbytes as bnb

        out["bitsandbytes AdamW8bit"] = lambda ps, lr: bnb.optim.AdamW8bit(ps, lr=lr)
    except Exception as error:  # noqa: BLE001
        out["bitsandbytes AdamW8bit"] = f"not run: {type(error).__name__}: {str(error)[:120]}"
    return out


def make_optimizer(name: str, params, lr: float = 1e-3):
    if name in POLICIES:
        options = POLICIES[name]
        if options is None:
            return torch.optim.AdamW(params, lr=lr, fused=True)
        return inertia.AdamW(params, lr=lr, **options)
    made = peers()[name]
    if isinstance(made, str):
        raise RuntimeError(made)
    return made(params, lr)


def transformer_shapes(params: int) -> list[tuple[int, ...]]:
    """Per layer of width d: four d x d, d x 4d, 4d x d, four d-vectors and a 4d-vector."""
    d, shapes = 512, []
    while sum(math.prod(s) for s in shapes) < params:
        shapes += [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)] + [(d,)] * 4 + [(4 * d,)]
    return shapes


def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from inertia.lab.workloads.reviews import pretrained

    _, bert = pretrained()
    import copy

    model = copy.deepcopy(bert)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


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
        out = subprocess.run([sys.executable, __file__, "_peak", name], capture_output=True,
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


def _peak(name: str) -> None:
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


# ============================================================================= speed


def speed_section(args) -> None:
    torch.set_num_threads(args.threads)
    shapes = transformer_shapes(12_000_000)
    n = sum(math.prod(s) for s in shapes)
    names = list(POLICIES)[:4] + ["inertia 8-bit state, unchecked"] + list(peers())
    contenders, skipped = {}, {}
    for name in names:
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.02) for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        try:
            if name == "inertia 8-bit state, unchecked":
                opt = inertia.AdamW(params, lr=1e-3, state_dtype="8bit", nonfinite=None)
            else:
                opt = make_optimizer(name, params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(3):
                    opt.step()
        except Exception as error:  # noqa: BLE001
            skipped[name] = f"{type(error).__name__}: {str(error)[:150]}"
            continue
        contenders[name] = opt
    samples = {name: [] for name in contenders}
    cpu_samples = {name: [] for name in contenders}
    before = load()
    order = list(contenders)
    for r in range(args.rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:
            opt = contenders[name]
            steps, cpu = [], []
            t_end = time.perf_counter() + args.block
            while time.perf_counter() < t_end or len(steps) < 3:
                t0, c0 = time.perf_counter(), time.thread_time()
                opt.step()
                steps.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
            samples[name].append(statistics.median(steps))
            cpu_samples[name].append(statistics.median(cpu))
    after = load()
    base = "torch AdamW (float32 state)"
    lines = header("Optimizer step time: compact state against torch fused AdamW",
                   f"python benchmarks/memory.py speed --threads {args.threads} --rounds {args.rounds}")
    lines += [f"AdamW step on {n / 1e6:.1f}M float32 parameters in {len(shapes)} transformer-shaped "
              f"tensors (width 512), {args.threads} torch thread(s), {args.rounds} interleaved "
              f"rounds of about {args.block} s per contender; load average before {before}, "
              f"after {after}. *ms/step*: median over rounds of each round's median step, with "
              "the interquartile range; *CPU ms*: the same for the thread's CPU time (what the "
              "step costs when the shared cores are busy); *vs torch fused*: the ratio of "
              "medians (higher is faster).", "",
              "| optimizer | ms/step | CPU ms/step | vs torch fused (wall) | vs torch fused (CPU) |",
              "|---|---:|---:|---:|---:|"]

    def q(xs):
        xs = sorted(xs)
        k = len(xs)
        return statistics.median(xs), xs[k // 4], xs[(3 * k) // 4]

    data = {"params": n, "threads": args.threads, "samples": samples, "cpu": cpu_samples,
            "skipped": skipped, "load": [before, after]}
    for name in contenders:
        m, lo, hi = q(samples[name])
        c, clo, chi = q(cpu_samples[name])
        vs = statistics.median(samples[base]) / m
        vc = statistics.median(cpu_samples[base]) / c
        lines.append(f"| {name} | {m * 1e3:.2f} ({lo * 1e3:.2f}-{hi * 1e3:.2f}) | "
                     f"{c * 1e3:.2f} ({clo * 1e3:.2f}-{chi * 1e3:.2f}) | {vs:.2f}x | {vc:.2f}x |")
    for name, why in skipped.items():
        lines.append(f"| {name} | not run: {why} | | | |")
    suffix = "" if args.threads == 1 else f"_{args.threads}threads"
    write("speed" + suffix, lines, data)


# ============================================================================= quality


def quality_section(args) -> None:
    from inertia.lab import api
    from inertia.lab.tuning import choose
    from inertia.lab.workloads import get

    policies = {"float32 state": "", "bfloat16 state": ",state_dtype=bfloat16",
                "8-bit state": ",state_dtype=8bit",
                "8-bit state, min size 0": ",state_dtype=8bit,state_min_size=0"}
    seeds = [int(s) for s in args.seeds.split(",")]
    report, data = [], {}
    for wname in args.workloads.split(","):
        work = get(wname)
        centre = work.default_lr["adam"]
        untuned = wname in args.untuned.split(",")
        factors = (1,) if untuned else (1 / 3, 1, 3)
        entries = []
        for label, extra in policies.items():
            if (untuned or wname in args.lean.split(",")) and \
                    label not in ("float32 state", "8-bit state"):
                continue  # the time it takes: float32 against the 8-bit state only
            if wname != "mnist-cnn" and "min size 0" in label:
                continue  # reviews' matrices are all far above the threshold
            if wname == "mnist-cnn" and label == "8-bit state":
                continue  # every tensor is below the threshold: the float32 runs, bit for bit
            for f in factors:
                lr = float(f"{centre * f:.3g}")
                entries.append(f"adam:lr={lr}{extra};label={label} lr={lr}")
        db = Path(args.work) / f"quality_{wname}.sqlite"
        db.parent.mkdir(parents=True, exist_ok=True)
        api.compare([wname], entries, seeds=seeds, steps=args.quality_steps,
                    out=str(Path(args.work) / f"report_{wname}"),
                    db=str(db), threads=1, jobs=args.jobs, quiet=True, write_report=False,
                    title=f"state policies on {wname}")
        runs = api.load_runs(db)
        lrs = {float(f"{centre * f:.3g}") for f in factors}  # this run's entries only
        runs = runs[(runs["workload"] == wname) & runs["lr"].isin(lrs)].copy()
        runs["policy"] = runs["optimizer"].str.rsplit(" lr=", n=1).str[0]
        runs["higher_is_better"] = work.higher_is_better
        chosen = choose(runs, group="policy")
        rows = {}
        for policy, lr in chosen.items():
            sel = runs[(runs["policy"] == policy) & (runs["lr"] == lr)]
            tests = [float(x) for x in sel["final_metric"]]
            rows[policy] = {"lr": lr, "test": tests, "val": [float(x) for x in sel["val_final"]]}
        data[wname] = rows
        base = rows["float32 state"]["test"]
        lo, hi = min(base), max(base)
        report += [f"## {wname}", "", f"{work.description}; metric {work.metric} (test split, at "
                   f"the end of {args.quality_steps or work.steps} steps). float32's seed spread: {lo:.4f}-{hi:.4f}.", "",
                   "| state | chosen lr | test, per seed | mean | within float32's spread |",
                   "|---|---:|---|---:|---|"]
        for policy, r in rows.items():
            mean = statistics.fmean(r["test"])
            inside = "yes" if lo <= mean <= hi else ("above" if mean > hi else "below")
            report.append(f"| {policy} | {r['lr']:g} | {', '.join(f'{x:.4f}' for x in r['test'])} | "
                          f"{mean:.4f} | {inside} |")
        report.append("")
    lines = header("Held-out quality of each state policy", f"python benchmarks/memory.py quality "
                   f"--workloads {args.workloads} --seeds {args.seeds}"
                   + (f" --untuned {args.untuned}" if args.untuned else "")
                   + (f" --lean {args.lean}" if args.lean else "")
                   + (f" --jobs {args.jobs}" if args.jobs != 1 else ""))
    lines += ["Adam on the lab's workloads with each state policy; the lr chosen per policy on "
              "the validation split (mean over seeds of the final validation metric, "
              "`inertia.lab.tuning.choose`) from the workload's Adam rate times 1/3, 1 and 3; the "
              f"test metric at that rate for seeds {args.seeds}. *within float32's spread*: "
              "whether the policy's mean lies between float32's lowest and highest seed. "
              "`mnist-cnn`'s tensors all have fewer than 4,096 elements, so its default 8-bit "
              "policy keeps float32 state everywhere (its runs would be float32's, bit for bit, "
              "so they are not repeated); *min size 0* quantises every tensor whose "
              "rows hold 16+ elements (all but the stem convolution's, 9 wide)."
              + (f" Workloads run untuned ({args.untuned}): at the workload's own Adam rate only, "
                 "float32 against the 8-bit state (no bfloat16 row), for the time a run takes on "
                 "this machine." if args.untuned else "")
              + (f" Workloads run lean ({args.lean}): float32 against the 8-bit state only (no "
                 "bfloat16 row), for the time a run takes on this machine." if args.lean else ""),
              ""] + report
    write("quality", lines, data)


# ============================================================================= rounding


class Bf16(torch.nn.Module):
    """A model in bfloat16 that takes and returns float32 (the workload's data and metric)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner.to(torch.bfloat16)

    def forward(self, *args):
        args = [a.to(torch.bfloat16) if torch.is_tensor(a) and a.is_floating_point() else a
                for a in args]
        return self.inner(*args).float()

    def __getattr__(self, name: str):
        # the workload's loss may reach into its model (movielens' penalty reads model.user)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)


def rounding_section(args) -> None:
    from inertia.lab.workloads import get

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    cases = [("movielens", dict(sparse=False), ("adam", 1e-3), 1500),
             ("movielens", dict(sparse=False), ("adam", 1e-2), 1500),
             ("mnist-mlp", {}, ("adam", 1e-4), 600),
             ("mnist-mlp", {}, ("adam", 1e-3), 300)]
    modes = ("float32", "bfloat16, to nearest", "bfloat16, stochastic")
    curves, finals = {}, {}
    for wname, options, (opt_name, lr), steps in cases:
        work = get(wname, **options).with_budget(steps=steps, eval_every=max(steps // 15, 1))
        for mode in modes:
            for seed in seeds:
                model = work.init_model(seed, torch.device("cpu"))
                if mode != "float32":
                    model = Bf16(model)
                opt = inertia.Adam(model.parameters(), lr=lr,
                                   stochastic_rounding=mode.endswith("stochastic"))
                batches = work.make_batches(seed, torch.device("cpu"))
                evals = [(0, work.evaluate(model, torch.device("cpu"), "validation"))]
                for step in range(1, steps + 1):
                    loss = work.loss(model, next(batches))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if step % work.eval_every == 0 or step == steps:
                        evals.append((step, work.evaluate(model, torch.device("cpu"), "validation")))
                key = f"{wname} {opt_name} lr={lr:g} | {mode}"
                curves.setdefault(key, []).append(evals)
                finals.setdefault(key, []).append(work.evaluate(model, torch.device("cpu"), "test"))
                print(key, seed, finals[key][-1], flush=True)
    lines = header("Pure-bfloat16 training: rounding to nearest against stochastic rounding",
                   f"python benchmarks/memory.py rounding --seeds {args.seeds}")
    lines += ["The whole model in bfloat16 (weights and activations; inputs cast at the door, "
              "outputs back to float32 for the loss and metric); the optimizer computes the "
              "update in float32 and stores the new weights in bfloat16, rounded to nearest or "
              "stochastically (`stochastic_rounding=True`). Against the float32 model with the "
              f"same seeds ({args.seeds}). `movielens` with dense embedding gradients "
              "(a regression: RMSE, lower is better), `mnist-mlp` (accuracy). *gap*: the mean "
              "test metric minus float32's (RMSE: positive is worse; accuracy: negative is "
              "worse).", "",
              "| workload, optimizer | float32 | bf16 nearest | gap | bf16 stochastic | gap |",
              "|---|---:|---:|---:|---:|---:|"]
    for wname, options, (opt_name, lr), steps in cases:
        base = f"{wname} {opt_name} lr={lr:g}"
        f = statistics.fmean(finals[f"{base} | float32"])
        ne = statistics.fmean(finals[f"{base} | bfloat16, to nearest"])
        sr = statistics.fmean(finals[f"{base} | bfloat16, stochastic"])
        lines.append(f"| {base}, {steps} steps | {f:.4f} | {ne:.4f} | {ne - f:+.4f} | {sr:.4f} | "
                     f"{sr - f:+.4f} |")
    plot = _plot_rounding(cases, curves)
    lines += ["", f"![validation curves]({plot.name})" if plot else "(matplotlib missing: no plot)"]
    write("rounding", lines, {"curves": curves, "finals": finals})


def _plot_rounding(cases, curves):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.4))
    colours = {"float32": "black", "bfloat16, to nearest": "tab:red",
               "bfloat16, stochastic": "tab:blue"}
    for ax, (wname, _, (opt_name, lr), steps) in zip(axes, cases):
        for mode, colour in colours.items():
            runs = curves[f"{wname} {opt_name} lr={lr:g} | {mode}"]
            xs = [s for s, _ in runs[0]]
            mean = [statistics.fmean(r[i][1] for r in runs) for i in range(len(xs))]
            ax.plot(xs, mean, color=colour, label=mode)
        ax.set_title(f"{wname}, Adam lr={lr:g}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("validation " + ("RMSE" if wname == "movielens" else "accuracy"))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = RESULTS / "memory_rounding.png"
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_peak":
        return _peak(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=["codes", "bytes", "speed", "quality", "rounding", "all"])
    parser.add_argument("--steps", type=int, default=300, help="codes: training steps")
    parser.add_argument("--threads", type=int, default=1, help="speed: torch threads")
    parser.add_argument("--rounds", type=int, default=15, help="speed: interleaved rounds")
    parser.add_argument("--block", type=float, default=0.3, help="speed: seconds per sample")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workloads", default="mnist-cnn,reviews", help="quality")
    parser.add_argument("--quality-steps", type=int, default=None,
                        help="quality: step budget (default: the workload's; a smoke test)")
    parser.add_argument("--untuned", default="",
                        help="quality: workloads run at their own Adam rate only, float32 "
                             "against 8-bit state (reviews: about 6 minutes a run here)")
    parser.add_argument("--lean", default="",
                        help="quality: workloads run for float32 and 8-bit state only (tuned)")
    parser.add_argument("--jobs", type=int, default=1, help="quality: runs in parallel")
    parser.add_argument("--work", default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "inertia-memory"),
                        help="quality: where the lab's run database goes")
    args = parser.parse_args()
    sections = {"codes": codes_section, "bytes": bytes_section, "speed": speed_section,
                "quality": quality_section, "rounding": rounding_section}
    for name, fn in sections.items():
        if args.section in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()

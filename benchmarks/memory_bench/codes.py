"""``codes``: the error of Adam's step when its moments are stored with an 8-bit code
(inertia's, other splits of the bits, bitsandbytes' dynamic map, bfloat16), against the
same moments in float32 fed the same gradients."""
from __future__ import annotations

import math
import statistics

import torch

from inertia.backends import quantize as Q

from .report import header, write


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

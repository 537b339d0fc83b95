"""torch's own fused multi-tensor kernels, for the rules they compute exactly.

``torch._fused_adam_``/``_fused_adamw_``, ``_fused_sgd_`` and ``_fused_adagrad_`` exist on
CPU and CUDA (torch >= 2.4) and make one pass over memory per step. They are the same
math as inertia's Adam/AdamW, SGD and Adagrad rules (checked in ``tests/test_kernels.py``);
we call the aten ops directly rather than ``torch.optim.adam.adam(..., fused=True)`` to
skip its per-call grouping by device and dtype, which :func:`inertia.kernels.fused_step`
has already done.

The step counter: these kernels read ``state_steps`` but do not advance them, so we do it
first: with numba's ``bump_steps`` when available (one compiled loop over the counters'
addresses; ``torch._foreach_add_`` on 100 CPU scalars cost ~0.3 ms a step, more than the
fused update of a small model), else with ``_foreach_add_`` as torch.optim does.
"""
from __future__ import annotations

import torch


def step(algo, group, params, grads, states, bump=None) -> None:
    steps = [s["step"] for s in states]
    if bump is not None:
        values = bump(states)
    else:
        torch._foreach_add_(steps, 1.0)
        values = None
    lr = float(group["lr"])
    maximize = bool(group["maximize"])
    if algo.name == "adam":
        op = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        amsgrad = bool(group["amsgrad"])
        b1, b2 = group["betas"]
        op(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
           [s["max_exp_avg_sq"] for s in states] if amsgrad else [], steps,
           lr=lr, beta1=b1, beta2=b2, weight_decay=group["weight_decay"], eps=group["eps"],
           amsgrad=amsgrad, maximize=maximize)
    elif algo.name == "adagrad":
        torch._fused_adagrad_(params, grads, [s["sum"] for s in states], steps, lr=lr,
                              lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
                              eps=group["eps"], maximize=maximize)
    elif algo.name == "sgd":
        _sgd(group, params, grads, states, steps, values, lr, maximize)
    else:
        raise ValueError(f"no torch fused kernel for {algo.name}")


def _sgd(group, params, grads, states, steps, values, lr, maximize) -> None:
    momentum = group["momentum"]
    kwargs = dict(weight_decay=group["weight_decay"], momentum=momentum, lr=lr,
                  dampening=group["dampening"], nesterov=bool(group["nesterov"]),
                  maximize=maximize)
    if momentum == 0:
        torch._fused_sgd_(params, grads, [], is_first_step=False, **kwargs)
        return
    # The first step takes the gradient whole (b_1 = g_1): torch's kernel has a flag for it,
    # one per call, so tensors on their first step (new or just added) get their own call.
    if group["dampening"] == 0:  # then b_1 = 0 * mu + g_1 = g_1 anyway: one call
        first = [False] * len(steps)
    else:
        first = (values == 1).tolist() if values is not None else torch.stack(steps).eq(1).tolist()
    for flag in (False, True):
        idx = [i for i, f in enumerate(first) if f == flag]
        if idx:
            torch._fused_sgd_([params[i] for i in idx], [grads[i] for i in idx],
                              [states[i]["momentum_buffer"] for i in idx],
                              is_first_step=flag, **kwargs)

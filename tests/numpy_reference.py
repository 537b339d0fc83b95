"""Independent float64 NumPy implementations of each published update rule.

Written from the papers and torch's documented algorithms, not from inertia's
transforms, so that a shared misunderstanding cannot pass unnoticed. Each function
updates one parameter: ``step(p, g, state, t, **hparams) -> p`` mutating ``state``
(whose keys are the ones inertia uses, so both can be compared).
"""
from __future__ import annotations

import numpy as np


def _zeros(state, p, *keys, value=0.0):
    for k in keys:
        state.setdefault(k, np.full_like(p, value))


def sgd(p, g, state, t, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    if momentum != 0:
        if t == 1:
            buf = g.copy()
        else:
            buf = momentum * state["momentum_buffer"] + (1 - dampening) * g
        state["momentum_buffer"] = buf
        g = g + momentum * buf if nesterov else buf
    return p - lr * g


def momentum(p, g, state, t, lr=0.01, beta=0.9, nesterov=False, weight_decay=0.0, maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    _zeros(state, p, "velocity")
    v = beta * state["velocity"] + (1 - beta) * g
    state["velocity"] = v
    step = beta * v + (1 - beta) * g if nesterov else v
    return p - lr * step


def rmsprop(p, g, state, t, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
            centered=False, maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    _zeros(state, p, "square_avg")
    state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
    if centered:
        _zeros(state, p, "grad_avg")
        state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * g
        avg = np.sqrt(state["square_avg"] - state["grad_avg"] ** 2) + eps
    else:
        avg = np.sqrt(state["square_avg"]) + eps
    if momentum > 0:
        _zeros(state, p, "momentum_buffer")
        state["momentum_buffer"] = momentum * state["momentum_buffer"] + g / avg
        return p - lr * state["momentum_buffer"]
    return p - lr * g / avg


def adam(p, g, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
         maximize=False, decoupled_weight_decay=False):
    b1, b2 = betas
    g = -g if maximize else g
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
    state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
    v = state["exp_avg_sq"]
    if amsgrad:
        _zeros(state, p, "max_exp_avg_sq")
        state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
        v = state["max_exp_avg_sq"]
    m_hat = state["exp_avg"] / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw(p, g, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
          maximize=False):
    return adam(p, g, state, t, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=True)


def adagrad(p, g, state, t, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
            eps=1e-10, maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    _zeros(state, p, "sum", value=initial_accumulator_value)
    state["sum"] = state["sum"] + g * g
    clr = lr / (1 + (t - 1) * lr_decay)
    return p - clr * g / (np.sqrt(state["sum"]) + eps)


def lion(p, g, state, t, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
    b1, b2 = betas
    g = -g if maximize else g
    _zeros(state, p, "exp_avg")
    u = np.sign(b1 * state["exp_avg"] + (1 - b1) * g)
    state["exp_avg"] = b2 * state["exp_avg"] + (1 - b2) * g
    return p - lr * (u + weight_decay * p)


def lamb(p, g, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, maximize=False):
    b1, b2 = betas
    g = -g if maximize else g
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
    state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
    m_hat = state["exp_avg"] / (1 - b1**t)
    v_hat = state["exp_avg_sq"] / (1 - b2**t)
    u = m_hat / (np.sqrt(v_hat) + eps) + weight_decay * p
    p_norm, u_norm = np.linalg.norm(p), np.linalg.norm(u)
    r = p_norm / u_norm if p_norm > 0 and u_norm > 0 else 1.0
    return p - lr * r * u


def lars(p, g, state, t, lr, momentum=0.9, weight_decay=0.0, trust_coefficient=0.001, eps=0.0,
         nesterov=False, maximize=False):
    g = -g if maximize else g
    u = g + weight_decay * p
    p_norm, u_norm = np.linalg.norm(p), np.linalg.norm(u)
    r = trust_coefficient * p_norm / (u_norm + eps) if p_norm > 0 and u_norm > 0 else 1.0
    u = lr * r * u
    _zeros(state, p, "momentum_buffer")
    state["momentum_buffer"] = u + momentum * state["momentum_buffer"]
    if nesterov:
        return p - (u + momentum * state["momentum_buffer"])
    return p - state["momentum_buffer"]


def nadam(p, g, state, t, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
          momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    g = -g if maximize else g
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    # torch keeps the product of the mu's as a float32 scalar
    product = float(np.float32(state.get("mu_product", np.float32(1.0)) * np.float32(mu)))
    state["mu_product"] = np.float32(product)
    state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
    state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
    denom = np.sqrt(state["exp_avg_sq"] / (1 - b2 ** t)) + eps
    return (p - lr * (1 - mu) / (1 - product) * g / denom
            - lr * mu_next / (1 - product * mu_next) * state["exp_avg"] / denom)


def radam(p, g, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
          decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    g = -g if maximize else g
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
    state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
    m_hat = state["exp_avg"] / (1 - b1 ** t)
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
    if rho <= 5:
        return p - lr * m_hat
    rect = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    # torch adds eps to sqrt(v), then applies the bias correction: sqrt(bc2) / (sqrt(v) + eps)
    return p - lr * rect * m_hat * np.sqrt(1 - b2 ** t) / (np.sqrt(state["exp_avg_sq"]) + eps)


def adamax(p, g, state, t, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
           maximize=False):
    b1, b2 = betas
    g = -g if maximize else g
    g = g + weight_decay * p
    _zeros(state, p, "exp_avg", "exp_inf")
    state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
    state["exp_inf"] = np.maximum(b2 * state["exp_inf"], np.abs(g) + eps)
    return p - lr / (1 - b1 ** t) * state["exp_avg"] / state["exp_inf"]


def adadelta(p, g, state, t, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    _zeros(state, p, "square_avg", "acc_delta")
    state["square_avg"] = rho * state["square_avg"] + (1 - rho) * g * g
    delta = np.sqrt(state["acc_delta"] + eps) / np.sqrt(state["square_avg"] + eps) * g
    state["acc_delta"] = rho * state["acc_delta"] + (1 - rho) * delta * delta
    return p - lr * delta


def _bf16(x):
    """Round float64 values to bfloat16 (to nearest even), through float32."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32).astype(np.float64)


def newton_schulz(G, coefficients=(3.4445, -4.775, 2.0315), steps=5, eps=1e-7, dtype="bfloat16"):
    """Keller Jordan's quintic iteration; every intermediate rounded as its dtype stores it."""
    r = _bf16 if dtype == "bfloat16" else (
        (lambda x: np.asarray(x, np.float32).astype(np.float64)) if dtype == "float32" else np.asarray)
    a, b, c = coefficients
    X = r(G)
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    X = r(X / max(r(np.linalg.norm(X)), eps))
    for _ in range(steps):
        A = r(X @ X.T)
        B = r(b * A + c * A @ A)
        X = r(a * X + B @ X)
    return X.T if tall else X


def muon(p, g, state, t, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
         ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None,
         ns_dtype="bfloat16", adamw_betas=(0.9, 0.95), adamw_eps=1e-10, maximize=False,
         **unused):
    if p.ndim != 2:  # the rest of the model: AdamW
        return adam(p, g, state, t, lr, adamw_betas, adamw_eps, weight_decay, False, maximize,
                    decoupled_weight_decay=True)
    g = -g if maximize else g
    _zeros(state, p, "momentum_buffer")
    buf = momentum * state["momentum_buffer"] + (1 - momentum) * g
    state["momentum_buffer"] = buf
    u = momentum * buf + (1 - momentum) * g if nesterov else buf
    dtype = str(ns_dtype).removeprefix("torch.")
    O = newton_schulz(u, ns_coefficients, ns_steps, eps, dtype)
    m, n = p.shape
    ratio = np.sqrt(max(1, m / n)) if adjust_lr_fn in (None, "original") else 0.2 * np.sqrt(max(m, n))
    return p * (1 - lr * weight_decay) - lr * ratio * O


def adafactor(p, g, state, t, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
              weight_decay=0.0, maximize=False):
    g = -g if maximize else g
    eps1 = np.finfo(p.dtype).eps if eps[0] is None else eps[0]
    w = t ** beta2_decay
    rho = min(lr, 1 / np.sqrt(t))
    alpha = max(eps[1], np.sqrt(np.mean(p * p)) if p.size else 0.0) * rho
    p = p * (1 - lr * weight_decay)
    if g.ndim > 1:
        _zeros(state, p[..., :1], "row_var")
        _zeros(state, p[..., :1, :], "col_var")
        state["row_var"] = (1 - w) * state["row_var"] + w * np.mean(g * g, axis=-1, keepdims=True)
        state["col_var"] = (1 - w) * state["col_var"] + w * np.mean(g * g, axis=-2, keepdims=True)
        v = state["row_var"] * state["col_var"] / np.maximum(
            np.mean(state["row_var"], axis=-2, keepdims=True), eps1)
    else:
        _zeros(state, p, "variance")
        state["variance"] = (1 - w) * state["variance"] + w * g * g
        v = state["variance"]
    u = g / np.sqrt(np.maximum(v, eps1 * eps1))
    clip = max(1.0, np.sqrt(np.mean(u * u)) / d)
    return p - alpha / clip * u


def _schedule_free_weights(t, lr, warmup_steps, r, weight_lr_power):
    """(scheduled lr, averaging weight c) of step t (1-based), summing the weights so far."""
    total, lr_max, c = 0.0, -1.0, 0.0
    for k in range(t):
        lr_k = lr * ((k + 1) / warmup_steps if k < warmup_steps else 1.0)
        lr_max = max(lr_k, lr_max)
        weight = (k + 1) ** r * lr_max ** weight_lr_power
        total += weight
        c = weight / total if total else 0.0
    return lr_k, c


def adamw_schedulefree(p, g, state, t, lr=0.0025, betas=(0.9, 0.999), eps=1e-8,
                       weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0,
                       maximize=False):
    b1, b2 = betas
    g = -g if maximize else g
    state.setdefault("z", p.copy())
    _zeros(state, p, "exp_avg_sq")
    lr_t, c = _schedule_free_weights(t, lr, warmup_steps, r, weight_lr_power)
    state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
    u = g / (np.sqrt(state["exp_avg_sq"] / (1 - b2 ** t)) + eps) + weight_decay * p
    # x_{t+1} = (1-c) x_t + c z_{t+1}, y = (1-b1) z + b1 x; with x_t recovered from y_t, z_t
    z = state["z"]
    x = (p - (1 - b1) * z) / b1
    z = z - lr_t * u
    x = (1 - c) * x + c * z
    state["z"] = z
    return (1 - b1) * z + b1 * x


def sgd_schedulefree(p, g, state, t, lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0,
                     r=0.0, weight_lr_power=2.0, maximize=False):
    g = -g if maximize else g
    state.setdefault("z", p.copy())
    lr_t, c = _schedule_free_weights(t, lr, warmup_steps, r, weight_lr_power)
    u = g + weight_decay * p
    z = state["z"]
    x = (p - (1 - momentum) * z) / momentum
    z = z - lr_t * u
    x = (1 - c) * x + c * z
    state["z"] = z
    return (1 - momentum) * z + momentum * x


RULES = {
    "sgd": sgd, "momentum": momentum, "rmsprop": rmsprop, "adam": adam, "adamw": adamw,
    "adagrad": adagrad, "lion": lion, "lamb": lamb, "lars": lars, "nadam": nadam,
    "radam": radam, "adamax": adamax, "adadelta": adadelta, "muon": muon,
    "adafactor": adafactor, "adamw-schedulefree": adamw_schedulefree,
    "sgd-schedulefree": sgd_schedulefree,
}

#: Where a rule cannot be compared at 1e-10: Muon's iteration runs in bfloat16 (8-bit
#: mantissa); the reference rounds at the same points, with float64 sums instead of the
#: matmul's float32 ones, so a rare element differs by one bfloat16 ulp (0.4%) in O.
TOLERANCE = {"muon": dict(rtol=2e-3, atol=2e-3)}

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


RULES = {
    "sgd": sgd, "momentum": momentum, "rmsprop": rmsprop, "adam": adam, "adamw": adamw,
    "adagrad": adagrad, "lion": lion, "lamb": lamb, "lars": lars,
}

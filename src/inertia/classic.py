"""The seed lesson's own functions, on dicts of NumPy arrays, for people learning from it.

Names, signatures, defaults and results are the lesson's: parameters are
``{"W1": ..., "b1": ..., "W2": ...}``, gradients ``{"dW1": ..., "db1": ...}``,
examples are *columns* (``X.shape == (n_features, m)``), and updates happen in
place on the arrays you pass, which are also returned. What is added: errors that
name the missing key or the mismatched shape, an optional ``seed`` for
:func:`create_mini_batches`, and the cosine decay the lesson describes but does not code.

Example (the lesson's Adam step, by hand):

>>> import numpy as np
>>> from inertia.classic import initialize_adam, update_parameters_with_adam
>>> params = {"W1": np.array([[1.0, -1.0]]), "b1": np.array([[0.5]])}
>>> grads = {"dW1": np.array([[0.2, -0.4]]), "db1": np.array([[0.1]])}
>>> v, s = initialize_adam(params)
>>> params, v, s = update_parameters_with_adam(params, grads, v, s, t=1, learning_rate=0.1)
>>> params["W1"].round(6)  # the first bias-corrected step moves every weight by lr
array([[ 0.9, -0.9]])
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = [
    "initialize_velocity", "update_parameters_with_momentum",
    "initialize_rmsprop", "update_parameters_with_rmsprop",
    "initialize_adam", "update_parameters_with_adam",
    "create_mini_batches", "learning_rate_decay",
]


def _layers(parameters: Mapping[str, np.ndarray]) -> range:
    """Layer numbers 1..L, with L = len(parameters) // 2 as in the lesson; checks the keys."""
    L = len(parameters) // 2
    for l in range(1, L + 1):
        for name in (f"W{l}", f"b{l}"):
            if name not in parameters:
                raise KeyError(f"parameters is missing {name!r} (expected W1..W{L} and b1..b{L})")
    return range(1, L + 1)


def _match(what: str, table: Mapping[str, np.ndarray], parameters: Mapping[str, np.ndarray],
           layers: range) -> None:
    """``table`` must hold dW{l}/db{l} shaped like W{l}/b{l}."""
    for l in layers:
        for p, d in ((f"W{l}", f"dW{l}"), (f"b{l}", f"db{l}")):
            if d not in table:
                raise KeyError(f"{what} is missing {d!r}")
            if np.shape(table[d]) != np.shape(parameters[p]):
                raise ValueError(
                    f"{what}[{d!r}] has shape {np.shape(table[d])}, "
                    f"but parameters[{p!r}] has shape {np.shape(parameters[p])}"
                )


def _zeros_like_grads(parameters: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for l in _layers(parameters):
        out[f"dW{l}"] = np.zeros_like(parameters[f"W{l}"])
        out[f"db{l}"] = np.zeros_like(parameters[f"b{l}"])
    return out


def initialize_velocity(parameters):
    """Momentum's velocity ``v``: zeros shaped like each ``W{l}`` and ``b{l}``."""
    return _zeros_like_grads(parameters)


def update_parameters_with_momentum(parameters, grads, v, beta=0.9, learning_rate=0.01):
    r"""One Momentum step: :math:`v = \beta v + (1-\beta)\,dW`, :math:`W := W - \alpha v`.

    Returns ``(parameters, v)``, both updated in place.
    """
    layers = _layers(parameters)
    _match("grads", grads, parameters, layers)
    _match("v", v, parameters, layers)
    for l in layers:
        for p, d in ((f"W{l}", f"dW{l}"), (f"b{l}", f"db{l}")):
            v[d] = beta * v[d] + (1 - beta) * grads[d]
            parameters[p] -= learning_rate * v[d]
    return parameters, v


def initialize_rmsprop(parameters):
    """RMSprop's running mean of squared gradients ``s``: zeros."""
    return _zeros_like_grads(parameters)


def update_parameters_with_rmsprop(parameters, grads, s, beta=0.999, learning_rate=0.001, epsilon=1e-8):
    r"""One RMSprop step: :math:`s = \beta s + (1-\beta)\,dW^2`,
    :math:`W := W - \alpha\, dW / (\sqrt{s} + \epsilon)`. Returns ``(parameters, s)``."""
    layers = _layers(parameters)
    _match("grads", grads, parameters, layers)
    _match("s", s, parameters, layers)
    for l in layers:
        for p, d in ((f"W{l}", f"dW{l}"), (f"b{l}", f"db{l}")):
            s[d] = beta * s[d] + (1 - beta) * np.square(grads[d])
            parameters[p] -= learning_rate * grads[d] / (np.sqrt(s[d]) + epsilon)
    return parameters, s


def initialize_adam(parameters):
    """Adam's first and second moments ``(v, s)``: zeros."""
    return _zeros_like_grads(parameters), _zeros_like_grads(parameters)


def update_parameters_with_adam(parameters, grads, v, s, t, learning_rate=0.001,
                                beta1=0.9, beta2=0.999, epsilon=1e-8):
    r"""One Adam step with bias correction from the iteration count ``t`` (starting at 1):

    .. math::
        v = \beta_1 v + (1-\beta_1) dW,\quad s = \beta_2 s + (1-\beta_2) dW^2,\quad
        W := W - \alpha \frac{v/(1-\beta_1^t)}{\sqrt{s/(1-\beta_2^t)} + \epsilon}

    Returns ``(parameters, v, s)``.
    """
    if t < 1:
        raise ValueError(f"Invalid t: {t!r} (the iteration count starts at 1)")
    layers = _layers(parameters)
    _match("grads", grads, parameters, layers)
    _match("v", v, parameters, layers)
    _match("s", s, parameters, layers)
    for l in layers:
        for p, d in ((f"W{l}", f"dW{l}"), (f"b{l}", f"db{l}")):
            v[d] = beta1 * v[d] + (1 - beta1) * grads[d]
            s[d] = beta2 * s[d] + (1 - beta2) * np.square(grads[d])
            v_corrected = v[d] / (1 - np.power(beta1, t))
            s_corrected = s[d] / (1 - np.power(beta2, t))
            parameters[p] -= learning_rate * v_corrected / (np.sqrt(s_corrected) + epsilon)
    return parameters, v, s


def create_mini_batches(X, Y, mini_batch_size=64, seed=None):
    """Shuffle the columns of ``X`` and ``Y`` together and cut them into mini-batches.

    Without ``seed`` the permutation comes from NumPy's global random state, exactly as
    in the lesson, so ``np.random.seed(k)`` reproduces its batches; ``seed=k`` gives the
    same batches without touching the global state. The last batch holds the remainder.
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X and Y must be 2-D with examples as columns; got shapes {X.shape} and {Y.shape}")
    m = X.shape[1]
    if Y.shape[1] != m:
        raise ValueError(f"Y has {Y.shape[1]} examples (columns) but X has {m}")
    if int(mini_batch_size) != mini_batch_size or mini_batch_size <= 0:
        raise ValueError(f"Invalid mini_batch_size: {mini_batch_size!r} (must be a positive integer)")
    mini_batch_size = int(mini_batch_size)
    rng = np.random if seed is None else np.random.RandomState(seed)
    permutation = rng.permutation(m)
    X_shuffled, Y_shuffled = X[:, permutation], Y[:, permutation]
    return [
        (X_shuffled[:, k:k + mini_batch_size], Y_shuffled[:, k:k + mini_batch_size])
        for k in range(0, m, mini_batch_size)
    ]


def learning_rate_decay(initial_lr, epoch, decay_rate, decay_type="exponential",
                        total_epochs=None, min_lr=0.0):
    r"""The lesson's learning-rate decays at ``epoch``:

    * ``'exponential'``: :math:`\alpha_0 e^{-k\,\text{epoch}}` with ``k = decay_rate``;
    * ``'1/t'``: :math:`\alpha_0 / (1 + k\,\text{epoch})`;
    * ``'step'``: halve every 10 epochs, :math:`\alpha_0 \cdot 0.5^{\lfloor \text{epoch}/10 \rfloor}`
      (``decay_rate`` unused, as in the lesson);
    * ``'cosine'``: :math:`\alpha_{min} + \tfrac12(\alpha_0-\alpha_{min})(1+\cos(\pi\,\text{epoch}/T))`
      with ``T = total_epochs`` (required) and ``min_lr`` (default 0);
    * ``'constant'``: :math:`\alpha_0` (the lesson's fall-through branch).

    An unknown ``decay_type`` raises ValueError instead of silently keeping ``initial_lr``.
    """
    if decay_type == "exponential":
        return initial_lr * np.exp(-decay_rate * epoch)
    if decay_type == "1/t":
        return initial_lr / (1 + decay_rate * epoch)
    if decay_type == "step":
        return initial_lr * 0.5 ** (epoch // 10)
    if decay_type == "cosine":
        if total_epochs is None or total_epochs <= 0:
            raise ValueError(f"Invalid total_epochs: {total_epochs!r} (cosine decay needs T > 0)")
        t = min(epoch, total_epochs)
        return min_lr + 0.5 * (initial_lr - min_lr) * (1 + np.cos(np.pi * t / total_epochs))
    if decay_type == "constant":
        return initial_lr
    raise ValueError(
        f"Invalid decay_type: {decay_type!r} (expected 'exponential', '1/t', 'step', 'cosine' or 'constant')"
    )

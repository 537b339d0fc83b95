"""The seed lesson's API against numbers computed by hand from its formulas."""
import numpy as np
import pytest

from inertia.classic import (
    create_mini_batches, initialize_adam, initialize_rmsprop, initialize_velocity,
    learning_rate_decay, update_parameters_with_adam, update_parameters_with_momentum,
    update_parameters_with_rmsprop,
)


def _net():
    params = {"W1": np.array([[1.0, 2.0]]), "b1": np.array([[0.5]]),
              "W2": np.array([[-1.0]]), "b2": np.array([[0.0]])}
    grads = {"dW1": np.array([[0.1, -0.2]]), "db1": np.array([[0.3]]),
             "dW2": np.array([[0.4]]), "db2": np.array([[-0.5]])}
    return params, grads


def test_momentum_step_by_hand():
    params, grads = _net()
    v = initialize_velocity(params)
    assert set(v) == {"dW1", "db1", "dW2", "db2"} and not any(a.any() for a in v.values())
    W1 = params["W1"]
    params, v = update_parameters_with_momentum(params, grads, v, beta=0.9, learning_rate=0.01)
    # v = 0.1 * g; W -= 0.01 * v
    np.testing.assert_allclose(v["dW1"], [[0.01, -0.02]])
    np.testing.assert_allclose(params["W1"], [[0.9999, 2.0002]])
    np.testing.assert_allclose(params["b1"], [[0.4997]])
    assert params["W1"] is W1  # in place, as the lesson's `-=`


def test_rmsprop_step_by_hand():
    params, grads = _net()
    s = initialize_rmsprop(params)
    params, s = update_parameters_with_rmsprop(params, grads, s)
    # s = 0.001 g^2, so the first step is lr * sign(g) / sqrt(0.001) = 0.0316227766...
    np.testing.assert_allclose(s["dW1"], [[1e-5, 4e-5]])
    # (epsilon = 1e-8 shortens it by a relative 3e-6)
    np.testing.assert_allclose(params["W1"], [[1 - 0.0316227766, 2 + 0.0316227766]], atol=2e-7)


def test_adam_two_steps_by_hand():
    params, grads = _net()
    v, s = initialize_adam(params)
    params, v, s = update_parameters_with_adam(params, grads, v, s, t=1)
    np.testing.assert_allclose(params["W1"], [[0.999, 2.001]], rtol=1e-7)  # one lr per coordinate
    np.testing.assert_allclose(params["b2"], [[0.001]], rtol=1e-6)
    params, v, s = update_parameters_with_adam(params, grads, v, s, t=2)
    # v = 0.19 g, s = 0.001999 g^2; corrected: g and g^2 -> again one lr per coordinate
    np.testing.assert_allclose(v["dW1"], [[0.019, -0.038]])
    np.testing.assert_allclose(params["W1"], [[0.998, 2.002]], rtol=1e-7)


def test_adam_t_starts_at_one():
    params, grads = _net()
    v, s = initialize_adam(params)
    with pytest.raises(ValueError, match="Invalid t: 0"):
        update_parameters_with_adam(params, grads, v, s, t=0)


def test_missing_key_and_bad_shape_are_named():
    params, grads = _net()
    v = initialize_velocity(params)
    del grads["db2"]
    with pytest.raises(KeyError, match="grads is missing 'db2'"):
        update_parameters_with_momentum(params, grads, v)
    params, grads = _net()
    grads["dW1"] = np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"grads\['dW1'\] has shape \(2, 1\), but parameters\['W1'\] has shape \(1, 2\)"):
        update_parameters_with_rmsprop(params, grads, initialize_rmsprop(params))
    with pytest.raises(KeyError, match="parameters is missing 'W2'"):
        initialize_adam({"W1": np.zeros(1), "b1": np.zeros(1), "b2": np.zeros(1), "c": 0})


def _lesson_create_mini_batches(X, Y, mini_batch_size=64):
    """The lesson's own code, verbatim in behaviour, as the oracle."""
    m = X.shape[1]
    mini_batches = []
    permutation = np.random.permutation(m)
    X_shuffled = X[:, permutation]
    Y_shuffled = Y[:, permutation]
    num_complete_batches = m // mini_batch_size
    for k in range(num_complete_batches):
        mini_batches.append((X_shuffled[:, k * mini_batch_size:(k + 1) * mini_batch_size],
                             Y_shuffled[:, k * mini_batch_size:(k + 1) * mini_batch_size]))
    if m % mini_batch_size != 0:
        mini_batches.append((X_shuffled[:, num_complete_batches * mini_batch_size:],
                             Y_shuffled[:, num_complete_batches * mini_batch_size:]))
    return mini_batches


def test_create_mini_batches_reproduces_the_lesson_under_np_random_seed():
    X = np.arange(2 * 130, dtype=float).reshape(2, 130)
    Y = (np.arange(130) % 2).reshape(1, 130)
    np.random.seed(4)
    expected = _lesson_create_mini_batches(X, Y)
    np.random.seed(4)
    ours = create_mini_batches(X, Y)
    assert [b[0].shape[1] for b in ours] == [64, 64, 2]
    for (xa, ya), (xb, yb) in zip(ours, expected):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    seeded = create_mini_batches(X, Y, seed=4)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(seeded, expected))


def test_create_mini_batches_errors():
    with pytest.raises(ValueError, match="Y has 3 examples"):
        create_mini_batches(np.zeros((2, 4)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="Invalid mini_batch_size: 0"):
        create_mini_batches(np.zeros((2, 4)), np.zeros((1, 4)), 0)


def test_learning_rate_decay_by_hand():
    assert learning_rate_decay(0.1, 10, 0.1, "exponential") == pytest.approx(0.1 * np.exp(-1))
    assert learning_rate_decay(0.1, 10, 0.1, "1/t") == pytest.approx(0.05)
    assert learning_rate_decay(0.1, 25, 0.1, "step") == pytest.approx(0.025)  # halved twice
    assert learning_rate_decay(0.1, 50, 0.0, "cosine", total_epochs=100) == pytest.approx(0.05)
    assert learning_rate_decay(0.1, 100, 0.0, "cosine", total_epochs=100, min_lr=0.01) == pytest.approx(0.01)
    assert learning_rate_decay(0.1, 7, 0.3, "constant") == 0.1
    assert learning_rate_decay(0.1, 0, 0.5) == 0.1  # default is exponential
    with pytest.raises(ValueError, match="Invalid decay_type: 'linear'"):
        learning_rate_decay(0.1, 1, 0.1, "linear")
    with pytest.raises(ValueError, match="Invalid total_epochs: None"):
        learning_rate_decay(0.1, 1, 0.1, "cosine")

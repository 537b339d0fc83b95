"""The trainer recipes of docs/optimizers.md, each run with a tiny model, offline.

Hugging Face ``Trainer(optimizer_cls_and_kwargs=...)`` (a BERT of 2 layers built from a
local config, no download), a Lightning ``configure_optimizers``, and accelerate's
``prepare``. Schedule-Free is the optimizer of choice here: it checks that each trainer
calls ``optimizer.train()`` before training and that ``eval()`` puts the average in the
parameters before evaluation (Hugging Face and accelerate do it themselves; Lightning by
the recipe's hooks). Each test skips when its library is not installed (the ``dev`` extra
installs them); the Hugging Face one runs with ``-m slow``.
"""
from __future__ import annotations

import pytest
import torch

import inertia


def _moved(before, model):
    return any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.slow  # importing transformers alone takes seconds
def test_hugging_face_trainer_with_optimizer_cls_and_kwargs(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    gen = torch.Generator().manual_seed(0)
    data = [{"input_ids": torch.randint(0, 32, (8,), generator=gen), "labels": i % 2}
            for i in range(16)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=4,
        per_device_eval_batch_size=8, report_to=[], save_strategy="no", use_cpu=True,
        logging_strategy="no", disable_tqdm=True, lr_scheduler_type="constant")
    before = [p.detach().clone() for p in model.parameters()]
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data, eval_dataset=data,
        optimizer_cls_and_kwargs=(inertia.AdamWScheduleFree, {"lr": 1e-3, "warmup_steps": 2}))
    trainer.train()
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert isinstance(opt, inertia.AdamWScheduleFree)
    assert opt.param_groups[0]["k"] == 4 and _moved(before, model)
    # the Trainer's own groups: no weight decay on biases and LayerNorm weights
    assert {g["weight_decay"] for g in opt.param_groups} == {0.0, args.weight_decay}
    metrics = trainer.evaluate()
    assert opt.param_groups[0]["train_mode"] is False  # evaluate() called optimizer.eval()
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))


def test_lightning_configure_optimizers(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(),
                                           torch.nn.Linear(16, 16), torch.nn.Tanh(),
                                           torch.nn.Linear(16, 1))
            self.modes = []

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def validation_step(self, batch, _):
            self.modes.append(self.optimizers().optimizer.param_groups[0]["train_mode"])

        def configure_optimizers(self):
            return inertia.create("adamw-schedulefree", self, lr=1e-2, weight_decay=0.01)

        # the Schedule-Free recipe: y while training, the average x while validating
        def on_train_epoch_start(self):
            self.optimizers().optimizer.train()

        def on_validation_epoch_start(self):
            self.optimizers().optimizer.eval()

        def on_validation_epoch_end(self):
            self.optimizers().optimizer.train()

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=gen)
    data = torch.utils.data.DataLoader(list(zip(x, x.sum(1, keepdim=True))), batch_size=8)
    torch.manual_seed(0)
    module = Tiny()
    before = [p.detach().clone() for p in module.parameters()]
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=str(tmp_path))
    trainer.fit(module, data, data)
    opt = module.optimizers().optimizer
    assert isinstance(opt, inertia.AdamWScheduleFree) and opt.param_groups[0]["k"] == 8
    assert _moved(before, module)
    assert module.modes and not any(module.modes)  # validation ran on x
    assert opt.param_groups[0]["train_mode"]


def test_accelerate_prepare():
    accelerate = pytest.importorskip("accelerate")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=gen)
    data = torch.utils.data.DataLoader(list(zip(x, x.sum(1, keepdim=True))), batch_size=8)
    accelerator = accelerate.Accelerator(cpu=True)
    opt = inertia.create("muon", model, lr=0.02, adamw_lr=1e-3)
    model, opt, data = accelerator.prepare(model, opt, data)
    before = [p.detach().clone() for p in model.parameters()]
    first = last = None
    for epoch in range(5):
        for xb, yb in data:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            accelerator.backward(loss)
            opt.step()
            first = loss.item() if first is None else first
            last = loss.item()
    assert isinstance(opt.optimizer, inertia.Muon) and _moved(before, model)
    assert last < first
    # the hidden matrix stepped with Muon, the head (the last Linear) and biases with AdamW
    state = opt.optimizer.state
    assert sorted(state[model[0].weight]) == ["momentum_buffer"]
    assert sorted(state[model[2].weight]) == ["adamw_step", "exp_avg", "exp_avg_sq"]
    groups = opt.optimizer.param_groups
    assert [g.get("use_muon") for g in groups] == [None, False, False]

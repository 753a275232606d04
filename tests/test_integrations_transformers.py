"""rgprune.integrations.transformers.PruningCallback inside a real Hugging Face Trainer (a tiny BERT built
from a config, synthetic data, CPU, nothing downloaded): prunes on its schedule to the asked density, keeps
pruned weights and AdamW moments exactly 0 through every optimizer step (the Trainer's optimizer is an
Accelerate AcceleratedOptimizer), and rewinds to the weights of a chosen step (IMP inside Trainer)."""

import pytest
import torch

pytest.importorskip("accelerate")
transformers = pytest.importorskip("transformers")

from rgprune.integrations.transformers import PruningCallback  # noqa: E402


class Synthetic(torch.utils.data.Dataset):
    def __init__(self, n=48, length=12, vocab=64):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, length), generator=g)
        self.labels = self.ids[:, 0] % 2

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def training_args(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    return transformers.TrainingArguments(**{**values, **overrides})


def plus_zero(t):
    return t.detach().view(torch.int32) == 0  # +0.0 exactly (-0.0 is not)


class Checker(transformers.TrainerCallback):
    """Runs after PruningCallback: keeps the weights of the rewind step and checks each pruning event."""

    def __init__(self, pruning, rewind_step, at_steps):
        self.pruning, self.rewind_step, self.at_steps = pruning, rewind_step, at_steps
        self.saved, self.checked = None, []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        pruner = self.pruning.pruner
        if state.global_step == self.rewind_step:
            self.saved = {n: p.detach().clone() for n, p in zip(pruner.names, pruner.params)}
        if state.global_step in self.at_steps:
            for name, p, keep in zip(pruner.names, pruner.params, pruner.masks.to_bool()):
                assert torch.all(plus_zero(p)[~keep]), name
                assert torch.equal(p[keep], self.saved[name][keep]), name  # survivors rewound to that step
            assert len(self.pruning._optimizer.state) == 0  # a fresh optimizer state for the next round
            self.checked.append(state.global_step)


def test_trainer_prunes_to_the_target_keeps_weights_and_adamw_moments_zero_and_rewinds(tmp_path):
    model = tiny_bert()
    pruning = PruningCallback(at_steps=[3, 6], target_density=0.25, rewind_to_step=1)
    checker = Checker(pruning, 1, [3, 6])  # runs after pruning: callbacks run in order
    trainer = transformers.Trainer(
        model=model, args=training_args(tmp_path, max_steps=9), train_dataset=Synthetic(), callbacks=[pruning, checker]
    )
    trainer.train()

    pruner = pruning.pruner
    assert type(trainer.optimizer).__name__ == "AcceleratedOptimizer"
    assert checker.checked == [3, 6]
    assert [e["step"] for e in pruning.events] == [3, 6]
    assert pruner.num_survivors == round(0.25 * pruner.num_weights)  # exactly the asked density at the end
    assert pruning.events[0]["density"] == round(0.5 * pruner.num_weights) / pruner.num_weights  # 0.25**(1/2)
    assert "classifier.weight" not in pruner.names and not any("embeddings" in n for n in pruner.names)
    state = trainer.optimizer.optimizer.state
    for p, keep in zip(pruner.params, pruner.masks.to_bool()):
        assert torch.all(plus_zero(p)[~keep])
        assert torch.all(plus_zero(state[p]["exp_avg"])[~keep]) and torch.all(plus_zero(state[p]["exp_avg_sq"])[~keep])
        assert state[p]["exp_avg"][keep].abs().sum() > 0  # the survivors did train after the last event
    assert not pruner.attached  # detached when training ended


def test_epoch_schedule_by_fraction_with_the_optimizer_passed_to_the_trainer(tmp_path):
    model = tiny_bert()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    trainer = transformers.Trainer(
        model=model,
        args=training_args(tmp_path, num_train_epochs=2),
        train_dataset=Synthetic(n=32),
        optimizers=(optimizer, None),
    )
    pruning = PruningCallback(every_n_epochs=1, fraction=0.5, prune_head=True)
    trainer.add_callback(pruning)
    trainer.train()
    pruner = pruning.pruner
    assert [e["epoch"] for e in pruning.events] == [1.0, 2.0]
    assert pruner.num_survivors == round(0.5 * round(0.5 * pruner.num_weights))
    assert "classifier.weight" in pruner.names
    for p, keep in zip(pruner.params, pruner.masks.to_bool()):
        assert torch.all(plus_zero(p)[~keep])


def test_bad_schedules_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="exactly one schedule"):
        PruningCallback(fraction=0.2)
    with pytest.raises(ValueError, match="exactly one amount"):
        PruningCallback(at_steps=[2])
    with pytest.raises(ValueError, match="before the first pruning step"):
        PruningCallback(at_steps=[2], fraction=0.2, rewind_to_step=2)
    with pytest.raises(TypeError, match="unknown keyword"):
        PruningCallback(at_steps=[2], fraction=0.2, include_head=True)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        PruningCallback(at_steps=[2], target_density=1.5)
    pruning = PruningCallback(at_steps=[5], target_density=0.5)  # never reached in 2 steps
    trainer = transformers.Trainer(
        model=tiny_bert(), args=training_args(tmp_path, max_steps=2), train_dataset=Synthetic(n=16), callbacks=[pruning]
    )
    with pytest.raises(ValueError, match="no pruning event"):
        trainer.train()

"""rgprune.integrations.transformers.PruningCallback inside a real Hugging Face Trainer (a tiny BERT built
from a config, synthetic data, CPU, nothing downloaded): prunes on its schedule to the asked density, keeps
pruned weights and AdamW moments exactly 0 through every optimizer step (the Trainer's optimizer is an
Accelerate AcceleratedOptimizer), and rewinds to the weights of a chosen step (IMP inside Trainer); prunes on
the last step, and resumes from a Trainer checkpoint with its masks, events and rewind weights, to the very
weights of the run it continues."""

import warnings

import pytest
import torch

pytest.importorskip("accelerate")
transformers = pytest.importorskip("transformers")

from rgprune import GlobalMagnitudePruner  # noqa: E402
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

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        pruner = self.pruning.pruner
        if state.global_step == self.rewind_step:
            self.saved = {n: p.detach().clone() for n, p in zip(pruner.names, pruner.params)}
        if state.global_step in self.at_steps:
            for name, p, keep in zip(pruner.names, pruner.params, pruner.masks.to_bool()):
                assert torch.all(plus_zero(p)[~keep]), name
                assert torch.equal(p[keep], self.saved[name][keep]), name  # survivors rewound to that step
            assert len(optimizer.state) == 0  # a fresh optimizer state for the next round
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


def test_an_event_on_the_last_step_counts_in_the_schedule_of_densities(tmp_path):
    """at_steps=[3, 6, 9] with max_steps=9: three events, the j-th to density 0.25 ** (j / 3), the last one
    on the last step; and at_steps=[max_steps] alone is a schedule of one event, not "no pruning event"."""
    pruning = PruningCallback(at_steps=[3, 6, 9], target_density=0.25)
    trainer = transformers.Trainer(
        model=tiny_bert(), args=training_args(tmp_path, max_steps=9), train_dataset=Synthetic(), callbacks=[pruning]
    )
    trainer.train()
    n = pruning.pruner.num_weights
    assert [e["step"] for e in pruning.events] == [3, 6, 9]
    assert [e["density"] for e in pruning.events] == [round(0.25 ** (j / 3) * n) / n for j in (1, 2, 3)]

    last_only = PruningCallback(at_steps=[2], target_density=0.5)
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=training_args(tmp_path, max_steps=2),
        train_dataset=Synthetic(n=16),
        callbacks=[last_only],
    )
    trainer.train()
    assert [(e["step"], e["density"]) for e in last_only.events] == [(2, round(0.5 * n) / n)]


# ---- the last step, and resuming from a Trainer checkpoint ---------------------------------------------


def tiny_bert_without_dropout():
    model = tiny_bert()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # deterministic training: the resumed run can match the uninterrupted one bit for bit
    return model


class ZerosKept(transformers.TrainerCallback):
    """Runs after PruningCallback: after every optimizer step the pruned weights are +0 (no regrowth)."""

    def __init__(self, pruning):
        self.pruning, self.steps = pruning, []

    def on_step_end(self, args, state, control, **kwargs):
        pruner = self.pruning.pruner
        for name, p, keep in zip(pruner.names, pruner.params, pruner.masks.to_bool()):
            assert torch.all(plus_zero(p)[~keep]), (state.global_step, name)
        self.steps.append(state.global_step)


def resumable_run(tmp_path, resume_from=None, rewind_to_step=1, pruner=None):
    """12 steps (6 an epoch), checkpoints every 4, pruning after steps 3, 6 and the last, 12, rewinding to 1."""
    model = tiny_bert_without_dropout()
    pruning = PruningCallback(
        at_steps=[3, 6, 12], target_density=0.25, rewind_to_step=rewind_to_step, pruner=pruner and pruner(model)
    )
    zeros = ZerosKept(pruning)
    args = training_args(tmp_path, max_steps=12, save_strategy="steps", save_steps=4, data_seed=0)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Synthetic(), callbacks=[pruning, zeros])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(resume_from_checkpoint=resume_from)
    assert not [w for w in caught if "GlobalMagnitudePruner" in str(w.message)]  # no "already pruned" warning
    return pruning, zeros, model


def test_prunes_on_the_last_step_and_resumes_from_a_checkpoint_with_its_masks_and_rewind_weights(tmp_path):
    pruning, zeros, model = resumable_run(tmp_path)
    assert [e["step"] for e in pruning.events] == [3, 6, 12]  # the last step's event fires
    assert pruning.pruner.num_survivors == round(0.25 * pruning.pruner.num_weights)
    masks = pruning.pruner.masks.to_bool()
    weights = {n: t.clone() for n, t in model.state_dict().items()}

    resumed, resumed_zeros, resumed_model = resumable_run(tmp_path, resume_from=str(tmp_path / "checkpoint-8"))
    assert resumed_zeros.steps == [9, 10, 11, 12]  # pruned weights +0 after every step of the resumed run
    assert [e["step"] for e in resumed.events] == [3, 6, 12]  # 3 and 6 not done again, 12 done
    assert resumed.events == pruning.events
    assert resumed.pruner.num_survivors == pruning.pruner.num_survivors
    for name, keep, keep_resumed in zip(pruning.pruner.names, masks, resumed.pruner.masks.to_bool()):
        assert torch.equal(keep, keep_resumed), name
    for name, t in resumed_model.state_dict().items():  # same data order, RNG and optimizer state: bit for bit
        assert torch.equal(t, weights[name]), name


def test_a_resume_that_cannot_find_the_rewind_weights_is_refused(tmp_path):
    resumable_run(tmp_path)
    (tmp_path / "checkpoint-4" / "rgprune_pruning.pt").unlink()  # as a checkpoint saved without the callback
    with pytest.raises(ValueError, match="rewind_to_step=1: the weights of that step are not in the checkpoint"):
        resumable_run(tmp_path, resume_from=str(tmp_path / "checkpoint-4"))
    with pytest.raises(ValueError, match="kept those of rewind_to_step=1"):  # not another step's weights
        resumable_run(tmp_path, resume_from=str(tmp_path / "checkpoint-8"), rewind_to_step=2)


def test_a_checkpoint_without_the_callbacks_file_resumes_with_the_masks_of_the_weights_zeros(tmp_path):
    pruning, _, model = resumable_run(tmp_path, rewind_to_step=None)
    (tmp_path / "checkpoint-8" / "rgprune_pruning.pt").unlink()
    for pruner in (None, GlobalMagnitudePruner):  # built by the callback, or the user's (built before the resume)
        resumed, zeros, resumed_model = resumable_run(
            tmp_path, resume_from=str(tmp_path / "checkpoint-8"), rewind_to_step=None, pruner=pruner
        )
        assert zeros.steps == [9, 10, 11, 12]
        assert [e["step"] for e in resumed.events] == [12]  # the earlier events are not known, nor done again
        for keep, keep_resumed in zip(pruning.pruner.masks.to_bool(), resumed.pruner.masks.to_bool()):
            assert torch.equal(keep, keep_resumed)
        assert all(torch.equal(t, model.state_dict()[n]) for n, t in resumed_model.state_dict().items())


def test_an_epoch_event_after_a_checkpoint_at_the_epochs_last_step_is_done_when_resumed(tmp_path):
    def run(resume_from=None):  # 2 epochs of 6 steps; the checkpoint of step 6 is saved before epoch 1 ends
        model = tiny_bert_without_dropout()
        pruning = PruningCallback(every_n_epochs=1, fraction=0.5)
        args = training_args(tmp_path, num_train_epochs=2, save_strategy="steps", save_steps=6, data_seed=0)
        trainer = transformers.Trainer(model=model, args=args, train_dataset=Synthetic(), callbacks=[pruning])
        trainer.train(resume_from_checkpoint=resume_from)
        return pruning, model

    pruning, model = run()
    resumed, resumed_model = run(str(tmp_path / "checkpoint-6"))
    assert [(e["step"], e["epoch"]) for e in resumed.events] == [(6, 1.0), (12, 2.0)]
    assert resumed.pruner.num_survivors == pruning.pruner.num_survivors
    for keep, keep_resumed in zip(pruning.pruner.masks.to_bool(), resumed.pruner.masks.to_bool()):
        assert torch.equal(keep, keep_resumed)
    assert all(torch.equal(t, model.state_dict()[n]) for n, t in resumed_model.state_dict().items())

"""rgprune.integrations.lightning.PruningCallback inside a real ``lightning.Trainer`` (a tiny MLP, synthetic
data, CPU): prunes on its schedule to the asked density, with the masks of a pure-torch global magnitude
pruning (``torch.nn.utils.prune.global_unstructured`` + ``L1Unstructured`` on the same weights), keeps
pruned weights and Adam's moments exactly 0 after every optimizer step, rewinds to the weights of a chosen
step, and refuses bad options. ``import rgprune`` does not import lightning."""

import subprocess
import sys
import warnings

import pytest
import torch

lightning = pytest.importorskip("lightning")

import rgprune  # noqa: E402
from rgprune.integrations.lightning import PruningCallback  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's advice on workers, logging ...


class TinyModule(lightning.LightningModule):
    def __init__(self, optimizer="adam"):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32))
        self.fc = torch.nn.Linear(32, 4)  # a top-level "fc": the classifier head, dense by default
        self.optimizer = optimizer

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.fc(torch.relu(self.body(x))), y)

    def configure_optimizers(self):
        if self.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=1e-2)
        return torch.optim.SGD(self.parameters(), lr=1e-2, momentum=0.9)


def loader(n=32, batch_size=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=g)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long())
    return torch.utils.data.DataLoader(data, batch_size=batch_size)


def fit(module, callbacks, ckpt_path=None, **limits):
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **limits,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader(), ckpt_path=ckpt_path)
    return trainer


def plus_zero(t):
    return t.detach().view(torch.int32) == 0  # +0.0 exactly (-0.0 is not)


def torch_reference_masks(weights, previous, k):
    """Masks of torch.nn.utils.prune's global L1 pruning of k more of the survivors of ``previous``."""
    holders = []
    for w, keep in zip(weights, previous):
        holder = torch.nn.Module()
        holder.weight = torch.nn.Parameter(w.clone())
        torch.nn.utils.prune.custom_from_mask(holder, "weight", keep)
        holders.append(holder)
    params = [(h, "weight") for h in holders]
    torch.nn.utils.prune.global_unstructured(params, pruning_method=torch.nn.utils.prune.L1Unstructured, amount=k)
    return [h.weight_mask.bool() for h in holders]


class Before(lightning.Callback):
    """Runs before PruningCallback: the weights and masks every step ends with, before any pruning."""

    def __init__(self, pruning):
        self.pruning, self.seen = pruning, {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pruner = self.pruning.pruner
        self.seen[trainer.global_step] = (
            [p.detach().clone() for p in pruner.params],
            [m.clone() for m in pruner.masks.to_bool()],
        )


class After(lightning.Callback):
    """Runs after PruningCallback: after every optimizer step the pruned weights and Adam moments are +0;
    at each pruning event the masks are torch's and the survivors are the weights of the rewind step."""

    def __init__(self, pruning, before, rewind_step):
        self.pruning, self.before, self.rewind_step = pruning, before, rewind_step
        self.steps, self.events_checked = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pruner, step = self.pruning.pruner, trainer.global_step
        optimizer = trainer.optimizers[0]
        keeps = pruner.masks.to_bool()
        for name, p, keep in zip(pruner.names, pruner.params, keeps):
            assert torch.all(plus_zero(p)[~keep]), (step, name)
            for key in ("exp_avg", "exp_avg_sq"):
                if p in optimizer.state:  # cleared by a rewind, rebuilt at the next step
                    assert torch.all(plus_zero(optimizer.state[p][key])[~keep]), (step, name, key)
        self.steps.append(step)
        events = [e for e in self.pruning.events if e["step"] == step]
        if events:
            weights, previous = self.before.seen[step]
            reference = torch_reference_masks(weights, previous, events[0]["pruned"])
            saved = self.before.seen[self.rewind_step][0]
            for name, p, keep, ref, w0 in zip(pruner.names, pruner.params, keeps, reference, saved):
                assert torch.equal(keep, ref), (step, name)
                assert torch.equal(p[keep], w0[keep]), (step, name)  # survivors rewound to that step
            assert len(optimizer.state) == 0  # a fresh optimizer state for the next round
            self.events_checked.append(step)


def test_prunes_to_the_target_with_torchs_masks_keeps_weights_and_adam_moments_zero_and_rewinds():
    pruning = PruningCallback(at_steps=[3, 6], target_density=0.25, rewind_to_step=1)
    before = Before(pruning)
    after = After(pruning, before, rewind_step=1)
    trainer = fit(TinyModule(), [before, pruning, after], max_steps=9)  # 4 batches an epoch: events in 2 epochs

    pruner = pruning.pruner
    assert after.steps == list(range(1, 10))  # checked after every optimizer step
    assert after.events_checked == [3, 6]
    assert [e["step"] for e in pruning.events] == [3, 6]
    assert pruner.names == ["body.0.weight", "body.2.weight"]  # biases and the fc head stay dense
    assert pruner.num_survivors == round(0.25 * pruner.num_weights)  # exactly the asked density at the end
    assert pruning.events[0]["density"] == round(0.5 * pruner.num_weights) / pruner.num_weights  # 0.25**(1/2)
    state = trainer.optimizers[0].state
    for p in pruner.params:
        assert state[p]["exp_avg"].abs().sum() > 0  # the survivors did train after the last event
    assert not pruner.attached  # detached when training ended


def test_epoch_schedule_by_fraction_with_accumulation_and_an_epoch_cut_short():
    pruning = PruningCallback(every_n_epochs=1, fraction=0.5, prune_head=True)
    # 4 batches an epoch, accumulating 2: 2 optimizer steps an epoch; max_steps=5 cuts the third epoch short
    trainer = fit(TinyModule("sgd"), [pruning], max_steps=5, max_epochs=10, accumulate_grad_batches=2)
    pruner = pruning.pruner
    assert trainer.global_step == 5
    assert [(e["epoch"], e["step"]) for e in pruning.events] == [(1, 2), (2, 4)]
    assert pruner.num_survivors == round(0.5 * round(0.5 * pruner.num_weights))
    assert "fc.weight" in pruner.names
    momentum = trainer.optimizers[0].state
    for p, keep in zip(pruner.params, pruner.masks.to_bool()):
        assert torch.all(plus_zero(p)[~keep])
        assert torch.all(plus_zero(momentum[p]["momentum_buffer"])[~keep])


def test_step_schedule_counts_optimizer_steps_not_batches_under_accumulation():
    pruning = PruningCallback(at_steps=[2, 3], fraction=0.5)
    trainer = fit(TinyModule(), [pruning], max_steps=4, accumulate_grad_batches=2)  # 8 batches
    assert trainer.global_step == 4
    assert [e["step"] for e in pruning.events] == [2, 3]  # once each, though 2 batches end each step
    assert pruning.pruner.num_survivors == round(0.5 * round(0.5 * pruning.pruner.num_weights))


def test_bad_options_are_refused_before_training():
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
    with pytest.raises(ValueError, match="every_n_epochs must be a positive int"):
        PruningCallback(every_n_epochs=0, fraction=0.2)
    module = TinyModule()
    with pytest.raises(ValueError, match="no pruning event"):  # at step 5 of a 2-step training
        fit(module, [PruningCallback(at_steps=[5], target_density=0.5)], max_steps=2)
    with pytest.raises(ValueError, match="no pruning event"):  # the 3rd epoch of 2
        fit(module, [PruningCallback(every_n_epochs=3, target_density=0.5)], max_epochs=2)


def test_import_rgprune_does_not_need_lightning():
    code = (
        "import sys\n"
        "sys.modules['lightning'] = None\n"
        "sys.modules['pytorch_lightning'] = None\n"
        "import rgprune, rgprune.integrations\n"
        "assert not any(m.split('.')[0] in ('lightning', 'pytorch_lightning') and sys.modules[m] is not None "
        "for m in sys.modules)\n"
        "try:\n"
        "    import rgprune.integrations.lightning\n"
        "except ImportError:\n"
        "    print('needs lightning')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "needs lightning"


class SaveAt(lightning.Callback):
    """Saves a checkpoint after optimizer step ``step`` (after the callbacks listed before it)."""

    def __init__(self, step, path):
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step and not self.path.exists():
            trainer.save_checkpoint(self.path)


class WeightsAt(lightning.Callback):
    """Runs after PruningCallback: its masks when training starts, and the weights after optimizer step
    ``step`` (and its pruning event)."""

    def __init__(self, pruning, step):
        self.pruning, self.step, self.weights, self.start_masks = pruning, step, None, None

    def on_train_start(self, trainer, pl_module):
        self.start_masks = dict(zip(self.pruning.pruner.names, self.pruning.pruner.masks.to_bool()))

    def on_train_batch_end(self, trainer, pl_module, *args):
        if trainer.global_step == self.step:
            self.weights = {n: p.detach().clone() for n, p in pl_module.named_parameters()}


def test_a_fit_resumed_from_a_checkpoint_keeps_the_masks_events_and_rewind_weights(tmp_path):
    """The Lightning checkpoint carries the callback's state: resumed at step 5, the masks are the saved ones (a
    survivor that is exactly 0 stays one), the events go on, and the event at step 6 rewinds to step 1's
    weights. A checkpoint saved without the callback's state resumes with masks from the zeros and refuses the
    rewind, whose weights it lacks."""

    def schedule():
        return PruningCallback(at_steps=[2, 6], target_density=0.25, rewind_to_step=1)

    fit(TinyModule(), [schedule(), SaveAt(5, tmp_path / "step5.ckpt")], max_steps=8)
    checkpoint = torch.load(tmp_path / "step5.ckpt", weights_only=False)
    state = checkpoint["callbacks"]["PruningCallback"]
    weights = checkpoint["state_dict"]["body.0.weight"]
    survivor = int(torch.nonzero(weights.flatten())[0])
    weights.view(-1)[survivor] = 0.0  # exactly 0 at step 5, yet a survivor
    torch.save(checkpoint, tmp_path / "zero.ckpt")

    callback = schedule()
    after = WeightsAt(callback, 6)
    fit(TinyModule(), [callback, after], ckpt_path=tmp_path / "zero.ckpt", max_steps=8)
    assert callback.events[0] == state["events"][0] and [e["step"] for e in callback.events] == [2, 6]
    assert callback.pruner.density() == pytest.approx(0.25, abs=1e-3)
    saved = rgprune.MaskSet.from_state_dict(state["pruner"]["masks"]).to_bool()
    assert all(torch.equal(after.start_masks[n], m) for n, m in zip(callback.pruner.names, saved))
    assert after.start_masks["body.0.weight"].flatten()[survivor]  # the exact 0 resumed as a survivor
    keeps = dict(zip(callback.pruner.names, callback.pruner.masks.to_bool()))
    for name, keep in keeps.items():
        rewound = state["rewind_state"][name]
        assert torch.equal(after.weights[name][keep], rewound[keep]), name  # survivors at step 1's weights
        assert torch.all(plus_zero(after.weights[name])[~keep]), name

    checkpoint["callbacks"] = {}  # as saved by a Trainer without the callback
    torch.save(checkpoint, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match="saved without this callback's state"):
        fit(TinyModule(), [schedule()], ckpt_path=tmp_path / "bare.ckpt", max_steps=8)

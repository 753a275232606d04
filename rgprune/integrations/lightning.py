"""Global magnitude pruning inside a Lightning ``Trainer``: ``PruningCallback``.

>>> from rgprune.integrations.lightning import PruningCallback                      # doctest: +SKIP
>>> pruning = PruningCallback(every_n_epochs=1, target_density=0.2, rewind_to_step=0)  # doctest: +SKIP
>>> lightning.Trainer(max_epochs=5, callbacks=[pruning]).fit(module, train_loader)    # doctest: +SKIP

The same options as ``rgprune.integrations.transformers.PruningCallback``. When training starts the
callback builds a ``GlobalMagnitudePruner`` on the ``LightningModule`` (or uses the one it is given,
``pruner=``), attaches it to every optimizer of the Trainer that updates the pruned weights, so that after
every optimizer step the pruned weights and their optimizer state (momentum, Adam moments) are exactly 0,
prunes on its schedule, and detaches when training ends. The weights stay plain parameters: no
``weight_orig`` / ``weight_mask`` reparametrization, no forward hook, nothing to make permanent, and a
checkpoint saved by Lightning holds the pruned weights as zeros.

Schedules: ``at_steps=[...]`` (after those optimizer steps, ``trainer.global_step``; with gradient
accumulation a step is an optimizer step, not a batch) or ``every_n_epochs=N`` (at the end of every N-th
training epoch; an epoch cut short by ``max_steps`` does not count). Amount per event: ``fraction=`` of
the surviving weights, or ``target_density=``: the density after the last event of the run, reached
geometrically (after event j of E the density is ``target_density ** (j / E)``, E counted at the start
from ``max_steps`` / ``max_epochs`` and the batches per epoch).

IMP inside one ``fit()``: ``rewind_to_step=k`` keeps the weights (and buffers) of step k (0 = as training
begins) and after each pruning event resets the survivors to them, pruned weights staying 0, and clears
the optimizers' state (``reset_optimizer=True``), while the learning-rate schedule runs on. Lightning's
``ModelPruning(use_lottery_ticket_hypothesis=True)`` means ``rewind_to_step=0, reset_optimizer=False``
(``bench/lightning_vs_modelpruning.py`` compares them).

Resuming (``trainer.fit(..., ckpt_path=...)``): every Lightning checkpoint holds the callback's state (its
``state_dict``: the exact masks, the events so far and the rewind weights, CPU tensors), so a resumed fit goes
on as if uninterrupted, a survivor that is exactly 0 staying a survivor. From a checkpoint without that state
(saved without the callback) the masks are rebuilt from the weights' exact zeros, and rewinds still to come are
refused, their weights being lost.

Selection: the pruner's names are those of the ``LightningModule``, so a classifier head held inside it
(``self.model.fc``) is not recognized as a head (``rgprune.prunable.HEAD_MODULE_NAMES`` are top-level
names): pass ``exclude="model.fc.*"`` to keep it dense, or build the pruner yourself.
"""

from __future__ import annotations

import math

from lightning.pytorch import Callback

from rgprune.integrations.schedule import PruningSchedule

__all__ = ["PruningCallback"]


def _finite(value) -> float:
    """A Trainer limit as a number: None and -1 (Lightning's "no limit") are infinite."""
    return math.inf if value is None or value == -1 else value


class PruningCallback(PruningSchedule, Callback):
    """Prune the ``LightningModule`` on a schedule and keep the masks through every optimizer step.

    Exactly one of ``at_steps`` / ``every_n_epochs`` and one of ``fraction`` / ``target_density``;
    ``rewind_to_step``, ``reset_optimizer``. ``pruner``: a ``GlobalMagnitudePruner`` of the module;
    otherwise one is built with the selection keywords (``include``, ``exclude``, ``prune_embeddings``,
    ``prune_head``, ``process_group``, ``masks_from``). ``events`` lists what each pruning event did.
    """

    _last_step = -1
    _resumed: dict | None = None  # the state a checkpoint held, until the resumed training starts
    _checkpoint_hint = "it was saved without this callback's state"

    # ---- Lightning checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Saved with every checkpoint: what resuming the schedule exactly needs (empty before training)."""
        return {} if self.pruner is None else self._checkpoint_state(self._last_step)

    def load_state_dict(self, state_dict: dict) -> None:
        self._resumed = dict(state_dict) or None

    # ---- Lightning events -------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        step, epoch = trainer.global_step, trainer.current_epoch
        horizon = f"max_steps={trainer.max_steps}, max_epochs={trainer.max_epochs}"
        if self.at_steps:
            planned = self._steps_planned(trainer.estimated_stepping_batches)
            done = sum(1 for s in self.at_steps if s <= step)
        else:
            epochs = _finite(trainer.max_epochs)
            if trainer.max_steps != -1:
                batches = trainer.num_training_batches  # inf for an unsized dataloader: no epoch length
                if not math.isinf(batches):  # only whole epochs count
                    epochs = min(epochs, trainer.max_steps // math.ceil(batches / trainer.accumulate_grad_batches))
            planned = self._epochs_planned(epochs)
            done = epoch // self.every_n_epochs
        self._last_step = step
        resumed, self._resumed = (self._resumed if step > 0 else None), None
        self._begin(
            pl_module,
            trainer.optimizers,
            global_step=step,
            planned=planned,
            done=done,
            horizon=horizon,
            resumed=resumed,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step != self._last_step:  # an optimizer step was taken (not with every batch under accumulation)
            self._last_step = step
            self._after_step(pl_module, step, epoch=trainer.current_epoch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.every_n_epochs:
            return
        epochs = trainer.current_epoch + 1  # current_epoch counts from 0 until this epoch has ended
        event = epochs // self.every_n_epochs
        if epochs % self.every_n_epochs == 0 and (self._planned is None or event <= self._planned):
            self._prune(event, step=trainer.global_step, epoch=epochs)

    def on_train_end(self, trainer, pl_module) -> None:
        self._end()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._end()

"""Global magnitude pruning inside the Hugging Face ``Trainer``: ``PruningCallback``.

>>> from rgprune.integrations.transformers import PruningCallback                # doctest: +SKIP
>>> pruning = PruningCallback(every_n_epochs=1, target_density=0.2)              # doctest: +SKIP
>>> Trainer(model=model, args=args, train_dataset=train, callbacks=[pruning]).train()  # doctest: +SKIP

The callback builds a ``GlobalMagnitudePruner`` on the Trainer's model when training begins (or uses the
one it is given), attaches it to the Trainer's optimizer (an Accelerate ``AcceleratedOptimizer``: the
hook goes on the optimizer inside it), so that after every optimizer step the pruned weights and their
AdamW moments are exactly 0, prunes on its schedule, and detaches when training ends.

Schedules: ``at_steps=[...]`` (after those optimizer steps; the last one, ``max_steps``, included: its
event comes before the Trainer saves that step's checkpoint and ends training) or ``every_n_epochs=N`` (at
the end of every N-th epoch). Amount per event: ``fraction=`` of the surviving weights, or
``target_density=``: the density after the last event of the run, reached geometrically (after event j of
E the density is ``target_density ** (j / E)``, E counted from ``max_steps`` / ``num_train_epochs`` at the
start).

IMP inside one ``train()`` call: ``rewind_to_step=k`` keeps the weights (and buffers) of step k (0 = as
training begins) and after each pruning event resets the survivors to them, pruned weights staying 0; the
optimizer's state is cleared with it (``reset_optimizer=True``: every round starts like a fresh training
from step k), while the learning-rate schedule runs on. Resuming from a Trainer checkpoint rebuilds the
masks; see "Checkpoints" below.

Checkpoints: the Trainer's checkpoint holds the weights (pruned ones as zeros) and the optimizer state, not
the callback; so with every checkpoint the callback writes ``rgprune_pruning.pt`` (``CHECKPOINT_FILE``)
into the checkpoint folder: the masks, the events so far, and the weights of ``rewind_to_step`` once kept.
``trainer.train(resume_from_checkpoint=...)`` with a new callback of the same options then goes on
exactly: the masks are those saved (pruned weights stay 0 after every step: the pruner is attached to the
new optimizer), events up to the checkpoint's step are not done again, later ones are, the coming rewinds
go to the saved weights, and no "already pruned" warning is given. The callback looks for the file in
``output_dir/checkpoint-<step>`` (and ``args.resume_from_checkpoint``): a checkpoint resumed from
elsewhere, or saved without the file, gives masks from the weights' exact zeros, and a resume that still
has rewinds to do but no saved rewind weights is refused (ValueError) rather than rewound to other weights.
"""

from __future__ import annotations

import os

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from rgprune.integrations.schedule import PruningSchedule

__all__ = ["PruningCallback", "CHECKPOINT_FILE"]

#: the file the callback writes into each checkpoint folder of the Trainer: masks, events, rewind weights
CHECKPOINT_FILE = "rgprune_pruning.pt"


class PruningCallback(PruningSchedule, TrainerCallback):
    """Prune the Trainer's model on a schedule and keep the masks through every optimizer step.

    Exactly one of ``at_steps`` / ``every_n_epochs`` and one of ``fraction`` / ``target_density``.
    ``pruner``: a ``GlobalMagnitudePruner`` of the Trainer's model; otherwise one is built with the
    selection keywords (``include``, ``exclude``, ``prune_embeddings``, ``prune_head``, ``process_group``,
    ``masks_from``). ``events`` lists what each pruning event did. (Options, validation, events and
    rewinding: ``rgprune.integrations.schedule.PruningSchedule``, shared with the Lightning callback.)
    """

    # ---- Trainer events ---------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if optimizer is None or model is None:
            raise ValueError(
                "PruningCallback needs the Trainer's model and optimizer when training begins; this "
                "Trainer passed none (transformers passes them to callbacks from 4.x on): upgrade "
                "transformers"
            )
        if self.at_steps:
            planned = self._steps_planned(state.max_steps)
            done = sum(1 for s in self.at_steps if s <= state.global_step)
        else:
            planned = self._epochs_planned(state.num_train_epochs)
            done = int(state.epoch or 0) // self.every_n_epochs
        resumed = self._find_checkpoint_state(args, state.global_step) if state.global_step > 0 else None
        self._begin(
            model,
            [optimizer],
            global_step=state.global_step,
            planned=planned,
            done=done,
            horizon=f"{state.max_steps} steps, {state.num_train_epochs} epochs",
            resumed=resumed,
        )
        if self.every_n_epochs and resumed is not None:
            # a checkpoint saved by steps at the last step of an epoch comes before that epoch's end, and so
            # before its event: the resumed Trainer starts the next epoch, so the event is done here
            for event in range(len(self.events) + 1, done + 1):
                self._prune(event, step=state.global_step, epoch=float(event * self.every_n_epochs))

    def on_save(self, args, state, control, **kwargs):
        """The Trainer has just saved a checkpoint: add the masks, events and rewind weights to its folder."""
        if self.pruner is None or not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(folder):  # (a hyperparameter search saves elsewhere: nothing is added there)
            torch.save(self._checkpoint_state(state.global_step), os.path.join(folder, CHECKPOINT_FILE))

    def _find_checkpoint_state(self, args, global_step: int) -> dict | None:
        """What ``on_save`` wrote with the checkpoint of ``global_step``: a callback learns neither the path
        passed to ``train(resume_from_checkpoint=...)`` nor the Trainer, so it looks in the Trainer's own
        checkpoint folder ``output_dir/checkpoint-<step>`` (``resume_from_checkpoint=True`` or a folder of
        ``output_dir``) and in ``args.resume_from_checkpoint``."""
        folders = [os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{global_step}")]
        if isinstance(getattr(args, "resume_from_checkpoint", None), str):
            folders.insert(0, args.resume_from_checkpoint)
        self._checkpoint_hint = f"no {CHECKPOINT_FILE} of step {global_step} in {' or '.join(folders)}"
        for folder in folders:
            path = os.path.join(folder, CHECKPOINT_FILE)
            if os.path.isfile(path):
                saved = torch.load(path, map_location="cpu", weights_only=True)
                if saved.get("step") == global_step:
                    if saved.get("rewind_to_step") != self.rewind_to_step:  # the weights of another step
                        self._checkpoint_hint = f"{path} kept those of rewind_to_step={saved.get('rewind_to_step')}"
                        saved = {**saved, "rewind_state": None}
                    return saved
        return None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._after_step(model, state.global_step, epoch=state.epoch)

    def on_epoch_end(self, args, state, control, **kwargs):
        epochs = round(state.epoch)
        if self.every_n_epochs and epochs % self.every_n_epochs == 0:
            self._prune(epochs // self.every_n_epochs, step=state.global_step, epoch=state.epoch)

    def on_train_end(self, args, state, control, **kwargs):
        self._end()

"""Global magnitude pruning inside the Hugging Face ``Trainer``: ``PruningCallback``.

>>> from rgprune.integrations.transformers import PruningCallback                # doctest: +SKIP
>>> pruning = PruningCallback(every_n_epochs=1, target_density=0.2)              # doctest: +SKIP
>>> Trainer(model=model, args=args, train_dataset=train, callbacks=[pruning]).train()  # doctest: +SKIP

The callback builds a ``GlobalMagnitudePruner`` on the Trainer's model when training begins (or uses the
one it is given), attaches it to the Trainer's optimizer (an Accelerate ``AcceleratedOptimizer``: the
hook goes on the optimizer inside it), so that after every optimizer step the pruned weights and their
AdamW moments are exactly 0, prunes on its schedule, and detaches when training ends.

Schedules: ``at_steps=[...]`` (after those optimizer steps) or ``every_n_epochs=N`` (at the end of every
N-th epoch). Amount per event: ``fraction=`` of the surviving weights, or ``target_density=``: the density
after the last event of the run, reached geometrically (after event j of E the density is
``target_density ** (j / E)``, E counted from ``max_steps`` / ``num_train_epochs`` at the start).

IMP inside one ``train()`` call: ``rewind_to_step=k`` keeps the weights (and buffers) of step k (0 = as
training begins) and after each pruning event resets the survivors to them, pruned weights staying 0; the
optimizer's state is cleared with it (``reset_optimizer=True``: every round starts like a fresh training
from step k), while the learning-rate schedule runs on. Resuming from a Trainer checkpoint rebuilds the
masks from the weights' exact zeros; a ``rewind_to_step`` before the resumed step cannot be resumed (its
weights were not saved).
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import TrainerCallback

from rgprune.optim_hooks import hookable_optimizer
from rgprune.pruner import GlobalMagnitudePruner

__all__ = ["PruningCallback"]

_SELECTION_KEYS = ("include", "exclude", "prune_embeddings", "prune_head", "process_group", "masks_from")


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


class PruningCallback(TrainerCallback):
    """Prune the Trainer's model on a schedule and keep the masks through every optimizer step.

    Exactly one of ``at_steps`` / ``every_n_epochs`` and one of ``fraction`` / ``target_density``.
    ``pruner``: a ``GlobalMagnitudePruner`` of the Trainer's model; otherwise one is built with the
    selection keywords (``include``, ``exclude``, ``prune_embeddings``, ``prune_head``, ``process_group``,
    ``masks_from``). ``events`` lists what each pruning event did.
    """

    def __init__(
        self,
        *,
        at_steps: Sequence[int] | None = None,
        every_n_epochs: int | None = None,
        fraction: float | None = None,
        target_density: float | None = None,
        rewind_to_step: int | None = None,
        reset_optimizer: bool = True,
        pruner: GlobalMagnitudePruner | None = None,
        **selection,
    ):
        if (at_steps is None) == (every_n_epochs is None):
            raise ValueError("pass exactly one schedule: at_steps=[...] (optimizer steps) or every_n_epochs=N")
        if (fraction is None) == (target_density is None):
            raise ValueError(
                "pass exactly one amount: fraction= (share of the survivors per event) or "
                "target_density= (density after the last event)"
            )
        for name, value in (("fraction", fraction), ("target_density", target_density)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1
            ):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        unknown = sorted(set(selection) - set(_SELECTION_KEYS))
        if unknown:
            raise TypeError(f"unknown keyword arguments {unknown}; the pruner's selection takes {_SELECTION_KEYS}")
        if pruner is not None and (selection or not isinstance(pruner, GlobalMagnitudePruner)):
            raise ValueError("pass either pruner= (a GlobalMagnitudePruner) or selection keywords, not both")
        self.at_steps = sorted({_positive_int(s, "each of at_steps") for s in at_steps}) if at_steps else None
        if at_steps is not None and not self.at_steps:
            raise ValueError("at_steps is empty: name the optimizer steps after which to prune")
        self.every_n_epochs = None if every_n_epochs is None else _positive_int(every_n_epochs, "every_n_epochs")
        if rewind_to_step is not None:
            if isinstance(rewind_to_step, bool) or not isinstance(rewind_to_step, int) or rewind_to_step < 0:
                raise ValueError(
                    f"rewind_to_step must be an int >= 0 (0 = the weights as training begins), got {rewind_to_step!r}"
                )
            if self.at_steps and self.at_steps[0] <= rewind_to_step:
                raise ValueError(
                    f"rewind_to_step={rewind_to_step} must come before the first pruning step {self.at_steps[0]}"
                )
        self.pruner, self.selection = pruner, selection
        self.fraction, self.target_density = fraction, target_density
        self.rewind_to_step, self.reset_optimizer = rewind_to_step, reset_optimizer
        self.events: list[dict] = []
        self._rewind_state: dict | None = None
        self._optimizer = None
        self._planned = 0

    # ---- Trainer events ---------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if optimizer is None or model is None:
            raise ValueError(
                "PruningCallback needs the Trainer's model and optimizer when training begins; this "
                "Trainer passed none (transformers passes them to callbacks from 4.x on): upgrade "
                "transformers"
            )
        self._rewind_state = None
        if self.pruner is None:
            selection = dict(self.selection)
            if state.global_step > 0:  # resumed from a checkpoint: the saved weights carry the masks as zeros
                selection.setdefault("masks_from", "zeros")
            self.pruner = GlobalMagnitudePruner(model, **selection)
        self._planned = self._count_events(state)
        done = self._events_before(state)
        if self.rewind_to_step is not None and self.rewind_to_step < state.global_step and done < self._planned:
            raise ValueError(
                f"resuming at step {state.global_step}, after rewind_to_step={self.rewind_to_step}: the "
                f"weights of that step were not saved, so the coming rewinds cannot be done"
            )
        if self.target_density is not None and self._planned == 0:
            raise ValueError(
                f"the schedule has no pruning event within this training ({state.max_steps} steps, "
                f"{state.num_train_epochs} epochs): target_density={self.target_density} cannot be "
                f"reached"
            )
        self._optimizer = hookable_optimizer(optimizer)
        self.pruner.attach(self._optimizer)
        if self.rewind_to_step == state.global_step:
            self._save_rewind_state(model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.rewind_to_step is not None and state.global_step == self.rewind_to_step and self._rewind_state is None:
            self._save_rewind_state(model)
        if self.at_steps and state.global_step in self.at_steps:
            self._prune(state, self.at_steps.index(state.global_step) + 1)

    def on_epoch_end(self, args, state, control, **kwargs):
        epochs = round(state.epoch)
        if self.every_n_epochs and epochs % self.every_n_epochs == 0:
            self._prune(state, epochs // self.every_n_epochs)

    def on_train_end(self, args, state, control, **kwargs):
        if self.pruner is not None:
            self.pruner.detach()

    # ---- schedule -------------------------------------------------------------------------------------
    def _count_events(self, state) -> int:
        if self.at_steps:
            return sum(1 for s in self.at_steps if s <= state.max_steps)
        return int(state.num_train_epochs) // self.every_n_epochs

    def _events_before(self, state) -> int:
        """Events of the schedule already past at ``state`` (non-zero when resuming from a checkpoint)."""
        if self.at_steps:
            return sum(1 for s in self.at_steps if s <= state.global_step)
        return int(state.epoch or 0) // self.every_n_epochs

    def _prune(self, state, event: int) -> None:
        """Pruning event number ``event`` (1-based) of the schedule."""
        if self.fraction is not None:
            report = self.pruner.prune(fraction=self.fraction)
        else:
            report = self.pruner.prune(
                target_density=self.target_density ** (min(event, self._planned) / self._planned)
            )
        if self.rewind_to_step is not None:
            self._rewind()
        self.events.append(
            {
                "step": state.global_step,
                "epoch": state.epoch,
                "pruned": report.k,
                "density": report.density,
                "rewound_to_step": self.rewind_to_step,
            }
        )

    # ---- rewinding --------------------------------------------------------------------------------------
    def _save_rewind_state(self, model) -> None:
        self._rewind_state = {n: t.detach().to("cpu", copy=True) for n, t in model.state_dict().items()}

    def _rewind(self) -> None:
        if self._rewind_state is None:
            raise ValueError(f"rewind_to_step={self.rewind_to_step} is after this pruning event: prune after it")
        self.pruner.rewind(self._rewind_state)
        if self.reset_optimizer:
            self._optimizer.state.clear()  # AdamW/SGD rebuild their state at the next step, as a fresh run

"""What the training-framework callbacks (``rgprune.integrations.transformers`` / ``.lightning``) share: their
options and their validation, the amount of each pruning event, the record of events, and rewinding
(IMP inside one training run). Needs no framework: each callback maps its framework's events onto
``_begin`` / ``_after_step`` / ``_prune`` / ``_end``."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rgprune.masks import MaskSet
from rgprune.optim_hooks import hookable_optimizer
from rgprune.pruner import GlobalMagnitudePruner

__all__ = ["PruningSchedule", "SELECTION_KEYS"]

SELECTION_KEYS = ("include", "exclude", "prune_embeddings", "prune_head", "process_group", "masks_from")


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


class PruningSchedule:
    """The options of a pruning callback, validated before training, and what its events do.

    Exactly one of ``at_steps`` (optimizer steps after which to prune) / ``every_n_epochs`` and one of
    ``fraction`` (share of the survivors per event) / ``target_density`` (density after the last event,
    reached geometrically: after event j of E it is ``target_density ** (j / E)``). ``rewind_to_step=k``
    keeps the weights (and buffers) of step k and resets the survivors to them after each event, the
    optimizers' state cleared with it when ``reset_optimizer``.
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
        unknown = sorted(set(selection) - set(SELECTION_KEYS))
        if unknown:
            raise TypeError(f"unknown keyword arguments {unknown}; the pruner's selection takes {SELECTION_KEYS}")
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
        self._given_pruner = pruner is not None
        self.fraction, self.target_density = fraction, target_density
        self.rewind_to_step, self.reset_optimizer = rewind_to_step, reset_optimizer
        self.events: list[dict] = []
        self._rewind_state: dict | None = None
        self._optimizers: list = []
        self._planned = 0

    # ---- training begins / steps / ends ---------------------------------------------------------------
    def _begin(
        self,
        model,
        optimizers,
        *,
        global_step: int,
        planned: int | None,
        done: int,
        horizon: str,
        resumed: dict | None = None,
    ) -> None:
        """Training begins at ``global_step`` (> 0 when resumed) with ``planned`` events in all (None: not
        known) of which ``done`` are past; ``horizon`` tells the training's length in words for errors.
        ``resumed``: what ``_checkpoint_state`` saved with the checkpoint resumed from (None: nothing was
        found, the masks are then the weights' exact zeros)."""
        self._rewind_state = None
        if not self._given_pruner and (self.pruner is None or global_step > 0):
            selection = dict(self.selection)
            if global_step > 0:  # resumed from a checkpoint: the saved weights carry the masks as zeros
                selection.setdefault("masks_from", "zeros")
            self.pruner = GlobalMagnitudePruner(model, **selection)
        elif global_step > 0 and resumed is None:  # a pruner of the user's, built before the weights were loaded
            self.pruner.masks = MaskSet.from_nonzero(self.pruner._weights(), names=self.pruner.names)
        if resumed is not None:
            self.pruner.load_state_dict(resumed["pruner"])  # the exact masks (a survivor may be exactly 0)
            self.events = [dict(e) for e in resumed["events"]]
            self._rewind_state = resumed.get("rewind_state")
        if self.target_density is not None and planned is None:
            raise ValueError(
                f"the number of pruning events within this training ({horizon}) cannot be told in advance, so "
                f"target_density={self.target_density} cannot be spread over them: pass fraction=, or "
                f"at_steps=[...], or give the training a known length"
            )
        self._planned = planned
        events_left = planned is None or done < planned
        if (
            self.rewind_to_step is not None
            and self.rewind_to_step < global_step
            and events_left
            and self._rewind_state is None
        ):
            raise ValueError(
                f"resuming at step {global_step}, after rewind_to_step={self.rewind_to_step}: the weights of "
                f"that step are not in the checkpoint resumed from ({self._checkpoint_hint}), so the coming "
                f"rewinds cannot be done"
            )
        if self.target_density is not None and planned == 0:
            raise ValueError(
                f"the schedule has no pruning event within this training ({horizon}): "
                f"target_density={self.target_density} cannot be reached"
            )
        ours = {id(p) for p in self.pruner.params}
        targets = [hookable_optimizer(o) for o in optimizers]
        self._optimizers = [
            o for o in targets if any(id(p) in ours for group in o.param_groups for p in group["params"])
        ]
        if not self._optimizers:
            raise ValueError(
                "no optimizer of this training updates the pruned parameters: build the optimizer from the "
                "model's parameters (the pruner keeps the masks through its steps)"
            )
        for optimizer in self._optimizers:
            self.pruner.attach(optimizer)
        if self.rewind_to_step == global_step and self._rewind_state is None:
            self._save_rewind_state(model)

    _checkpoint_hint = "this callback does not save them with its checkpoints"

    def _checkpoint_state(self, global_step: int) -> dict:
        """What a checkpoint at ``global_step`` must hold to resume the schedule exactly: the masks, the
        events so far and the rewind weights (CPU tensors and plain values: ``torch.load(weights_only=True)``)."""
        return {
            "format": 1,
            "step": global_step,
            "pruner": self.pruner.state_dict(),
            "events": [dict(e) for e in self.events],
            "rewind_to_step": self.rewind_to_step,
            "rewind_state": self._rewind_state,
        }

    def _after_step(self, model, global_step: int, epoch=None) -> None:
        """After optimizer step ``global_step``: keep the rewind weights, prune if the schedule says so."""
        if self.rewind_to_step is not None and global_step == self.rewind_to_step and self._rewind_state is None:
            self._save_rewind_state(model)
        if self.at_steps and global_step in self.at_steps:
            self._prune(self.at_steps.index(global_step) + 1, step=global_step, epoch=epoch)

    def _end(self) -> None:
        if self.pruner is not None:
            self.pruner.detach()

    # ---- schedule -------------------------------------------------------------------------------------
    def _steps_planned(self, total_steps: float) -> int:
        return sum(1 for s in self.at_steps if s <= total_steps)

    def _epochs_planned(self, total_epochs: float) -> int | None:
        return None if math.isinf(total_epochs) else int(total_epochs) // self.every_n_epochs

    def _prune(self, event: int, *, step: int, epoch=None) -> None:
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
                "step": step,
                "epoch": epoch,
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
            for optimizer in self._optimizers:
                optimizer.state.clear()  # AdamW/SGD rebuild their state at the next step, as a fresh run

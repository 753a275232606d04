"""rgprune.integrations.lightning, the arithmetic of its Lightning events with a stand-in Trainer (only the
attributes the callback reads): the tests that kill the mutants `make mutation AREA=lightning` found alive
(docs/mutation.md). The real Trainer runs in test_integrations_lightning.py."""

import math
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("lightning")

from rgprune.integrations.lightning import PruningCallback, _finite  # noqa: E402


def trainer(net, step=0, epoch=0, max_steps=-1, max_epochs=-1, batches=4, accumulate=1):
    return SimpleNamespace(
        global_step=step,
        current_epoch=epoch,
        max_steps=max_steps,
        max_epochs=max_epochs,
        estimated_stepping_batches=max_steps,
        num_training_batches=batches,
        accumulate_grad_batches=accumulate,
        optimizers=[torch.optim.SGD(net.parameters(), lr=0.1)],
    )


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))


def test_lightnings_no_limit_values_are_infinite():
    assert _finite(None) == math.inf and _finite(-1) == math.inf
    assert _finite(0) == 0 and _finite(1) == 1 and _finite(7) == 7


def test_a_resume_at_the_last_events_step_has_no_rewind_to_come():
    """An event at exactly the resumed step is past: no rewind is left, so the missing rewind weights are no
    error there, while one step earlier they are."""
    net = model()
    PruningCallback(at_steps=[4, 8], fraction=0.2, rewind_to_step=0).on_train_start(trainer(net, 8, max_steps=8), net)
    early = PruningCallback(at_steps=[4, 8], fraction=0.2, rewind_to_step=0)
    with pytest.raises(ValueError, match="resuming at step 4, after rewind_to_step=0"):
        early.on_train_start(trainer(net, 4, max_steps=8), net)

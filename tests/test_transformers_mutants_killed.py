"""rgprune.integrations.transformers, the arithmetic of its Trainer events with stand-in Trainer arguments and
state (only the attributes the callback reads): the tests that kill the mutants `make mutation
AREA=transformers` found alive (docs/mutation.md). The real Trainer runs in test_integrations_transformers.py."""

import os
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("transformers")

from rgprune.integrations.transformers import CHECKPOINT_FILE, PruningCallback  # noqa: E402


def begin(callback, tmp_path, step, resume_from=None, epoch=0.0):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    args = SimpleNamespace(output_dir=str(tmp_path), resume_from_checkpoint=resume_from)
    state = SimpleNamespace(global_step=step, max_steps=8, num_train_epochs=4, epoch=epoch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    callback.on_train_begin(args, state, None, model=model, optimizer=optimizer)


def test_a_resume_at_the_last_events_step_has_no_rewind_to_come(tmp_path):
    """An event at exactly the resumed step is past: no rewind is left, so the missing rewind weights are no
    error there, while one step earlier they are."""
    begin(PruningCallback(at_steps=[4, 8], fraction=0.2, rewind_to_step=0), tmp_path, 8)
    with pytest.raises(ValueError, match="resuming at step 4, after rewind_to_step=0"):
        begin(PruningCallback(at_steps=[4, 8], fraction=0.2, rewind_to_step=0), tmp_path, 4)


def test_the_folder_resumed_from_is_searched_before_output_dir(tmp_path):
    resumed = tmp_path / "elsewhere"
    expected = f"no {CHECKPOINT_FILE} of step 4 in {resumed} or {os.path.join(tmp_path, 'checkpoint-4')}"
    with pytest.raises(ValueError, match="weights of that step are not in the checkpoint") as error:
        begin(PruningCallback(at_steps=[4, 8], fraction=0.2, rewind_to_step=0), tmp_path, 4, str(resumed))
    assert expected in str(error.value)


def test_an_epoch_schedule_resumed_without_its_file_replays_no_event(tmp_path):
    """Without the callback's file the masks come from the weights' zeros; the past events are not redone."""
    callback = PruningCallback(every_n_epochs=1, fraction=0.2)
    begin(callback, tmp_path, 6, epoch=2.0)
    assert callback.events == [] and callback.pruner.density() == 1.0


def test_an_epoch_event_replayed_on_resume_records_its_epoch(tmp_path):
    """A checkpoint saved by steps at the last step of epoch 2 comes before that epoch's event: the resumed
    callback does it when training begins, as the event of epoch 2."""
    first = PruningCallback(every_n_epochs=2, fraction=0.2)
    begin(first, tmp_path, 0)
    (tmp_path / "checkpoint-6").mkdir()
    state = SimpleNamespace(global_step=6, is_world_process_zero=True)
    first.on_save(SimpleNamespace(output_dir=str(tmp_path)), state, None)
    resumed = PruningCallback(every_n_epochs=2, fraction=0.2)
    begin(resumed, tmp_path, 6, epoch=2.0)
    assert [(e["epoch"], e["step"]) for e in resumed.events] == [(2.0, 6)]


def test_a_trainer_without_model_or_optimizer_is_refused():
    callback = PruningCallback(at_steps=[4], fraction=0.2)
    state = SimpleNamespace(global_step=0, max_steps=8, num_train_epochs=1, epoch=0.0)
    model = torch.nn.Linear(4, 4)
    for kwargs in ({"model": model}, {"optimizer": torch.optim.SGD(model.parameters(), lr=0.1)}):
        with pytest.raises(ValueError, match="needs the Trainer's model and optimizer"):
            callback.on_train_begin(SimpleNamespace(output_dir="."), state, None, **kwargs)


def test_only_the_main_process_of_a_started_training_writes_the_checkpoint_file(tmp_path):
    (tmp_path / "checkpoint-6").mkdir()
    args = SimpleNamespace(output_dir=str(tmp_path))
    unstarted = PruningCallback(at_steps=[4], fraction=0.2)
    unstarted.on_save(args, SimpleNamespace(global_step=6, is_world_process_zero=True), None)  # no pruner yet
    started = PruningCallback(at_steps=[4], fraction=0.2)
    begin(started, tmp_path, 0)
    started.on_save(args, SimpleNamespace(global_step=6, is_world_process_zero=False), None)
    assert not (tmp_path / "checkpoint-6" / CHECKPOINT_FILE).exists()
    started.on_save(args, SimpleNamespace(global_step=6, is_world_process_zero=True), None)
    assert (tmp_path / "checkpoint-6" / CHECKPOINT_FILE).exists()


def test_a_resume_from_the_first_step_loads_the_callbacks_file(tmp_path):
    first = PruningCallback(at_steps=[1, 4], fraction=0.5)
    begin(first, tmp_path, 0)
    state = SimpleNamespace(global_step=1, epoch=0.1, is_world_process_zero=True)
    first.on_step_end(None, state, None, model=first.pruner.model)
    (tmp_path / "checkpoint-1").mkdir()
    first.on_save(SimpleNamespace(output_dir=str(tmp_path)), state, None)
    resumed = PruningCallback(at_steps=[1, 4], fraction=0.5)
    begin(resumed, tmp_path, 1)
    assert resumed.events == first.events and len(first.events) == 1
    assert resumed.pruner.masks == first.pruner.masks


def test_the_callbacks_file_is_loaded_without_running_pickled_code(tmp_path):
    """torch.load(weights_only=True): a checkpoint folder holding an object that would run code when fully
    unpickled is refused, not executed."""
    import pickle

    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    torch.save({"step": 4, "events": [], "payload": SimpleNamespace(a=1)}, folder / CHECKPOINT_FILE)
    with pytest.raises(pickle.UnpicklingError):
        begin(PruningCallback(at_steps=[4, 8], fraction=0.2), tmp_path, 4)

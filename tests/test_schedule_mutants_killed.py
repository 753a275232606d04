"""rgprune.integrations.schedule.PruningSchedule without a framework (the callbacks map their events onto
``_begin`` / ``_after_step`` / ``_prune`` / ``_end``): its validation at the edges, the event counts, the
geometric densities, rewinding and detaching. Written against the mutants `make mutation AREA=schedule` found
alive (docs/mutation.md); the framework tests run the same code through real Trainers."""

import math

import pytest
import torch
from torch import nn

from rgprune import GlobalMagnitudePruner
from rgprune.integrations.schedule import PruningSchedule


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10))


def started(schedule, model=None, planned=3, step=0, optimizer=None):
    model = model or mlp()
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule._begin(model, [optimizer], global_step=step, planned=planned, done=0, horizon="9 steps")
    return schedule, model, optimizer


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"fraction": 0.2}, ValueError, "exactly one schedule"),
        ({"at_steps": [1], "every_n_epochs": 1, "fraction": 0.2}, ValueError, "exactly one schedule"),
        ({"at_steps": [1]}, ValueError, "exactly one amount"),
        ({"at_steps": [1], "fraction": 0.2, "target_density": 0.5}, ValueError, "exactly one amount"),
        ({"at_steps": [1], "fraction": 1.01}, ValueError, r"fraction must be a number in \[0, 1\], got 1.01"),
        ({"at_steps": [1], "fraction": -0.01}, ValueError, "fraction must be a number"),
        ({"at_steps": [1], "fraction": True}, ValueError, "fraction must be a number"),
        ({"at_steps": [1], "target_density": "0.5"}, ValueError, "target_density must be a number"),
        ({"at_steps": [1], "fraction": 0.2, "includ": "x"}, TypeError, r"unknown keyword arguments \['includ'\]"),
        ({"at_steps": [0], "fraction": 0.2}, ValueError, "each of at_steps must be a positive int, got 0"),
        ({"at_steps": [True], "fraction": 0.2}, ValueError, "each of at_steps must be a positive int"),
        ({"at_steps": [2.0], "fraction": 0.2}, ValueError, "each of at_steps must be a positive int"),
        ({"at_steps": [], "fraction": 0.2}, ValueError, "at_steps is empty"),
        ({"every_n_epochs": 0, "fraction": 0.2}, ValueError, "every_n_epochs must be a positive int, got 0"),
        ({"at_steps": [3], "fraction": 0.2, "rewind_to_step": -1}, ValueError, "rewind_to_step must be an int >= 0"),
        ({"at_steps": [3], "fraction": 0.2, "rewind_to_step": True}, ValueError, "rewind_to_step must be an int"),
        ({"at_steps": [5, 3], "fraction": 0.2, "rewind_to_step": 3}, ValueError, "before the first pruning step 3$"),
        ({"at_steps": [3], "fraction": 0.2, "pruner": "p"}, ValueError, "pass either pruner="),
    ],
)
def test_bad_options_are_refused_at_their_edges(kwargs, error, match):
    with pytest.raises(error, match=match):
        PruningSchedule(**kwargs)


def test_good_options_at_their_edges_are_kept():
    s = PruningSchedule(at_steps=[6, 3, 3], fraction=0.0, rewind_to_step=2)
    assert s.at_steps == [3, 6] and s.every_n_epochs is None and s.rewind_to_step == 2
    assert PruningSchedule(every_n_epochs=1, target_density=1.0).every_n_epochs == 1
    assert PruningSchedule(at_steps=[1], fraction=1).fraction == 1
    with pytest.raises(ValueError, match="pass either pruner="):
        PruningSchedule(at_steps=[1], fraction=0.2, pruner=GlobalMagnitudePruner(mlp()), include="*")


def test_events_planned_within_a_horizon():
    s = PruningSchedule(at_steps=[3, 6, 9], fraction=0.2)
    assert [s._steps_planned(t) for t in (2, 3, 8, 9, math.inf)] == [0, 1, 2, 3, 3]
    e = PruningSchedule(every_n_epochs=2, fraction=0.2)
    assert [e._epochs_planned(t) for t in (1, 2, 7, 7.9)] == [0, 1, 3, 3] and e._epochs_planned(math.inf) is None


def test_target_density_is_reached_geometrically_and_held_after_the_last_event():
    s, model, _ = started(PruningSchedule(at_steps=[1, 2, 3], target_density=0.125), planned=3)
    densities = []
    for step in (1, 2, 3):
        s._after_step(model, step)
        densities.append(s.pruner.density())
    n = s.pruner.num_weights
    assert densities == [round(0.125 ** (j / 3) * n) / n for j in (1, 2, 3)]
    s._prune(4, step=4)  # an event past the planned ones keeps the target
    assert s.pruner.density() == densities[-1] and [e["step"] for e in s.events] == [1, 2, 3, 4]


def test_the_amount_and_horizon_errors_when_training_begins():
    with pytest.raises(ValueError, match="cannot be told in advance"):
        started(PruningSchedule(every_n_epochs=1, target_density=0.5), planned=None)
    with pytest.raises(ValueError, match="has no pruning event within this training"):
        started(PruningSchedule(at_steps=[20], target_density=0.5), planned=0)
    started(PruningSchedule(every_n_epochs=1, fraction=0.5), planned=None)  # a fraction needs no horizon
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no optimizer of this training updates the pruned parameters"):
        started(PruningSchedule(at_steps=[2], fraction=0.5), optimizer=other)


@pytest.mark.parametrize("reset", [True, False])
def test_rewinding_to_the_weights_of_a_step_after_each_event(reset):
    s, model, optimizer = started(PruningSchedule(at_steps=[3], fraction=0.5, rewind_to_step=2, reset_optimizer=reset))
    assert s._rewind_state is None  # step 2 has not happened yet
    for step in (1, 2, 3):
        optimizer.zero_grad()
        model(torch.randn(4, 10)).square().sum().backward()
        optimizer.step()
        if step == 2:  # the weights of step 2, not of step 1 before it or step 3 after it
            kept = {k: v.clone() for k, v in model.state_dict().items()}
        s._after_step(model, step)
    keep = s.pruner.masks.to_bool()
    for name, w, k in zip(s.pruner.names, s.pruner.params, keep):
        assert torch.equal(w.detach(), kept[name] * k)  # survivors rewound, pruned ones 0
    assert bool(optimizer.state) is not reset  # the momentum is cleared with reset_optimizer
    assert s.events[0]["rewound_to_step"] == 2


def test_a_rewind_before_its_weights_exist_is_refused_and_end_detaches():
    s, model, _ = started(PruningSchedule(at_steps=[5], fraction=0.5, rewind_to_step=4))
    s._rewind_state = None
    with pytest.raises(ValueError, match="rewind_to_step=4 is after this pruning event"):
        s._rewind()
    assert s.pruner.attached
    s._end()
    assert not s.pruner.attached
    PruningSchedule(at_steps=[1], fraction=0.5)._end()  # never started: nothing to detach


def test_the_checkpoint_state_holds_what_a_resume_needs():
    s, model, _ = started(PruningSchedule(at_steps=[1], fraction=0.5, rewind_to_step=0))
    s._after_step(model, 1)
    state = s._checkpoint_state(7)
    assert state["format"] == 1 and state["step"] == 7 and state["rewind_to_step"] == 0
    assert state["events"] == s.events and state["events"] is not s.events
    assert set(state["rewind_state"]) == set(model.state_dict())


@pytest.mark.parametrize("step", [1, 4])
def test_a_given_pruner_resumed_without_a_file_takes_its_masks_from_the_zeros(step):
    model = mlp()
    with torch.no_grad():
        model[0].weight[:5] = 0
    pruner = GlobalMagnitudePruner(model, masks_from="ones")
    s, _, _ = started(PruningSchedule(at_steps=[9], fraction=0.5, pruner=pruner), model=model, step=step)
    assert s.pruner is pruner and pruner.num_survivors == pruner.num_weights - 50


def test_a_given_pruner_at_the_start_keeps_its_masks():
    """Only a resume rebuilds a given pruner's masks from the zeros: at step 0 its masks are the user's (a
    survivor may be exactly 0)."""
    model = mlp()
    with torch.no_grad():
        model[0].weight[:5] = 0
    pruner = GlobalMagnitudePruner(model, masks_from="ones")
    started(PruningSchedule(at_steps=[9], fraction=0.5, pruner=pruner), model=model, step=0)
    assert pruner.num_survivors == pruner.num_weights


def test_without_rewinding_no_copy_of_the_weights_is_kept_or_checkpointed():
    s, model, _ = started(PruningSchedule(at_steps=[2], fraction=0.5))
    for step in (1, 2, 3):
        s._after_step(model, step)
    assert s._rewind_state is None and s._checkpoint_state(3)["rewind_state"] is None


def test_a_second_training_with_the_same_callback_keeps_its_pruner():
    s, model, optimizer = started(PruningSchedule(at_steps=[1], fraction=0.5))
    s._after_step(model, 1)
    s._end()
    pruner = s.pruner
    s._begin(model, [optimizer], global_step=0, planned=1, done=0, horizon="1 step")
    assert s.pruner is pruner and pruner.density() == 0.5


def test_a_resumed_training_takes_the_masks_from_the_zeros_of_its_weights():
    model = mlp()
    with torch.no_grad():
        model[0].weight[:5] = 0  # pruned before the checkpoint was saved
    s, _, _ = started(PruningSchedule(at_steps=[9], fraction=0.5), model=model, step=1)
    assert s.pruner.num_survivors == s.pruner.num_weights - 50


def test_the_training_facts_are_passed_by_keyword():
    s = PruningSchedule(at_steps=[1], fraction=0.5)
    model = mlp()
    with pytest.raises(TypeError):
        s._begin(model, [torch.optim.SGD(model.parameters(), lr=0.1)], 0, 1, 0, "1 step")


def test_a_second_training_resumed_at_step_1_rebuilds_the_pruner_on_its_model():
    """A second ``fit`` resumed from a checkpoint (any step > 0, the first included) binds a new pruner to the
    model it trains, with the masks from that model's zeros, not the first training's pruner and masks."""
    s, first, optimizer = started(PruningSchedule(at_steps=[1], fraction=0.5))
    s._after_step(first, 1)
    s._end()
    old = s.pruner
    second = mlp()
    with torch.no_grad():
        second[0].weight[:3] = 0  # the checkpoint's zeros: 30 of 200 weights
    optimizer = torch.optim.SGD(second.parameters(), lr=0.1)
    s._begin(second, [optimizer], global_step=1, planned=1, done=1, horizon="1 step")
    assert s.pruner is not old
    assert s.pruner.num_survivors == s.pruner.num_weights - 30
    assert s.pruner.params[0] is second[0].weight


def test_a_fresh_start_keeps_every_weight_even_the_exact_zeros():
    """At step 0 the masks start full: a weight that happens to be exactly 0 is not a pruned one."""
    model = mlp()
    with torch.no_grad():
        model[0].weight[0, :3] = 0
    s, _, _ = started(PruningSchedule(at_steps=[9], fraction=0.5), model=model, step=0)
    assert s.pruner.num_survivors == s.pruner.num_weights


def test_the_event_facts_are_passed_by_keyword():
    s, _, _ = started(PruningSchedule(at_steps=[1], fraction=0.5))
    with pytest.raises(TypeError):
        s._prune(1, 1)
    assert s.pruner.density() == 1.0  # refused before anything was pruned


def test_the_options_are_passed_by_keyword():
    with pytest.raises(TypeError):
        PruningSchedule([3], None, 0.5)


def test_a_resume_after_the_last_event_needs_no_rewind_weights():
    """With every event done there is nothing left to rewind, so weights of rewind_to_step missing from the
    checkpoint are no error; with one event left they are."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = PruningSchedule(at_steps=[2, 4], fraction=0.5, rewind_to_step=1)
    schedule._begin(model, [optimizer], global_step=5, planned=2, done=2, horizon="9 steps")
    with pytest.raises(ValueError, match="resuming at step 5, after rewind_to_step=1"):
        PruningSchedule(at_steps=[2, 4], fraction=0.5, rewind_to_step=1)._begin(
            model, [optimizer], global_step=5, planned=2, done=1, horizon="9 steps"
        )

"""Ticket transfer of runs made from Python on the program's own datasets and model factory (``given-vision:NAME``
tasks, ``given:NAME`` models): their directories record names and a fingerprint, not the data or the code, so
``rgprune transfer`` refuses them up front saying why and what to do, and from Python they transfer when the
datasets and factory are passed again (checked against the recorded fingerprint). Tiny conv nets on blobs."""

from __future__ import annotations

import json

import pytest
import torch
from run_helpers import TinyConvNet, blobs

from rgprune.cli import main
from rgprune.imp import ConfigError, IMPConfig, run_imp
from rgprune.transfer import random_mask_baseline, transfer_matrix, transfer_ticket

GIVEN = IMPConfig(model="given:tinyconv", task="given-vision:blobs-0", rounds=3, epochs=1, batch_size=8, rewind_step=2)
DATA = {seed: dict(train=blobs(32, seed), test=blobs(12, 100 + seed)) for seed in (0, 1, 2)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reproduction test needs the runs' thread count
    root = tmp_path_factory.mktemp("given")
    out = {}
    for seed, data in DATA.items():
        out[seed] = root / f"blobs-{seed}"
        run_imp(GIVEN.replace(task=f"given-vision:blobs-{seed}"), out[seed], False, model_fn=TinyConvNet, **data)
    yield out
    torch.set_num_threads(threads)


def given(seed: int) -> dict:
    return dict(model_fn=TinyConvNet, **DATA[seed])


def test_a_given_run_is_refused_up_front_without_its_data_and_factory(runs, tmp_path, capsys, monkeypatch):
    def trainer_built(*args, **kwargs):
        raise AssertionError("the refusal must come before the task is loaded or anything trained")

    monkeypatch.setattr("rgprune.transfer.ticket.RoundTrainer", trainer_built)
    why = r"cannot rebuild the run in .*blobs-1 to train on it: its task 'given-vision:blobs-1' is datasets"
    with pytest.raises(ConfigError, match=why + r".*and its model 'given:tinyconv' is built by the factory"):
        transfer_ticket(runs[0], runs[1])
    with pytest.raises(ConfigError, match=r"its model 'given:tinyconv' is built by the factory.*From Python"):
        transfer_ticket(runs[0], runs[1], **DATA[1])  # the data without the factory
    with pytest.raises(ConfigError, match=why):
        random_mask_baseline(runs[1], 1)
    with pytest.raises(ConfigError, match=why.replace("1", "0")):  # the first run the matrix checks
        transfer_matrix(list(runs.values()), tmp_path / "matrix")
    assert not (tmp_path / "matrix").exists()
    with pytest.raises(ConfigError, match="not among the matrix's runs"):
        transfer_matrix(list(runs.values()), tmp_path / "matrix", given={"elsewhere": given(0)})
    # the command line cannot pass datasets: it says so, and what to do
    assert main(["transfer", str(runs[0]), str(runs[1]), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot rebuild the run" in err and "`rgprune transfer` cannot use this run" in err
    assert "transfer_ticket(A, B, train=..., test=..., model_fn=...)" in err


def test_a_given_run_transfers_with_its_data_passed_again(runs):
    """A run onto itself reproduces its round bit for bit; onto another run's task, with that run's datasets."""
    own = json.loads((runs[0] / "round-02" / "metrics.json").read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        itself = transfer_ticket(runs[0], runs[0], round=2, **given(0))
        assert itself.accuracy == own["accuracy"] and itself.density == own["density"]
        other = transfer_ticket(runs[0], runs[1], round=2, **given(1))
        assert 0 <= other.accuracy <= 1 and other.from_target == ()
        baseline = random_mask_baseline(runs[1], 2, **given(1))
        assert baseline.source == "trained" and 0 <= baseline.accuracy <= 1
    finally:
        torch.set_num_threads(threads)


def test_other_data_than_the_run_trained_on_are_refused(runs):
    with pytest.raises(ConfigError, match=r"the data of .*blobs-1 are not those it trained on"):
        transfer_ticket(runs[0], runs[1], **given(2))  # blobs-2's data for the blobs-1 run
    with pytest.raises(ConfigError, match="pass both datasets"):
        transfer_ticket(runs[0], runs[1], train=DATA[1]["train"], model_fn=TinyConvNet)


def test_datasets_for_a_run_rebuilt_from_its_spec_are_refused(tmp_path):
    config = IMPConfig(model="resnet20", task="digits", rounds=1, epochs=1, image_size=8, batch_size=128)
    run_imp(config, tmp_path / "digits", progress=False)
    with pytest.raises(ConfigError, match="datasets were passed for .*rebuilt from its spec"):
        random_mask_baseline(tmp_path / "digits", 1, **DATA[0])


def test_a_matrix_of_given_runs(runs, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = transfer_matrix(
            list(runs.values()), tmp_path / "m", given={runs[0]: given(0), "blobs-1": given(1), str(runs[2]): given(2)}
        )
    finally:
        torch.set_num_threads(threads)
    assert len(data["accuracy"]) == 3 and data["random_mask_source"] == ["trained"] * 3
    assert len(list((tmp_path / "m" / "pairs").glob("*.json"))) == 6

"""Ticket transfer (rgprune.transfer): a run's ticket trained on another run's task, and the transfer matrix
against flow distance. Tiny ResNet-20 runs on 8x8 digits tasks, three rounds each."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import rgprune.transfer as transfer
from rgprune import MaskSet
from rgprune.cli import main
from rgprune.imp import IMPConfig, run_imp
from rgprune.transfer import spearman, transfer_matrix, transfer_ticket

TINY = IMPConfig(model="resnet20", task="digits", rounds=3, epochs=1, image_size=8, batch_size=128, rewind_step=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs on three digit tasks (one with 5 classes, so another head shape)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reproduction test below needs the runs' thread count
    root = tmp_path_factory.mktemp("transfer")
    out = {}
    for task in ("digits", "digits-rotated", "digits-5class"):
        out[task] = root / task
        run_imp(TINY.replace(task=task), out[task], progress=False)
    yield out
    torch.set_num_threads(threads)


def test_a_run_transferred_onto_itself_reproduces_its_round(runs):
    """Same mask, same θ_k, same seed and data order as the run's own round: the same accuracy, bit for bit."""
    own = json.loads((runs["digits"] / "round-02" / "metrics.json").read_text())
    result = transfer_ticket(runs["digits"], runs["digits"], round=2)
    assert result.round == 2 and result.from_target == ()
    assert result.accuracy == own["accuracy"] == result.target_accuracy and result.relative == 1.0
    assert result.density == own["density"]


def test_transfer_uses_the_source_mask_and_the_target_head(runs):
    result = transfer_ticket(runs["digits"], runs["digits-5class"])  # default: the last round of both
    source_masks = MaskSet.load(runs["digits"] / "round-03" / "masks.safetensors")
    assert result.round == 3 and result.density == source_masks.density()
    assert set(result.from_target) == {"fc.weight", "fc.bias"}  # 10 classes vs 5: the head is the target's
    assert 0 <= result.accuracy <= 1 and result.relative == pytest.approx(result.accuracy / result.target_accuracy)
    # the target's own ticket is untouched: nothing is written into either run
    assert not list(runs["digits-5class"].rglob("*transfer*")) and not list(runs["digits"].rglob("*transfer*"))


def test_transfer_validation(runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        transfer_ticket(tmp_path, runs["digits"])
    with pytest.raises(ValueError, match="choose a round in 0..3"):
        transfer_ticket(runs["digits"], runs["digits-rotated"], round=4)
    with pytest.raises(TypeError, match="round must be an int"):
        transfer_ticket(runs["digits"], runs["digits-rotated"], round=1.0)
    other = tmp_path / "r20-16px"
    (other / "round-00").mkdir(parents=True)
    config = TINY.replace(image_size=16)
    (other / "config.json").write_text(json.dumps({"version": 1, **config.to_dict()}))
    (other / "rewind.safetensors").write_bytes((runs["digits"] / "rewind.safetensors").read_bytes())
    (other / "round-00" / "metrics.json").write_text((runs["digits"] / "round-00" / "metrics.json").read_text())
    with pytest.raises(ValueError, match="differ in image_size"):
        transfer_ticket(runs["digits"], other)


def test_spearman_matches_scipy_and_validates():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(size=12)
    result = spearman(x, y)
    expected = stats.spearmanr(x, y)
    assert result.rho == pytest.approx(expected.statistic) and result.p_value == pytest.approx(expected.pvalue)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]).rho == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="at least 3 pairs"):
        spearman([1, 2], [2, 1])
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        spearman([1, 2, float("nan")], [1, 2, 3])
    with pytest.raises(ValueError, match="constant"):
        spearman([1, 1, 1], [1, 2, 3])


def test_transfer_matrix_writes_every_pair_and_resumes(runs, tmp_path, monkeypatch):
    paths = [runs["digits"], runs["digits-rotated"], runs["digits-5class"]]
    data = transfer_matrix(paths, tmp_path / "matrix", round=2)
    k = len(paths)
    relative, accuracy, distance = (np.array(data[key]) for key in ("relative", "accuracy", "flow_distance"))
    assert relative.shape == accuracy.shape == distance.shape == (k, k)
    assert np.all(np.diag(relative) == 1) and np.all(np.diag(distance) == 0) and np.allclose(distance, distance.T)
    assert (distance[~np.eye(k, dtype=bool)] > 0).all()
    for i, a in enumerate(paths):
        assert accuracy[i, i] == json.loads((a / "round-02" / "metrics.json").read_text())["accuracy"]
        for j, b in enumerate(paths):
            if i != j:
                pair = json.loads((tmp_path / "matrix" / "pairs" / f"{a.name}--{b.name}.json").read_text())
                assert pair["accuracy"] == accuracy[i, j] and pair["round"] == 2
    c = data["correlation"]
    assert c["n"] == k * (k - 1)
    if c["rho"] is not None:
        off = ~np.eye(k, dtype=bool)
        assert c["rho"] == pytest.approx(stats.spearmanr(distance[off], relative[off]).statistic)
    assert "Spearman" in (tmp_path / "matrix" / "transfer.md").read_text()
    assert json.loads((tmp_path / "matrix" / "transfer.json").read_text()) == json.loads(json.dumps(data))

    # a rerun reuses the saved pairs (no training); another round trains again
    def no_training(*args, **kwargs):
        raise AssertionError("a saved pair was trained again")

    monkeypatch.setattr(transfer, "transfer_ticket", no_training)
    assert transfer_matrix(paths, tmp_path / "matrix", round=2) == data
    # another DMD rank changes the eigenvalue part of the distance only, not the trained pairs
    ranked = transfer_matrix(paths, tmp_path / "matrix", round=2, rank=1)
    assert ranked["dmd_rank"] == 1 and ranked["relative"] == data["relative"]
    assert ranked["trajectory_distance"] == data["trajectory_distance"]
    assert set(ranked["correlations"]) == {"flow_distance", "eigenvalue_distance", "trajectory_distance"}
    total = np.array(ranked["eigenvalue_distance"]) + np.array(ranked["trajectory_distance"])
    assert np.allclose(ranked["flow_distance"], total)
    with pytest.raises(AssertionError, match="trained again"):
        transfer_matrix(paths, tmp_path / "matrix", round=1)


def test_transfer_matrix_validation(runs, tmp_path):
    with pytest.raises(ValueError, match="at least 3 run directories"):
        transfer_matrix([runs["digits"], runs["digits-rotated"]], tmp_path)
    with pytest.raises(ValueError, match="distinct names"):
        transfer_matrix([runs["digits"], runs["digits-rotated"], runs["digits"]], tmp_path)
    with pytest.raises(ValueError, match="not complete in every run"):
        transfer_matrix(list(runs.values()), tmp_path, round=7)


def test_cli_transfer(runs, tmp_path, capsys):
    assert main(["transfer", str(runs["digits-rotated"]), str(runs["digits"]), "--round", "1", "--quiet",
                 "--out", str(tmp_path / "one")]) == 0
    printed = capsys.readouterr().out
    assert "round 1" in printed and "relative" in printed
    saved = json.loads((tmp_path / "one" / "transfer.json").read_text())
    assert saved["round"] == 1 and Path(saved["source"]).name == "digits-rotated"
    assert main(["transfer", *map(str, runs.values()), "--quiet"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err

"""Ticket transfer (rgprune.transfer): a run's ticket trained on another run's task, the random-mask baseline it
is normalized by, and the transfer matrix against flow distance (normalized gain, Mantel tests over task labels).
Tiny ResNet-20 runs on 8x8 digits tasks, three rounds each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from run_helpers import FAIL_OR_KILL, WriteFaults, killed_at

import rgprune.transfer.matrix as matrix_module
from rgprune import MaskSet
from rgprune.cli import main
from rgprune.imp import IMPConfig, run_imp
from rgprune.rg import mantel_test, transfer_gain
from rgprune.transfer import random_mask_baseline, task_average, transfer_matrix, transfer_statistics, transfer_ticket

TINY = IMPConfig(model="resnet20", task="digits", rounds=3, epochs=1, image_size=8, batch_size=128, rewind_step=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs on three digit tasks (one with 5 classes, so another head shape); only "digits" trains the
    random-mask baseline, so the matrix has to train the others'."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reproduction tests below need the runs' thread count
    root = tmp_path_factory.mktemp("transfer")
    out = {}
    for task in ("digits", "digits-rotated", "digits-5class"):
        out[task] = root / task
        baselines = ("random-mask",) if task == "digits" else ()
        run_imp(TINY.replace(task=task, baselines=baselines), out[task], progress=False)
    yield out
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def matrix(runs, tmp_path_factory):
    """The transfer matrix of the three runs at round 2 (6 pairs and 2 random-mask baselines trained)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("matrix")
    paths = [runs["digits"], runs["digits-rotated"], runs["digits-5class"]]
    try:
        return paths, out, transfer_matrix(paths, out, round=2)
    finally:
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
    # a run whose model differs in shape, or whose masks cover other tensors (exclude), cannot take the ticket
    for name, change in (("image_size", dict(image_size=16)), ("exclude", dict(exclude=("layer1.*",)))):
        other = tmp_path / name
        (other / "round-00").mkdir(parents=True)
        (other / "config.json").write_text(json.dumps({"version": 3, **TINY.replace(**change).to_dict()}))
        (other / "rewind.safetensors").write_bytes((runs["digits"] / "rewind.safetensors").read_bytes())
        (other / "round-00" / "metrics.json").write_text((runs["digits"] / "round-00" / "metrics.json").read_text())
        with pytest.raises(ValueError, match=f"differ in {name}"):
            transfer_ticket(runs["digits"], other)


def test_random_mask_baseline_is_the_runs_own_or_trained_exactly_like_it(runs, tmp_path):
    recorded = random_mask_baseline(runs["digits"], 2)
    own = json.loads((runs["digits"] / "round-02" / "metrics.json").read_text())["baselines"]["random-mask"]
    assert recorded.source == "run" and recorded.accuracy == own["accuracy"] and recorded.seconds == 0.0
    # the same run without its baseline: trained now with the run's seeds, bit for bit the run's own number
    copy = tmp_path / "digits-copy"
    shutil.copytree(runs["digits"], copy)
    metrics_path = copy / "round-02" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["baselines"] = {}
    metrics_path.write_text(json.dumps(metrics))
    trained = random_mask_baseline(copy, 2)
    assert trained.source == "trained" and trained.accuracy == own["accuracy"] and trained.density == own["density"]
    assert not list(copy.rglob("*baseline*"))  # nothing written into the run
    with pytest.raises(ValueError, match="round 0 .* is the dense model"):
        random_mask_baseline(runs["digits"], 0)
    with pytest.raises(ValueError, match="choose a round in 0..3"):
        random_mask_baseline(runs["digits"], 5)


def test_transfer_matrix_normalizes_by_the_random_mask_and_tests_over_task_labels(matrix):
    paths, out, data = matrix
    k = len(paths)
    # a flow whose fit resolved nothing has no eigenvalues: its flow distances are null (not distances to {0}), and
    # then the tests use the trajectory distance, saying so (tiny 4-round flows resolve little)
    off = ~np.eye(k, dtype=bool)
    undefined = [data["flow_distance"][i][j] is None for i in range(k) for j in range(k) if i != j]
    assert all(
        (data["eigenvalue_distance"][i][j] is None) == (data["flow_distance"][i][j] is None)
        for i in range(k)
        for j in range(k)
    )
    tested = "trajectory_distance" if any(undefined) else "flow_distance"
    assert data["distance_tested"] == tested and ("undefined" in data["distance_tested_note"]) == any(undefined)
    relative, accuracy, distance, dense = (
        np.array(data[key]) for key in ("relative", "accuracy", tested, "dense_distance")
    )
    assert relative.shape == accuracy.shape == distance.shape == dense.shape == (k, k)
    assert np.all(np.diag(relative) == 1) and np.all(np.diag(distance) == 0) and np.allclose(distance, distance.T)
    assert (distance[off] > 0).all() and np.allclose(dense, dense.T)
    assert data["observable"] == "excess" and data["tasks"] == ["digits", "digits-rotated", "digits-5class"]
    for i, a in enumerate(paths):
        assert accuracy[i, i] == json.loads((a / "round-02" / "metrics.json").read_text())["accuracy"]
        for j, b in enumerate(paths):
            if i != j:
                pair = json.loads((out / "pairs" / f"{a.name}--{b.name}.json").read_text())
                assert pair["accuracy"] == accuracy[i, j] and pair["round"] == 2
    # the target's random mask: the run's own where it has one, else trained once and saved
    assert data["random_mask_source"] == ["run", "trained", "trained"]
    assert sorted(p.name for p in (out / "baselines").iterdir()) == [
        "digits-5class-round02.json",
        "digits-rotated-round02.json",
    ]
    rnd = data["random_mask_accuracy"]
    for i in range(k):
        for j in range(k):
            assert data["gain"][i][j] == transfer_gain(accuracy[i, j], rnd[j], accuracy[j, j])
    # one run per task: the task-level matrices are the run-level ones; 3 tasks give 3! relabellings, p >= 1/6
    np.testing.assert_allclose(data["task_level"]["flow_distance"], distance)  # the tested distance
    test = data["mantel"]
    if test["statistic"] is None:  # a tiny run's own ticket may not beat its random mask: then it says so
        assert "undefined on target tasks" in test["reason"] and data["partial_mantel"]["reason"] == test["reason"]
    else:
        assert test["alternative"] == "less" and test["exact"] and test["permutations"] == 6
        assert test["smallest_p"] == pytest.approx(1 / 6) and test["pairs"] == 3
        assert "needs at least 4 tasks" in data["partial_mantel"]["reason"]  # 3 pairs: residual r is ±1
    text = (out / "transfer.md").read_text()
    assert "Normalized transfer gain" in text and f"Mantel ({tested.replace('_', ' ')} vs gain)" in text
    assert ("undefined" in text) == any(undefined) and "Spearman" not in text
    assert json.loads((out / "transfer.json").read_text()) == json.loads(json.dumps(data))
    assert "correlation" not in data  # no pair-level correlation (pairs share tasks)


def test_transfer_matrix_resumes_without_training(matrix, monkeypatch, tmp_path):
    paths, out, data = matrix

    def no_training(*args, **kwargs):
        raise AssertionError("a saved pair was trained again")

    def recorded_only(*args, **kwargs):  # reading a run's own baseline is fine, training one is not
        baseline = random_mask_baseline(*args, **kwargs)
        assert baseline.source == "run", "a saved baseline was trained again"
        return baseline

    monkeypatch.setattr(matrix_module, "transfer_ticket", no_training)
    monkeypatch.setattr(matrix_module, "random_mask_baseline", recorded_only)
    assert transfer_matrix(paths, out, round=2) == data
    # another DMD rank or observable changes the distances only, not the trained pairs (resumed from a copy: the
    # shared matrix's transfer.md, which other tests read, keeps its own distances whatever order the tests run in)
    ranked = transfer_matrix(paths, shutil.copytree(out, tmp_path / "ranked"), round=2, rank=1, observable="histogram")
    assert ranked["dmd_rank"] == 1 and ranked["relative"] == data["relative"] and ranked["gain"] == data["gain"]
    assert ranked["observable"] == "histogram" and ranked["trajectory_distance"] != data["trajectory_distance"]
    total = np.array(ranked["eigenvalue_distance"]) + np.array(ranked["trajectory_distance"])
    assert np.allclose(ranked["flow_distance"], total)  # a fixed rank resolves every flow: eigenvalue + 1 x trajectory
    assert ranked["distance_tested"] == "flow_distance" and ranked["trajectory_weight"] == 1.0
    with pytest.raises(AssertionError, match="trained again"):
        transfer_matrix(paths, out, round=1)


def simulated_null(rng, tasks=6, seeds=2):
    """Accuracies with task effects (a strong ticket, a hard target), seeds of each task, and flow / dense-model
    distances with task structure (seeds of a task close), all independent of transfer: no link."""
    labels = [f"task{a}" for a in range(tasks) for _ in range(seeds)]
    of = np.repeat(np.arange(tasks), seeds)
    k = len(labels)
    source, target = rng.normal(0, 0.03, tasks), rng.normal(0, 0.05, tasks)
    accuracy = 0.8 + source[of][:, None] + target[of][None, :] + rng.normal(0, 0.01, (k, k))
    random_mask = 0.6 + target[of] + rng.normal(0, 0.01, k)

    def distances():
        where = rng.normal(size=(tasks, 2))[of] + 0.3 * rng.normal(size=(k, 2))
        return np.linalg.norm(where[:, None] - where[None], axis=2)

    return accuracy, list(random_mask), labels, distances(), distances()


def test_transfer_statistics_hold_their_level_on_simulated_nulls_with_task_effects_and_seeds():
    rng = np.random.default_rng(0)
    nulls, plain, partial = 800, 0, 0
    for _ in range(nulls):
        stats = transfer_statistics(*simulated_null(rng))
        plain += stats["mantel"]["p_value"] <= 0.05
        partial += stats["partial_mantel"]["p_value"] <= 0.05
    assert plain / nulls <= 0.075 and partial / nulls <= 0.075, (plain / nulls, partial / nulls)


def test_transfer_statistics_average_seeds_and_find_a_planted_link():
    rng = np.random.default_rng(1)
    accuracy, random_mask, labels, distance, dense = simulated_null(rng)
    stats = transfer_statistics(accuracy, random_mask, labels, distance, dense)
    gain = np.array(stats["gain"])
    names, task_gain = task_average(gain, labels)
    assert names == [f"task{a}" for a in range(6)] and task_gain[0, 1] == pytest.approx(gain[0:2, 2:4].mean())
    np.testing.assert_allclose(stats["task_level"]["gain"], task_gain)
    expected = mantel_test(task_average(distance, labels)[1], task_gain)
    assert stats["mantel"]["statistic"] == pytest.approx(expected.statistic)
    assert stats["mantel"]["p_value"] == expected.p_value and stats["mantel"]["tasks"] == 6

    # plant the claim: transfer falls with flow distance (the dense models' distance unrelated)
    def linked_to(d):
        accuracy = 0.6 + 0.2 * (1 - d / d.max())
        np.fill_diagonal(accuracy, 0.8)
        return accuracy

    rnd = [0.5] * len(labels)
    found = transfer_statistics(linked_to(distance), rnd, labels, distance, dense)
    assert found["mantel"]["statistic"] < -0.5 and found["mantel"]["p_value"] < 0.01
    assert found["partial_mantel"]["p_value"] < 0.05
    against = transfer_statistics(linked_to(distance), rnd, labels, distance, dense, alternative="greater")
    assert against["mantel"]["p_value"] > 0.9  # the sign is fixed in advance: the other tail finds nothing
    # a link that runs through the dense models only, the flows close where the dense models are: the plain test
    # finds it, the partial test (controlling for the dense models' distance) does not
    flows = dense + 0.3 * distance
    noisy = linked_to(dense) + rng.normal(0, 0.005, dense.shape)
    through_dense = transfer_statistics(noisy, rnd, labels, flows, dense)
    assert through_dense["mantel"]["p_value"] < 0.01 and through_dense["partial_mantel"]["p_value"] > 0.1


def test_transfer_statistics_say_why_a_test_cannot_be_run():
    rng = np.random.default_rng(2)
    accuracy, random_mask, labels, distance, dense = simulated_null(rng, tasks=4, seeds=1)
    weak = list(random_mask)
    weak[1] = accuracy[1, 1] - 0.001  # task1's own ticket barely beats its random mask
    stats = transfer_statistics(accuracy, weak, labels, distance, dense)
    assert stats["gain"][0][1] is None and stats["mantel"]["statistic"] is None
    assert "undefined on target tasks ['task1']" in stats["mantel"]["reason"]
    three = transfer_statistics(accuracy[:3, :3], random_mask[:3], labels[:3], distance[:3, :3], dense[:3, :3])
    assert three["mantel"]["p_value"] is not None and three["partial_mantel"]["statistic"] is None
    two = transfer_statistics(accuracy[:2, :2], random_mask[:2], labels[:2], distance[:2, :2], dense[:2, :2])
    assert "at least 3" in two["mantel"]["reason"] and two["gain"][0][1] is not None
    missing = transfer_statistics(accuracy, [None] + random_mask[1:], labels, distance, dense)
    assert "task0" in missing["mantel"]["reason"] and missing["gain"][1][0] is None
    with pytest.raises(ValueError, match="symmetric"):
        transfer_statistics(accuracy, random_mask, labels, distance + np.triu(np.ones((4, 4))), dense)
    with pytest.raises(ValueError, match="one entry per run"):
        transfer_statistics(accuracy, random_mask, labels[:3], distance, dense)
    with pytest.raises(ValueError, match="alternative"):
        transfer_statistics(accuracy, random_mask, labels, distance, dense, alternative="two-sided")


def test_transfer_matrix_validation(runs, tmp_path):
    with pytest.raises(ValueError, match="at least 3 run directories"):
        transfer_matrix([runs["digits"], runs["digits-rotated"]], tmp_path)
    with pytest.raises(ValueError, match="distinct names"):
        transfer_matrix([runs["digits"], runs["digits-rotated"], runs["digits"]], tmp_path)
    with pytest.raises(ValueError, match="not complete in every run"):
        transfer_matrix(list(runs.values()), tmp_path, round=7)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        transfer_matrix(list(runs.values()), a_file)
    # another process writing the same matrix holds its lock: refused before anything is trained or removed
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / ".tmp-in-flight.json").write_text("{}")
    fcntl = pytest.importorskip("fcntl")
    with open(busy / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another transfer_matrix"):
            transfer_matrix(list(runs.values()), busy)
    assert (busy / ".tmp-in-flight.json").is_file()


def test_cli_transfer(runs, matrix, tmp_path, capsys):
    assert (
        main(
            [
                "transfer",
                str(runs["digits-rotated"]),
                str(runs["digits"]),
                "--round",
                "1",
                "--quiet",
                "--out",
                str(tmp_path / "one"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "round 1" in printed and "relative" in printed and "normalized gain" in printed  # digits has its baseline
    saved = json.loads((tmp_path / "one" / "transfer.json").read_text())
    assert saved["round"] == 1 and Path(saved["source"]).name == "digits-rotated"
    assert main(["transfer", *map(str, runs.values()), "--quiet"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    paths, out, _ = matrix  # resumed: nothing is trained
    assert main(["transfer", *map(str, paths), "--round", "2", "--quiet", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[0] == "transfer at round 2, 3 runs of 3 tasks, excess flows:"
    assert lines[1].startswith("  Mantel: ") and lines[2].startswith("  partial Mantel, dense models' distance")
    assert lines[-1] == f"report: {out / 'transfer.md'}"


# ---- crash safety of the matrix's resumable pairs ---------------------------------------------------------------

TASKS = ("digits", "digits-rotated", "digits-5class")
PAIRS = [f"pairs/{a}--{b}.json" for a in TASKS for b in TASKS if a != b]
PAIR_WRITES = [
    *PAIRS,
    "baselines/digits-rotated-round02.json",
    "baselines/digits-5class-round02.json",
    "transfer.json",
    "transfer.md",
]


def run_matrix(runs, out: Path) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the runs' thread count: a retrained pair is then bit-identical
    try:
        return transfer_matrix([runs[task] for task in TASKS], out, round=2)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def matrix_reference(runs, tmp_path_factory):
    """The uninterrupted matrix (six pairs, two random-mask baselines trained) with the writes it made in order."""
    out = tmp_path_factory.mktemp("matrix-reference")
    with WriteFaults(out) as faults:
        data = run_matrix(runs, out)
    return out, data, faults.writes


def pair_files(out: Path) -> dict:
    """The matrix's saved pairs and baselines, less their training seconds (the clock's)."""
    files = {}
    for path in sorted(out.rglob("*.json")):
        if path.parent.name in ("pairs", "baselines"):
            saved = json.loads(path.read_text())
            saved.pop("seconds")
            files[path.relative_to(out).as_posix()] = saved
    return files


def test_the_matrix_writes_each_result_once_atomically_in_order(matrix_reference):
    """Guards against a pair or baseline written outside atomic_write (a killed write would leave half a JSON that
    resume trusts or crashes on) and against the summary written before the pairs it summarizes."""
    out, _, writes = matrix_reference
    assert writes == PAIR_WRITES
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert on_disk == set(PAIR_WRITES)


@pytest.mark.parametrize("action", FAIL_OR_KILL)
@pytest.mark.parametrize("point", PAIR_WRITES)
def test_a_failed_or_killed_matrix_write_resumes_to_the_uninterrupted_matrix(
    point, action, runs, matrix_reference, tmp_path
):
    """Each write of the transfer matrix fails in turn (ENOSPC), or the process is SIGKILLed at it: the results
    written before it are in place and nothing after it; the rerun trains only what is missing, removes the killed
    write's temp file and gives the uninterrupted matrix exactly. Guards against a resume that trusts a pair whose
    write failed, one that keeps a killed write's temp file, and one that retrains (or loses) saved pairs."""
    ref, ref_data, _ = matrix_reference
    out = tmp_path / "matrix"
    if action == "raise":
        with WriteFaults(out, at=(point, 0), action="raise") as faults, pytest.raises(OSError, match="injected"):
            run_matrix(runs, out)
        assert faults.fired
    else:
        killed_at(out, (point, 0), lambda: run_matrix(runs, out))
    before = PAIR_WRITES[: PAIR_WRITES.index(point)]
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    temp = {name for name in written if Path(name).name.startswith(".tmp-")}
    assert written - temp == set(before)
    assert len(temp) == (action == "kill") and all(name.endswith(Path(point).name) for name in temp)

    trained = []
    real = matrix_module.transfer_ticket

    def counted(source, target, *args, **kwargs):
        trained.append(f"pairs/{Path(source).name}--{Path(target).name}.json")
        return real(source, target, *args, **kwargs)

    matrix_module.transfer_ticket = counted
    try:
        assert run_matrix(runs, out) == ref_data
    finally:
        matrix_module.transfer_ticket = real
    assert trained == [name for name in PAIRS if name not in before]
    assert pair_files(out) == pair_files(ref)
    assert (out / "transfer.md").read_text() == (ref / "transfer.md").read_text()
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == set(
        PAIR_WRITES
    )

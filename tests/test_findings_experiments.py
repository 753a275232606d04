"""rgprune.experiments: summaries of real (tiny) IMP runs, and each finding's statistics on data with a planted
answer. Each test names the bug it guards against."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rgprune.experiments import finding1, finding2, finding3
from rgprune.experiments.designs import F1, F2, F3, Finding3Design
from rgprune.experiments.pieces import lexicon_subsample, shard_of
from rgprune.experiments.summaries import (
    checkpoint_steps,
    compact_trace,
    dense_distance,
    expand_trace,
    read_summary,
    run_summary,
    subsampled_trace,
    survivors,
    write_summary,
)
from rgprune.imp import IMPConfig, RunDir, run_imp


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two 3-round ResNet-8 runs on 8x8 digits700 tasks (one epoch a round), the first with random-mask
    baselines. Seconds."""
    root = tmp_path_factory.mktemp("runs")
    common = dict(model="resnet8", rounds=3, epochs=1, image_size=8, lr=0.02, rewind_step=2, seed=3)
    torch.set_num_threads(1)
    run_imp(IMPConfig(task="digits700", baselines=("random-mask",), **common), root / "a", progress=False)
    run_imp(IMPConfig(task="digits700-rotated", **common), root / "b", progress=False)
    return root / "a", root / "b"


def test_compact_trace_round_trips(tiny_runs):
    # an off-by-one in the cut would move every bin of the observable
    trace = RunDir(tiny_runs[0]).load_trace()
    data = compact_trace(trace)
    assert all(len(r["histogram"]["counts"]) < 4096 for r in data["rounds"])
    assert expand_trace(data).to_dict() == trace.to_dict()


def test_summaries_are_byte_stable(tmp_path, tiny_runs):
    # a time stamp in the gzip header would make every collect rewrite unchanged summaries
    summary = run_summary(tiny_runs[0], model="resnet8", task="digits700", seed=3)
    write_summary(tmp_path / "a.json.gz", summary)
    write_summary(tmp_path / "b.json.gz", summary)
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    back = read_summary(tmp_path / "a.json.gz")
    assert back["task"] == "digits700" and [r["round"] for r in back["rounds"]] == [0, 1, 2, 3]
    assert (
        back["rounds"][2]["baselines"]["random-mask"]
        == RunDir(tiny_runs[0]).read_round_metrics(2)["baselines"]["random-mask"]["accuracy"]
    )


def test_subsample_of_every_survivor_is_the_recorded_flow(tiny_runs):
    # the sample must come from the masked survivors of θ_n with the round's own threshold: a pruned zero counted,
    # another round's mask or threshold would change the histogram or the observable
    run = RunDir(tiny_runs[0])
    recorded = run.load_trace()
    for n in range(4):
        size = run.read_round_metrics(n)["survivors"]
        sub = subsampled_trace(tiny_runs[0], [n], size, seed=0)
        assert sub.rounds[0].histogram == recorded.rounds[n].histogram
        # the sample keeps every weight at the threshold's key; the prune kept only some of those ties
        extra = sub.rounds[0].counts[0] - sum(recorded.rounds[n].counts)
        assert 0 <= extra <= run.read_observables(n)["threshold"]["n_equal"]
        np.testing.assert_allclose(sub.trajectory("excess")[0], recorded.trajectory("excess")[n], atol=1e-3)


def test_subsamples_have_the_asked_size_and_depend_on_their_seed(tiny_runs):
    a = subsampled_trace(tiny_runs[0], [1, 2], 500, seed=0)
    again = subsampled_trace(tiny_runs[0], [1, 2], 500, seed=0)
    other = subsampled_trace(tiny_runs[0], [1, 2], 500, seed=1)
    assert [sum(r.histogram) for r in a.rounds] == [500, 500]
    assert a.to_dict() == again.to_dict()
    assert a.rounds[0].histogram != other.rounds[0].histogram
    with pytest.raises(ValueError, match="fewer than the subsample"):
        subsampled_trace(tiny_runs[0], [3], 10**7, seed=0)


def test_checkpoint_steps_use_the_next_rounds_mask(tiny_runs):
    # ‖θ_{n+1} − m_{n+1}⊙θ_n‖ / ‖m_{n+1}⊙θ_n‖: with m_n instead, the pruned weights would count as moved
    run = RunDir(tiny_runs[0])
    steps = checkpoint_steps(tiny_runs[0])
    assert [s["round"] for s in steps] == [1, 2, 3]
    theta_1, masks_2 = survivors(run, 1), run.load_masks(2)
    theta_2 = run.load_weights(2)
    diff = norm = 0.0
    for name, keep in zip(masks_2.names, masks_2.to_bool()):
        old = theta_1[name].double() * keep.reshape(theta_1[name].shape)
        diff += float((theta_2[name].double() - old).pow(2).sum())
        norm += float(old.pow(2).sum())
    assert steps[1]["retraining"] == pytest.approx(np.sqrt(diff / norm), rel=1e-9)
    assert all(0 < s["retraining"] < 10 and 0 < s["rewound"] < 10 for s in steps)


def test_dense_distance(tiny_runs):
    a, b = tiny_runs
    assert dense_distance(a, a) == 0.0
    assert dense_distance(a, b) == pytest.approx(dense_distance(b, a)) and dense_distance(a, b) > 0


def test_shards_cover_the_items_once():
    items = list(range(11))
    parts = [shard_of(items, (i, 3)) for i in range(3)]
    assert sorted(itertools.chain(*parts)) == items
    with pytest.raises(ValueError, match="shard"):
        shard_of(items, (3, 3))


def test_lexicon_subsample_cuts_tokens_and_keeps_the_test_set():
    train, test = lexicon_subsample("afinn", 300, 8, seed=0)
    ids, mask, labels = train.tensors
    assert ids.shape == (300, 8) and mask.sum(1).max() <= 8
    assert (ids[torch.arange(300), mask.sum(1) - 1] == 102).all()  # every entry still ends with [SEP]
    assert abs(labels.float().mean() - 0.35) < 0.03  # stratified: AFINN's share of positive words
    assert len(test) > 600


# ---- the statistics, on data with a planted answer ------------------------------------------------------------


def _finding1_data(task_effect: float, gain_slope: float, rng) -> finding1.Finding1Data:
    """Flows = task offset * task_effect + seed noise; transfer gain falling with the tasks' distance when
    gain_slope > 0; every own ticket 0.1 above its random mask."""
    tasks, bins = F1.all_tasks, 5
    offsets = {t: rng.normal(size=bins) for t in tasks}
    flows = {
        (t, s): np.tile(task_effect * offsets[t], (F1.rounds + 1, 1)) + rng.normal(0, 0.1, (F1.rounds + 1, bins))
        for t in tasks
        for s in F1.seeds
    }
    accuracy = {(t, s): [0.9] * (F1.rounds + 1) for t in tasks for s in F1.seeds}
    random_mask = {(t, s, n): 0.8 for t in tasks for s in F1.seeds for n in F1.transfer_rounds}
    transfer = {}
    for a, b in itertools.permutations(tasks, 2):
        d = np.linalg.norm(offsets[a] - offsets[b])
        for s in F1.seeds:
            for n in F1.transfer_rounds:
                transfer[(a, b, s, n)] = 0.9 - gain_slope * d + rng.normal(0, 0.002)
    dense = {s: np.abs(rng.normal(size=(len(tasks), len(tasks)))) for s in F1.seeds}
    dense = {s: (m + m.T) * (1 - np.eye(len(tasks))) for s, m in dense.items()}
    return finding1.Finding1Data(flows, accuracy, dense, random_mask, transfer)


def test_go_no_go_sees_a_task_signal_and_only_then():
    # the test must pass when tasks differ more than seeds and fail on seed noise alone
    assert finding1.go_no_go(_finding1_data(1.0, 0.0, np.random.default_rng(0)))["go"]
    null = finding1.go_no_go(_finding1_data(0.0, 0.0, np.random.default_rng(1)))
    assert not null["go"] and 0.9 < null["ratio"] < 1.1


def test_transfer_test_finds_a_planted_link_with_the_predicted_sign():
    test = finding1.transfer_test(
        _finding1_data(1.0, 0.01, np.random.default_rng(2)), F1.transfer_rounds[-1], n_boot=100
    )
    assert test["kept"] == F1.tasks
    assert test["mantel"].statistic < -0.8 and test["mantel"].p_value < 0.01
    assert test["interval"][1] < 0
    np.testing.assert_allclose(np.diag(test["gain"]), 1.0)


def test_transfer_test_drops_targets_without_a_ticket_effect():
    # a target whose own ticket is no better than a random mask has no gain to normalize by
    data = _finding1_data(1.0, 0.01, np.random.default_rng(3))
    for s in F1.seeds:
        data.random_mask[(F1.tasks[0], s, 13)] = 0.895
    test = finding1.transfer_test(data, 13, n_boot=50)
    assert F1.tasks[0] not in test["kept"] and len(test["kept"]) == len(F1.tasks) - 1
    assert np.isnan(test["gain"][:, 0]).all()


def test_transfer_test_waits_for_missing_results():
    data = _finding1_data(1.0, 0.01, np.random.default_rng(4))
    data.transfer.pop((F1.tasks[0], F1.tasks[1], F1.seeds[0], 24))
    assert finding1.transfer_test(data, 24) == {"complete": False, "missing": 1}


def _finding3_data(spread_by_depth: dict[str, float], noise: float, rng) -> finding3.Finding3Data:
    """Each run: a flow offset of size spread_by_depth[model] * task/seed effect, two draws with independent
    sampling noise."""
    flows, accuracy, survivors = {}, {}, {}
    rounds, bins = F3.window_rounds, 6
    for m, t, s in itertools.product(F3.models, F3.tasks, F3.seeds):
        true = spread_by_depth[m] * rng.normal(size=bins)
        flows[(m, t, s)] = tuple(np.tile(true, (rounds, 1)) + rng.normal(0, noise, (rounds, bins)) for _ in range(2))
        accuracy[(m, t, s)] = [0.9] * rounds
        survivors[(m, t, s)] = [1000] * rounds
    return finding3.Finding3Data(flows, accuracy, survivors)


def test_depth_test_finds_spread_growing_with_depth():
    grow = {m: 0.1 * (i + 1) for i, m in enumerate(F3.models)}
    test = finding3.depth_test(_finding3_data(grow, 0.05, np.random.default_rng(0)), permutations=199)
    assert test["complete"] and test["r"] > 0.8 and test["p_value"] < 0.05
    assert np.all(np.diff(test["excess"]) > 0)


def test_noise_floor_removes_sampling_noise():
    # flows equal across runs: the spread is sampling noise alone, which the floor must cancel (a floor of one
    # draw's noise instead of two would leave half of it)
    test = finding3.depth_test(
        _finding3_data({m: 0.0 for m in F3.models}, 0.1, np.random.default_rng(1)), permutations=99
    )
    assert np.all(np.abs(test["excess"]) < 0.1 * test["spread"])
    assert test["p_value"] > 0.05


def test_windows_match_survivor_counts():
    design = Finding3Design()
    counts = {"resnet8": 73_872, "resnet20": 267_408, "resnet56": 848_016}
    for count in counts.values():
        first, last = design.rounds_for(count)
        assert last - first + 1 == design.window_rounds
        assert abs(np.log(count * 0.8**first / design.window_start_survivors)) <= 0.5 * np.log(1.25) + 1e-9
    assert design.rounds_for(267_408) == (6, 20)  # finding 1's ResNet-20 runs cover the window


def test_paired_difference_interval():
    values = {}
    for t, s in itertools.product(F2.tasks, F2.seeds):
        values[("minilm", t, s)] = {"retraining": 0.1}
        values[("minilm-random", t, s)] = {"retraining": 0.3 + 0.01 * s}
    diff = finding2.paired_difference(values, "retraining", "minilm-random", n_boot=500)
    assert diff["pairs"] == 6 and diff["mean"] == pytest.approx(-0.21)
    assert -0.22 <= diff["low"] <= diff["mean"] <= diff["high"] <= -0.2
    assert finding2.paired_difference(values, "retraining", "minilm-shuffled") is None


def _seed_values(per_seed: list[float], task_noise: float, rng) -> dict:
    """finding 2 values whose minilm − control difference is per_seed[s] on both tasks plus task_noise."""
    values = {}
    for t, s in itertools.product(F2.tasks, F2.seeds):
        d = per_seed[s] + rng.normal(0, task_noise)
        steps = [d - 0.5, d, d + 0.5]
        values[("minilm", t, s)] = {"retraining": 1.0 + d, "retraining_steps": [1.0 + x for x in steps]}
        values[("minilm-shuffled", t, s)] = {"retraining": 1.0, "retraining_steps": [1.0] * 3}
    return values


def test_seed_unit_difference_counts_seeds_not_pairs():
    # two tasks that repeat their seed's difference are one measurement: the interval is the t-interval over the
    # 3 seed means, wider than a bootstrap over 6 pairs would make it
    per_seed = [-0.62, -0.28, -0.19]  # finding 2's seeds (×1e-3 there)
    values = _seed_values(per_seed, 0.0, np.random.default_rng(0))
    unit = finding2.seed_unit_difference(values, "retraining", "minilm-shuffled")
    m, sd = np.mean(per_seed), np.std(per_seed, ddof=1)
    half = 2.919986 * sd / np.sqrt(3)  # t(0.95, 2 df)
    assert unit["seeds"] == pytest.approx(per_seed) and unit["mean"] == pytest.approx(m)
    assert (unit["low"], unit["high"]) == pytest.approx((m - half, m + half), rel=1e-5)
    assert unit["high"] > 0  # the 6-pair bootstrap of the same numbers would sit below 0
    assert finding2.paired_difference(values, "retraining", "minilm-shuffled")["high"] < 0
    assert unit["steps"] == pytest.approx([m - 0.5, m, m + 0.5])
    assert (
        finding2.task_correlation(
            _seed_values(per_seed, 0.01, np.random.default_rng(1)), "retraining", "minilm-shuffled"
        )
        > 0.9
    )


def test_flow_properties_leave_unresolved_fits_out_of_the_leading_eigenvalue():
    # a run whose DMD resolves nothing has no leading |λ|: NaN and not counted, never 0 averaged in
    data = _finding3_data({m: 0.0 for m in F3.models}, 1e-6, np.random.default_rng(2))
    props = finding3.flow_properties(data)
    for m in F3.models:
        lead = props[m]["lead"]
        assert props[m]["resolved"] == int(np.isfinite(lead).sum())
        assert not np.any(lead == 0.0)


def test_jackknife_errors_shrink_with_less_noise_and_know_the_slope():
    grow = {m: 0.1 * (i + 1) for i, m in enumerate(F3.models)}
    noisy = finding3.jackknife_spreads(_finding3_data(grow, 0.05, np.random.default_rng(3)))
    quiet = finding3.jackknife_spreads(_finding3_data(grow, 0.005, np.random.default_rng(3)))
    assert np.all(noisy["floor"] > quiet["floor"])
    assert noisy["slope"] > 0 and noisy["slope_se"] > 0
    excess = finding3.spreads(_finding3_data(grow, 0.05, np.random.default_rng(3)))["excess"]
    depths = np.log2([8, 14, 20, 32, 56])
    assert noisy["slope"] == pytest.approx(np.polyfit(depths, excess, 1)[0])


def test_ticket_gaps_are_seed_paired():
    data = _finding1_data(1.0, 0.0, np.random.default_rng(5))
    for i, s in enumerate(F1.seeds):
        # the seed moves both accuracies by 0.01 * i; the gap differs only by 0.001 * (i % 2)
        data.accuracy[(F1.tasks[0], s)][13] = 0.80 + 0.01 * i
        data.random_mask[(F1.tasks[0], s, 13)] = 0.78 + 0.01 * i - 0.001 * (i % 2)
    gaps = finding1.ticket_gaps(data, 13)
    diffs = 0.02 + 0.001 * (np.arange(len(F1.seeds)) % 2)
    se = diffs.std(ddof=1) / np.sqrt(len(F1.seeds))
    assert gaps["mean"][0] == pytest.approx(diffs.mean()) and gaps["se"][0] == pytest.approx(se)
    assert gaps["z"][0] == pytest.approx(diffs.mean() / se)


def test_dispersion_sees_a_task_with_wider_seeds():
    data = _finding1_data(1.0, 0.0, np.random.default_rng(6))
    wide = F1.tasks[0]
    for s in F1.seeds:
        data.flows[(wide, s)] = data.flows[(wide, s)] + np.random.default_rng(s).normal(0, 1.0, (F1.rounds + 1, 5))
    assert finding1.dispersion(data)["result"].p_value < 0.01
    assert finding1.dispersion(_finding1_data(1.0, 0.0, np.random.default_rng(7)))["result"].p_value > 0.01


def test_stored_references_are_used_only_for_their_own_run(tmp_path):
    from rgprune.experiments.summaries import summary_path

    root = tmp_path
    real = finding2.load("docs/findings-data", references=False)
    if not real.runs:
        pytest.skip("no finding-2 summaries")
    key, run = next(iter(real.runs.items()))
    summary = {k: v for k, v in run.items() if k != "flow_trace"}
    write_summary(summary_path(root, "finding2", run["name"]), summary)
    path = finding2.write_references(root)
    assert path.is_file()
    again = finding2.load(root)
    stored = again.runs[key]["reference_trace"]
    assert stored.rounds[0].histogram == run["flow_trace"].rounds[0].histogram
    saved = read_summary(path)
    saved["runs"][run["name"]]["rounds"][1]["counts"][0] += 1  # a reference of other weights: ignored
    write_summary(path, saved)
    assert "reference_trace" not in finding2.load(root).runs[key]

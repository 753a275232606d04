"""FlowTrace: observables from the pruning pass itself, from checkpoints on disk, and the reports."""

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import rgprune
from rgprune.kernels import extension
from rgprune.models import build_model
from rgprune.rg.checkpoints import parameter_gram, trace_from_checkpoints
from rgprune.rg.report import analyse_flow, compare_flows, write_flow_report
from rgprune.rg.trace import FlowTrace

pytestmark = pytest.mark.reference  # make test-reference

# Survivors of ResNet-20's 267408 prunable (conv) weights after 0, 1, 2, 3 prunes of 20%: the pruner's rule,
# k = round(0.2 * survivors), worked out by hand (213926 = 267408 - 53482, ...)
SURVIVORS = [267408, 213926, 171141, 136913]


def perturb(pruner, seed):
    """Stand-in for training: change the survivors a little, keep pruned weights at 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in pruner.params:
            p.mul_(1.1 + 0.05 * torch.randn(p.shape, generator=g))
    pruner.apply_masks()


def new_trace(pruner, fraction=0.2):
    return FlowTrace(pruner.names, pruner.masks.numels(), dtype="float32", fraction=fraction)


def imp_like_run(tmp_path, rounds=4, seed=0):
    """Prune ``rounds`` times, recording the trace and saving θ_n before each prune."""
    torch.manual_seed(seed)
    model = build_model("resnet20", 10, in_channels=1)
    pruner = rgprune.GlobalMagnitudePruner(model)
    trace = new_trace(pruner)
    paths = []
    for n in range(rounds):
        perturb(pruner, seed * 100 + n)
        path = tmp_path / f"theta-{n}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        paths.append(path)
        trace.record_prune(n, pruner.prune(0.2), {"accuracy": 0.5 + n / 100})
    return trace, paths, pruner


def rgprune_op_calls(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return Counter(e.name for e in prof.events() if e.name.startswith("rgprune::"))


@pytest.mark.skipif(extension.module is None, reason="counts calls of the compiled ops")
def test_recording_the_trace_adds_no_pass_over_the_weights():
    torch.manual_seed(0)
    model = build_model("resnet20", 10, in_channels=1)
    plain = rgprune.GlobalMagnitudePruner(model)
    traced_model = build_model("resnet20", 10, in_channels=1)
    traced_model.load_state_dict(model.state_dict())
    traced = rgprune.GlobalMagnitudePruner(traced_model)
    trace = new_trace(traced)
    without = rgprune_op_calls(lambda: plain.prune(0.2))
    with_trace = rgprune_op_calls(lambda: trace.record_prune(1, traced.prune(0.2)))
    assert without == with_trace
    # prune's passes: the threshold (whose first pass also checks the masks against the weights) and the apply
    assert without == Counter({"rgprune::global_magnitude_threshold": 1, "rgprune::apply_threshold_": 1})
    assert plain.masks == traced.masks


def test_trace_records_the_pruned_survivors(tmp_path):
    """Exact survivor counts: a pruner taking k = floor(fraction * survivors) (one weight fewer in 267408) passed
    the densities compared with atol=1e-5 and fails here."""
    trace, paths, pruner = imp_like_run(tmp_path, rounds=3)
    assert [r.round for r in trace.rounds] == [0, 1, 2]
    # survivors after each prune, exactly: k = round(0.2 * survivors) pruned from the 267408 prunable weights
    assert [sum(r.counts) for r in trace.rounds] == SURVIVORS[1:4]
    assert [r.density for r in trace.rounds] == [s / SURVIVORS[0] for s in SURVIVORS[1:4]]
    last = trace.rounds[-1]
    assert last.counts == pruner.masks.survivor_counts()
    weights = [p.detach().double() for p in pruner.params]
    np.testing.assert_allclose(last.abs_sums, [float(w.abs().sum()) for w in weights], rtol=1e-12)
    np.testing.assert_allclose(last.sq_sums, [float((w * w).sum()) for w in weights], rtol=1e-12)


def test_trace_from_checkpoints_equals_the_recorded_histograms(tmp_path):
    """The histogram that chose each round's threshold is the histogram of the saved θ_n."""
    trace, paths, _ = imp_like_run(tmp_path, rounds=4)
    from_disk = trace_from_checkpoints(paths, fraction=0.2)
    assert from_disk.tensor_names == trace.tensor_names
    assert [r.histogram for r in from_disk.rounds] == [r.histogram for r in trace.rounds]
    # round n's checkpoint holds θ_n under mask m_n: its density is the previous round's
    assert [sum(r.counts) for r in from_disk.rounds] == SURVIVORS
    assert [r.density for r in from_disk.rounds] == [s / SURVIVORS[0] for s in SURVIVORS]


def test_trace_from_torch_save_and_torch_prune_format(tmp_path):
    torch.manual_seed(1)
    model = build_model("resnet20", 10, in_channels=1)
    import torch.nn.utils.prune as tprune

    params = [(m, "weight") for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=0.3)
    path = tmp_path / "pruned.pt"
    torch.save(model.state_dict(), path)
    trace = trace_from_checkpoints([path])
    assert trace.tensor_names[0] == "conv1.weight"  # weight_orig read through its mask
    # torch.prune removes round(0.3 * n) of the n = 267408 conv weights
    assert sum(trace.rounds[0].counts) == SURVIVORS[0] - round(0.3 * SURVIVORS[0]) == 187186
    assert trace.rounds[0].density == 187186 / SURVIVORS[0]
    with pytest.raises(ValueError, match="neither a safetensors file nor"):
        bad = tmp_path / "junk.pt"
        bad.write_bytes(b"not a checkpoint")
        trace_from_checkpoints([bad])
    with pytest.raises(FileNotFoundError):
        trace_from_checkpoints([tmp_path / "missing.safetensors"])
    # a pattern that names no tensor is refused with the closest names, as the pruner does (a typo must not
    # silently analyse another set of tensors), also for torch.prune's weight_orig names and the Gram matrix
    with pytest.raises(ValueError, match=r"'layr1\.\*'.*closest.*'layer1\.\*'"):
        trace_from_checkpoints([path], include=["layer1.*", "layr1.*"])
    with pytest.raises(ValueError, match=r"exclude pattern.*'fc2\.\*'"):
        parameter_gram([path, path], exclude=["fc2.*"])
    assert trace_from_checkpoints([path], exclude=["layer3.*"]).tensor_names[-1].startswith("layer2.")


# Peak resident memory of the measured call alone: VmHWM after resetting it (/proc/self/clear_refs, "5").
# (getrusage's ru_maxrss would carry the parent's peak across fork+exec on Linux.)
PEAK_GROWTH_SCRIPT = """
import sys, psutil, torch, rgprune
from rgprune.rg.checkpoints import trace_from_checkpoints
def vm_hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
paths = sys.argv[1:]
trace_from_checkpoints(paths[:1])  # warm up allocators and code paths
base = psutil.Process().memory_info().rss
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
trace = trace_from_checkpoints(paths)
print(len(trace.rounds), (vm_hwm() - base) / 2**20)
"""


def peak_growth_mb(paths):
    # A fixed mmap threshold makes glibc return every large buffer to the OS when it is freed; with its
    # default dynamic threshold, freed 4 MB buffers may stay cached in the heap, which measures the
    # allocator's policy rather than what the code holds on to.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(
        [sys.executable, "-c", PEAK_GROWTH_SCRIPT, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    rounds, growth = out.stdout.split()
    assert int(rounds) == len(paths)
    return float(growth)


def test_streaming_memory_does_not_grow_with_the_model(tmp_path):
    """Analysing 2 x 200 MB of weights needs no more memory than 2 x 20 MB: one tensor (4 MB) at a time."""
    small, big = tmp_path / "small.safetensors", tmp_path / "big.safetensors"
    save_file({f"layer{i}.weight": torch.randn(1024, 1024) for i in range(5)}, str(small))
    save_file({f"layer{i}.weight": torch.randn(1024, 1024) for i in range(50)}, str(big))
    growth_small = peak_growth_mb([small, small])
    growth_big = peak_growth_mb([big, big])
    assert growth_big < growth_small + 16, f"{growth_big:.0f} MB for 400 MB of weights vs {growth_small:.0f} MB for 40"
    assert growth_big < 64


def test_parameter_gram_matches_dense_inner_products(tmp_path):
    trace, paths, _ = imp_like_run(tmp_path, rounds=3)
    gram = parameter_gram(paths)
    from safetensors.torch import load_file

    vecs = []
    for p in paths:
        state = load_file(str(p))
        vecs.append(torch.cat([state[n].double().reshape(-1) for n in trace.tensor_names]))
    x = torch.stack(vecs)
    np.testing.assert_allclose(gram, (x @ x.T).numpy(), rtol=1e-10)


def test_flow_report_files_and_short_flow_refusal(tmp_path):
    trace, paths, _ = imp_like_run(tmp_path, rounds=4)
    out = write_flow_report(trace, tmp_path / "report", gram=parameter_gram(paths))
    flow_json = json.loads(out["flow"].read_text())
    # 4 rounds, 3 snapshot pairs: the held-out rule keeps at most 1 direction (never the exact fit of all pairs),
    # and a direction is classed only from its interval
    analysis = flow_json["analysis"]
    assert flow_json["observable"] == "excess" and analysis["rank_rule"] == "held-out"
    assert analysis["dmd_rank"] <= 1 and not analysis["exact_fit"]
    assert len(analysis["classes"]) == len(analysis["intervals"]) == analysis["dmd_rank"]
    assert set(analysis["classes"]) <= {"relevant", "irrelevant", "marginal", "unresolved"}
    assert len(flow_json["step_sizes"]) == 3
    for key in ("histogram_png", "density_png", "steps_png", "eigen_png", "split_png", "lottery_png"):
        assert out[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        "| round | density after prune | step size | pruning alone | training | accuracy |" in out["report"].read_text()
    )
    assert FlowTrace.load(out["trace"]).rounds == trace.rounds
    short = FlowTrace(trace.tensor_names, trace.tensor_sizes, rounds=trace.rounds[:2])
    result = analyse_flow(short)
    assert result["analysis"] is None and "at least 3" in result["reason"]


def test_compare_flows_distance_matrix(tmp_path):
    a, _, _ = imp_like_run(tmp_path / "a", rounds=4, seed=0) if (tmp_path / "a").mkdir() is None else None
    b, _, _ = imp_like_run(tmp_path / "b", rounds=4, seed=1) if (tmp_path / "b").mkdir() is None else None
    out = compare_flows({"a": a, "b": b, "a-again": a}, tmp_path / "cmp")
    result = json.loads(out["compare"].read_text())
    total = np.array(result["trajectory_distance"])
    assert total.shape == (3, 3) and np.allclose(total, total.T) and np.all(np.diag(total) == 0)
    assert total[0, 2] == pytest.approx(0, abs=1e-9) and total[0, 1] > 0
    with pytest.raises(ValueError, match="at least two"):
        compare_flows({"a": a}, tmp_path / "cmp2")


def test_trace_validation():
    trace = FlowTrace(["w"], [10])
    with pytest.raises(ValueError, match="bins"):
        trace.record(0, torch.zeros(10, dtype=torch.int64), torch.zeros(1), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="no rounds"):
        trace.trajectory()
    with pytest.raises(ValueError, match="unknown observable"):
        trace.record(0, torch.ones(4096, dtype=torch.int64), torch.ones(1), torch.ones(1), torch.ones(1))
        trace.trajectory("nope")


def test_record_prune_keeps_the_threshold_key_and_the_trace_round_trips(tmp_path):
    trace, paths, pruner = imp_like_run(tmp_path, rounds=3)
    assert all(isinstance(r.threshold_key, int) and r.threshold_key > 0 for r in trace.rounds)
    from safetensors.torch import load_file

    before = load_file(str(paths[-1]))
    before = torch.cat([before[n].reshape(-1) for n in trace.tensor_names])
    after = torch.cat([p.detach().reshape(-1) for p in pruner.params])
    pruned = (before != 0) & (after == 0)
    assert trace.thresholds()[-1] == before[pruned].abs().max().item()  # exact: the largest pruned |w|
    path = tmp_path / "trace.json"
    trace.save(path)
    assert json.loads(path.read_text())["version"] == 2
    loaded = FlowTrace.load(path)
    assert loaded.rounds == trace.rounds
    np.testing.assert_array_equal(loaded.trajectory("excess"), trace.trajectory("excess"))


def test_version_1_traces_still_load_and_interpolate_the_threshold(tmp_path):
    trace, _, _ = imp_like_run(tmp_path, rounds=3)
    old = trace.to_dict()
    old["version"] = 1
    for r in old["rounds"]:
        del r["threshold_key"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = FlowTrace.load(tmp_path / "old.json")
    assert [r.threshold_key for r in loaded.rounds] == [None] * 3
    exact, interpolated = trace.thresholds(), loaded.thresholds()
    assert np.all(interpolated != exact)
    np.testing.assert_allclose(interpolated, exact, rtol=1 / 16)  # within the threshold's bin
    np.testing.assert_array_equal(loaded.trajectory("histogram"), trace.trajectory("histogram"))
    for kind in ("excess", "log-relative"):  # the threshold interpolated in its bin: close, not equal
        np.testing.assert_allclose(loaded.trajectory(kind), trace.trajectory(kind), atol=2e-3)
    old["version"] = 99
    (tmp_path / "new.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="unsupported trace version 99"):
        FlowTrace.load(tmp_path / "new.json")


def test_a_threshold_key_that_cannot_have_made_the_counts_is_refused(tmp_path):
    trace, _, _ = imp_like_run(tmp_path, rounds=2)
    r = trace.rounds[1]
    fresh = FlowTrace(trace.tensor_names, trace.tensor_sizes)
    args = (torch.tensor(r.histogram), torch.tensor(r.counts), torch.tensor(r.abs_sums), torch.tensor(r.sq_sums))
    with pytest.raises(ValueError, match="cannot leave"):
        fresh.record(1, *args, threshold_key=trace.rounds[0].threshold_key)  # round 0's key: another prune
    with pytest.raises(ValueError, match="threshold_key must be an int"):
        fresh.record(1, *args, threshold_key=1 << 31)
    with pytest.raises(ValueError, match="survivors after pruning but only"):
        fresh.record(1, torch.zeros(4096, dtype=torch.int64), *args[1:])
    assert fresh.rounds == []
    assert fresh.record(1, *args, threshold_key=-1).threshold_key is None  # Threshold.key of a prune of 0
    assert fresh.record(2, *args, threshold_key=r.threshold_key).threshold_key == r.threshold_key


def test_checkpoint_traces_have_the_rescaled_observables_too(tmp_path):
    """Checkpoints do not record thresholds: round n's prune is read from round n + 1's survivors (the last
    round's from the trace's fraction), and its threshold interpolated in the histogram."""
    trace, paths, _ = imp_like_run(tmp_path, rounds=4)
    from_disk = trace_from_checkpoints(paths, fraction=0.2)
    # The recorded trace's round n holds θ_n before its prune: the checkpoints' round n is the same θ_n.
    for kind in ("excess", "log-relative"):
        np.testing.assert_allclose(from_disk.trajectory(kind), trace.trajectory(kind), atol=3e-3)
    with pytest.raises(ValueError, match="pruning fraction"):
        trace_from_checkpoints(paths).trajectory("excess")

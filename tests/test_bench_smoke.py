"""Keeps the benchmark script from rotting: ``python -m bench.compare --quick`` on tiny weight sets, into a
temporary folder, must succeed, write a result file with the documented schema, and render as markdown
(also through ``bench/readme_table.py``). Takes well under 30 s on 2 cores (one torch thread)."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_rg_plots import record_figures

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("torch_prune", "rgprune_switch", "naive", "reference", "rgprune")


def run_quick(out: Path, device: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--quick", "--device", device, "--threads", "1", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"bench.compare failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    kind = "gpu" if device == "cuda" else "cpu"
    files = sorted(out.glob(f"{kind}-*-1thread-quick.json"))
    assert len(files) == 1, f"expected one {kind} result file, found {[f.name for f in out.iterdir()]}"
    return proc, json.loads(files[0].read_text())


def survivors_after(n: int, rounds: int) -> int:
    """Survivors after ``rounds`` IMP rounds that each prune round(0.2 * survivors) of ``n`` weights."""
    for _ in range(rounds):
        n -= round(0.2 * n)
    return n


def check_schema(res: dict, kind: str) -> None:
    assert res["schema"] == "rgprune-bench/1"
    assert res["kind"] == kind and res["quick"] is True
    assert res["errors"] == []
    for key in ("cpu_model", "logical_cores", "torch", "rgprune_backend", "torch_threads"):
        assert res["machine"][key], key
    assert res["machine"]["torch_threads"] == 1
    assert res["copy_bandwidth"]["bytes_per_s"] > 0
    assert set(res["models"]) == {"resnet20", "bert-tiny", "synthetic-tiny"}
    for name, m in res["models"].items():
        assert m["n_weights"] > 0 and m["weight_bytes"] == 4 * m["n_weights"]
        storage = m["mask_storage_bytes"]
        assert storage["torch_prune"] == 4 * m["n_weights"] and storage["naive"] == m["n_weights"]
        assert storage["rgprune"] == m["bitmask_bytes"] < m["n_weights"] / 8 + 4 * m["n_tensors"]
        for rkey, survivors in (("round1", m["n_weights"]), ("round5", survivors_after(m["n_weights"], 4))):
            r = m["rounds"][rkey]
            assert r["survivors"] == survivors and r["density"] == survivors / m["n_weights"]
            assert r["k"] == round(0.2 * survivors)
            for method in METHODS:
                e = r["methods"][method]
                assert e["error"] is None
                assert e["reps"] == len(e["times_s"]) >= 1 and e["median_s"] > 0 and e["min_s"] > 0
                if method != "naive":  # naive prunes every tie at the threshold
                    assert e["pruned"] == r["k"] and e["exact_k"]
                assert e["masks_equal_torch_prune_up_to_ties"] is True  # bits differ only at the threshold
            assert r["methods"]["reference"]["mask_bits_differing_from_rgprune"] == 0
            assert set(r["speedup"]) == {"vs_torch_prune", "vs_rgprune_switch", "vs_naive", "vs_reference"}
            switch = r["methods"]["torch_prune"]["median_s"] / r["methods"]["rgprune_switch"]["median_s"]
            assert r["switch_vs_torch_prune"] == pytest.approx(switch, rel=1e-12)
            for method in METHODS:  # each median is its repetitions' median; speedups are ratios of medians
                assert r["methods"][method]["median_s"] == statistics.median(r["methods"][method]["times_s"])
            for method in ("torch_prune", "rgprune_switch", "naive", "reference"):
                want = r["methods"][method]["median_s"] / r["methods"]["rgprune"]["median_s"]
                assert r["speedup"][f"vs_{method}"] == pytest.approx(want, rel=1e-12)
            for method in METHODS:
                mem = m["memory"][rkey][method]
                assert isinstance(mem["peak_extra_bytes"], int) and "retained_bytes" in mem
                assert "peak_extra_fraction_of_weights" in mem
            assert m["floor"][rkey]["times_floor"] > 0
            t = m["trace"][rkey]
            assert t["trace_overhead_ratio"] > 0 and t["separate_histogram_pass_ratio"] > 0
            assert set(t["variants"]) == {
                "round_with_trace",
                "round_without_trace",
                "threshold_only",
                "apply_only",
                "apply_only_bits1",
                "histogram_pass",
            }
        if name == "synthetic-tiny":
            assert "training_step" not in m
        else:
            ts = m["training_step"]
            assert set(ts["variants"]) == {"no_pruning", "torch_prune", "rgprune_attach"}
            assert ts["ratio_vs_no_pruning"]["no_pruning"] == 1.0
            assert ts["mask_reapplication"]["ratio_vs_read_write_pass"] > 0
    assert res["targets"], "targets must be listed"
    for t in res["targets"]:
        assert set(t) >= {"id", "description", "model", "required", "measured", "met"}
        assert t["met"] in (True, False)
    ids = {t["id"] for t in res["targets"]}
    if kind == "cpu":
        assert {
            "cpu.bert-tiny.round1.vs_torch_prune",
            "cpu.bert-tiny.round5.vs_naive",
            "cpu.resnet20.round1.memory",
        } <= ids
    else:
        assert {
            "gpu.bert-tiny.round1.vs_torch_prune",
            "gpu.bert-tiny.round5.floor",
            "gpu.bert-tiny.mask_reapplication",
        } <= ids
    assert isinstance(res["all_targets_met"], bool)


def check_rendering(proc, res, tmp_path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from bench import readme_table
    finally:
        sys.path.remove(str(ROOT))
    assert "### One IMP round" in proc.stdout and "### Targets" in proc.stdout
    res["_file"] = "x.json"
    block = readme_table.render_readme([res])
    assert "| bert-tiny (69.6k) | 1 (1.00) |" in block
    summary = readme_table.render_summary([res])  # the README's short block; the full one goes to docs/benchmarks.md
    assert "| bert-tiny | 1 (1.00) |" in summary and "docs/benchmarks.md" in summary
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nintro\n\n## GPU\n\ntext\n")
    readme_table.write_readme(readme, block)
    once = readme.read_text()
    assert once.startswith("# title\n\nintro\n\n## GPU\n\ntext\n\n## Performance\n\n<!-- bench:start -->\n")
    readme_table.write_readme(readme, block)  # idempotent: replaces the block in place
    assert readme.read_text() == once
    assert readme_table.check_readme(readme, block) == 0
    assert readme_table.check_readme(readme, block + " changed") == 1


def test_compare_quick_cpu(tmp_path):
    proc, res = run_quick(tmp_path, "cpu")
    check_schema(res, "cpu")
    check_rendering(proc, res, tmp_path)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU present")
def test_compare_quick_cuda(tmp_path):
    proc, res = run_quick(tmp_path, "cuda")
    check_schema(res, "gpu")


def interleaving_order(target: dict) -> list:
    """The order in which ``next_variant`` runs the repetitions of ``target`` ({variant: repetitions})."""
    from rgprune.benchmark.measure import next_variant

    names, done, order = list(target), dict.fromkeys(target, 0), []
    while (n := next_variant(names, done, target)) is not None:
        done[n] += 1
        order.append(n)
    return order


def test_interleaving_spreads_each_methods_repetitions():
    """torch.prune's 2 repetitions are bracketed by rgprune's 7 (some before, between and after them), so a
    drift of the machine's speed during the run reaches both sides of the ratio; equal counts give the
    rotated round-robin."""
    order = interleaving_order({"torch_prune": 2, "naive": 7, "reference": 2, "rgprune": 7})
    assert sorted(order) == sorted(["torch_prune"] * 2 + ["naive"] * 7 + ["reference"] * 2 + ["rgprune"] * 7)
    tp = [i for i, n in enumerate(order) if n == "torch_prune"]
    rg = [i for i, n in enumerate(order) if n == "rgprune"]
    assert (
        sum(i < tp[0] for i in rg) >= 2 and sum(tp[0] < i < tp[1] for i in rg) >= 2 and sum(i > tp[1] for i in rg) >= 2
    )
    assert interleaving_order({"a": 3, "b": 3, "c": 3}) == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


@pytest.fixture
def figures_drawn(monkeypatch):
    return record_figures(monkeypatch)


def test_scale_plot_draws_each_methods_series(tmp_path, figures_drawn):
    """bench's scale plot (``rgprune.benchmark.scale.plot_growth``): left, ns per weight against the number of
    weights on log-log axes; right, peak extra bytes per weight; one line per method with data (unmeasured
    points left out, a panel without any says so), methods named in the legend, the machine in the title.
    Guards against: the panels swapped, a method's series dropped or shifted by a size, None drawn as 0."""
    from rgprune.benchmark.scale import plot_growth

    sizes = [20_000, 60_000, 180_000]
    growth = {
        "round1": {
            "torch_prune": {
                "n_weights": sizes,
                "ns_per_weight": [40.0, 45.0, None],
                "peak_extra_bytes_per_weight": [None] * 3,
            },
            "rgprune": {
                "n_weights": sizes,
                "ns_per_weight": [2.0, 1.5, 1.2],
                "peak_extra_bytes_per_weight": [None] * 3,
            },
        }
    }
    plot_growth({"growth": growth}, tmp_path / "scale.png", "some CPU, torch threads 1")
    assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = figures_drawn
    time_axes, memory_axes = figure.axes
    assert time_axes.get_xlabel() == "weights" and time_axes.get_ylabel() == "ns per weight (median)"
    assert (time_axes.get_xscale(), time_axes.get_yscale()) == ("log", "log")
    series = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in time_axes.get_lines()}
    assert series == {"torch.prune": ([20_000, 60_000], [40.0, 45.0]), "rgprune": (sizes, [2.0, 1.5, 1.2])}
    assert [t.get_text() for t in time_axes.get_legend().get_texts()] == ["torch.prune", "rgprune"]
    assert memory_axes.get_ylabel() == "peak extra bytes per weight" and list(memory_axes.get_lines()) == []
    assert [t.get_text() for t in memory_axes.texts] == ["not measured"]
    assert figure.get_suptitle() == "some CPU, torch threads 1"

    growth["round1"]["rgprune"]["peak_extra_bytes_per_weight"] = [0.5, 0.25, 0.125]
    plot_growth({"growth": growth}, tmp_path / "scale2.png")
    memory_axes = figures_drawn[1].axes[1]
    assert [(line.get_label(), list(line.get_ydata())) for line in memory_axes.get_lines()] == [
        ("rgprune", [0.5, 0.25, 0.125])
    ]
    assert list(memory_axes.texts) == [] and memory_axes.get_xscale() == "log"

"""rgprune.benchmark.measure, unit by unit: the tests that kill the mutants `make mutation AREA=measure` found
alive (docs/mutation.md). Fast: no model, no benchmark run."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_bench_smoke import interleaving_order

import rgprune
from rgprune.benchmark import measure
from rgprune.benchmark.measure import (
    copy_bandwidth,
    floor_for,
    interleaved,
    mask_storage,
    median,
    memory_jobs,
    next_variant,
    peak_rss_during,
    proc_status_kb,
    ratio,
    reset_peak_rss,
    run_memory_jobs,
)


def test_median_and_ratio_of_nothing_are_none():
    assert median([]) is None and median([3.0, 1.0, 2.0]) == 2.0
    assert ratio(6.0, 3.0) == 2.0
    assert ratio(None, 3.0) is None and ratio(6.0, None) is None and ratio(6.0, 0) is None


def test_next_variant_rotates_equal_targets_and_spreads_unequal_ones():
    assert interleaving_order({"a": 3, "b": 3, "c": 3}) == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert interleaving_order({"a": 1, "b": 3}) == ["b", "a", "b", "b"]
    assert interleaving_order({"a": 2, "b": 0}) == ["a", "a"]
    assert next_variant(["a"], {"a": 2}, {"a": 2}) is None


def _variant(dt_log, ctx="ctx", fail_on=()):
    calls = {"n": 0}

    def run(c):
        calls["n"] += 1
        assert c == ctx
        if calls["n"] in fail_on:
            raise RuntimeError("boom")

    return (lambda: ctx, run), calls


def test_interleaved_counts_repetitions_and_summarizes_the_times():
    (a, a_calls), (b, b_calls) = _variant(None), _variant(None)
    firsts, reps = [], []
    out = interleaved(
        {"a": a, "b": b},
        4,
        "cpu",
        slow_reps=2,
        force_slow=("b",),
        on_first=lambda n, ctx: firsts.append((n, ctx)),
        on_rep=lambda n, done, total: reps.append((n, done, total)),
    )
    assert a_calls["n"] == 4 and b_calls["n"] == 2
    assert sorted(firsts) == [("a", "ctx"), ("b", "ctx")]
    assert [d for _, d, _ in reps] == list(range(1, 7)) and {t for *_, t in reps} == {6}
    for n, k in (("a", 4), ("b", 2)):
        r = out[n]
        assert r["error"] is None and r["reps"] == k == len(r["times_s"])
        assert r["min_s"] == min(r["times_s"]) and r["max_s"] == max(r["times_s"])
        assert r["median_s"] == median(r["times_s"]) and r["min_s"] <= r["median_s"] <= r["max_s"]
        assert all(t >= 0 for t in r["times_s"])


def test_interleaved_cuts_a_slow_variant_to_slow_reps_after_its_first_run():
    (a, a_calls), (b, b_calls) = _variant(None), _variant(None)
    out = interleaved({"a": a, "b": b}, 5, "cpu", slow_reps=3, slow_after=-1.0)
    assert a_calls["n"] == b_calls["n"] == 3 and out["a"]["reps"] == 3
    (c, c_calls), _ = _variant(None), None
    interleaved({"c": c}, 5, "cpu", slow_reps=1, slow_after=60.0)
    assert c_calls["n"] == 5
    (d, d_calls), _ = _variant(None), None
    interleaved({"d": d}, 1, "cpu", slow_reps=3, force_slow=("d",))
    assert d_calls["n"] == 1


def test_force_slow_defaults_to_two_repetitions():
    (a, a_calls), _ = _variant(None), None
    interleaved({"a": a}, 5, "cpu", force_slow=("a",))
    assert a_calls["n"] == 2


def test_a_failure_frees_the_cuda_cache_only_on_cuda(monkeypatch):
    freed = []
    monkeypatch.setattr(measure.torch.cuda, "empty_cache", lambda: freed.append(1))
    monkeypatch.setattr(measure, "sync", lambda device: None)
    (a, _), _ = _variant(None, fail_on=(1,)), None
    interleaved({"a": a}, 2, "cpu")
    assert freed == []
    interleaved({"a": _variant(None, fail_on=(1,))[0]}, 2, "cuda")
    assert freed == [1]


def test_memory_gpu_subtracts_the_allocation_before_the_round(monkeypatch):
    allocated = iter([100, 120])  # before the round, after it
    monkeypatch.setattr(measure, "sync", lambda device: None)
    monkeypatch.setattr(measure.torch.cuda, "reset_peak_memory_stats", lambda device: None)
    monkeypatch.setattr(measure.torch.cuda, "memory_allocated", lambda device: next(allocated))
    monkeypatch.setattr(measure.torch.cuda, "max_memory_allocated", lambda device: 250)
    monkeypatch.setattr(measure.torch.cuda, "empty_cache", lambda: None)
    method = SimpleNamespace(
        name="m",
        prepare=lambda state, model, names: "ctx",
        run=lambda ctx, k: None,
        keep=lambda ctx: [torch.tensor([True, True, False]), torch.tensor([True])],
    )
    state = SimpleNamespace(survivors=10, k=3)
    assert measure.memory_gpu(state, method, None, None, "cuda") == {
        "method": "m",
        "peak_extra_bytes": 150,
        "retained_bytes": 20,
        "pruned": 7,
        "k": 3,
    }


def test_interleaved_options_are_keyword_only():
    out = interleaved(variants={"a": (lambda: None, lambda ctx: None)}, reps=1, device="cpu")
    assert out["a"]["reps"] == 1
    with pytest.raises(TypeError):
        interleaved({"a": (lambda: None, lambda ctx: None)}, 1, "cpu", 2)


def test_a_first_run_exactly_as_long_as_slow_after_is_not_slow(monkeypatch):
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(clock))  # every run takes exactly 1 s
    (a, a_calls), _ = _variant(None), None
    out = interleaved({"a": a}, 4, "cpu", slow_reps=2, slow_after=1.0)
    assert a_calls["n"] == 4 and out["a"]["times_s"] == [1.0] * 4
    (b, b_calls), _ = _variant(None), None
    interleaved({"b": b}, 4, "cpu", slow_reps=2, slow_after=0.5)
    assert b_calls["n"] == 2


def test_interleaved_records_a_failure_and_goes_on_with_the_others():
    (a, a_calls), (b, b_calls) = _variant(None, fail_on=(2,)), _variant(None)
    reps = []
    out = interleaved({"a": a, "b": b}, 4, "cpu", on_rep=lambda n, done, total: reps.append((n, done, total)))
    assert out["a"]["error"] == "RuntimeError: boom"
    assert a_calls["n"] == 2 and out["a"]["reps"] == 1 and len(out["a"]["times_s"]) == 1
    assert b_calls["n"] == 4 and out["b"]["error"] is None and out["b"]["reps"] == 4
    assert reps[-1][1:] == (6, 6)
    (c, _), _ = _variant(None, fail_on=(1,)), None
    out = interleaved({"c": c}, 3, "cpu")
    assert out["c"]["reps"] == 0 and out["c"]["median_s"] is None
    assert out["c"]["min_s"] is None and out["c"]["max_s"] is None


def test_interleaved_times_with_the_garbage_collector_off_and_turns_it_back_on():
    import gc

    seen = []
    interleaved({"a": (lambda: None, lambda ctx: seen.append(gc.isenabled()))}, 2, "cpu")
    assert seen == [False, False] and gc.isenabled()


PEAK_RSS_CHILD = """
import json, os
from rgprune.benchmark.measure import peak_rss_during, proc_status_kb, reset_peak_rss
blob = []
res = peak_rss_during(lambda: blob.append(b"\\x01" * (64 * 2**20)))
res["vmrss_kb"], res["no_such_key"] = proc_status_kb("VmRSS"), proc_status_kb("NoSuchKey")
res["can_reset"], res["clear_refs_writable"] = reset_peak_rss(), os.access("/proc/self/clear_refs", os.W_OK)
print(json.dumps(res))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_proc_status_and_peak_rss():
    """The real /proc readings, in a fresh process as the benchmark's memory jobs run them: in the test
    process, 64 MiB may land on pages the heap already holds, so the peak would depend on earlier tests."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS_CHILD], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["vmrss_kb"] > 0 and res["no_such_key"] is None
    assert res["can_reset"] == res["clear_refs_writable"]
    assert res["rss_before_bytes"] > 0 and res["rss_before_bytes"] % 1024 == 0
    assert res["peak_extra_bytes"] >= 32 * 2**20
    assert res["retained_bytes"] >= 32 * 2**20  # the list still holds the 64 MiB
    assert res["ru_maxrss_bytes"] >= res["rss_before_bytes"]
    if res["can_reset"]:
        assert res["peak_source"] == "VmHWM after clear_refs"


@pytest.mark.parametrize(
    "reset, hwm, peak, source",
    [(True, 5000, 5000, "VmHWM after clear_refs"), (False, 5000, 7000, "ru_maxrss"), (True, None, 7000, "ru_maxrss")],
)
def test_peak_rss_uses_vmhwm_only_after_a_reset(monkeypatch, reset, hwm, peak, source):
    rss = iter([1000, 1500])  # before, after

    def fake_status(key):
        return hwm if key == "VmHWM" else next(rss)

    monkeypatch.setattr(measure, "reset_peak_rss", lambda: reset)
    monkeypatch.setattr(measure, "proc_status_kb", fake_status)
    monkeypatch.setattr(measure.resource, "getrusage", lambda who: SimpleNamespace(ru_maxrss=7000))
    ran = []
    assert peak_rss_during(lambda: ran.append(1)) == {
        "rss_before_bytes": 1000 * 1024,
        "peak_extra_bytes": (peak - 1000) * 1024,
        "retained_bytes": 500 * 1024,
        "peak_source": source,
        "ru_maxrss_bytes": 7000 * 1024,
    }
    assert ran == [1]


def test_proc_status_kb_without_proc(monkeypatch):
    def no_file(*a, **k):
        raise OSError("no /proc")

    monkeypatch.setattr("builtins.open", no_file)
    assert proc_status_kb("VmRSS") is None
    assert reset_peak_rss() is False


def test_memory_jobs_save_each_state_once_and_list_every_method(tmp_path):
    state = SimpleNamespace(round=2, weights=[torch.ones(3)], masks=[torch.ones(3, dtype=torch.bool)], survivors=3)
    state.fraction = 0.5
    jobs = memory_jobs({1: state, 2: state}, ["x", "y"], tmp_path, "tag")
    assert jobs == [
        {"state": str(tmp_path / f"tag-round{r}.pt"), "model": "tag", "round": r, "method": m}
        for r in (1, 2)
        for m in ("x", "y")
    ]
    saved = torch.load(tmp_path / "tag-round1.pt", weights_only=True)
    assert saved["round"] == 2 and saved["survivors"] == 3 and saved["fraction"] == 0.5
    assert torch.equal(saved["weights"][0], torch.ones(3))


def test_worker_env_puts_this_package_first():
    cwd, env = measure._worker_env()
    assert Path(cwd) == Path(rgprune.__file__).resolve().parent.parent
    assert env["PYTHONPATH"].split(os.pathsep)[0] == cwd


def test_run_memory_jobs_reports_a_failed_worker_per_job(tmp_path):
    jobs = [
        {"state": str(tmp_path / "missing.pt"), "model": "m", "round": 1, "method": "rgprune"},
        {"state": str(tmp_path / "missing.pt"), "model": "m", "round": 1, "method": "naive"},
    ]
    out = run_memory_jobs(jobs, shared=True)
    assert set(out) == {("m", 1)} and set(out[("m", 1)]) == {"rgprune", "naive"}
    for res in out[("m", 1)].values():
        # the last line of the worker's traceback, as text
        assert re.fullmatch(r"worker exited with 1: \w*Error: .*", res["error"]), res["error"]


def test_run_memory_jobs_reads_the_workers_results(monkeypatch):
    calls = []

    def fake_run(cmd, **kw):
        batch = json.loads(cmd[-1])
        calls.append(len(batch))
        res = [{"method": j["method"], "peak_extra_bytes": 7} for j in batch]
        stale = [{"method": "stale"} for j in batch]
        marked = [measure.WORKER_MARK + json.dumps(r) for r in (stale, stale, res)]  # the last line counts
        return SimpleNamespace(returncode=0, stdout="\n".join(["noise", *marked, ""]), stderr="")

    monkeypatch.setattr(measure.subprocess, "run", fake_run)
    jobs = [{"state": "s", "model": "m", "round": r, "method": k} for r in (1, 2) for k in ("a", "b")]
    out = run_memory_jobs(jobs, shared=False)
    assert calls == [1, 1, 1, 1]
    assert out == {("m", r): {k: {"method": k, "peak_extra_bytes": 7} for k in ("a", "b")} for r in (1, 2)}
    calls.clear()
    assert run_memory_jobs(jobs, shared=True) == out and calls == [4]


@pytest.mark.parametrize(
    "returncode, stdout, stderr, error",
    [
        (1, "", "Traceback\n  line\nValueError: bad\n", "worker exited with 1: ValueError: bad"),
        (0, "no marked line\n", "", "worker exited with 0: no output"),
    ],
)
def test_run_memory_jobs_names_the_last_line_of_a_failed_worker(monkeypatch, returncode, stdout, stderr, error):
    done = SimpleNamespace(returncode=returncode, stdout=stdout, stderr=stderr)
    monkeypatch.setattr(measure.subprocess, "run", lambda cmd, **kw: done)
    out = run_memory_jobs([{"state": "s", "model": "m", "round": 1, "method": "a"}], shared=False)
    assert out == {("m", 1): {"a": {"error": error}}}


def test_mask_storage_bytes():
    expected = {
        "torch_prune": 400,
        "torch_prune_reparam_total": 800,
        "naive": 100,
        "naive_topk": 100,
        "reference": 16,
        "rgprune": 16,
    }
    got = mask_storage(100, 16)
    assert {k: got[k] for k in expected} == expected
    assert got.get("rgprune_switch", 400) == 400
    assert mask_storage(100, 16, element_size=2)["torch_prune"] == 200


def test_copy_bandwidth_counts_read_and_write(monkeypatch):
    seen = {}

    def fake_interleaved(variants, reps, device):
        seen["reps"] = reps
        prepare, run = variants["copy"]
        run(prepare())
        seen["sizes"] = sorted(c.cell_contents.numel() for c in run.__closure__)  # dst, src
        return {"copy": {"median_s": 0.5, "times_s": [0.5] * reps}}

    monkeypatch.setattr(measure, "interleaved", fake_interleaved)
    res = copy_bandwidth("cpu", 4096, 2)
    assert seen["reps"] == 5 and res["bytes_copied"] == 4096 and res["median_s"] == 0.5
    assert seen["sizes"] == [1024, 1024]  # float32: nbytes / 4 elements each
    assert res["bytes_per_s"] == 2 * 4096 / 0.5 and res["times_s"] == [0.5] * 5
    assert copy_bandwidth("cpu", 4096, 9)["times_s"] == [0.5] * 9


def test_floor_for_is_four_weight_passes_and_two_mask_passes():
    rounds = {"r1": {"methods": {"rgprune": {"median_s": 3.0}}}, "r2": {"methods": {}}}
    out = floor_for(rounds, weight_bytes=10, bitmask_bytes=5, bandwidth=2.0)
    assert out["floor_bytes"] == 50 and out["floor_s"] == 25.0
    assert out["r1"] == {"rgprune_s": 3.0, "times_floor": 3.0 / 25.0, "fraction_of_floor_speed": 25.0 / 3.0}
    assert out["r2"] == {"rgprune_s": None, "times_floor": None, "fraction_of_floor_speed": None}

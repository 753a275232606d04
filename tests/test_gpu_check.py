"""bench/gpu_check.py (``make gpu-check``) without a GPU: its plan fits the time it must fit, and its pieces that
read pytest, compute-sanitizer and the benchmark's JSON do so correctly."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gpu_check


def test_the_budgets_fit_eight_minutes_and_cover_every_step():
    assert sum(gpu_check.BUDGETS.values()) <= gpu_check.TOTAL_LIMIT - 20 <= 8 * 60
    steps = {"build", "info", "tests", *gpu_check.SANITIZER_TOOLS, *(f"bench {m}" for m in gpu_check.BENCH_MODELS)}
    assert set(gpu_check.BUDGETS) == steps
    assert list(gpu_check.BENCH_MODELS) == ["resnet50", "bert-base", "synthetic-1b"]


def test_dry_run_prints_every_command_and_runs_none(capsys, monkeypatch):
    monkeypatch.setattr(gpu_check.subprocess, "Popen", None)  # anything started would fail
    assert gpu_check.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in gpu_check.BUDGETS:
        assert f"[{name}, " in out or f"[{name}]" in out
    assert "make build" in out and "-m cuda" in out and "--device cuda --rounds 1,5" in out
    for tool in gpu_check.SANITIZER_TOOLS:
        assert f"--tool {tool} --error-exitcode 1" in out
    assert "RGPRUNE_SIM_CASES=reduced" in out


def test_pytest_and_sanitizer_output_are_counted():
    lines = ["..F.s", "FAILED tests/test_x.py::test_a - assert 1 == 2", "1 failed, 3 passed, 1 skipped in 2.51s"]
    assert gpu_check.pytest_counts(lines) == "1 failed, 3 passed, 1 skipped in 2.51s"
    assert (
        gpu_check.pytest_counts(["=== 12 passed, 131 deselected in 8.00s ==="]) == "12 passed, 131 deselected in 8.00s"
    )
    assert gpu_check.pytest_counts(["collected 0 items"]) == "no pytest summary line"
    sanitized = ["========= COMPUTE-SANITIZER", "4 passed in 30.1s", "========= ERROR SUMMARY: 2 errors"]
    assert gpu_check.sanitizer_errors(sanitized) == 2
    assert gpu_check.sanitizer_errors(["4 passed in 1.0s"]) is None


def _result(model, met, error=None):
    return {
        "schema": "rgprune-bench/1",
        "kind": "gpu",
        "command": f"rgprune bench --model {model}",
        "settings": {"models": [model], "reps": 7},
        "models": {
            model: {
                "rounds": {
                    "round1": {"methods": {"rgprune": {"median_s": 0.002}}, "speedup": {"vs_torch_prune": 30.0}}
                },
                "floor": {"round1": {"times_floor": 1.5}},
            }
        },
        "targets": [{"id": f"gpu.{model}.round1.floor", "met": met, "measured": 1.5, "required": "<= 2"}],
        "errors": [error] if error else [],
        "finished": f"{model}-end",
    }


def test_bench_results_merge_into_one_document():
    merged = gpu_check.merge_bench(
        [("resnet50", _result("resnet50", True)), ("bert-base", _result("bert-base", True))], []
    )
    assert merged["schema"] == "rgprune-bench/1" and merged["kind"] == "gpu"
    assert list(merged["models"]) == ["resnet50", "bert-base"] == merged["settings"]["models"]
    assert len(merged["targets"]) == 2 and merged["all_targets_met"] is True and merged["errors"] == []
    assert [r["model"] for r in merged["gpu_check_runs"]] == ["resnet50", "bert-base"]
    assert merged["finished"] == "bert-base-end"
    lines = gpu_check.bench_lines(merged)
    assert "resnet50 round1: rgprune 2.00 ms, 1.50x the bandwidth floor, 30.0x faster than torch.prune" in lines[0]

    missed = gpu_check.merge_bench([("resnet50", _result("resnet50", False, "resnet50 round5: boom"))], ["x: TIMEOUT"])
    assert missed["all_targets_met"] is False and missed["errors"] == ["resnet50 round5: boom", "x: TIMEOUT"]
    assert gpu_check.merge_bench([], ["everything timed out"]) is None


class _FakeMachine:
    """Stands in for the GPU machine: the probes answer as on one (or without a GPU), and each command's
    outcome is chosen by the test; nothing is run."""

    def __init__(self, monkeypatch, tmp_path, gpu=True, outcomes=None):
        self.ran = []
        self.outcomes = outcomes or {}
        fake_python = tmp_path / "venv-python"
        fake_python.write_text("")
        monkeypatch.setattr(gpu_check, "PY", fake_python)
        monkeypatch.setattr(gpu_check, "RESULTS", tmp_path / "results")
        monkeypatch.setattr(gpu_check, "SIM_TESTS", "tests/no_such_file.py")
        monkeypatch.setattr(gpu_check, "find_sanitizer", lambda env: "/cuda/bin/compute-sanitizer")
        monkeypatch.setattr(gpu_check, "quiet", self.quiet)
        monkeypatch.setattr(gpu_check.Check, "run", lambda check, cmd, budget, env=None: self.run(check, cmd, env))
        monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
        monkeypatch.delenv("GPU_CHECK_COPY_TO", raising=False)
        self.gpu = gpu

    def quiet(self, cmd, timeout=30):
        text = " ".join(map(str, cmd))
        if cmd[0] == "nvidia-smi":
            if not self.gpu:
                return 127, "nvidia-smi: not found"
            return 0, "9.0" if "compute_cap" in text else "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"
        if "is_available" in text:
            return 0, "2.11.0+cu130 True"
        return 0, ""

    def run(self, check, cmd, env):
        text = " ".join(map(str, cmd))
        self.ran.append((text, env or {}))
        check.say(f"$ {text}")
        rc, lines = next((outcome for key, outcome in self.outcomes.items() if key in text), (0, []))
        if " bench " in text and rc == 0:
            model = cmd[cmd.index("--model") + 1]
            Path(cmd[cmd.index("--json") + 1]).write_text(json.dumps(_result(model, True)))
        for line in lines:
            check.say(line)
        return rc, lines


def test_gpu_run_records_each_step_goes_on_after_failures_and_writes_both_files(monkeypatch, tmp_path, capsys):
    outcomes = {
        "-m cuda --continue-on-collection-errors": (1, ["1 failed, 142 passed in 30.00s"]),
        "--tool racecheck": (1, ["3 passed in 20.00s", "========= ERROR SUMMARY: 2 errors"]),
        "--model synthetic-1b": (None, []),  # ran out of time
    }
    fake = _FakeMachine(monkeypatch, tmp_path, outcomes=outcomes)
    assert gpu_check.main([]) == 1
    ran = [text for text, _ in fake.ran]
    assert ran[0] == "make build" and fake.ran[0][1]["TORCH_CUDA_ARCH_LIST"] == "9.0"  # the visible GPU only
    assert sum("compute-sanitizer --tool" in t for t in ran) == 3 and sum(" bench " in t for t in ran) == 3
    memcheck_env = next(env for text, env in fake.ran if "--tool memcheck" in text)
    assert memcheck_env["RGPRUNE_SIM_CASES"] == "reduced" and memcheck_env["PYTORCH_NO_CUDA_MEMORY_CACHING"] == "1"

    results = tmp_path / "results"
    (log,) = results.glob("gpu-tests-*.txt")
    (bench,) = results.glob("gpu-*.json")
    text = log.read_text()
    assert "tests               FAIL (exit 1)" in text and "1 failed, 142 passed" in text
    assert "racecheck" in text and "sanitizer errors: 2" in text
    assert "bench synthetic-1b  TIMEOUT" in text and "FAILED: tests, racecheck, bench synthetic-1b" in text
    doc = json.loads(bench.read_text())
    assert list(doc["models"]) == ["resnet50", "bert-base"]
    budget = gpu_check.BUDGETS["bench synthetic-1b"]
    assert doc["errors"] == [f"synthetic-1b: TIMEOUT (budget {budget} s), no result"] and not doc["all_targets_met"]
    assert "FAILED: tests, racecheck, bench synthetic-1b" in capsys.readouterr().out


def test_without_a_gpu_it_builds_says_so_writes_nothing_and_exits_0(monkeypatch, tmp_path, capsys):
    fake = _FakeMachine(monkeypatch, tmp_path, gpu=False)
    assert gpu_check.main([]) == 0
    assert [text for text, _ in fake.ran] == ["make build"]
    assert "TORCH_CUDA_ARCH_LIST" not in fake.ran[0][1]
    out = capsys.readouterr().out
    assert "NO GPU: no nvidia-smi on this machine" in out and "does not exist yet" in out
    assert not (tmp_path / "results").exists()

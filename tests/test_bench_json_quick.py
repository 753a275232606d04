"""rgprune bench's --json folder (a trailing separator or an existing folder: a dated file inside, the folder
created), --quick (rgprune against torch.prune, one round, few repetitions, no memory subprocesses) and the
up-front estimate of how long a run takes. The timing itself is replaced by a stub, except in one real --quick
run on a tiny model."""

import argparse
import json
import os

import pytest
import torch

from rgprune.benchmark import BenchmarkError, api, cli
from rgprune.benchmark import scale as scale_mod
from rgprune.benchmark.methods import ALL_METHODS


def tiny_model():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(40, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def stub(monkeypatch):
    """run_device replaced by a stub that records the Settings and returns what writing the JSON needs."""
    seen = []

    def run_device(dev, workloads, settings):
        seen.append(settings)
        return {
            "kind": "cpu",
            "date": "2026-12-07",
            "quick": settings.quick,
            "machine": {"cpu_model": "Test CPU", "gpu": None},
            "settings": {"threads": settings.threads},
            "errors": [],
        }

    monkeypatch.setattr(api, "run_device", run_device)
    monkeypatch.setattr(cli, "summary", lambda result: "")
    return seen


def bench(*argv) -> int:
    return cli.command(parse("--model", f"{__name__}:tiny_model", "--no-progress", *argv), "rgprune bench test")


def test_json_with_a_trailing_slash_is_a_folder_created_with_a_dated_file(stub, tmp_path):
    """Guards against ``--json bench-out/`` (the README's example) writing a *file* named bench-out when the
    folder does not exist (issue 25)."""
    out = tmp_path / "bench-out" / "nested"
    assert bench("--json", str(out) + os.sep) == 0
    assert out.is_dir() and [p.name for p in out.iterdir()] == ["cpu-test-cpu-2026-12-07.json"]
    assert json.loads((out / "cpu-test-cpu-2026-12-07.json").read_text())["kind"] == "cpu"


def test_json_naming_an_existing_folder_writes_inside_it(stub, tmp_path):
    assert bench("--json", str(tmp_path)) == 0
    assert (tmp_path / "cpu-test-cpu-2026-12-07.json").is_file()


def test_json_naming_a_file_writes_that_file(stub, tmp_path):
    path = tmp_path / "mine.json"
    assert bench("--json", str(path)) == 0
    assert path.is_file() and json.loads(path.read_text())["date"] == "2026-12-07"
    assert bench("--json", str(tmp_path / "no-suffix")) == 0  # without a separator: a file, as before
    assert (tmp_path / "no-suffix").is_file()


def test_json_folder_that_cannot_be_made_fails_before_timing(stub, tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(BenchmarkError, match="cannot create the folder"):
        bench("--json", str(tmp_path / "taken") + os.sep)
    assert stub == []  # nothing timed


def test_scale_json_folder_is_created_too(monkeypatch, tmp_path):
    """run_scale resolves --json the same way (its file ends in -scale.json)."""
    monkeypatch.setattr(scale_mod, "run_device", lambda *a: (_ for _ in ()).throw(RuntimeError("timed")))
    with pytest.raises(RuntimeError, match="timed"):
        scale_mod.run_scale([1000], memory=False, progress=False, json_path=str(tmp_path / "s") + "/")
    assert (tmp_path / "s").is_dir()  # created before the timing, so a bad folder fails first


def test_quick_times_rgprune_against_torch_prune_once_without_memory(stub, tmp_path):
    """Guards against --quick running the slow default (every method, rounds 1 and 5, 7 repetitions and a memory
    subprocess per method and round: minutes on resnet18)."""
    assert bench("--quick", "--json", str(tmp_path) + "/") == 0
    (settings,) = stub
    assert settings.methods == ["torch_prune", "rgprune_switch", "rgprune"] and settings.rounds == cli.QUICK_ROUNDS
    assert settings.reps == cli.QUICK_REPS <= 3 and settings.slow_reps == 1 and len(settings.rounds) == 1
    assert "memory" in settings.skip and settings.quick is True
    assert [p.name for p in tmp_path.iterdir()] == ["cpu-test-cpu-2026-12-07-quick.json"]


def test_quick_keeps_options_given_explicitly(stub):
    assert bench("--quick", "--rounds", "1,3", "--reps", "2", "--methods", "naive") == 0
    assert stub[0].rounds == (1, 3) and stub[0].reps == 2 and stub[0].methods == ["naive", "rgprune"]
    with pytest.raises(BenchmarkError, match="--quick goes with --model"):
        cli.command(parse("--scale", "--quick"))


def test_long_run_says_up_front_how_long_and_quick_does_not_suggest_itself(stub, capsys):
    """Guards against a default run that takes minutes without saying so (issue 25: resnet18, ~3 min)."""
    assert bench() == 0
    err = capsys.readouterr().err
    assert "roughly" in err and "--quick" in err  # 5 methods, 2 rounds, 10 memory subprocesses: over a minute
    assert bench("--quick") == 0
    err = capsys.readouterr().err
    assert "roughly" in err and "--quick" not in err


def test_estimates_on_resnet18_size():
    """The estimate's figures: the default resnet18 run (11.2M weights) takes minutes, --quick seconds; on a
    GPU there are no figures to go by."""
    n = 11_159_232
    full = api.estimate_seconds(n, "cpu", ALL_METHODS, (1, 5), 7, 2, 10.0, True)
    quick = api.estimate_seconds(n, "cpu", list(cli.QUICK_METHODS), cli.QUICK_ROUNDS, cli.QUICK_REPS, 1, 10.0, False)
    assert 120 < full < 400 and quick < 30
    assert api.estimate_seconds(n, "cuda", ALL_METHODS, (1, 5), 7, 2, 10.0, True) is None


def test_a_real_quick_run(tmp_path, capsys):
    """--quick end to end on a tiny model: the three methods, one round, no memory section, a -quick file."""
    assert bench("--quick", "--threads", "1", "--json", str(tmp_path / "q") + "/") == 0
    (path,) = (tmp_path / "q").iterdir()
    res = json.loads(path.read_text())
    assert path.name.endswith("-quick.json") and res["quick"] is True and res["errors"] == []
    model = res["models"][f"{__name__}:tiny_model"]
    assert set(model["rounds"]) == {f"round{r}" for r in cli.QUICK_ROUNDS} and "memory" not in model
    (rnd,) = model["rounds"].values()
    assert set(rnd["methods"]) == {"torch_prune", "rgprune_switch", "rgprune"}
    assert rnd["methods"]["rgprune"]["reps"] == cli.QUICK_REPS and rnd["switch_vs_torch_prune"] > 0
    assert "torch.prune" in capsys.readouterr().out

"""rgprune.benchmark's API and command line (``rgprune bench``) on small models on the CPU: the JSON, the
mask-equality column, the scale series and its plot, and bad input failing before anything is timed."""

import argparse
import json

import pytest
import torch

from rgprune.benchmark import BenchmarkError, api, cli, run, run_scale, workloads
from rgprune.benchmark import scale as scale_mod
from rgprune.benchmark.measure import interleaved
from rgprune.benchmark.methods import ALL_METHODS, State
from rgprune.benchmark.sections import compare_masks, tie_words
from rgprune.kernels.format import pack_mask


def tiny_model():
    """The model the tests name as ``module:callable`` (this module's ``tiny_model``)."""
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Linear(40, 64), torch.nn.ReLU(), torch.nn.Conv1d(4, 8, 3), torch.nn.Linear(64, 10)
    )


def tied_model():
    """Weights of four magnitudes only, so every round's threshold falls on thousands of ties."""
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randint(1, 5, p.shape, generator=g) * torch.sign(torch.randn(p.shape, generator=g)))
    return model


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_command_writes_json_and_mask_column(tmp_path, capsys):
    path = tmp_path / "out.json"
    args = parse(
        "--model",
        f"{__name__}:tiny_model",
        "--rounds",
        "1,3",
        "--reps",
        "2",
        "--slow-reps",
        "1",
        "--threads",
        "1",
        "--methods",
        "torch_prune,rgprune",
        "--json",
        str(path),
        "--no-progress",
    )
    assert cli.command(args, "rgprune bench test") == 0
    res = json.loads(path.read_text())
    assert res["schema"] == "rgprune-bench/1" and res["kind"] == "cpu" and res["errors"] == []
    assert res["command"] == "rgprune bench test" and res["settings"]["rounds"] == [1, 3]
    m = res["models"][f"{__name__}:tiny_model"]
    assert m["n_weights"] == 40 * 64 + 4 * 8 * 3 + 64 * 10 and m["role"] == "custom"
    assert set(m["rounds"]) == {"round1", "round3"}
    for rkey, density in (("round1", 1.0), ("round3", 0.8**2)):
        r = m["rounds"][rkey]
        assert abs(r["density"] - density) < 1e-3 and r["k"] == round(0.2 * r["survivors"])
        assert set(r["methods"]) == {"torch_prune", "rgprune"} and set(r["speedup"]) == {"vs_torch_prune"}
        for e in r["methods"].values():
            assert e["median_s"] > 0 and e["min_s"] <= e["median_s"] <= e["max_s"] and e["pruned"] == r["k"]
            assert e["masks_equal_torch_prune_up_to_ties"] is True
            assert e["mask_bits_differing_from_torch_prune_outside_ties"] == 0
        assert m["memory"][rkey]["rgprune"]["peak_extra_bytes"] >= 0
        assert m["floor"][rkey]["times_floor"] > 0
    assert res["copy_bandwidth"]["bytes_per_s"] > 0
    out = capsys.readouterr().out
    assert "masks = torch.prune" in out and "memory-bandwidth floor" in out
    assert out.count(" yes") == 2  # rgprune at rounds 1 and 3 (torch.prune's own rows say "(itself)")


def test_ties_may_differ_only_at_the_threshold():
    """On weights with massive ties, torch.prune and rgprune prune different tied weights; the comparison
    must call that equal up to the tie order, and the naive methods (which prune every tie) too."""
    res = run(tied_model(), rounds=(1,), reps=1, slow_reps=1, memory=False, progress=False, bandwidth_bytes=1 << 20)
    r = res["models"]["Sequential"]["rounds"]["round1"]
    assert r["weights_at_threshold"] > r["k"]  # the threshold magnitude is tied far beyond k
    for name in ALL_METHODS:
        e = r["methods"][name]
        assert e["masks_equal_torch_prune_up_to_ties"] is True, name
        assert e["mask_bits_differing_from_torch_prune_outside_ties"] == 0
    assert r["methods"]["naive"]["pruned"] > r["k"] == r["methods"]["rgprune"]["pruned"]
    assert r["methods"]["naive"]["mask_bits_differing_from_torch_prune"] > 0


def test_compare_masks_flags_bits_outside_ties():
    w = torch.tensor([0.1, -0.5, 0.5, 0.9, 0.5, -0.2, 0.7, 0.05])
    state = State(1, [w], [pack_mask(torch.ones(8, dtype=torch.bool))], 8, fraction=0.5)  # k = 4: 0.5 is tied
    ties = tie_words(state)
    assert torch.equal(ties[0], pack_mask(w.abs() == 0.5))
    theirs = [pack_mask(torch.tensor([False, False, True, True, True, False, True, False]))]
    swapped = [pack_mask(torch.tensor([False, True, False, True, True, False, True, False]))]
    wrong = [pack_mask(torch.tensor([True, False, True, True, False, False, True, False]))]
    assert compare_masks(swapped, theirs, ties)["masks_equal_torch_prune_up_to_ties"] is True
    verdict = compare_masks(wrong, theirs, ties)
    assert verdict["masks_equal_torch_prune_up_to_ties"] is False
    assert verdict["mask_bits_differing_from_torch_prune"] == 2
    assert verdict["mask_bits_differing_from_torch_prune_outside_ties"] == 1


def test_users_model_is_not_modified():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = run(
        model,
        dtype="float64",
        rounds=(2,),
        methods=["rgprune"],
        reps=1,
        memory=False,
        progress=False,
        bandwidth_bytes=1 << 20,
        name="mine",
    )
    assert res["models"]["mine"]["dtype"] == "float64" and res["settings"]["dtype"] == "float64"
    for k, v in model.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k]), k


@pytest.fixture
def no_timing(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("bad input must fail before anything is timed")

    monkeypatch.setattr(api, "run_device", fail)
    monkeypatch.setattr(scale_mod, "run_device", fail)


def nothing_prunable():
    return torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LayerNorm(4))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "resnet-9000"}, "unknown model 'resnet-9000'; give a built-in name"),
        ({"model": "torchvision:resnet9000"}, "torchvision has no classification model 'resnet9000'"),
        ({"model": "hf:/no/such/checkpoint"}, "has no config.json"),
        ({"model": "no_such_module_xyz:build"}, "cannot import 'no_such_module_xyz'"),
        ({"model": f"{__name__}:no_such_function"}, "has no attribute 'no_such_function'"),
        ({"model": f"{__name__}:nothing_prunable"}, "nothing to prune"),
        ({"model": "resnet20", "device": "tpu"}, "device must be 'cpu' or 'cuda'"),
        ({"model": "resnet20", "fraction": 1.5}, "fraction"),
        ({"model": "resnet20", "methods": ["torch_prune", "magic"]}, "unknown methods ['magic']"),
        ({"model": "resnet20", "rounds": [0]}, "rounds must be IMP round numbers >= 1"),
        ({"model": "resnet20", "dtype": "int8"}, "dtype must be one of"),
        ({"model": torch.nn.Linear(1, 1, bias=False), "rounds": [1]}, "would prune none of them"),
    ],
)
def test_bad_input_fails_before_timing(no_timing, kwargs, message):
    model = kwargs.pop("model")
    with pytest.raises(BenchmarkError, match=None) as info:
        run(model, **kwargs)
    assert message in str(info.value)


def test_model_specs_need_their_loaders(no_timing, monkeypatch):
    """Without the registered loaders of rgprune imp's model specs, a spec says so and what to give instead."""
    monkeypatch.setattr(workloads, "MODEL_SPEC_LOADERS", {})
    with pytest.raises(BenchmarkError) as info:
        run("torchvision:resnet18")
    assert "give module:callable instead (e.g. torchvision.models:resnet18)" in str(info.value)


def spec_model(num_classes, in_channels):
    """A ``module:`` model spec as rgprune imp takes it: built with the head and input sizes."""
    torch.manual_seed(5)
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, 16, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 30 * 30, 32),
        torch.nn.Linear(32, num_classes),
    )


def test_model_specs_of_rgprune_imp_build_the_models_it_would(tmp_path):
    """--model takes torchvision:NAME, hf:DIR and module:pkg.mod:fn, built as rgprune.models builds them."""
    import tiny_data as td

    from rgprune.models import build_model

    folder = tmp_path / "bert"
    td.write_hf_checkpoint(folder, num_labels=3)
    for spec, classes in (
        ("torchvision:squeezenet1_1", 1000),
        (f"hf:{folder}", 3),
        (f"module:{__name__}:spec_model", 1000),
    ):
        workload = workloads.resolve_model(spec)
        built = workload.build(torch.device("cpu"))
        expected = build_model(spec, classes, seed=0).state_dict()
        assert workload.name == spec and built.state_dict().keys() == expected.keys()
        assert all(torch.equal(v, expected[k]) for k, v in built.state_dict().items()), spec


def test_rgprune_bench_through_main(tmp_path, capsys):
    """The installed command: rgprune bench on a model spec (CPU) writes the JSON with the mask-equality column;
    bad input is a usage error (exit status 2) with nothing timed or written."""
    from rgprune.cli import main

    path = tmp_path / "bench.json"
    argv = [
        "bench",
        "--model",
        f"module:{__name__}:spec_model",
        "--rounds",
        "1,2",
        "--reps",
        "2",
        "--slow-reps",
        "1",
        "--methods",
        "torch_prune,naive,rgprune",
        "--threads",
        "1",
        "--no-progress",
        "--no-memory",
        "--json",
        str(path),
    ]
    assert main(argv) == 0
    res = json.loads(path.read_text())
    assert res["schema"] == "rgprune-bench/1" and res["errors"] == [] and res["command"] == "rgprune " + " ".join(argv)
    model = res["models"][f"module:{__name__}:spec_model"]
    assert model["n_weights"] == 3 * 16 * 9 + 16 * 30 * 30 * 32 + 32 * 1000  # with its 1000-class head (unnamed)
    for rkey in ("round1", "round2"):
        methods = model["rounds"][rkey]["methods"]
        assert set(methods) == {"torch_prune", "naive", "rgprune"}
        assert all(e["masks_equal_torch_prune_up_to_ties"] is True for e in methods.values())
        assert methods["rgprune"]["mask_bits_differing_from_torch_prune"] == 0
        assert model["rounds"][rkey]["speedup"]["vs_torch_prune"] > 0
    out = capsys.readouterr().out
    assert "masks = torch.prune" in out and out.count(" yes") == 4  # naive and rgprune, rounds 1 and 2

    bad = tmp_path / "bad.json"
    assert main(["bench", "--model", "torchvision:resnet9000", "--json", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rgprune bench: error: --model torchvision:resnet9000: torchvision has no classification")
    assert main(["bench", "--model", "resnet20", "--device", "tpu", "--json", str(bad)]) == 2
    assert "device must be 'cpu' or 'cuda'" in capsys.readouterr().err and not bad.exists()


def test_cuda_without_gpu_names_the_fix(no_timing, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BenchmarkError, match=r"--device cpu"):
        run("resnet20", device="cuda")
    with pytest.raises(SystemExit):  # the command line: a usage error, exit status 2
        cli.main(["--model", "resnet20", "--device", "cuda"])


def test_scale_series_records_growth_and_plot(tmp_path, capsys):
    path = tmp_path / "scale.json"
    args = parse(
        "--scale",
        "--scale-sizes",
        "20k,60k",
        "--methods",
        "torch_prune,naive",
        "--reps",
        "1",
        "--no-memory",
        "--threads",
        "1",
        "--json",
        str(path),
        "--no-progress",
    )
    assert cli.command(args, "rgprune bench --scale") == 0
    res = json.loads(path.read_text())
    scale = res["scale"]
    assert scale["sizes"] == [20_000, 60_000] and scale["skipped"] == []
    assert set(res["models"]) == {"synthetic-20k", "synthetic-60k"}
    assert [res["models"][n]["n_weights"] for n in ("synthetic-20k", "synthetic-60k")] == [20_000, 60_000]
    growth = scale["growth"]["round1"]
    assert set(growth) == {"torch_prune", "naive", "rgprune"}
    for row in growth.values():
        assert row["n_weights"] == [20_000, 60_000] and all(t > 0 for t in row["ns_per_weight"])
        assert isinstance(row["time_growth_exponent"], float)
    png = tmp_path / "scale.png"
    assert scale["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "time per weight / peak extra memory per weight" in capsys.readouterr().out


def test_scale_skips_sizes_that_do_not_fit(no_timing, monkeypatch):
    monkeypatch.setattr(scale_mod, "available_bytes", lambda dev: 10**9)
    kept, skipped = scale_mod.affordable([10**6, 10**8], torch.device("cpu"), 4)
    assert kept == [10**6] and skipped[0]["n_weights"] == 10**8 and "GB available" in skipped[0]["reason"]
    with pytest.raises(BenchmarkError, match="no size fits"):
        run_scale([10**8, 10**9])


def test_sizes_and_rounds_parse():
    assert cli._sizes("10M,1.5B,20k,300") == [10**7, 1_500_000_000, 20_000, 300]
    assert cli._rounds("1,5") == [1, 5]
    with pytest.raises(argparse.ArgumentTypeError):
        cli._sizes("ten")


def test_progress_callback_counts_every_repetition():
    seen = []
    interleaved(
        {"a": (lambda: None, lambda ctx: None), "b": (lambda: None, lambda ctx: None)},
        3,
        "cpu",
        on_rep=lambda name, done, total: seen.append((name, done, total)),
    )
    assert [d for _, d, _ in seen] == list(range(1, 7)) and {t for *_, t in seen} == {6}


def test_threads_are_restored():
    before = torch.get_num_threads()
    with api.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

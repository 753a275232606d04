"""The IMP engine: config validation, checkpoints, rewinding, baselines, resume (also after SIGKILL), CLI.

Fast: ResNet-20 on the 8x8 digits, one epoch of 12 steps per round, two rounds.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from run_helpers import TINY_ARGS, accuracy_of, assert_same_run, kill_in_round_2, round_files
from safetensors.torch import load_file

import rgprune.imp.trainer as trainer
from rgprune.data import load_task
from rgprune.imp import BASELINES, IMPConfig, RoundTrainer, load_result, run_imp
from rgprune.imp.pipeline import EVAL_BATCH
from rgprune.imp.rundir import RunDir
from rgprune.models import build_model
from rgprune.train import evaluate, train_epochs

TINY = IMPConfig(
    model="resnet20",
    task="digits",
    rounds=2,
    epochs=1,
    image_size=8,
    batch_size=128,
    rewind_step=3,
    baselines=BASELINES,
)
# the same config as command-line options
N_PRUNABLE = 267408  # ResNet-20 conv weights with one input channel (the fc head is not pruned)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits_test():
    """The test set TINY evaluates on (8x8 digits)."""
    return load_task("digits", image_size=8).test


def tiny_accuracy(state: dict, test) -> float:
    """The accuracy of TINY's model (ResNet-20, one input channel) holding ``state``, counted by the test."""
    return accuracy_of(build_model("resnet20", 10, in_channels=1), state, test, max(EVAL_BATCH, TINY.batch_size))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread):
    """An uninterrupted TINY run: (result, run directory)."""
    out = tmp_path_factory.mktemp("imp") / "reference"
    return run_imp(TINY, out, progress=False), out


# ---- config validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(model="resnet99"), "valid models are: resnet18, resnet50, resnet20"),
        (dict(task="mnist"), "valid tasks are: digits, digits-inverted"),
        (dict(task="vader"), "is a vision model but task 'vader' is a text task"),
        (dict(fraction=0.0), "fraction must be > 0"),
        (dict(fraction=1.0), "fraction must be < 1"),
        (dict(fraction=1.5), "fraction must be < 1"),
        (dict(rounds=0), "rounds must be >= 1"),
        (dict(epochs=0), "epochs must be >= 1"),
        (dict(rewind_step=-1), "rewind_step must be >= 0"),
        (dict(optimizer="adam"), "valid choices are: sgd, adamw"),
        (dict(schedule="linear"), "valid choices are: cosine, constant, step"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(momentum=1.0), "momentum must be < 1"),
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(seed=-3), "seed must be >= 0"),
        (dict(device="tpu"), "'cpu', 'cuda', 'cuda:N' or 'auto'"),
        (dict(baselines=("random-reinit", "shuffled")), "valid baselines are: random-reinit, random-mask"),
        (dict(image_size=2), "image_size must be >= 4"),
    ],
)
def test_config_validation_names_the_problem(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TINY.replace(**changes)


def test_config_types_defaults_and_name():
    with pytest.raises(TypeError, match="rounds must be an int"):
        TINY.replace(rounds=2.0)
    with pytest.raises(TypeError, match="amp must be a bool"):
        TINY.replace(amp="yes")
    with pytest.raises(ValueError, match="image_size applies to vision tasks only"):
        IMPConfig(model="minilm", task="vader", image_size=16)
    text = IMPConfig(model="minilm", task="vader")
    assert (text.optimizer, text.lr, text.weight_decay, text.image_size) == ("adamw", 1e-4, 0.01, None)
    vision = IMPConfig(model="resnet20", task="digits")
    assert (vision.optimizer, vision.lr, vision.image_size, vision.rewind_step) == ("sgd", 0.1, 32, 0)
    # baselines in canonical order whatever the input order; names are stable and config-specific
    assert TINY.replace(baselines=["random-mask", "random-reinit"]).baselines == BASELINES
    assert TINY.name.startswith("resnet20-digits-") and TINY.name == IMPConfig(**TINY.to_dict()).name
    assert TINY.replace(seed=1).name != TINY.name
    assert IMPConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    with pytest.raises(ValueError, match="unknown IMPConfig field"):
        IMPConfig.from_dict({**TINY.to_dict(), "warmup": 3})


def test_rewind_step_past_the_end_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"rewind_step=1000 is past the end of training: 1 epochs x 12 steps"):
        run_imp(TINY.replace(rewind_step=1000), tmp_path / "run", progress=False)


# ---- one run: checkpoints, metrics, densities, trace ---------------------------------------------------


def test_two_rounds_checkpoints_metrics_and_exact_densities(reference, digits_test):
    """Exact survivor counts and the accuracy of each saved θ_n counted here: guards against k off by one (floor
    instead of round) and against an accuracy measured on other data or in training mode (a range check passed
    both)."""
    result, out = reference
    survivors = [N_PRUNABLE]
    for _ in range(2):  # the pruner's rule: k = round(fraction * survivors)
        survivors.append(survivors[-1] - round(0.2 * survivors[-1]))
    expected = [s / N_PRUNABLE for s in survivors]
    assert result.densities == expected
    assert survivors == [N_PRUNABLE, 213926, 171141]  # 53482 and then 42785 pruned, worked out by hand
    assert result.complete and result.resumed_from is None and len(result.rounds) == 3

    assert json.loads((out / "config.json").read_text())["rounds"] == 2
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["complete"] and summary["name"] == TINY.name and len(summary["rounds"]) == 3
    for n in range(3):
        files = round_files(out, n)
        m = files["metrics"]
        assert m["round"] == n and m["density"] == expected[n] and m["survivors"] == survivors[n]
        assert m["accuracy"] == result.rounds[n].accuracy == summary["rounds"][n]["accuracy"]
        assert m["accuracy"] == tiny_accuracy(files["weights"], digits_test)
        assert files["masks"].density() == expected[n]
        assert set(m["layer_densities"]) == set(files["masks"].names)
        assert {"train_s", "eval_s", "prune_s", "baselines_s", "total_s"} <= set(m["timings"])
        # pruned weights stayed 0 through training (the optimizer hook)
        for name, keep in zip(files["masks"].names, files["masks"].to_bool()):
            assert not files["weights"][name][~keep].any()
        if n == 0:
            assert m["threshold"] is None and m["baselines"] == {}
        else:
            assert m["threshold"]["k"] == survivors[n - 1] - survivors[n] and m["threshold"]["magnitude"] > 0
            assert set(m["baselines"]) == set(BASELINES)
            for base in m["baselines"].values():
                assert base["density"] == expected[n]  # its accuracy: test_rewind_semantics_and_baselines
    # no stray temp files
    assert not list(out.rglob(".tmp-*"))


def test_observables_come_from_the_prune_reports_and_form_the_trace(reference):
    result, out = reference
    from rgprune import magnitude_histogram
    from rgprune.rg.trace import FlowTrace

    trace = FlowTrace.load(out / "trace.json")
    assert [r.round for r in trace.rounds] == [0, 1, 2]
    for n in range(3):
        files = round_files(out, n)
        obs, masks = files["observables"], files["masks"]
        assert obs["round"] == n and obs["tensor_names"] == masks.names and len(obs["histogram_before"]) == 4096
        # the threshold pass's histogram is the histogram of θ_n's survivors (what the checkpoint holds)
        weights = [files["weights"][name].contiguous() for name in masks.names]
        assert obs["histogram_before"] == magnitude_histogram(weights, masks.words).histogram.tolist()
        # the statistics after the prune are those of the next round's mask (the last round's is untrained)
        if n < 2:
            assert obs["counts_after"] == round_files(out, n + 1)["masks"].survivor_counts()
            assert obs["threshold"] == round_files(out, n + 1)["metrics"]["threshold"]
        assert sum(obs["counts_after"]) == sum(masks.survivor_counts()) - obs["threshold"]["k"]
        assert trace.rounds[n].histogram == obs["histogram_before"] and trace.rounds[n].counts == obs["counts_after"]
        assert trace.rounds[n].metrics["accuracy"] == result.accuracies[n]
    assert trace.trajectory("histogram").shape == (3, 1024)


def test_imp_really_trains(reference):
    result, _ = reference
    assert result.accuracies[0] > 0.5  # 10 classes: chance is 0.1
    assert all(a > 0.5 for a in result.accuracies)
    assert "density" in result.table() and len(result.table().splitlines()) == 4


# ---- rewinding and baselines ------------------------------------------------------------------------------


def test_rewind_semantics_and_baselines(tmp_path, monkeypatch, reference, digits_test):
    """At the start of every training of round n >= 1 the survivors equal θ_k and pruned weights are 0;
    the random-mask baseline has the ticket's per-layer counts at other positions; the random-reinit
    baseline has the ticket's mask on other values. The spied run equals the reference run. Each accuracy
    recorded is that of the model trained under its name, counted here: guards against a baseline's accuracy
    measured on another model (e.g. before it trained), which the range check 0 <= accuracy <= 1 passed."""
    _, ref_out = reference
    seen, trained = [], {}
    real = trainer.train_epochs

    def spy(model, *args, **kwargs):
        seen.append(
            (kwargs["desc"], kwargs["start_step"], {k: v.detach().clone() for k, v in model.state_dict().items()})
        )
        stats = real(model, *args, **kwargs)
        trained[kwargs["desc"]] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return stats

    monkeypatch.setattr(trainer, "train_epochs", spy)
    out = tmp_path / "spied"
    run_imp(TINY, out, progress=False)
    assert_same_run(out, ref_out, 2)

    init, theta_k = load_file(str(out / "init.safetensors")), load_file(str(out / "rewind.safetensors"))
    assert not torch.equal(init["conv1.weight"], theta_k["conv1.weight"])  # k = 3 > 0: trained 3 steps
    assert [(d, s) for d, s, _ in seen] == [("round 0 dense", 0)] + [
        (f"round {n}{suffix}", 3) for n in (1, 2) for suffix in ("", " random-reinit", " random-mask")
    ]
    assert all(torch.equal(seen[0][2][k], init[k]) for k in init)
    for n in (1, 2):
        masks = round_files(out, n)["masks"]
        ticket, reinit, random_mask = (state for desc, _, state in seen if desc.startswith(f"round {n}"))
        for name, keep in zip(masks.names, masks.to_bool()):
            assert torch.equal(ticket[name][keep], theta_k[name][keep])
            assert not ticket[name][~keep].any()
            assert not reinit[name][~keep].any() and not torch.equal(reinit[name][keep], theta_k[name][keep])
            random_keep = random_mask[name] != 0
            assert int(random_keep.sum()) == int(keep.sum())  # same per-layer count ...
            assert not torch.equal(random_keep, keep)  # ... at other positions
            assert torch.equal(random_mask[name][random_keep], theta_k[name][random_keep])  # rewound to θ_k
        for name in theta_k:  # BN statistics and every other tensor are rewound too
            if name not in masks.names:
                assert torch.equal(ticket[name], theta_k[name]) and torch.equal(random_mask[name], theta_k[name])
        metrics = round_files(out, n)["metrics"]
        assert metrics["accuracy"] == tiny_accuracy(trained[f"round {n}"], digits_test)
        for baseline in BASELINES:
            assert metrics["baselines"][baseline]["accuracy"] == tiny_accuracy(
                trained[f"round {n} {baseline}"], digits_test
            ), baseline


def test_rewind_step_capture(tmp_path):
    """θ_k is the state after exactly k optimizer steps: k = 0 is the init (saved once: no rewind.safetensors, a
    copy of init.safetensors; ``load_rewind`` reads θ_init), k = all steps is θ_0."""
    config = TINY.replace(rounds=1, baselines=())
    run_imp(config.replace(rewind_step=0), tmp_path / "k0", progress=False)
    k0 = RunDir(tmp_path / "k0")
    assert k0.init_path.is_file() and not k0.rewind_path.is_file() and k0.rewind_is_init()
    init, rewind = load_file(str(k0.init_path)), k0.load_rewind()
    assert init.keys() == rewind.keys() and all(torch.equal(init[k], rewind[k]) for k in init)
    run_imp(config.replace(rewind_step=12), tmp_path / "k12", progress=False)
    trained = load_file(str(tmp_path / "k12" / "round-00" / "weights.safetensors"))
    rewind = load_file(str(tmp_path / "k12" / "rewind.safetensors"))
    assert all(torch.equal(trained[k], rewind[k]) for k in trained)


# ---- resume ----------------------------------------------------------------------------------------------


def test_resume_after_interruption_equals_uninterrupted(tmp_path, monkeypatch, reference):
    ref_result, ref_out = reference
    out = tmp_path / "interrupted"
    real_train = RoundTrainer.train

    def stop_in_round_2(self, model, pruner, start_step, seed, desc, on_step=None):
        if desc == "round 2 random-mask":
            raise KeyboardInterrupt
        return real_train(self, model, pruner, start_step, seed, desc, on_step)

    monkeypatch.setattr(RoundTrainer, "train", stop_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        run_imp(TINY, out, progress=False)
    monkeypatch.undo()
    partial = load_result(out)
    assert [r.round for r in partial.rounds] == [0, 1] and not partial.complete

    resumed = run_imp(TINY, out, progress=False)
    assert resumed.resumed_from == 1
    assert resumed.densities == ref_result.densities and resumed.accuracies == ref_result.accuracies
    assert [r.baselines for r in resumed.rounds] == [r.baselines for r in ref_result.rounds]
    assert_same_run(out, ref_out, 2)
    assert (
        json.loads((out / "trace.json").read_text())["rounds"]
        == json.loads((ref_out / "trace.json").read_text())["rounds"]
    )

    # a complete run resumes to itself without training
    again = run_imp(TINY, out, progress=False)
    assert again.resumed_from == 2 and again.accuracies == ref_result.accuracies


def test_resume_with_another_thread_count_warns(reference, tmp_path):
    import shutil

    _, ref_out = reference
    out = tmp_path / "copy"
    shutil.copytree(ref_out, out)
    shutil.rmtree(out / "round-02")
    metrics_path = out / "round-01" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert metrics["threads"] == torch.get_num_threads() == 1 and metrics["device"] == "cpu"
    metrics_path.write_text(json.dumps({**metrics, "threads": 7}))
    with pytest.warns(RuntimeWarning, match="its rounds ran with 7"):
        assert run_imp(TINY, out, progress=False).complete


def test_resume_with_another_config_is_refused(reference, tmp_path):
    _, out = reference
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"different config.*epochs: saved 1, given 2.*seed: saved 0, given 5"):
        run_imp(TINY.replace(epochs=2, seed=5), out, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # nothing touched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no IMP run"):
        run_imp(TINY, foreign, progress=False)


def test_resume_after_sigkill(tmp_path, reference):
    ref_result, ref_out = reference
    out = tmp_path / "killed"
    kill_in_round_2(TINY_ARGS, out)  # SIGKILLed after round 2 wrote its files, before its completion marker

    # the half-written round is not taken as complete
    assert (out / "round-02" / "weights.safetensors").is_file() and not (out / "round-02" / "metrics.json").exists()
    partial = load_result(out)
    assert [r.round for r in partial.rounds] == [0, 1]
    assert partial.accuracies == ref_result.accuracies[:2]

    resumed = run_imp(TINY, out, progress=False)
    assert resumed.resumed_from == 1 and resumed.complete
    assert resumed.accuracies == ref_result.accuracies and resumed.densities == ref_result.densities
    assert not list(out.rglob(".tmp-*"))
    assert_same_run(out, ref_out, 2)


# ---- CLI ------------------------------------------------------------------------------------------------


def test_cli_imp_prints_the_table_and_resumes(reference, capsys):
    from rgprune.cli import main

    ref_result, ref_out = reference
    loud = [a for a in TINY_ARGS if a != "--quiet"]  # --quiet prints nothing (tests/test_imp_progress.py)
    assert main([*loud, "--out", str(ref_out)]) == 0  # complete already: resumes to the end
    printed = capsys.readouterr().out
    assert ref_result.table() in printed and f"run directory: {ref_out}" in printed
    assert "nothing left to train" in printed and printed.splitlines()[-1] == f"report: {ref_out / 'report.md'}"


def test_cli_imp_bad_input(tmp_path, capsys):
    from rgprune.cli import main

    assert main(["imp", "--model", "resnet20", "--task", "vader", "--out", str(tmp_path / "x")]) == 2
    assert "is a vision model but task 'vader' is a text task" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["imp", "--model", "resnet99", "--task", "digits"])
    assert exc.value.code == 2
    assert "invalid choice: 'resnet99'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["imp", "--model", "resnet20", "--task", "digits", "--fraction", "1.5"])
    assert "must be between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["imp", "--help"])
    assert exc.value.code == 0 and "rgprune imp --model resnet20 --task digits" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["imp", "--rounds", "x"], "--rounds"),
        (["imp", "--model", "resnet20", "--task", "digits", "--fraction", "2"], "--fraction"),
        (["imp", "--model", "resnet20", "--task", "digits", "--optimizer", "lbfgs"], "--optimizer"),
        (["imp", "--task", "digits"], "--model"),
        (["flow", "runs/r", "--fraction", "x"], "--fraction"),
        (["transfer"], "required"),
    ],
)
def test_cli_usage_errors_are_short(argv, flag, capsys):
    """A bad value (or a missing option) prints the error and where the options are, not the whole usage first
    (about 30 lines for rgprune imp); exit status 2, as argparse's."""
    from rgprune.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    prog = f"rgprune {argv[0]}"
    assert len(lines) <= 3 and lines[0].startswith(f"{prog}: error: ") and flag in lines[0], captured.err
    assert lines[-1] == f"run '{prog} --help' for the options" and "usage:" not in captured.err
    assert captured.out == ""


def test_cli_imp_options_come_from_the_config_fields(capsys):
    """Every IMPConfig field is an option whose help is the field's help, with the dataclass's default; bounds
    are checked at parse time; an option not given leaves the dataclass default in place."""
    import dataclasses

    from rgprune.cli import build_parser, main
    from rgprune.cli.imp import config_from_args

    with pytest.raises(SystemExit):
        main(["imp", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for f in dataclasses.fields(IMPConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert " ".join(f.metadata["help"].split()) in text, f.name
        if f.metadata["default_text"] is not None:
            assert f"(default: {f.metadata['default_text']})" in text, f.name
        elif f.default not in (dataclasses.MISSING, False):
            assert f"(default: {f.default})" in text, f.name
    assert "(default: 8)" in text and "(default: 0.1 for sgd, 0.0001 for adamw)" in text
    for option, value, message in (
        ("--image-size", "2", "must be >= 4"),
        ("--momentum", "1", "between 0 and 1"),
        ("--epochs", "1.5", "must be an int"),
    ):
        with pytest.raises(SystemExit):
            main(["imp", "--model", "resnet20", "--task", "digits", option, value])
        assert message in capsys.readouterr().err, option
    args = build_parser().parse_args(
        ["imp", "--model", "resnet20", "--task", "digits", "--amp", "--lr", "0.5", "--baselines", "all"]
    )
    assert config_from_args(args) == IMPConfig(model="resnet20", task="digits", amp=True, lr=0.5, baselines=BASELINES)
    args = build_parser().parse_args(["imp", "--model", "minilm", "--task", "vader", "--baselines", "none"])
    assert config_from_args(args) == IMPConfig(model="minilm", task="vader")  # text defaults, no image_size


def test_cli_turns_only_configuration_errors_into_usage_errors(tmp_path, monkeypatch, capsys):
    import rgprune.imp
    from rgprune.cli import main
    from rgprune.imp import ConfigError

    def bug(*args, **kwargs):
        raise ValueError("a bug deep inside")

    monkeypatch.setattr(rgprune.imp, "run_imp", bug)
    with pytest.raises(ValueError, match="a bug deep inside"):
        main([*TINY_ARGS, "--out", str(tmp_path / "bug")])

    def refused(*args, **kwargs):
        raise ConfigError("holds an IMP run with a different config")

    monkeypatch.setattr(rgprune.imp, "run_imp", refused)
    assert main([*TINY_ARGS, "--out", str(tmp_path / "refused")]) == 2
    assert capsys.readouterr().err.startswith("rgprune imp: error: holds an IMP run with a different config")


def test_a_refused_start_leaves_the_folder_as_it_was(tmp_path, capsys):
    """--out on a non-empty folder that holds no run is refused, and no .lock (nor anything else) is left in it;
    a refused start in a folder that did not exist leaves no folder."""
    from rgprune.cli import main

    users = tmp_path / "users-folder"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    assert main([*TINY_ARGS, "--out", str(users)]) == 2
    assert "not empty and holds no IMP run" in capsys.readouterr().err
    assert sorted(p.name for p in users.iterdir()) == ["notes.txt"]
    fresh = tmp_path / "new" / "run"
    with pytest.raises(ValueError, match="refused"), RunDir(fresh).lock():
        raise ValueError("refused")
    assert not fresh.exists()
    kept = tmp_path / "kept"
    with RunDir(kept).lock():  # a start that goes ahead keeps its lock file
        pass
    assert (kept / ".lock").exists()


def test_config_errors_are_value_errors_and_type_errors_also_type_errors():
    from rgprune.imp import ConfigError, ConfigTypeError

    with pytest.raises(ConfigTypeError) as exc:
        TINY.replace(batch_size="64")
    assert isinstance(exc.value, TypeError) and isinstance(exc.value, ValueError)
    with pytest.raises(ConfigError, match=r"field\(s\) \['task'\] are missing"):
        IMPConfig.from_dict({"model": "resnet20"})


def test_run_dir_rounds_are_ordered_by_number_and_clean_up_after_the_last_complete(tmp_path):
    """Round folders past round 99 sort by number, not as text; prepare() keeps the complete rounds and removes
    a half-written one and the temp files of atomic writes."""
    import shutil

    from rgprune.imp import RunDir

    run = RunDir(tmp_path / "run")
    for n in (0, 1, 2, 10, 99, 100):
        run.round_dir(n).mkdir(parents=True)
        run.weights_path(n).write_bytes(b"weights")
    (run.path / "round-xx").mkdir()  # not a round
    assert run.round_numbers() == [0, 1, 2, 10, 99, 100]
    assert [p.parent.name for p in run.checkpoints()] == [
        "round-00",
        "round-01",
        "round-02",
        "round-10",
        "round-99",
        "round-100",
    ]
    config = TINY.replace(rounds=200)
    with pytest.raises(ValueError, match="not empty and holds no IMP run"):
        run.prepare(config)
    for folder in run.path.iterdir():
        shutil.rmtree(folder)
    assert run.prepare(config) == -1 and run.holds_run()  # writes config.json
    run.save_init({"w": torch.zeros(2)}, {"w": torch.ones(2)})
    for n in (0, 1):
        run.save_round_metrics(n, {"round": n})
    run.round_dir(2).mkdir()
    (run.round_dir(2) / ".tmp-weights").write_bytes(b"half")
    (run.path / ".tmp-summary").write_bytes(b"half")
    with run.lock():
        assert run.prepare(config) == 1
    assert run.round_numbers() == [0, 1] and not list(run.path.rglob(".tmp-*"))
    assert torch.equal(run.load_rewind()["w"], torch.ones(2))
    with pytest.raises(ValueError, match="different config.*rounds: saved 200, given 2"):
        run.prepare(TINY)
    fcntl = pytest.importorskip("fcntl")
    with open(run.path / ".lock", "a") as held:  # another process writing the run holds its lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="being written by another running IMP process"), run.lock():
            pass
    with run.lock():  # released: the next writer gets it
        pass
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"), RunDir(a_file).lock():
        pass
    assert a_file.read_text() == "x"


# ---- the training loops -----------------------------------------------------------------------------------


class _TinyText(torch.nn.Module):
    """A Hugging Face-like text classifier: returns an object with .logits."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(20, 8)
        self.classifier = torch.nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask):
        h = (self.embed(input_ids) * attention_mask[..., None]).sum(1) / attention_mask.sum(1, keepdim=True)
        return SimpleNamespace(logits=self.classifier(h))


@pytest.mark.parametrize("amp", [False, True])
def test_train_loops_text_batches_and_amp(amp):
    torch.manual_seed(0)
    ids = torch.randint(0, 20, (64, 5))
    labels = (ids[:, 0] < 10).long()
    data = torch.utils.data.TensorDataset(ids, torch.ones_like(ids), labels)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator())
    model = _TinyText()
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    steps = []
    stats = train_epochs(model, loader, opt, None, epochs=15, amp=amp, progress=False, seed=1, on_step=steps.append)
    assert stats.steps == stats.end_step == 60 and steps == list(range(1, 61))
    assert evaluate(model, loader, amp=amp) > 0.8


def test_train_epochs_start_step_replays_the_same_batches():
    """Training from step s sees the batches an uninterrupted run sees at steps s.. (learning-rate rewinding)."""
    data = torch.utils.data.TensorDataset(torch.arange(20.0)[:, None], torch.zeros(20, dtype=torch.long))
    seen = {}

    class Record(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(1, 2)

        def forward(self, x):
            seen.setdefault(self.tag, []).append(x[:, 0].tolist())
            return self.w(x)

    for tag, start in (("full", 0), ("late", 7)):
        model = Record()
        model.tag = tag
        loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator())
        train_epochs(
            model,
            loader,
            torch.optim.SGD(model.parameters(), lr=0.1),
            epochs=3,
            progress=False,
            start_step=start,
            seed=7,
        )
    assert len(seen["full"]) == 15 and seen["late"] == seen["full"][7:]


# ---- the README experiment (make test-slow) ------------------------------------------------------------------


@pytest.mark.slow
def test_readme_experiment_resnet20_digits(tmp_path):
    """ResNet-20 on digits, 8 rounds to density <= 0.17, with both baselines (about 10-25 CPU minutes)."""
    config = IMPConfig(
        model="resnet20",
        task="digits",
        rounds=8,
        epochs=15,
        image_size=16,
        batch_size=64,
        lr=0.1,
        rewind_step=23,
        baselines=BASELINES,
    )
    result = run_imp(config, tmp_path / "r20-digits", progress=True)
    print(result.table())
    assert result.complete and result.densities[-1] <= 0.17
    assert result.accuracies[0] > 0.95
    assert result.accuracies[-1] > 0.9
    assert all(set(r.baselines) == set(BASELINES) for r in result.rounds[1:])


def test_cli_demo_short(tmp_path, capsys):
    from rgprune.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--rounds", "2", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "random-reinit" in printed and "random-mask" in printed and f"run directory: {out}" in printed
    assert load_result(out).complete
    # the demo ends with its flow: the summary, then the report's path (issue 4)
    assert "RG flow over 3 rounds" in printed and "DMD rank" in printed
    assert printed.rstrip().splitlines()[-1] == f"flow report: {out / 'report.md'}"
    assert (out / "report.md").is_file()


def test_cli_demo_of_one_round_says_why_it_has_no_flow_analysis(tmp_path, capsys):
    """One pruning round is 2 snapshots, too few for a DMD: the demo ends with the reason, not an error."""
    from rgprune.cli import main

    out = tmp_path / "demo1"
    assert main(["demo", "--rounds", "1", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "RG flow over 2 rounds" in printed and "no flow analysis: 2 rounds recorded" in printed
    assert printed.rstrip().splitlines()[-1] == f"flow report: {out / 'report.md'}"

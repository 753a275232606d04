"""``rgprune imp`` on the user's own data and models: every local format (written here in its real on-disk layout by
tiny_data) runs a short IMP from the command line and produces its report; a run SIGKILLed with DataLoader workers
resumes to the result of an uninterrupted run without them; bad layouts fail with the layout named and nothing
written; a resume on other data or weights is refused; the Python API takes a model factory and datasets (a nested
classifier head stays dense unless prune_head); the input pipeline's settings per device; config names of existing
runs unchanged.

Tiny sizes throughout (one CPU thread): the whole file takes about a minute on a loaded 2-core machine.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import tiny_data as td
import torch
from run_helpers import TinyConvNet, accuracy_of, assert_same_run, blobs, kill_in_round_2
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rgprune.cli import main
from rgprune.imp import BASELINES, ConfigError, IMPConfig, RunDir, load_result, run_imp
from rgprune.imp.pipeline import EVAL_BATCH, EpochSampler, SeededItems, resolve_pipeline

SHORT = ["--rounds", "2", "--epochs", "1", "--baselines", "all"]  # not --quiet: the table is printed


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user-data")
    td.write_cifar10(root / "c10")  # 20 train / 6 test images
    td.write_cifar100(root / "c100")  # 12 / 5
    td.write_imagefolder(root / "folder")  # 9 train (3 classes) / 6 val PNGs
    td.write_glue_sst2(root / "SST-2")
    td.write_hf_disk(root / "hfd")
    td.write_csv(root / "csv")
    td.write_hf_checkpoint(root / "bert")  # 64 positions: the default max_length (128) is capped to 64
    return root


def run_cli(*args: str, out: Path, capsys=None) -> tuple[int, str, str]:
    code = main(["imp", *args, "--out", str(out)])
    printed = capsys.readouterr() if capsys is not None else SimpleNamespace(out="", err="")
    return code, printed.out, printed.err


# ---- every format from the command line ---------------------------------------------------------------------

FORMATS = {  # name: (options, number of classes, the head's parameter)
    "cifar10": (
        ["--model", "resnet20", "--task", "cifar10:{d}/c10", "--image-size", "8", "--batch-size", "8"],
        10,
        "fc.weight",
    ),
    "cifar100": (
        ["--model", "resnet20", "--task", "cifar100:{d}/c100", "--image-size", "8", "--batch-size", "5"],
        100,
        "fc.weight",
    ),
    "imagefolder": (
        [
            "--model",
            "torchvision:resnet18",
            "--task",
            "imagefolder:{d}/folder",
            "--image-size",
            "16",
            "--batch-size",
            "5",
        ],
        3,
        "fc.weight",
    ),
    "glue-sst2": (
        ["--model", "hf:{d}/bert", "--task", "glue-sst2:{d}/SST-2", "--batch-size", "4"],
        2,
        "classifier.weight",
    ),
    "hf-disk": (
        [
            "--model",
            "hf:{d}/bert",
            "--task",
            "hf-disk:{d}/hfd",
            "--text-columns",
            "premise",
            "hypothesis",
            "--batch-size",
            "4",
        ],
        2,
        "classifier.weight",
    ),
    "csv": (
        [
            "--model",
            "hf:{d}/bert",
            "--task",
            "csv:{d}/csv",
            "--text-columns",
            "review",
            "--label-column",
            "sentiment",
            "--batch-size",
            "4",
        ],
        3,
        "classifier.weight",
    ),
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_cli_runs_imp_on_each_local_format(name, data, tmp_path, capsys):
    options, classes, head = FORMATS[name]
    options = [o.format(d=data) for o in options]
    out = tmp_path / name
    code, printed, err = run_cli(*options, *SHORT, out=out, capsys=capsys)
    assert code == 0, err
    result = load_result(out)
    assert result.complete and [r.round for r in result.rounds] == [0, 1, 2]
    assert result.table() in printed and all(set(r.baselines) == set(BASELINES) for r in result.rounds[1:])
    assert (out / "report.md").is_file() and (out / "flow.json").is_file()  # the flow report of a complete run
    weights = load_file(str(out / "round-00" / "weights.safetensors"))
    assert weights[head].shape[0] == classes  # a head for the task's classes
    spec = options[options.index("--task") + 1]
    inputs = json.loads((out / "inputs.json").read_text())
    assert inputs["task"]["spec"] == spec and len(inputs["task"]["fingerprint"]) == 64
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == spec and config["model"] == options[1]
    if options[1].startswith("hf:"):  # the checkpoint's files are hashed
        expected = hashlib.sha256((data / "bert" / "model.safetensors").read_bytes()).hexdigest()
        assert inputs["model"]["sha256"]["model.safetensors"] == expected


# ---- killed with workers, resumed without: the result of an uninterrupted run -----------------------------------


def test_killed_run_with_workers_resumes_to_the_uninterrupted_result(data, tmp_path, capsys):
    """Augmented CIFAR: rounds 0-1 run with 2 persistent DataLoader workers in a process SIGKILLed in round 2; the
    resume runs round 2 with no workers. Every round equals an uninterrupted run without workers, bit for bit: the
    data order and every augmentation draw do not depend on the workers."""
    options = [
        "--model",
        "resnet20",
        "--task",
        f"cifar10:{data}/c10",
        "--image-size",
        "8",
        "--batch-size",
        "6",
        "--augment",
        "--rewind-step",
        "2",
        "--seed",
        "3",
        *SHORT,
    ]
    reference = tmp_path / "reference"
    assert run_cli(*options, "--num-workers", "0", out=reference)[0] == 0
    killed = tmp_path / "killed"
    kill_in_round_2(["imp", *options, "--num-workers", "2"], killed)
    assert [r.round for r in load_result(killed).rounds] == [0, 1]
    assert json.loads((killed / "config.json").read_text())["num_workers"] == 2
    code, printed, err = run_cli(*options, "--num-workers", "0", out=killed, capsys=capsys)
    assert code == 0, err
    assert load_result(killed).complete
    assert_same_run(killed, reference, 2)


def test_augmentation_really_draws(data):
    """Without it the test above could not tell worker-dependent augmentation from none."""
    from rgprune.data import ImageOptions, load_task

    task = load_task(f"cifar10:{data}/c10", image=ImageOptions(augment=True))
    items = SeededItems(task.train)
    assert torch.equal(items[(0, 5)][0], items[(0, 5)][0]) and not torch.equal(items[(0, 5)][0], items[(0, 6)][0])


# ---- bad input: the clear error, nothing written ------------------------------------------------------------------


def _broken(data: Path, tmp_path: Path, case: str) -> list[str]:
    """The options of one bad-input case (writing its broken copy of the data under tmp_path)."""
    c10 = ["--model", "resnet20", "--task", f"cifar10:{data}/c10", "--image-size", "8"]
    if case == "cifar-missing-file":
        shutil.copytree(data / "c10", tmp_path / "c10")
        (tmp_path / "c10" / "cifar-10-batches-py" / "test_batch").unlink()
        return ["--model", "resnet20", "--task", f"cifar10:{tmp_path}/c10"]
    if case == "cifar-not-a-pickle":
        shutil.copytree(data / "c10", tmp_path / "c10")
        (tmp_path / "c10" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
        return ["--model", "resnet20", "--task", f"cifar10:{tmp_path}/c10"]
    if case == "imagefolder-no-val":
        shutil.copytree(data / "folder", tmp_path / "folder")
        shutil.rmtree(tmp_path / "folder" / "val")
        return ["--model", "resnet20", "--task", f"imagefolder:{tmp_path}/folder"]
    if case == "glue-missing-dev":
        shutil.copytree(data / "SST-2", tmp_path / "SST-2")
        (tmp_path / "SST-2" / "dev.tsv").unlink()
        return ["--model", "minilm-random", "--task", f"glue-sst2:{tmp_path}/SST-2"]
    if case == "csv-missing-column":
        return [
            "--model",
            "minilm-random",
            "--task",
            f"csv:{data}/csv",
            "--text-columns",
            "review",
            "--label-column",
            "stars",
        ]
    if case == "hf-disk-not-saved":
        (tmp_path / "hfd").mkdir()
        return ["--model", "minilm-random", "--task", f"hf-disk:{tmp_path}/hfd"]
    if case == "checkpoint-without-tokenizer":
        shutil.copytree(data / "bert", tmp_path / "bert")
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (tmp_path / "bert" / name).unlink(missing_ok=True)
        return [
            "--model",
            f"hf:{tmp_path}/bert",
            "--task",
            f"csv:{data}/csv",
            "--text-columns",
            "review",
            "--label-column",
            "sentiment",
        ]
    if case == "weights-missing":
        return [*c10, "--weights", str(tmp_path / "missing.safetensors")]
    if case == "weights-of-another-model":
        from rgprune.models import build_model

        save_file(build_model("resnet56", 10, seed=0).state_dict(), str(tmp_path / "r56.safetensors"))
        return [*c10, "--weights", str(tmp_path / "r56.safetensors")]
    if case == "resize-on-cifar":
        return [*c10, "--resize", "40"]
    if case == "max-length-over-positions":
        return ["--model", f"hf:{data}/bert", "--task", f"glue-sst2:{data}/SST-2", "--max-length", "100"]
    if case == "lone-example-for-batchnorm":
        return [*c10, "--batch-size", "19"]  # 20 training images
    raise AssertionError(case)


BAD = {
    "cifar-missing-file": "lacks test_batch; cifar10:ROOT expects torchvision's CIFAR-10 folder",
    "cifar-not-a-pickle": "is not a CIFAR python pickle",
    "imagefolder-no-val": "is missing or not a folder; imagefolder:ROOT expects ROOT/train/<class>/<image> and "
    "ROOT/val/<class>/<image>",
    "glue-missing-dev": "dev.tsv is missing; glue-sst2:ROOT expects GLUE's SST-2 files",
    "csv-missing-column": "no column(s) ['stars'] in the header",
    "hf-disk-not-saved": "has no dataset_dict.json; hf-disk:PATH expects a datasets.DatasetDict saved with "
    "save_to_disk",
    "checkpoint-without-tokenizer": "has no tokenizer files",
    "weights-missing": "missing.safetensors does not exist",
    "weights-of-another-model": "does not fit the model",
    "resize-on-cifar": "--resize and --center-crop apply to imagefolder tasks",  # flags, as the user typed
    "lone-example-for-batchnorm": "would hold a single example (20 examples, batch size 19)",
    "max-length-over-positions": f"max_length=100 exceeds the {td.HF_POSITIONS} token positions of hf:",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_layouts_and_files_fail_clearly_with_nothing_written(case, data, tmp_path, capsys):
    options = _broken(data, tmp_path, case)
    out = tmp_path / "run"
    code, _, err = run_cli(*options, *SHORT, out=out, capsys=capsys)
    assert code == 2 and err.startswith("rgprune imp: error: ")
    assert BAD[case] in err
    assert not out.exists()


def test_option_errors_name_the_flags_from_the_command_line_and_the_fields_from_python(data, tmp_path, capsys):
    """An error about a data option names what the user gave: the flag under ``rgprune imp`` (one mapping from the
    config's fields, rgprune.imp.config.cli_option_names), the Python name (``TextOptions.text_columns``) from the
    Python API, also after a command ran."""
    from rgprune.data.options import TextOptions
    from rgprune.data.tables import read_csv_split

    code, _, err = run_cli(*_broken(data, tmp_path, "csv-missing-column"), *SHORT, out=tmp_path / "a", capsys=capsys)
    assert code == 2 and "name the columns with --text-columns / --label-column;" in err and "Options." not in err
    three = ["--text-columns", "a", "b", "c"]
    code, _, err = run_cli(
        "--model", "minilm-random", "--task", f"csv:{data}/csv", *three, out=tmp_path / "b", capsys=capsys
    )
    assert code == 2 and "error: --text-columns must name 1 or 2 columns, got 3" in err and "Options." not in err
    code, _, err = run_cli(
        "--model", "minilm-random", "--task", "vader", "--text-columns", "a", out=tmp_path / "c", capsys=capsys
    )
    assert (
        code == 2 and "error: --text-columns applies to KIND:PATH tasks" in err and "leave --text-columns unset" in err
    )
    glue = ["--model", "minilm-random", "--task", f"glue-sst2:{data}/SST-2", "--label-column", "y"]
    code, _, err = run_cli(*glue, out=tmp_path / "d", capsys=capsys)
    assert code == 2 and "leave --text-columns, --label-column, --labels and --test-split unset" in err, err

    train = next((data / "csv").glob("train.*"))
    with pytest.raises(
        ValueError, match=r"name the columns with TextOptions\.text_columns / TextOptions\.label_column;"
    ):
        read_csv_split(train, TextOptions(text_columns=("stars",)))
    with pytest.raises(ValueError, match=r"^TextOptions\.text_columns must name 1 or 2 columns"):
        TextOptions(text_columns=("a", "b", "c"))
    with pytest.raises(ConfigError, match=r"^TextOptions\.text_columns must name 1 or 2 columns"):
        IMPConfig(model="minilm-random", task=f"csv:{data}/csv", text_columns=("a", "b", "c"))
    with pytest.raises(ConfigError, match=r"^text_columns applies to KIND:PATH tasks"):
        IMPConfig(model="minilm-random", task="vader", text_columns=("a",))


def test_default_max_length_fits_the_model_when_the_tokenizer_sets_no_limit(data, tmp_path):
    """A tokenizer saved without model_max_length reports no limit; the checkpoint's 64 positions still cap the
    default 128 tokens (else training would index past the position embeddings)."""
    shutil.copytree(data / "bert", tmp_path / "bert")
    config_path = tmp_path / "bert" / "tokenizer_config.json"
    config_path.write_text(
        json.dumps({k: v for k, v in json.loads(config_path.read_text()).items() if k != "model_max_length"})
    )
    from rgprune.models import load_tokenizer

    assert load_tokenizer(f"hf:{tmp_path}/bert").model_max_length > 10**6
    out = tmp_path / "run"
    assert (
        run_cli(
            "--model",
            f"hf:{tmp_path}/bert",
            "--task",
            f"glue-sst2:{data}/SST-2",
            "--rounds",
            "1",
            "--epochs",
            "1",
            "--quiet",
            out=out,
        )[0]
        == 0
    )
    assert load_result(out).complete


def test_bad_specs_are_usage_errors(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["imp", "--model", "torchvision:resnet9000", "--task", "digits"])
    assert exc.value.code == 2 and "invalid choice: 'torchvision:resnet9000'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["imp", "--model", "resnet20", "--task", f"cifar11:{data}"])
    assert "unknown task kind 'cifar11'" in capsys.readouterr().err
    code, _, err = run_cli("--model", "resnet20", "--task", "given-vision:mine", out=tmp_path / "x", capsys=capsys)
    assert code == 2 and "names datasets the program passes in" in err and not (tmp_path / "x").exists()


# ---- a resume on other data or other weights is refused -------------------------------------------------------


def _files(out: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_resume_on_changed_data_is_refused(data, tmp_path, capsys):
    shutil.copytree(data / "c10", tmp_path / "c10")
    options = [
        "--model",
        "resnet20",
        "--task",
        f"cifar10:{tmp_path}/c10",
        "--image-size",
        "8",
        "--rounds",
        "1",
        "--epochs",
        "1",
        "--quiet",
    ]
    out = tmp_path / "run"
    assert run_cli(*options, out=out)[0] == 0
    assert run_cli(*options, out=out)[0] == 0  # the same data: resumes (to the end)
    batch_path = tmp_path / "c10" / "cifar-10-batches-py" / "data_batch_2"
    batch = pickle.loads(batch_path.read_bytes(), encoding="latin1")
    batch["data"][0, 0] ^= 1  # one pixel of one image
    batch_path.write_bytes(pickle.dumps(batch, protocol=2))
    before = _files(out)
    code, _, err = run_cli(*options, out=out, capsys=capsys)
    assert code == 2 and "holds a run on other data, refusing to resume it" in err
    assert _files(out) == before


def test_weights_are_loaded_and_a_resume_with_others_is_refused(data, tmp_path, capsys):
    from rgprune.models import build_model

    path = tmp_path / "start.safetensors"
    start = build_model("resnet20", 10, seed=7).state_dict()
    save_file(start, str(path))
    options = [
        "--model",
        "resnet20",
        "--task",
        f"cifar10:{data}/c10",
        "--image-size",
        "8",
        "--rounds",
        "1",
        "--epochs",
        "1",
        "--baselines",
        "random-reinit",
        "--weights",
        str(path),
        "--quiet",
    ]
    out = tmp_path / "run"
    assert run_cli(*options, out=out)[0] == 0
    init = load_file(str(out / "init.safetensors"))
    assert all(torch.equal(init[k], start[k]) for k in start)  # θ_init is the weights file
    recorded = json.loads((out / "inputs.json").read_text())["model"]["sha256"]
    assert recorded == {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}
    save_file(build_model("resnet20", 10, seed=8).state_dict(), str(path))
    before = _files(out)
    code, _, err = run_cli(*options, out=out, capsys=capsys)
    assert code == 2 and "started from other model weights, refusing to resume it" in err
    assert _files(out) == before


# ---- the Python API: a model factory and datasets --------------------------------------------------------------

API = IMPConfig(
    model="given:tinyconv",
    task="given-vision:blobs",
    rounds=2,
    epochs=2,
    batch_size=8,
    rewind_step=2,
    baselines=BASELINES,
)


def test_run_imp_takes_a_model_factory_and_datasets(tmp_path):
    """The factory's model trains on the given data: exact survivor counts of its 162 conv weights and each round's
    accuracy counted here on the given test set (guards against a given test set ignored or evaluated in training
    mode, and a pruning count off by one weight (k + 1), which densities within 0.02 passed)."""
    train, test = blobs(40, 0), blobs(12, 1)
    out = tmp_path / "api"
    result = run_imp(API, out, progress=False, model_fn=TinyConvNet, train=train, test=test)
    assert result.complete and all(set(r.baselines) == set(BASELINES) for r in result.rounds[1:])
    run = RunDir(out)
    assert [run.read_round_metrics(n)["survivors"] for n in range(3)] == [162, 130, 104]  # 32, then 26 pruned
    assert result.densities == [1.0, 130 / 162, 104 / 162] and (out / "report.md").is_file()
    for n in range(3):
        assert result.accuracies[n] == accuracy_of(TinyConvNet(3, 3), run.load_weights(n), test, EVAL_BATCH)
    assert API.name.startswith("given-tinyconv-given-vision-blobs-")
    inputs = json.loads((out / "inputs.json").read_text())
    assert inputs == {
        "task": {"spec": "given-vision:blobs", "fingerprint": inputs["task"]["fingerprint"]},
        "model": {"spec": "given:tinyconv"},
    }
    again = run_imp(API, out, progress=False, model_fn=TinyConvNet, train=train, test=test)
    assert again.resumed_from == 2 and again.accuracies == result.accuracies

    changed = blobs(40, 0)
    changed.tensors[0][39, 0, 0, 0] += 1  # the last item: always in the fingerprint's sample
    with pytest.raises(ConfigError, match="holds a run on other data"):
        run_imp(API, out, progress=False, model_fn=TinyConvNet, train=changed, test=test)
    shorter = TensorDataset(*(t[:39] for t in train.tensors))
    with pytest.raises(ConfigError, match="holds a run on other data"):
        run_imp(API, out, progress=False, model_fn=TinyConvNet, train=shorter, test=test)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(train=None, test=None), "names datasets the program passes in: call run_imp"),
        (dict(test=None), "pass both datasets"),
        (dict(model_fn=None), "is built by a factory the program passes in"),
        (
            dict(train=TensorDataset(torch.randn(4, 6, 6), torch.zeros(4, dtype=torch.long))),
            "the image must be a float [C, H, W] tensor",
        ),
        (dict(train=TensorDataset(torch.randn(4, 3, 6, 6), torch.full((4,), 5))), "has label 5, outside 0..2"),
    ],
)
def test_run_imp_refuses_missing_or_malformed_inputs_before_writing(tmp_path, kwargs, message):
    given = {**dict(model_fn=TinyConvNet, train=blobs(40, 0), test=blobs(12, 1)), **kwargs}
    if "has label 5" in message:
        given["num_classes"] = 3
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_imp(API, tmp_path / "run", progress=False, **given)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="a model_fn was passed in but model 'resnet20' is built from its spec"):
        run_imp(
            API.replace(model="resnet20"),
            tmp_path / "run",
            progress=False,
            model_fn=TinyConvNet,
            train=blobs(40, 0),
            test=blobs(12, 1),
        )


def test_text_datasets_and_a_factory(tmp_path):
    """A text model from a factory on given token datasets; the exact survivor count guards against a pruner taking
    k = floor(fraction * survivors) (52 of 64 kept instead of 51), which a density within 0.02 passed."""

    class BagOfWords(nn.Module):
        def __init__(self, num_classes: int):
            super().__init__()
            self.embed, self.hidden, self.head = nn.Embedding(30, 8), nn.Linear(8, 8), nn.Linear(8, num_classes)

        def forward(self, input_ids, attention_mask):
            return self.head(torch.relu(self.hidden((self.embed(input_ids) * attention_mask[..., None]).mean(1))))

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 30, (24, 7), generator=g)
    data = TensorDataset(ids, torch.ones_like(ids), (ids[:, 0] > 15).long())
    config = IMPConfig(model="given:bag", task="given-text:words", rounds=1, epochs=1, batch_size=8)
    assert config.optimizer == "adamw"  # the text defaults
    result = run_imp(config, tmp_path / "text", progress=False, model_fn=BagOfWords, train=data, test=data)
    assert result.complete and RunDir(tmp_path / "text").read_round_metrics(1)["survivors"] == 51  # of 64: 13 pruned
    assert result.rounds[1].density == 51 / 64

    class OnlyAHead(nn.Module):  # the head and the embeddings stay dense by default: nothing to prune
        def __init__(self, num_classes: int):
            super().__init__()
            self.embed, self.head = nn.Embedding(30, 8), nn.Linear(8, num_classes)

    with pytest.raises(ConfigError, match="no prunable parameters selected.*prune_head"):
        run_imp(config, tmp_path / "nothing", progress=False, model_fn=OnlyAHead, train=data, test=data)
    assert not (tmp_path / "nothing").exists()


class NestedHead(nn.Module):
    """A torchvision-style classifier: ``classifier = Sequential(Linear, ReLU, Linear)``."""

    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.mark.parametrize("prune_head", [False, True])
def test_imp_on_a_nested_head_keeps_it_dense_unless_asked(tmp_path, prune_head):
    """run_imp's masks, observables and trace cover the 162 conv weights, and the nested head's 48 + 24 weights only
    with prune_head=True: guards against the head rule matched on the full module name (``classifier.0`` is then
    no head and gets pruned by default) and against IMPConfig.prune_head not reaching the run's pruner."""
    config = API.replace(rounds=1, epochs=1, baselines=(), prune_head=prune_head)
    out = tmp_path / "nested"
    run_imp(config, out, progress=False, model_fn=NestedHead, train=blobs(40, 0), test=blobs(12, 1))
    head = ["classifier.0.weight", "classifier.2.weight"] if prune_head else []
    run = RunDir(out)
    names = ["features.0.weight", *head]
    assert run.load_masks(1).names == names and run.read_observables(1)["tensor_names"] == names
    assert run.load_trace().tensor_names == names
    # 20% of the selected weights pruned: round(0.2 * 162) = 32, or round(0.2 * 234) = 47 with the head
    assert run.read_round_metrics(1)["survivors"] == (234 - 47 if prune_head else 162 - 32)
    if not prune_head:  # the head trained unmasked: no weight of it is 0
        weights = run.load_weights(1)
        assert all(bool(weights[name].all()) for name in ("classifier.0.weight", "classifier.2.weight"))


def test_imp_exclude_keeps_the_matched_layers_dense_through_the_run(tmp_path, monkeypatch):
    """exclude=('classifier.0.*',) with prune_head=True: masks, observables, trace and the flow report's Gram matrix
    cover exactly the other two layers, and the excluded one trains unmasked (no weight 0). Guards against
    IMPConfig.exclude not reaching the run's pruner, and against the report's parameter-space DMD taken over the
    checkpoint's default set instead of the tensors the run pruned."""
    import rgprune.rg.checkpoints

    grams = []

    def spy(paths, include=None, exclude=()):
        grams.append(include)
        return parameter_gram(paths, include, exclude)

    parameter_gram = rgprune.rg.checkpoints.parameter_gram
    monkeypatch.setattr(rgprune.rg.checkpoints, "parameter_gram", spy)
    config = API.replace(rounds=3, epochs=1, baselines=(), prune_head=True, exclude=("classifier.0.*",))
    out = tmp_path / "excluded"
    run_imp(config, out, progress=False, model_fn=NestedHead, train=blobs(40, 0), test=blobs(12, 1))
    run = RunDir(out)
    names = ["features.0.weight", "classifier.2.weight"]
    assert run.load_masks(3).names == names and run.load_trace().tensor_names == names
    assert run.read_round_metrics(1)["survivors"] == 186 - 37  # round(0.2 * (162 + 24)) pruned
    assert all(bool(run.load_weights(n)["classifier.0.weight"].all()) for n in range(4))
    assert grams == [names]  # the report's Gram matrix, over the pruned tensors


def test_imp_exclude_pattern_that_names_nothing_is_refused_before_writing(tmp_path):
    """A typo'd pattern (``classifier0.*``) would silently prune what it was meant to keep: refused, with the
    model's parameter names to correct it by, and nothing written; a pattern excluding everything prunable is
    refused like a model with nothing to prune."""
    for exclude, message in (
        (("classifier0.*", "features.*"), r"exclude pattern\(s\) \['classifier0.\*'\] match no parameter"),
        (("features.*",), "no prunable parameters selected"),
    ):
        config = API.replace(rounds=1, epochs=1, baselines=(), exclude=exclude)
        with pytest.raises(ConfigError, match=message):
            run_imp(config, tmp_path / "bad", progress=False, model_fn=NestedHead, train=blobs(40, 0), test=blobs(8, 1))
        assert not (tmp_path / "bad").exists()
    with pytest.raises(ConfigError, match="exclude holds an empty pattern"):
        API.replace(exclude=("",))
    with pytest.raises(TypeError, match="exclude must be a tuple of strs"):
        API.replace(exclude="features.*")


def test_gpu_pipeline_settings_run_on_the_cpu(tmp_path, monkeypatch):
    """channels_last inputs, float16 autocast with a gradient scaler and torch.compile (spied: the CPU build has
    no compiler to rely on) reach the model, and the masks stay applied."""
    compiled = []

    def fake_compile(module, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    models = []

    def factory(num_classes, in_channels):
        models.append(TinyConvNet(num_classes, in_channels))
        return models[-1]

    config = API.replace(rounds=1, baselines=(), channels_last=True, amp=True, amp_dtype="float16", compile=True)
    out = tmp_path / "gpu-settings"
    run_imp(config, out, progress=False, model_fn=factory, train=blobs(40, 0), test=blobs(12, 1))
    model = models[0]
    assert set(model.seen) == {(True, torch.float16)}
    assert compiled and all(m is model for m in compiled) and len(compiled) == 4  # 2 rounds x (train, evaluate)
    weights = load_file(str(out / "round-01" / "weights.safetensors"))
    assert int((weights["conv.weight"] == 0).sum()) == 162 - 130  # the pruned 20% of the conv weights stayed 0


# ---- the input pipeline -------------------------------------------------------------------------------------------


def test_pipeline_defaults_per_device_and_overrides():
    config = IMPConfig(model="resnet20", task="cifar10:/data", amp=True)
    cpu = resolve_pipeline(config, torch.device("cpu"), "vision", cpu_count=16)
    assert (cpu.num_workers, cpu.persistent_workers, cpu.pin_memory, cpu.channels_last, cpu.amp_dtype) == (
        0,
        False,
        False,
        False,
        torch.bfloat16,
    )
    cuda = resolve_pipeline(config, torch.device("cuda"), "vision", cpu_count=16, local_ranks=1)
    assert (cuda.num_workers, cuda.persistent_workers, cuda.pin_memory, cuda.channels_last, cuda.amp_dtype) == (
        8,
        True,
        True,
        True,
        torch.float16,
    )
    assert resolve_pipeline(config, torch.device("cuda"), "vision", cpu_count=16, local_ranks=4).num_workers == 4
    assert resolve_pipeline(config, torch.device("cuda"), "vision", cpu_count=2, local_ranks=1).num_workers == 2
    text = IMPConfig(model="minilm", task="vader")
    assert resolve_pipeline(text, torch.device("cuda"), "text", cpu_count=16).channels_last is False
    assert resolve_pipeline(text, torch.device("cuda"), "text", cpu_count=16).amp_dtype is None
    chosen = config.replace(
        num_workers=3,
        persistent_workers=False,
        pin_memory=False,
        channels_last=False,
        amp_dtype="bfloat16",
        compile=True,
    )
    assert resolve_pipeline(chosen, torch.device("cuda"), "vision") == type(cuda)(
        num_workers=3,
        persistent_workers=False,
        pin_memory=False,
        channels_last=False,
        amp_dtype=torch.bfloat16,
        compile=True,
    )
    assert (
        resolve_pipeline(
            config.replace(num_workers=0, persistent_workers=True), torch.device("cpu"), "vision"
        ).persistent_workers
        is False
    )


@pytest.mark.parametrize("n, batch", [(20, 6), (1437, 128)])
def test_epoch_sampler_keeps_the_data_order_of_earlier_runs(n, batch):
    """Runs made before the sampler existed shuffled with DataLoader(shuffle=True, generator=g), g reseeded per
    epoch: the sampler draws the same order, so they resume onto it."""
    sampler = EpochSampler(n)
    for seed in (0, 11, 2**40):
        g = torch.Generator().manual_seed(seed)
        old = [int(i) for b in DataLoader(range(n), batch_size=batch, shuffle=True, generator=g) for i in b]
        sampler.seed_epoch(seed)
        new = list(sampler)
        assert [index for index, _ in new] == old
        assert len({item_seed for _, item_seed in new}) == n  # one seed per example


def test_epoch_sampler_shards_and_seeded_items_leave_the_rng_alone():
    shards = [EpochSampler(10, rank, 3) for rank in range(3)]
    for s in shards:
        s.seed_epoch(5)
    dealt = [list(s) for s in shards]
    assert [len(d) for d in dealt] == [4, 4, 4]
    indices = [i for d in dealt for i, _ in d]
    assert sorted(set(indices)) == list(range(10)) and len(indices) == 12  # two wrapped around

    class Noise(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return torch.rand(3)

    noisy = SeededItems(Noise())
    state = torch.get_rng_state()
    assert torch.equal(noisy[(0, 42)], noisy[(1, 42)]) and not torch.equal(noisy[(0, 42)], noisy[(0, 43)])
    assert torch.equal(torch.get_rng_state(), state)


# ---- names and resume of runs made before these fields existed ---------------------------------------------------

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


def test_names_of_existing_runs_are_unchanged():
    """The digests of configs that existed before the specs, data options and pipeline fields (computed then)."""
    assert TINY.name == "resnet20-digits-d8c99755"
    assert IMPConfig(model="minilm", task="vader").name == "minilm-vader-3e11d0e6"
    assert (
        IMPConfig(model="resnet50", task="digits-rotated", amp=True, device="auto", seed=3).name
        == "resnet50-digits-rotated-c01d9da2"
    )
    # runtime fields never count; a new field counts once it is set
    assert TINY.replace(num_workers=4, pin_memory=True, persistent_workers=False).name == TINY.name
    assert TINY.replace(compile=True).name != TINY.name and TINY.replace(channels_last=False).name != TINY.name
    assert TINY.replace(exclude=("layer1.*",)).name != TINY.name


def test_a_run_made_before_the_new_fields_resumes(tmp_path):
    new_fields = {
        "weights",
        "resize",
        "center_crop",
        "mean",
        "std",
        "augment",
        "max_length",
        "text_columns",
        "label_column",
        "labels",
        "test_split",
        "amp_dtype",
        "channels_last",
        "compile",
        "num_workers",
        "persistent_workers",
        "pin_memory",
        "exclude",
    }
    run = RunDir(tmp_path / "old")
    run.path.mkdir()
    old = {k: v for k, v in TINY.to_dict().items() if k not in new_fields}
    run.config_path.write_text(json.dumps({"version": 1, **old}))
    assert run.read_config() == TINY and run.read_config().name == TINY.name
    inputs = {"task": {"spec": "digits", "fingerprint": "f"}, "model": {"spec": "resnet20"}}
    assert run.prepare(TINY.replace(num_workers=2), inputs) == -1  # a runtime field may differ on resume
    assert json.loads(run.inputs_path.read_text()) == inputs  # recorded from now on
    with pytest.raises(ConfigError, match="different config.*compile: saved False, given True"):
        run.prepare(TINY.replace(compile=True), inputs)
    with pytest.raises(ConfigError, match="holds a run on other data"):
        run.prepare(TINY, {**inputs, "task": {"spec": "digits", "fingerprint": "g"}})


def test_config_validates_the_new_fields():
    spec = "cifar10:/data"
    for changes, message in (
        (dict(task="digits", augment=True), "augment applies to KIND:PATH tasks"),
        (dict(task="digits", max_length=64), "max_length applies to KIND:PATH tasks"),
        (dict(mean=(0.5, 0.5), std=(1.0, 1.0)), "must be a tuple of 3 finite numbers"),
        (dict(mean=(0.5, 0.5, 0.5)), "ImageOptions.mean and ImageOptions.std go together"),
        (dict(text_columns=("text",)), "text_columns applies to text tasks"),
        (dict(amp_dtype="float16"), "amp_dtype='float16' applies with amp=True"),
        (dict(amp=True, amp_dtype="float8"), "valid choices are: bfloat16, float16"),
        (dict(num_workers=-1), "num_workers must be >= 0"),
        (dict(model="hf:/nowhere"), "/nowhere has no config.json"),
        (dict(model="torchvision:resnet18", task="vader"), "is a vision model but task 'vader' is a text task"),
    ):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            IMPConfig(**{"model": "resnet20", "task": spec, **changes})
    with pytest.raises(TypeError, match="mean must hold floats"):
        IMPConfig(model="resnet20", task=spec, mean=(0.5, "x", 0.5), std=(1, 1, 1))
    config = IMPConfig(model="torchvision:resnet18", task="imagefolder:~/imagenet", mean=[0, 0, 0], std=(1, 1, 1))
    assert config.image_size == 224 and config.mean == (0.0, 0.0, 0.0) and config.std == (1.0, 1.0, 1.0)
    assert config.name.startswith("torchvision-resnet18-imagefolder-imagenet-")
    assert IMPConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert IMPConfig(model="resnet20", task=spec).image_size == 32
    assert IMPConfig(model="resnet20", task="given-vision:mine").image_size is None

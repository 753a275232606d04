"""rgprune.models specs: torchvision:NAME, hf:DIR and module:pkg.mod:fn build the right models (no downloads), take
the task's class count, and run a forward pass on batches of the tasks they fit; wrong specs fail clearly."""

import textwrap

import pytest
import tiny_data as td
import torch
from torch import nn
from torch.utils.data import DataLoader

from rgprune.data import TextOptions, load_task
from rgprune.models import (
    MODEL_NAMES,
    build_model,
    check_model_fits_task,
    load_tokenizer,
    model_kind,
    parse_model_spec,
)
from rgprune.models.specs import torchvision_model_names
from rgprune.train import forward_batch


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("model-data")
    td.write_cifar10(root / "c10")
    td.write_cifar100(root / "c100")
    td.write_imagefolder(root / "folder")
    td.write_glue_sst2(root / "SST-2")
    td.write_glue_mnli(root / "MNLI")
    td.write_hf_disk(root / "hf")
    td.write_csv(root / "csv")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny-bert"
    model, _ = td.write_hf_checkpoint(folder, num_labels=2)
    return folder, model


def batch(task, n=4):
    return next(iter(DataLoader(task.train, batch_size=n)))


def test_parse_model_spec_forms(checkpoint):
    folder, _ = checkpoint
    assert parse_model_spec("resnet20").source == "builtin"
    assert (parse_model_spec("torchvision:vgg11").source, parse_model_spec("torchvision:vgg11").target) == (
        "torchvision",
        "vgg11",
    )
    assert parse_model_spec(f"hf:{folder}").target == str(folder)
    assert [model_kind(s) for s in ("resnet56", "minilm", "torchvision:mobilenet_v3_small", f"hf:{folder}")] == [
        "vision",
        "text",
        "vision",
        "text",
    ]
    assert "resnet18" in torchvision_model_names() and "fasterrcnn_resnet50_fpn" not in torchvision_model_names()


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("vgg16", ValueError, "torchvision:NAME, hf:DIR"),  # an unknown name lists the spec forms
        ("timm:resnet18", ValueError, "unknown model source 'timm'"),
        ("torchvision:resnet19", ValueError, "no classification model 'resnet19'.*resnet18"),
        ("torchvision:fasterrcnn_resnet50_fpn", ValueError, "no classification model"),
        ("hf:/nonexistent/bert", ValueError, "no config.json.*DIR/config.json, the weights"),
        ("module:no_such_module_xyz:make", ValueError, "cannot import 'no_such_module_xyz'.*PYTHONPATH"),
        ("module:torch.nn", ValueError, "must be module:pkg.mod:fn"),
        ("module:torch.nn:NoSuchLayer", ValueError, "has no attribute 'NoSuchLayer'"),
        ("hf:", ValueError, "names nothing"),
        (None, TypeError, "model name must be a str"),
    ],
)
def test_bad_specs_fail_clearly(spec, error, message):
    with pytest.raises(error, match=message):
        build_model(spec, 10)


def test_torchvision_models_take_the_task_classes_and_run_on_image_tasks(data, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # a pretrained download would land here
    for spec in (f"cifar10:{data / 'c10'}", f"cifar100:{data / 'c100'}", f"imagefolder:{data / 'folder'}"):
        task = load_task(spec, image_size=32) if spec.startswith("imagefolder") else load_task(spec)
        model = build_model("torchvision:resnet18", task.num_classes, seed=0).eval()
        assert model.fc.out_features == task.num_classes
        logits, labels = forward_batch(model, batch(task), "cpu")
        assert logits.shape == (4, task.num_classes) and labels.shape == (4,)
        assert torch.isfinite(logits).all()
    assert not (tmp_path / "torch-home").exists()
    a = build_model("torchvision:mobilenet_v3_small", 5, seed=3)
    b = build_model("torchvision:mobilenet_v3_small", 5, seed=3)
    c = build_model("torchvision:mobilenet_v3_small", 5, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))


def test_torchvision_aux_heads_are_off_so_training_returns_logits():
    model = build_model("torchvision:googlenet", 3, seed=0).train()
    assert isinstance(model(torch.randn(2, 3, 64, 64)), torch.Tensor)


def test_torchvision_refuses_non_rgb_input():
    with pytest.raises(ValueError, match="RGB images .*the task has 1.*built-in ResNet"):
        build_model("torchvision:resnet18", 10, in_channels=1)


def test_weights_path_loads_a_state_dict_with_a_new_head(tmp_path):
    source = build_model("torchvision:resnet18", 7, seed=1)
    torch.save(source.state_dict(), tmp_path / "r18.pt")
    from safetensors.torch import save_file

    save_file(source.state_dict(), tmp_path / "r18.safetensors")
    fresh = build_model("torchvision:resnet18", 10, seed=2)
    for name in ("r18.pt", "r18.safetensors"):
        model = build_model("torchvision:resnet18", 10, seed=2, weights_path=str(tmp_path / name))
        assert torch.equal(model.conv1.weight, source.conv1.weight)
        assert torch.equal(model.layer4[1].bn2.running_mean, source.layer4[1].bn2.running_mean)
        assert torch.equal(model.fc.weight, fresh.fc.weight) and model.fc.out_features == 10  # the new head
    random_init = build_model(
        "torchvision:resnet18", 10, seed=2, weights_path=str(tmp_path / "r18.pt"), pretrained=False
    )
    assert torch.equal(random_init.conv1.weight, fresh.conv1.weight)
    # The built-in names take weights too: a resnet20 checkpoint into a resnet20.
    torch.save(build_model("resnet20", 10, seed=5).state_dict(), tmp_path / "r20.pt")
    loaded = build_model("resnet20", 10, seed=6, weights_path=str(tmp_path / "r20.pt"))
    assert torch.equal(loaded.conv1.weight, build_model("resnet20", 10, seed=5).conv1.weight)


def test_weights_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("torchvision:resnet18", 10, weights_path=str(tmp_path / "missing.pt"))
    torch.save(build_model("resnet20", 10).state_dict(), tmp_path / "r20.pt")
    with pytest.raises(ValueError, match="does not fit the model: missing .*same architecture"):
        build_model("torchvision:resnet18", 10, weights_path=str(tmp_path / "r20.pt"))
    torch.save(build_model("torchvision:resnet18", 10).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(ValueError, match=r"other shapes \['conv1.weight'\]"):
        build_model("resnet18", 10, weights_path=str(tmp_path / "r18.pt"))  # 3x3 small-input stem vs 7x7
    torch.save({"model": build_model("resnet20", 10).state_dict()}, tmp_path / "nested.pt")
    with pytest.raises(ValueError, match="dict of tensors"):
        build_model("resnet20", 10, weights_path=str(tmp_path / "nested.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a torch.save'd state_dict"):
        build_model("resnet20", 10, weights_path=str(tmp_path / "junk.pt"))


def test_hf_checkpoint_gets_a_head_for_the_task_and_runs_on_text_tasks(data, checkpoint):
    folder, saved = checkpoint
    spec = f"hf:{folder}"
    tokenizer = load_tokenizer(spec)
    assert tokenizer.convert_ids_to_tokens(5) == (folder / "vocab.txt").read_text().split("\n")[5]
    options = TextOptions(max_length=32)
    tasks = [
        load_task(f"glue-sst2:{data / 'SST-2'}", tokenizer=tokenizer, text=options),
        load_task(f"glue-mnli:{data / 'MNLI'}", tokenizer=tokenizer, text=options),
        load_task(
            f"hf-disk:{data / 'hf'}",
            tokenizer=tokenizer,
            text=TextOptions(text_columns=("premise", "hypothesis"), max_length=32),
        ),
        load_task(
            f"csv:{data / 'csv'}",
            tokenizer=tokenizer,
            text=TextOptions(text_columns=("review",), label_column="sentiment", max_length=32),
        ),
    ]
    for task in tasks:
        model = build_model(spec, task.num_classes, seed=0).eval()
        assert model.classifier.out_features == task.num_classes == model.config.num_labels
        assert len(model.config.id2label) == task.num_classes
        # The encoder is the checkpoint's; the head is the checkpoint's when the class count matches.
        assert torch.equal(
            model.bert.encoder.layer[0].output.dense.weight, saved.bert.encoder.layer[0].output.dense.weight
        )
        assert torch.equal(model.classifier.weight, saved.classifier.weight) == (task.num_classes == 2)
        logits, labels = forward_batch(model, batch(task), "cpu")
        assert logits.shape == (4, task.num_classes) and torch.isfinite(logits).all()
    random_init = build_model(spec, 3, pretrained=False, seed=7)  # seed 0 built the saved model
    assert not torch.equal(
        random_init.bert.embeddings.word_embeddings.weight, saved.bert.embeddings.word_embeddings.weight
    )
    with pytest.raises(ValueError, match="weights_path does not apply"):
        build_model(spec, 3, weights_path="x.pt")


def test_hf_checkpoint_without_weights_or_tokenizer(checkpoint, tmp_path):
    folder, _ = checkpoint
    (tmp_path / "config-only").mkdir()
    (tmp_path / "config-only" / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ValueError, match="no weights file .*save_pretrained"):
        build_model(f"hf:{tmp_path / 'config-only'}", 2)
    with pytest.raises(ValueError, match="no tokenizer files .*tokenizer.save_pretrained"):
        load_tokenizer(f"hf:{tmp_path / 'config-only'}")


MODULE_SOURCE = textwrap.dedent("""
    from torch import nn

    def tiny_cnn(num_classes, in_channels):
        return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, num_classes))

    class Bag(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.embed = nn.EmbeddingBag(30522, 8, mode="sum")
            self.head = nn.Linear(8, num_classes)

        def forward(self, input_ids, attention_mask):
            return self.head(self.embed(input_ids, per_sample_weights=attention_mask.float()))

    def bag(num_classes):
        return Bag(num_classes)

    bag.kind = "text"

    def wrong_signature(classes):
        return nn.Linear(2, classes)

    def not_a_module(num_classes, in_channels):
        return "resnet"
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_models"


def test_module_callables(user_module, data):
    cnn = build_model(f"module:{user_module}:tiny_cnn", 10, in_channels=3, seed=0)
    assert model_kind(f"module:{user_module}:tiny_cnn") == "vision"
    logits, _ = forward_batch(cnn, batch(load_task(f"cifar10:{data / 'c10'}")), "cpu")
    assert logits.shape == (4, 10)
    assert model_kind(f"module:{user_module}:bag") == "text"
    bag = build_model(f"module:{user_module}:bag", 3)
    assert isinstance(bag, nn.Module) and bag.head.out_features == 3
    task = load_task(
        f"glue-mnli:{data / 'MNLI'}",
        tokenizer=load_tokenizer(f"module:{user_module}:bag"),
        text=TextOptions(max_length=24),
    )
    assert forward_batch(bag, batch(task), "cpu")[0].shape == (4, 3)
    with pytest.raises(TypeError, match="must accept keyword arguments num_classes, in_channels"):
        build_model(f"module:{user_module}:wrong_signature", 2)
    with pytest.raises(TypeError, match="returned a str, not an nn.Module"):
        build_model(f"module:{user_module}:not_a_module", 2)


def test_model_and_task_kinds_must_match(data, checkpoint):
    folder, _ = checkpoint
    check_model_fits_task("torchvision:resnet18", f"cifar10:{data / 'c10'}")
    check_model_fits_task(f"hf:{folder}", f"glue-sst2:{data / 'SST-2'}")
    with pytest.raises(ValueError, match=r"model 'hf:.*' is a text model but task 'cifar10:.*' is a vision task"):
        check_model_fits_task(f"hf:{folder}", f"cifar10:{data / 'c10'}")
    with pytest.raises(ValueError, match="is a vision model but task 'vader' is a text task"):
        check_model_fits_task("torchvision:resnet18", "vader")


def test_builtin_names_keep_working():
    assert parse_model_spec("minilm").kind == "text"
    assert all(parse_model_spec(name).source == "builtin" for name in MODEL_NAMES)
    with pytest.raises(ValueError, match="tokenizers exist only for the text models"):
        load_tokenizer("torchvision:resnet18")

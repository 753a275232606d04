"""GlobalMagnitudePruner: selection, exact pruning (equal to the kernels and to torch.nn.utils.prune),
masks kept through optimizer steps, rewinding, state round trips and torch.prune interop.

README_EXAMPLE below is the README's "use it in your training loop" snippet, executed verbatim by
test_readme_example_runs.
"""

import contextlib
import copy
import io
import math
import pickle
import socket

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

import rgprune
from rgprune.models import build_model

README_EXAMPLE = """\
import torch, rgprune.data, rgprune.models
task = rgprune.data.load_task("digits", image_size=16)
model = rgprune.models.build_model("resnet20", 10, in_channels=1, seed=0)
pruner = rgprune.GlobalMagnitudePruner(model)  # conv weights; the fc head stays dense
pruner.prune(fraction=0.2)                     # remove the 20% smallest |w|, ranked globally
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
pruner.attach(optimizer)                       # pruned weights are re-zeroed after every step
for x, y in torch.utils.data.DataLoader(task.train, batch_size=64, shuffle=True):  # one epoch
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
model.eval()
accuracy = (model(task.test.tensors[0]).argmax(1) == task.test.tensors[1]).float().mean()
print(f"density {pruner.density():.2f}, test accuracy {accuracy:.2f}")
"""


# ---- helpers -----------------------------------------------------------------------------------------


def resnet20(seed=0):
    """CIFAR ResNet-20 for 1-channel images (the tests feed it 8x8 inputs)."""
    return build_model("resnet20", 10, in_channels=1, seed=seed)


def conv_weight_names(model):
    return [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def bits(t):
    """The tensor's bit patterns as integers (+0.0 is 0, -0.0 is not)."""
    return t.detach().view({torch.float32: torch.int32, torch.float64: torch.int64}[t.dtype])


def keep_masks(pruner):
    return dict(zip(pruner.names, pruner.masks.to_bool()))


def assert_pruned_are_plus_zero(pruner):
    for p, keep in zip(pruner.params, pruner.masks.to_bool()):
        keep = keep.to(p.device)
        assert torch.all(bits(p)[~keep] == 0)


def weights_snapshot(model):
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


def assert_state_equal(model, snapshot):
    state = model.state_dict()
    assert state.keys() == snapshot.keys()
    for n, t in state.items():
        assert torch.equal(t, snapshot[n]), n


def train_steps(model, optimizer, steps, after_step=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, 1, 8, 8, generator=g)
        y = torch.randint(0, 10, (8,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if after_step is not None:
            after_step()


pytestmark = [pytest.mark.reference, pytest.mark.usefixtures("one_thread")]  # make test-reference; tests/conftest.py


@pytest.fixture(scope="module")
def minilm():
    return build_model("minilm", 2, seed=0)


# ---- 1. selection --------------------------------------------------------------------------------------


def test_default_selection_is_conv_weights_without_head_biases_or_norms():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    assert pruner.names == conv_weight_names(model)
    assert len(pruner.names) == 19
    assert pruner.num_weights == sum(model.get_parameter(n).numel() for n in pruner.names)


def test_prune_head_adds_the_fc_weight_but_not_its_bias():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
    assert pruner.names == conv_weight_names(model) + ["fc.weight"]


def test_bert_selection_excludes_embeddings_head_and_layernorm_by_default(minilm):
    names = rgprune.GlobalMagnitudePruner(minilm).names
    linear_weights = [f"{n}.weight" for n, m in minilm.named_modules() if isinstance(m, nn.Linear)]
    assert names == [n for n in linear_weights if not n.startswith("classifier.")]
    assert len(names) == 6 * 6 + 1  # q, k, v, attention output, intermediate, output per layer + pooler
    assert not any(n.startswith("bert.embeddings") or "LayerNorm" in n or n.endswith("bias") for n in names)


def test_bert_embeddings_and_head_are_opt_in(minilm):
    default = rgprune.GlobalMagnitudePruner(minilm).names
    with_embeddings = rgprune.GlobalMagnitudePruner(minilm, prune_embeddings=True).names
    with_head = rgprune.GlobalMagnitudePruner(minilm, prune_head=True).names
    assert [n for n in with_embeddings if n not in default] == [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
    ]  # never the embeddings' LayerNorm
    assert [n for n in with_head if n not in default] == ["classifier.weight"]


def test_include_patterns_replace_the_default_set():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model, include=["layer1.*.conv1.weight"])
    assert pruner.names == ["layer1.0.conv1.weight", "layer1.1.conv1.weight", "layer1.2.conv1.weight"]
    # naming the head explicitly selects it without prune_head
    assert rgprune.GlobalMagnitudePruner(model, include=["fc.weight"]).names == ["fc.weight"]


def test_exclude_patterns_remove_from_the_selection():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model, exclude=["layer3.*", "conv1.weight"])
    assert pruner.names == [n for n in conv_weight_names(model) if not n.startswith("layer3.") and n != "conv1.weight"]
    pruner = rgprune.GlobalMagnitudePruner(model, include=["layer2.*.weight"], exclude=["*bn*"])
    assert pruner.names == [n for n in conv_weight_names(model) if n.startswith("layer2.")]


class TiedPair(nn.Module):
    """Two Linear layers sharing one weight Parameter (as tied encoder/decoder weights do)."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(16, 16)
        self.second = nn.Linear(16, 16)
        self.second.weight = self.first.weight

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


def test_tied_weights_are_counted_once():
    torch.manual_seed(0)
    model = TiedPair()
    pruner = rgprune.GlobalMagnitudePruner(model)
    assert pruner.names == ["first.weight"]
    assert pruner.num_weights == 256
    report = pruner.prune(fraction=0.5)
    assert report.k == 128 and pruner.num_survivors == 128
    assert int((model.second.weight == 0).sum()) == 128  # the tied layer sees the same zeros


def test_no_selected_parameter_raises_value_error():
    with pytest.raises(ValueError, match="no prunable parameters"):
        rgprune.GlobalMagnitudePruner(nn.Sequential(nn.BatchNorm1d(4), nn.ReLU()))
    with pytest.raises(ValueError, match="no prunable parameters"):
        rgprune.GlobalMagnitudePruner(resnet20(), exclude=["*"])
    with pytest.raises(ValueError, match="no prunable parameters"):  # patterns that match, but nothing prunable
        rgprune.GlobalMagnitudePruner(resnet20(), include=["*.bias"], exclude=["*"])
    with pytest.raises(ValueError, match="match no parameter"):  # a pattern matching nothing is a typo
        rgprune.GlobalMagnitudePruner(resnet20(), include=["no.such.weight"])


def test_mixed_dtypes_raise_type_error():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4).half())
    with pytest.raises(TypeError, match="dtypes"):
        rgprune.GlobalMagnitudePruner(model)
    # one dtype group is fine
    assert rgprune.GlobalMagnitudePruner(model, include=["1.weight"]).names == ["1.weight"]


# ---- 2. exact pruning -------------------------------------------------------------------------------


def test_prune_fraction_equals_prune_global_kernel():
    model = resnet20()
    twin = copy.deepcopy(model)
    pruner = rgprune.GlobalMagnitudePruner(model)
    tensors = [twin.get_parameter(n).data for n in pruner.names]
    masks = rgprune.MaskSet.ones(tensors)
    for _ in range(2):  # the second round ranks only the survivors of the first
        k = round(0.2 * sum(masks.survivor_counts()))
        report = pruner.prune(fraction=0.2)
        rgprune.prune_global_(tensors, masks.words, k)
        assert report.k == k
        assert all(torch.equal(a, b) for a, b in zip(pruner.masks.words, masks.words))
        assert all(torch.equal(bits(p), bits(t)) for p, t in zip(pruner.params, tensors))
    assert pruner.num_survivors == sum(masks.survivor_counts()) == round(0.8 * round(0.8 * pruner.num_weights))


def test_prune_fraction_equals_torch_global_unstructured_on_resnet20():
    model = resnet20()
    theirs = copy.deepcopy(model)
    pruner = rgprune.GlobalMagnitudePruner(model)
    report = pruner.prune(fraction=0.2)
    pairs = [(theirs.get_submodule(n.rpartition(".")[0]), "weight") for n in pruner.names]
    tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=0.2)
    th = report.threshold
    assert sum(int(m.weight_mask.sum()) for m, _ in pairs) == pruner.num_survivors
    for (module, _), ours in zip(pairs, pruner.masks.to_bool()):
        differ = ours != module.weight_mask.bool()
        if th.n_ties == th.n_equal:  # the threshold splits no group of equal magnitudes: identical masks
            assert not differ.any()
        else:  # torch.topk picks among tied weights in no documented order; we pick in model order
            assert torch.all(module.weight_orig.detach().abs()[differ] == th.magnitude)


def test_prune_target_density_hits_the_exact_count():
    pruner = rgprune.GlobalMagnitudePruner(resnet20())
    n = pruner.num_weights
    for target in (0.37, 0.1):
        report = pruner.prune(target_density=target)
        assert pruner.num_survivors == round(target * n)
        assert report.density == pruner.density() == round(target * n) / n
    assert_pruned_are_plus_zero(pruner)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "exactly one"),
        (dict(fraction=0.2, target_density=0.5), "exactly one"),
        (dict(fraction=-0.1), "fraction"),
        (dict(fraction=1.5), "fraction"),
        (dict(fraction=math.nan), "fraction"),
        (dict(fraction=True), "fraction"),
        (dict(fraction="0.2"), "fraction"),
        (dict(target_density=-0.1), "target_density"),
        (dict(target_density=1.2), "target_density"),
        (dict(target_density=0.9), "above the current density"),
    ],  # the density is 0.5 here
    ids=[
        "none",
        "both",
        "fraction<0",
        "fraction>1",
        "fraction-nan",
        "fraction-bool",
        "fraction-str",
        "density<0",
        "density>1",
        "density-above-current",
    ],
)
def test_bad_prune_arguments_raise_value_error_and_change_nothing(kwargs, message):
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.5)
    before, masks = weights_snapshot(model), pruner.masks.clone()
    with pytest.raises(ValueError, match=message):
        pruner.prune(**kwargs)
    assert_state_equal(model, before)
    assert pruner.masks == masks


# ---- 3. masks kept through optimizer steps ---------------------------------------------------------------

OPTIMIZERS = {
    "sgd-momentum": (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=5e-4), ["momentum_buffer"]),
    "adamw": (lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2), ["exp_avg", "exp_avg_sq"]),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_attached_optimizer_keeps_pruned_weights_and_state_exactly_zero_for_100_steps(name):
    make, state_keys = OPTIMIZERS[name]
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.5)
    after_prune = [p.detach().clone() for p in pruner.params]
    optimizer = make(model.parameters())
    pruner.attach(optimizer)
    keeps = pruner.masks.to_bool()
    params = pruner.params

    def check():
        for p, keep in zip(params, keeps):
            assert torch.all(bits(p)[~keep] == 0)
            state = optimizer.state[p]
            for key in state_keys:
                assert torch.all(bits(state[key])[~keep] == 0), key
                assert state[key][keep].abs().sum() > 0, key  # survivors' state is left alone

    train_steps(model, optimizer, 100, after_step=check)
    assert all(torch.equal(a, b) for a, b in zip(pruner.masks.to_bool(), keeps))
    for p, p0, keep in zip(params, after_prune, keeps):
        assert not torch.equal(p[keep], p0[keep])  # the survivors did train


def test_detach_stops_reapplying_masks():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner.attach(optimizer)
    train_steps(model, optimizer, 3)
    assert_pruned_are_plus_zero(pruner)
    pruner.detach()
    train_steps(model, optimizer, 1, seed=1)
    regrown = sum(int((p[~keep] != 0).sum()) for p, keep in zip(pruner.params, pruner.masks.to_bool()))
    assert regrown > 0


def test_second_prune_while_attached_keeps_the_new_masks():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner.attach(optimizer)
    train_steps(model, optimizer, 5)
    pruner.prune(fraction=0.5)
    assert pruner.num_survivors == round(0.5 * round(0.8 * pruner.num_weights))
    train_steps(model, optimizer, 5, seed=1)
    assert_pruned_are_plus_zero(pruner)
    for p, keep in zip(pruner.params, pruner.masks.to_bool()):
        assert torch.all(bits(optimizer.state[p]["momentum_buffer"])[~keep] == 0)


def test_attach_rejects_an_optimizer_of_other_parameters():
    pruner = rgprune.GlobalMagnitudePruner(resnet20())
    with pytest.raises(ValueError, match="does not update"):
        pruner.attach(torch.optim.SGD(resnet20().parameters(), lr=0.1))
    with pytest.raises(TypeError):
        pruner.attach("sgd")


# ---- 4. rewind ------------------------------------------------------------------------------------------


def test_rewind_restores_survivors_and_unpruned_params_and_keeps_pruned_at_zero():
    model = resnet20()
    init = weights_snapshot(model)
    pruner = rgprune.GlobalMagnitudePruner(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_steps(model, optimizer, 3)  # moves weights, biases, BN affine params and running stats
    pruner.prune(fraction=0.5)
    pruner.rewind(init)
    keeps = keep_masks(pruner)
    for name, value in model.state_dict().items():
        if name in keeps:
            assert torch.equal(value[keeps[name]], init[name][keeps[name]]), name
            assert torch.all(bits(value)[~keeps[name]] == 0), name
            assert (init[name][~keeps[name]] != 0).all()  # rewinding did not resurrect them
        else:  # biases, BN weights, running statistics, the head
            assert torch.equal(value, init[name]), name


def _missing_key(state):
    del state["layer2.1.conv2.weight"]


def _wrong_shape_last(state):
    state["fc.bias"] = torch.zeros(11)  # the last entry: all earlier ones are valid


def _wrong_shape_pruned(state):
    state["layer3.2.conv2.weight"] = torch.zeros(64, 64, 3, 1)


def _extra_key(state):
    state["layer4.0.conv1.weight"] = torch.zeros(3)


def _not_a_tensor(state):
    state["fc.bias"] = [0.0] * 10


@pytest.mark.parametrize("spoil", [_missing_key, _wrong_shape_last, _wrong_shape_pruned, _extra_key, _not_a_tensor])
def test_rewind_rejects_a_bad_state_dict_and_changes_nothing(spoil):
    model = resnet20()
    init = weights_snapshot(model)
    pruner = rgprune.GlobalMagnitudePruner(model)
    train_steps(model, torch.optim.SGD(model.parameters(), lr=0.05), 2)
    pruner.prune(fraction=0.5)
    before, masks = weights_snapshot(model), pruner.masks.clone()
    spoil(init)
    with pytest.raises(ValueError):
        pruner.rewind(init)
    assert_state_equal(model, before)
    assert pruner.masks == masks


# ---- 5. state ------------------------------------------------------------------------------------------


def test_state_dict_round_trip_into_a_fresh_model_and_pruner():
    model = resnet20(seed=0)
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.2)
    pruner.prune(fraction=0.2)
    buffer = io.BytesIO()
    torch.save(pruner.state_dict(), buffer)
    buffer.seek(0)

    fresh = resnet20(seed=1)
    restored = rgprune.GlobalMagnitudePruner(fresh)
    restored.load_state_dict(torch.load(buffer))
    assert restored.masks == pruner.masks
    assert restored.density() == pruner.density()
    for p, keep in zip(restored.params, restored.masks.to_bool()):
        assert torch.all(bits(p)[~keep] == 0) and torch.all(p[keep] != 0)


def test_loaded_state_is_independent_of_its_source():
    pruner = rgprune.GlobalMagnitudePruner(resnet20())
    pruner.prune(fraction=0.2)
    state = pruner.state_dict()
    saved = copy.deepcopy(state)
    other = rgprune.GlobalMagnitudePruner(resnet20(seed=1))
    other.load_state_dict(state)  # in memory, no serialization in between
    masks = pruner.masks.clone()
    other.prune(fraction=0.5)
    assert pruner.masks == masks  # pruning the copy did not prune the source's masks
    pruner.prune(fraction=0.5)
    # a state dict is a snapshot: later pruning does not rewrite it
    assert all(torch.equal(a, b) for a, b in zip(state["masks"]["words"], saved["masks"]["words"]))


def test_load_state_dict_rejects_state_for_other_parameters():
    pruner = rgprune.GlobalMagnitudePruner(resnet20(), prune_head=True)
    pruner.prune(fraction=0.2)
    other = rgprune.GlobalMagnitudePruner(resnet20())
    masks = other.masks.clone()
    with pytest.raises(ValueError, match="other parameters"):
        other.load_state_dict(pruner.state_dict())
    assert other.masks == masks


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_are_independent_working_pruners(how):
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner.attach(optimizer)  # the optimizer hook is not part of the copy
    copied = copy.deepcopy(pruner) if how == "deepcopy" else pickle.loads(pickle.dumps(pruner))
    before, masks = weights_snapshot(model), pruner.masks.clone()
    assert copied.masks == masks and copied.model is not model

    copied.prune(fraction=0.5)
    assert copied.num_survivors == round(0.5 * pruner.num_survivors)
    assert_pruned_are_plus_zero(copied)
    assert_state_equal(model, before)
    assert pruner.masks == masks
    copy_optimizer = torch.optim.SGD(copied.model.parameters(), lr=0.05, momentum=0.9)
    copied.attach(copy_optimizer)
    train_steps(copied.model, copy_optimizer, 2)
    assert_pruned_are_plus_zero(copied)
    assert_state_equal(model, before)


def test_pruner_follows_the_model_to_a_device(device):
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.2)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner.attach(optimizer)
    pruner.prune(fraction=0.2)
    assert pruner.masks.words[0].device.type == device.type
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        x, y = torch.randn(8, 1, 8, 8, generator=g).to(device), torch.randint(0, 10, (8,), generator=g).to(device)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert pruner.num_survivors == round(0.8 * round(0.8 * pruner.num_weights))
    assert_pruned_are_plus_zero(pruner)


def _free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_ddp_wrapped_model_has_the_same_names_and_masks():
    import torch.distributed as dist

    model = resnet20()
    plain = rgprune.GlobalMagnitudePruner(copy.deepcopy(model))
    plain.prune(fraction=0.2)
    store = dist.TCPStore("127.0.0.1", _free_port(), world_size=1, is_master=True)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        init = weights_snapshot(ddp)  # DDP's own state dict: every key starts with "module."
        pruner = rgprune.GlobalMagnitudePruner(ddp)
        assert pruner.names == plain.names  # no "module." prefix
        pruner.prune(fraction=0.2)
        assert pruner.masks == plain.masks
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
        pruner.attach(optimizer)
        train_steps(ddp, optimizer, 2)
        assert_pruned_are_plus_zero(pruner)
        pruner.rewind(init)  # rewinding to the wrapper's state dict works as to the model's
        keeps = keep_masks(pruner)
        for name, value in model.state_dict().items():
            expected = init["module." + name]
            if name in keeps:
                expected = expected * keeps[name]
            assert torch.equal(value, expected), name
    finally:
        dist.destroy_process_group()


# ---- 6. torch.nn.utils.prune interop -------------------------------------------------------------------


def test_export_torch_prune_installs_equal_masks_and_the_same_forward():
    model = resnet20().eval()
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
    pruner.prune(fraction=0.4)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    keeps = keep_masks(pruner)
    pruner.export_torch_prune()
    for name, keep in keeps.items():
        module = model.get_submodule(name.rpartition(".")[0])
        assert torch.equal(module.weight_mask, keep.float())
        assert "weight_orig" in dict(module.named_parameters()) and "weight_mask" in dict(module.named_buffers())
        assert torch.equal(module.weight, module.weight_orig * module.weight_mask)
    with torch.no_grad():
        assert torch.equal(model(x), expected)


def test_from_torch_prune_adopts_masks_and_makes_them_permanent():
    model = resnet20()
    pairs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=0.3)
    masks = [m.weight_mask.bool().clone() for m, _ in pairs]
    weights = [(m.weight_orig * m.weight_mask).detach().clone() for m, _ in pairs]

    pruner = rgprune.GlobalMagnitudePruner.from_torch_prune(model)
    assert pruner.names == conv_weight_names(model)
    assert all(torch.equal(a, b) for a, b in zip(pruner.masks.to_bool(), masks))
    assert all(torch.equal(p, w) for p, w in zip(pruner.params, weights))
    assert not any(hasattr(m, "weight_orig") or m._forward_pre_hooks for m, _ in pairs)
    pruner.prune(fraction=0.2)  # and it goes on pruning from there
    assert pruner.num_survivors == round(0.8 * sum(int(m.sum()) for m in masks))


def test_from_torch_prune_that_fails_leaves_the_model_as_it_was():
    model = resnet20()
    pairs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=0.3)
    with torch.no_grad():  # make the pruned entries of weight_orig differ from 0, as training does
        for m, _ in pairs:
            m.weight_orig.add_(0.5)
    params_before = [m.weight_orig for m, _ in pairs]
    orig = [m.weight_orig.detach().clone() for m, _ in pairs]
    masks = [m.weight_mask.clone() for m, _ in pairs]
    x = torch.randn(2, pairs[0][0].in_channels, 32, 32)
    model.eval()
    with torch.no_grad():
        expected = model(x)
    with pytest.raises(ValueError, match="no prunable parameters selected"):  # fails after remove(): undone
        rgprune.GlobalMagnitudePruner.from_torch_prune(model, exclude=["*"])
    for (m, _), p, o, mask in zip(pairs, params_before, orig, masks):
        assert m.weight_orig is p and torch.equal(m.weight_orig, o)  # the same Parameter (optimizers hold it)
        assert torch.equal(m.weight_mask, mask) and torch.equal(m.weight, o * mask)
        assert any(isinstance(h, tprune.BasePruningMethod) for h in m._forward_pre_hooks.values())
    with torch.no_grad():
        assert torch.equal(model(x), expected)
    pruner = rgprune.GlobalMagnitudePruner.from_torch_prune(model)  # and it can still be adopted
    assert all(torch.equal(a, b.bool()) for a, b in zip(pruner.masks.to_bool(), masks))


def test_from_torch_prune_on_an_unpruned_model_raises_value_error():
    with pytest.raises(ValueError, match="no torch.nn.utils.prune"):
        rgprune.GlobalMagnitudePruner.from_torch_prune(resnet20())


# ---- 7. the README example -------------------------------------------------------------------------------


def test_readme_example_runs(capsys):
    torch.manual_seed(0)  # the DataLoader's shuffle
    namespace = {}
    exec(compile(README_EXAMPLE, "README_EXAMPLE", "exec"), namespace)
    assert len(README_EXAMPLE.splitlines()) < 15
    out = capsys.readouterr().out.strip()
    density, accuracy = out.removeprefix("density ").split(", test accuracy ")
    assert density == "0.80"
    assert 0.2 < float(accuracy) <= 1  # chance is 0.1; one short epoch gets well above it
    pruner = namespace["pruner"]
    assert "fc.weight" not in pruner.names
    assert_pruned_are_plus_zero(pruner)


# ---- masks.popcount ------------------------------------------------------------------------------------


def test_popcount_counts_every_bit_including_the_sign_bit_and_rejects_float_words():
    from rgprune.masks import popcount

    g = torch.Generator().manual_seed(0)
    keep = torch.rand(1000, generator=g) < 0.3
    keep[31::32] = True  # bit 31 of every word: negative int32 words
    words = rgprune.MaskSet.from_bool([keep]).words[0]
    assert (words[:-1] < 0).all()  # the last word holds only bits 0-7 (1000 = 31 * 32 + 8)
    assert popcount(words) == int(keep.sum())
    assert popcount(words[:0]) == 0
    with pytest.raises(TypeError, match="integer tensor"):
        popcount(words.float())

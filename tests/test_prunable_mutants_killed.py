"""rgprune.prunable, function by function: the tests that kill the mutants `make mutation AREA=prunable` found
alive (docs/mutation.md). Fast: small hand-built models only."""

import warnings

import pytest
import torch
from torch import nn

from rgprune.prunable import (
    LayerKind,
    as_patterns,
    check_patterns,
    closest_names,
    is_default_prunable,
    is_head,
    matches,
    module_kind,
    parameter_names,
    select_prunable,
    tensor_kind,
    unmatched_patterns_message,
    unwrap_model,
    unwrap_state_dict,
    wrapper_prefixes,
)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(4, 3)
        self.body = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Conv1d(3, 3, 1))
        self.fc = nn.Linear(3, 2)


def test_as_patterns_and_matches():
    assert as_patterns("a.*", "include") == ["a.*"]
    assert as_patterns(("a", "b"), "include") == ["a", "b"]
    with pytest.raises(TypeError, match="include must be a string or a list of fnmatch patterns, got int"):
        as_patterns(3, "include")
    with pytest.raises(TypeError, match=r"exclude must hold strings .*got \[1, 2, 3\]"):
        as_patterns(["a", 1, 2, 3, 4], "exclude")
    assert matches("fc.weight", "fc.*") and matches("fc.weight", ["x", "fc.weight"])
    assert not matches("fc.weight", "FC.*") and not matches("fc.weight", [])


def test_parameter_names_list_tied_parameters_under_each_name():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    m[1].weight = m[0].weight
    assert parameter_names(m) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert parameter_names(nn.DataParallel(m)) == parameter_names(m)


def test_closest_names_offers_names_and_module_wildcards():
    names = ["layer1.conv.weight", "layer2.conv.weight", "fc.weight"]
    assert closest_names("layer1.conv.weigth", names)[0] == "layer1.conv.weight"
    assert "layer2.*" in closest_names("layer2*", names)
    assert closest_names("zzzzzz", names) == []
    assert len(closest_names("layer", names + ["layer3.conv.weight", "layer4.conv.weight"])) == 3
    assert len(closest_names("layer", names, n=1)) == 1


def test_unmatched_patterns_message_and_check_patterns():
    names = ["fc.weight", "fc.bias"]
    assert unmatched_patterns_message(names, ["fc.*"], ["*.bias"]) is None
    assert unmatched_patterns_message(names, None, ()) is None
    msg = unmatched_patterns_message(names, ["fc.wieght"], ["zzzzzz"])
    assert "include pattern(s) ['fc.wieght'] match no parameter" in msg and "closest ['fc.weight'" in msg
    assert "exclude pattern(s) ['zzzzzz']" in msg and "'zzzzzz': no name is close" in msg
    assert "such as 'fc.weight'" in msg and msg.count("; ") >= 1
    only_exclude = unmatched_patterns_message(names, None, "nope")
    assert only_exclude.startswith("exclude pattern(s) ['nope']") and "include" not in only_exclude.split(".")[0]
    assert "such as" not in unmatched_patterns_message([], ["x"])
    assert unmatched_patterns_message(Net(), ["fc.weight"]) is None
    check_patterns(names, "fc.weight")
    with pytest.raises(ValueError, match="match no parameter"):
        check_patterns(names, None, ["x"])


def test_is_head_and_kinds():
    assert is_head("fc.weight") and is_head("classifier.1.weight") and is_head("fc")
    assert not is_head("body.fc.weight") and not is_head("fcx.weight")
    assert module_kind(nn.Linear(1, 1)) is LayerKind.LAYER and module_kind(nn.Conv3d(1, 1, 1)) is LayerKind.LAYER
    assert module_kind(nn.Embedding(2, 2)) is LayerKind.EMBEDDING
    assert module_kind(nn.LayerNorm(2)) is LayerKind.OTHER
    assert tensor_kind("a.weight", 2, torch.float32) is LayerKind.LAYER
    assert tensor_kind("a.weight", 1, torch.float32) is LayerKind.OTHER
    assert tensor_kind("a.weight", 2, torch.int64) is LayerKind.OTHER
    assert tensor_kind("bert.embeddings.word.weight", 2, torch.float16) is LayerKind.EMBEDDING
    assert tensor_kind("transformer.wte.weight", 2, torch.float32) is LayerKind.EMBEDDING


def test_transformers_conv1d_is_a_layer():
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    assert module_kind(pytorch_utils.Conv1D(3, 2)) is LayerKind.LAYER


def test_is_default_prunable_rules():
    L, E, OT = LayerKind.LAYER, LayerKind.EMBEDDING, LayerKind.OTHER
    assert is_default_prunable("body.0.weight", L) and not is_default_prunable("body.0.bias", L)
    assert not is_default_prunable("body.0.weightx", L)
    assert not is_default_prunable("fc.weight", L) and is_default_prunable("fc.weight", L, prune_head=True)
    assert not is_default_prunable("emb.weight", E) and is_default_prunable("emb.weight", E, prune_embeddings=True)
    assert not is_default_prunable("norm.weight", OT, prune_head=True, prune_embeddings=True)
    assert not is_default_prunable("fc.weight", E, prune_head=True)
    with pytest.raises(TypeError, match="kind must be a LayerKind"):
        is_default_prunable("w.weight", "layer")


def test_wrappers_are_unwrapped_with_their_prefixes():
    inner = nn.Linear(2, 2)
    dp = nn.DataParallel(inner)
    assert unwrap_model(dp) is inner and unwrap_model(inner) is inner
    assert wrapper_prefixes(inner) == [] and wrapper_prefixes(dp) == ["module."]
    compiled = torch.compile(dp)
    assert unwrap_model(compiled) is inner and wrapper_prefixes(compiled) == ["_orig_mod.", "module."]
    sd = {"_orig_mod.module.weight": 1, "_orig_mod.module.bias": 2}
    assert unwrap_state_dict(compiled, sd) == {"weight": 1, "bias": 2}
    assert unwrap_state_dict(compiled, {"module.weight": 1}) == {"weight": 1}
    assert unwrap_state_dict(compiled, {"module.weight": 1, "other": 2}) == {"module.weight": 1, "other": 2}
    assert unwrap_state_dict(inner, {"weight": 1}) == {"weight": 1}
    assert unwrap_state_dict(dp, {}) == {}


def test_select_prunable_default_include_exclude_and_errors():
    net = Net()
    assert [n for n, _ in select_prunable(net)] == ["body.0.weight", "body.2.weight"]
    assert [n for n, _ in select_prunable(net, prune_head=True, prune_embeddings=True)] == [
        "emb.weight",
        "body.0.weight",
        "body.2.weight",
        "fc.weight",
    ]
    assert [n for n, _ in select_prunable(net, include="fc.weight")] == ["fc.weight"]
    assert [n for n, _ in select_prunable(net, exclude="body.2.*")] == ["body.0.weight"]
    with pytest.raises(ValueError, match="no prunable parameters selected"):
        select_prunable(net, exclude="body.*")
    tied = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    tied[1].weight = tied[0].weight
    assert [n for n, _ in select_prunable(tied)] == ["0.weight"]
    ints = nn.Linear(2, 2)
    ints.weight = nn.Parameter(torch.zeros(2, 2, dtype=torch.int64), requires_grad=False)
    with pytest.raises(TypeError, match="parameter weight has dtype torch.int64"):
        select_prunable(ints, include="weight")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        select_prunable(net, include="body.0.weight")


def test_select_prunable_warns_about_parameters_beyond_layer_weights():
    net = Net()
    with pytest.warns(UserWarning, match=r"selected 2 parameters .*\['body.0.bias', 'body.1.weight'\]; the") as w:
        select_prunable(net, include=["body.0.*", "body.1.weight"])
    assert "] ...; the" not in str(w[0].message)
    wide = nn.Sequential(*[nn.Linear(2, 2) for _ in range(7)])
    with pytest.warns(UserWarning, match=r"selected 7 parameters .*\] \.\.\.; the default"):
        select_prunable(wide, include="*.bias")
    six = nn.Sequential(*[nn.Linear(2, 2) for _ in range(6)])
    with pytest.warns(UserWarning) as w:
        select_prunable(six, include="*.bias")
    assert "] ...; the" not in str(w[0].message) and "selected 6 parameters" in str(w[0].message)


def test_closest_names_never_offers_the_empty_prefix_wildcard():
    # ".*" would match every name: it is no suggestion for a typo
    assert closest_names(".*", ["a.weight"]) == ["a.*"]
    assert ".*" not in closest_names("*", ["a.weight", "b.weight"], n=5)


def test_is_default_prunable_options_are_keyword_only():
    # a positional True would be read as prune_head by one caller and prune_embeddings by the next
    with pytest.raises(TypeError):
        is_default_prunable("fc.weight", LayerKind.LAYER, True)


def test_a_tied_parameter_does_not_end_its_modules_selection():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    m[1].weight = m[0].weight  # tied: seen again in m[1], before m[1].bias
    with pytest.warns(UserWarning):
        names = [name for name, _ in select_prunable(m, include="*")]
    assert names == ["0.weight", "0.bias", "1.bias", "2.weight", "2.bias"]


def test_the_include_warning_lists_the_first_six_names_exactly():
    wide = nn.Sequential(*[nn.Linear(2, 2) for _ in range(7)])
    with pytest.warns(UserWarning) as w:
        select_prunable(wide, include="*.bias")
    listed = [f"'{i}.bias'" for i in range(6)]
    assert f"[{', '.join(listed)}] ...; the" in str(w[0].message)


def test_the_include_warning_points_at_the_users_line():
    from rgprune import GlobalMagnitudePruner

    with pytest.warns(UserWarning, match="not Linear/Conv/Embedding") as w:
        GlobalMagnitudePruner(Net(), include="body.0.*")
    assert w[0].filename == __file__

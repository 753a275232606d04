"""rgprune.masks.MaskSet and popcount, method by method: the tests that kill the mutants `make mutation AREA=masks`
found alive (docs/mutation.md). Fast: tiny tensors only."""

import pytest
import torch

from rgprune.masks import MaskSet, popcount


def test_popcount_of_every_integer_dtype_and_of_nothing():
    for dtype in (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8):
        assert popcount(torch.tensor([3, 1, 0], dtype=dtype)) == 3
    assert popcount(torch.tensor([-1], dtype=torch.int32)) == 32
    assert popcount(torch.zeros(0, dtype=torch.int32)) == 0
    assert popcount(torch.tensor([255, 128], dtype=torch.uint8)) == 9
    # a strided view takes the byte-histogram path (also the GPU's); contiguous CPU words numpy's popcount
    words = torch.tensor([-1, 7, -2, 0, 5, 1], dtype=torch.int32)
    assert popcount(words[::2]) == popcount(words[::2].contiguous()) == 32 + 31 + 2
    with pytest.raises(TypeError, match="integer tensor"):
        popcount(torch.ones(2, dtype=torch.float32))
    with pytest.raises(TypeError, match="list"):
        popcount([1, 2])


def test_constructor_checks_lengths_names_and_words():
    w = torch.zeros(1, dtype=torch.int32)
    m = MaskSet([w, w.clone()], [(3,), (2, 2)])
    assert m.names == ["0", "1"] and m.shapes == [torch.Size([3]), torch.Size([2, 2])]
    with pytest.raises(ValueError, match="as many shapes and names"):
        MaskSet([w], [(3,), (3,)])
    with pytest.raises(ValueError, match="as many shapes and names"):
        MaskSet([w, w], [(3,), (3,)], names=["a"])
    with pytest.raises(ValueError, match="unique"):
        MaskSet([w, w], [(3,), (3,)], names=["a", "a"])
    with pytest.raises(ValueError, match="1-D int32 tensor of 1 words"):
        MaskSet([w.long()], [(3,)])
    with pytest.raises(ValueError, match="1-D int32"):
        MaskSet([w.reshape(1, 1)], [(3,)])
    with pytest.raises(ValueError, match="of 2 words"):
        MaskSet([w], [(33,)])
    with pytest.raises(ValueError, match="1-D int32"):
        MaskSet([[0]], [(3,)])
    MaskSet([torch.zeros(2, dtype=torch.int32)], [(33,)])
    # non-contiguous words are made contiguous
    strided = torch.zeros(4, dtype=torch.int32)[::2]
    assert MaskSet([strided], [(64,)]).words[0].is_contiguous()


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 64, 70])
def test_ones_keeps_exactly_every_weight(n):
    m = MaskSet.ones([torch.empty(n)], names=["w"])
    assert m.survivor_counts() == [n] and m.to_bool()[0].all() and m.to_bool()[0].shape == (n,)
    assert m.names == ["w"]


def test_from_bool_accepts_zero_one_tensors_and_refuses_others():
    keep = torch.tensor([1, 0, 1, 1])
    m = MaskSet.from_bool([keep.float(), keep.bool()])
    assert [b.tolist() for b in m.to_bool()] == [[True, False, True, True]] * 2
    with pytest.raises(ValueError, match="mask 1 must be bool or hold only 0 and 1"):
        MaskSet.from_bool([keep, torch.tensor([0, 2])])
    with pytest.raises(ValueError, match="mask 0"):
        MaskSet.from_bool([torch.tensor([-1, 1])])


def test_from_nonzero_keeps_nonzeros_and_nan():
    t = torch.tensor([0.0, 2.0, float("nan"), -0.0, -1.0])
    assert MaskSet.from_nonzero([t]).to_bool()[0].tolist() == [False, True, True, False, True]


def test_views_density_and_bytes():
    m = MaskSet.from_bool([torch.tensor([True, False, True]), torch.zeros(2, 2, dtype=torch.bool)], names=["a", "b"])
    assert len(m) == 2 and m[1] is m.words[1] and list(m) == m.words
    assert m.numels() == [3, 4] and m.survivor_counts() == [2, 0]
    assert m.density() == 2 / 7
    assert m.layer_densities() == {"a": 2 / 3, "b": 0.0}
    assert m.nbytes == 8
    assert MaskSet([], []).density() == 1.0
    empty = MaskSet.from_bool([torch.zeros(0, dtype=torch.bool)], names=["e"])
    assert empty.density() == 1.0 and empty.layer_densities() == {"e": 1.0}
    assert repr(m) == "MaskSet(2 tensors, density=0.2857, 8 bytes)"


def test_clone_to_and_equality():
    m = MaskSet.from_bool([torch.tensor([True, False, True])], names=["a"])
    c = m.clone()
    assert c == m and c.words[0] is not m.words[0]
    assert m.to("cpu") == m
    c.words[0][0] = 0
    assert c != m
    assert MaskSet.from_bool([torch.tensor([True, False, True])], names=["b"]) != m
    assert MaskSet.from_bool([torch.tensor([[True, False, True]])], names=["a"]) != m
    assert m != m.words


def test_state_dict_round_trip_and_bad_state():
    m = MaskSet.from_bool([torch.tensor([True, False, True])], names=["a"])
    sd = m.state_dict()
    assert sd["names"] == ["a"] and sd["shapes"] == [[3]]
    assert MaskSet.from_state_dict(sd) == m
    for key in ("words", "shapes", "names"):
        bad = dict(sd)
        del bad[key]
        with pytest.raises(ValueError, match=f"not a MaskSet state dict: missing '{key}'"):
            MaskSet.from_state_dict(bad)


def test_save_load_round_trip_and_foreign_file(tmp_path):
    from safetensors.torch import save_file

    m = MaskSet.from_bool([torch.tensor([True, False, True]), torch.ones(2, 3, dtype=torch.bool)], names=["a", "b"])
    m.save(tmp_path / "m.safetensors")
    assert MaskSet.load(tmp_path / "m.safetensors") == m
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a MaskSet file"):
        MaskSet.load(tmp_path / "other.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "meta.safetensors"), metadata={"rgprune": "other"})
    with pytest.raises(ValueError, match="not a MaskSet file"):
        MaskSet.load(tmp_path / "meta.safetensors")


def test_torch_prune_round_trip_and_checks():
    lin, other = torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)
    keep = torch.tensor([[True, False, True], [False, True, True]])
    m = MaskSet.from_bool([keep], names=["lin.weight"])
    m.to_torch_prune([(lin, "weight")])
    assert torch.equal(lin.weight_mask, keep.float()) and hasattr(lin, "weight_orig")
    back = MaskSet.from_torch_prune([(lin, "weight"), (other, "weight")], names=["lin.weight", "other.weight"])
    assert back.to_bool()[0].tolist() == keep.tolist() and back.to_bool()[1].all()
    assert back.names == ["lin.weight", "other.weight"]
    with pytest.raises(ValueError, match=r"got 2 \(module, name\) pairs for 1 masks"):
        m.to_torch_prune([(lin, "bias"), (other, "weight")])
    with pytest.raises(ValueError, match="does not fit"):
        m.to_torch_prune([(other, "weight")])

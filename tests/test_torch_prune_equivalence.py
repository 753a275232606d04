"""rgprune's masks equal torch.nn.utils.prune.global_unstructured(L1Unstructured, amount=0.2) on real
architectures, over three successive rounds, with exact pruned counts.

torch.topk breaks ties among equal magnitudes in no documented order, while rgprune prunes ties in model
order. So the masks must be bit-identical whenever the threshold does not split a group of equal
magnitudes, and otherwise may differ only among the weights whose magnitude equals the threshold.
"""

import copy

import pytest
import torch
import torch.nn.utils.prune as tprune

import rgprune

pytestmark = pytest.mark.reference  # make test-reference


def conv_linear_weights(model):
    return [(m, "weight") for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def resnet18():
    import torchvision

    return torchvision.models.resnet18(weights=None)


def resnet50():
    import torchvision

    return torchvision.models.resnet50(weights=None)


def bert_base():
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig())  # random init from the default (BERT-base) config, nothing downloaded


@pytest.mark.parametrize("build", [resnet18, resnet50, bert_base], ids=["resnet18", "resnet50", "bert-base"])
def test_masks_equal_torch_prune_three_rounds(build):
    torch.manual_seed(0)
    ours = build().eval()
    theirs = copy.deepcopy(ours)
    our_params = conv_linear_weights(ours)
    their_params = conv_linear_weights(theirs)
    tensors = [getattr(m, n).data for m, n in our_params]
    masks = rgprune.MaskSet.ones(tensors)
    n_total = sum(t.numel() for t in tensors)
    survivors = n_total
    for round_ in range(3):
        k = round(0.2 * survivors)  # torch.prune's rule for a float amount: round(amount * survivors)
        tprune.global_unstructured(their_params, pruning_method=tprune.L1Unstructured, amount=0.2)
        result = rgprune.prune_global_(tensors, masks.words, k)
        their_keep = [m.weight_mask.bool() for m, _ in their_params]
        our_keep = masks.to_bool()
        survivors -= k
        # exact counts on both sides
        assert sum(masks.survivor_counts()) == survivors
        assert sum(int(t.sum()) for t in their_keep) == survivors
        differ = sum(int((a != b).sum()) for a, b in zip(our_keep, their_keep))
        th = result.threshold
        print(f"round {round_}: k={k} ties {th.n_ties}/{th.n_equal} differ={differ}")
        if th.n_ties == th.n_equal:
            assert differ == 0, f"round {round_}: masks differ at {differ} weights with no split tie"
        else:
            # both prune exactly th.n_ties of the tied weights; they may pick different ones
            for (m, _), a, b in zip(their_params, our_keep, their_keep):
                w = m.weight_orig.detach().abs()
                assert torch.all(w[a != b] == th.magnitude)
            # continue from torch's choice so that later rounds compare like with like
            masks = rgprune.MaskSet.from_bool(their_keep, masks.names)
            for t, keep in zip(tensors, their_keep):
                t.masked_fill_(~keep, 0)
        # the weights we left are the survivors, pruned ones are exactly zero
        for t, keep in zip(tensors, masks.to_bool()):
            assert torch.all(t[~keep] == 0)
        assert abs(masks.density() - 0.8 ** (round_ + 1)) < 1e-6

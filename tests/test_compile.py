"""torch.compile traces the rgprune ops (fake kernels registered) and matches eager."""

import pytest
import torch

import rgprune
from rgprune.kernels import extension

pytestmark = [
    pytest.mark.reference,  # make test-reference
    pytest.mark.skipif(extension.module is None, reason="the compiled ops are not built"),
]


def prune_step(tensors, masks, k: int):
    info, top = torch.ops.rgprune.global_magnitude_threshold(tensors, masks, k)
    hist, counts, abs_sums, sq_sums, nans = torch.ops.rgprune.apply_threshold_(tensors, masks, info, 12)
    return info, top, hist, counts, abs_sums, sq_sums


def masked_update(weights, masks, grads):
    for w, g in zip(weights, grads):
        w.sub_(0.1 * g)
    torch.ops.rgprune.apply_masks_(weights, masks)
    return sum(w.sum() for w in weights)


def fresh(seed=0):
    g = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(64, 3, 3, 3, generator=g), torch.randn(1000, generator=g), torch.randn(7, generator=g)]
    return tensors, rgprune.MaskSet.ones(tensors).words


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_prune_matches_eager(device, backend):
    tensors_e, masks_e = fresh()
    tensors_c, masks_c = fresh()
    tensors_e = [t.to(device) for t in tensors_e]
    tensors_c = [t.to(device) for t in tensors_c]
    masks_e = [m.to(device) for m in masks_e]
    masks_c = [m.to(device) for m in masks_c]
    eager = prune_step(tensors_e, masks_e, 500)
    compiled = torch.compile(prune_step, backend=backend, fullgraph=True)(tensors_c, masks_c, 500)
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    for a, b in zip(tensors_e + masks_e, tensors_c + masks_c):  # the in-place mutation happened
        assert torch.equal(a, b)


def test_compiled_apply_masks_matches_eager(device):
    tensors_e, masks = fresh(1)
    rgprune.prune_global_(tensors_e, masks, 800)
    tensors_e = [t.to(device) for t in tensors_e]
    masks = [m.to(device) for m in masks]
    tensors_c = [t.clone() for t in tensors_e]
    grads = [torch.ones_like(t) for t in tensors_e]
    want = masked_update(tensors_e, masks, grads)
    got = torch.compile(masked_update, fullgraph=True)(tensors_c, masks, grads)
    torch.testing.assert_close(got, want)
    for a, b in zip(tensors_e, tensors_c):
        assert torch.equal(a, b)
    assert int(sum((t == 0).sum() for t in tensors_c)) == 800

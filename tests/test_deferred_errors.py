"""On a GPU the ops never wait for the kernels: no host read in ``prune_global_`` (so it can be captured in a CUDA
graph), errors kept on the device until the caller reads a result or asks (``check()``), with the messages the
CPU raises at once. Exercised on the CPU with the GPU's policy switched on (``ops.defers_errors``), every host
read of a tensor made to fail; on a GPU, the capture itself (marker ``cuda``)."""

from __future__ import annotations

import math

import pytest
import torch

import rgprune
from rgprune import ops

HOST_READS = ("tolist", "item", "__bool__", "__int__", "__index__", "__float__")


def weights_and_masks(seed=0):
    gen = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(40, 30, generator=gen), torch.randn(1000, generator=gen), torch.randn(33, generator=gen)]
    return tensors, rgprune.MaskSet.ones(tensors).words


@pytest.fixture
def deferred(monkeypatch):
    """The GPU's policy on the CPU: errors wait until a result is read."""
    monkeypatch.setattr(ops, "defers_errors", lambda device: True)


def forbid_host_reads(monkeypatch):
    def host_read(*args, **kwargs):
        raise AssertionError("a tensor was read on the host")

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, host_read)


def test_prune_global_reads_nothing_on_the_host(deferred, monkeypatch):
    """Guards against a host sync in prune_global_ (the threshold's info.tolist(), a NaN check): on a GPU it
    makes the call wait for the kernels and fails under CUDA-graph capture."""
    tensors, masks = weights_and_masks()
    eager_t, eager_m = [t.clone() for t in tensors], [m.clone() for m in masks]
    with monkeypatch.context() as patch:
        forbid_host_reads(patch)
        result = ops.prune_global_(tensors, masks, 700)
    monkeypatch.setattr(ops, "defers_errors", lambda device: False)
    want = ops.prune_global_(eager_t, eager_m, 700)
    assert result.check().threshold.key == want.threshold.key and result.threshold.n_ties == want.threshold.n_ties
    assert all(torch.equal(a, b) for a, b in zip(tensors + masks, eager_t + eager_m))


@pytest.mark.parametrize("problem", ["nan", "k"])
def test_deferred_errors_prune_nothing_and_raise_the_cpus_message_when_read(deferred, monkeypatch, problem):
    """Guards against a deferred error that lets apply_threshold_ prune (the kernels must refuse on their own:
    NaN survivors, k above the survivors) or that never surfaces, or surfaces with another message."""
    tensors, masks = weights_and_masks()
    k = 500
    if problem == "nan":
        tensors[1][7] = math.nan
    else:
        k = sum(t.numel() for t in tensors) + 1
    before = [t.clone() for t in tensors] + [m.clone() for m in masks]
    result = ops.prune_global_(tensors, masks, k)  # no error yet
    after = tensors + masks
    assert all(torch.equal(a, b) or torch.isnan(a).any() for a, b in zip(after, before)), "weights changed"
    assert all(torch.equal(a, b) for a, b in zip(masks, before[len(tensors) :])), "masks changed"
    with pytest.raises(ValueError) as deferred_error:
        result.check()
    with pytest.raises(ValueError, match="surviving weights"):
        _ = result.threshold.key  # any read raises, every time
    monkeypatch.setattr(ops, "defers_errors", lambda device: False)
    with pytest.raises(ValueError) as immediate_error:  # the CPU's immediate error
        ops.global_magnitude_threshold(*weights_and_masks_like(tensors), k)
    assert str(deferred_error.value) == str(immediate_error.value)
    assert ("NaN (in tensors [1])" if problem == "nan" else "exceeds the 2233 surviving") in str(deferred_error.value)


def weights_and_masks_like(tensors):
    return [t.clone() for t in tensors], rgprune.MaskSet.ones(tensors).words


def test_magnitude_histogram_defers_its_nan_check_until_asked(deferred):
    """Guards against a host sync in magnitude_histogram's default on a GPU, and against stats.check() naming
    other tensors or counts than the CPU's immediate check."""
    tensors, masks = weights_and_masks()
    tensors[2][3] = math.nan
    tensors[2][5] = math.nan
    stats = ops.magnitude_histogram(tensors, masks)  # no error: nothing was read
    with pytest.raises(ValueError, match=r"^2 surviving weights are NaN \(in tensors \[2\]\)"):
        stats.check()
    with pytest.raises(ValueError, match=r"^2 surviving weights are NaN \(in tensors \[2\]\)"):
        ops.magnitude_histogram(tensors, masks, check_nan=True)


def test_threshold_repr_does_not_read_the_device(deferred, monkeypatch):
    """Guards against printing a pending threshold forcing a sync (a debugger or log line would then wait)."""
    tensors, masks = weights_and_masks()
    threshold = ops.global_magnitude_threshold(tensors, masks, 10)
    forbid_host_reads(monkeypatch)
    assert "not read yet" in repr(threshold)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU present")
def test_prune_global_is_captured_in_a_cuda_graph_and_replays_like_eager():
    """Guards against a launch reading host memory the graph does not own (a chunk table in recycled pinned
    memory) and against any host sync during capture: captured rounds equal eager rounds bit for bit."""
    gen = torch.Generator().manual_seed(1)
    host = [torch.randn(512, 300, generator=gen), torch.randn(70_000, generator=gen), torch.randn(5, generator=gen)]
    eager = [t.cuda() for t in host]
    eager_masks = rgprune.MaskSet.ones(eager).words
    static = [t.cuda() for t in host]
    static_masks = rgprune.MaskSet.ones(static).words
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up outside the graph (allocator, occupancy queries)
        ops.prune_global_([t.clone() for t in static], [m.clone() for m in static_masks], 10)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        ops.prune_global_(static, static_masks, 20_000)
    for _ in range(3):  # each replay prunes 20,000 more of the survivors, as each eager call does
        graph.replay()
        ops.prune_global_(eager, eager_masks, 20_000).check()
        torch.cuda.synchronize()
        assert all(torch.equal(a, b) for a, b in zip(static + static_masks, eager + eager_masks))

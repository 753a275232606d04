"""pytest-benchmark: one IMP pruning round (20% of the survivors) by each method, at a small size.

``make bench`` runs these (``pytest -q bench -m "not slow" --benchmark-only``). The weight sets are small
so the whole suite takes a few minutes on 2 cores; ``python -m bench.compare`` measures the real ResNet-50
and BERT-base sets. Each benchmark round starts from a fresh copy of the same state (untimed setup).
The ``slow`` benchmark at the end uses BERT-base's real shapes (``pytest -q bench -m slow --benchmark-only``).

After timing, each test checks the round it timed (``check_round``): the exact methods prune exactly ``k``
weights and their masks equal the reference's (rgprune bit for bit; torch.prune up to the order among weights
tied at the threshold), the naive method prunes every weight up to the threshold, and every pruned weight is
zero. A method that got faster by pruning the wrong weights, or nothing, fails here.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from rgprune.benchmark.measure import sync  # noqa: E402
from rgprune.benchmark.methods import METHOD_IMPLS, METHODS, make_states  # noqa: E402
from rgprune.benchmark.workloads import WORKLOADS, synthetic  # noqa: E402
from rgprune.kernels import reference  # noqa: E402
from rgprune.kernels.format import key_to_magnitude, unpack_mask  # noqa: E402
from rgprune.pruner import select_prunable  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU present")]),
]

# BERT-like layer shapes at width 384 (2 layers: 3.5M weights, plus one odd-sized tensor for mask tails),
# and 200 small tensors (0.8M weights) where per-tensor overheads show.
SETS = {
    "bertlike-3.5M": [(384, 384)] * 4 * 2 + [(1536, 384), (384, 1536)] * 2 + [(37, 53)],
    "small-tensors-0.8M": [(64, 64)] * 200,
}
# rounds per benchmark: slow methods get fewer
ROUNDS_PER_METHOD = {"torch_prune": 3, "naive": 3, "reference": 3, "rgprune": 10}


def _states(set_name, device):
    torch.manual_seed(0)
    model = synthetic(torch.device(device), SETS[set_name])
    names = [f"{i}.weight" for i in range(len(SETS[set_name]))]
    return model, names, make_states([p.detach() for p in model.parameters()])


_CACHE = {}


def states_for(set_name, device):
    key = (set_name, device)
    if key not in _CACHE:
        _CACHE.clear()  # keep one set alive at a time
        _CACHE[key] = _states(set_name, device)
    return _CACHE[key]


_REFERENCE_ROUND = {}


def reference_round(state):
    """(bool masks, weights, threshold magnitude) after the reference prunes ``state.k`` of ``state``'s survivors
    (cached for the last state seen)."""
    cached = _REFERENCE_ROUND.get("last")
    if cached is None or cached[0] is not state:
        ws, ms = [w.clone() for w in state.weights], [m.clone() for m in state.masks]
        info, _ = reference.global_magnitude_threshold(ws, ms, state.k)
        reference.apply_threshold_(ws, ms, info, 12)
        keep = [unpack_mask(m, w.numel()).reshape(w.shape) for w, m in zip(ws, ms)]
        cached = _REFERENCE_ROUND["last"] = (state, keep, ws, key_to_magnitude(int(info[0]), ws[0].dtype))
    return cached[1:]


def bits_of(t):
    return t.contiguous().view({4: torch.int32, 2: torch.int16, 8: torch.int64}[t.element_size()])


def check_round(method, state, keep, weights):
    """The round a benchmark timed did the job: see the module docstring. ``keep``/``weights``: the method's
    bool masks and weights after the round."""
    want_keep, want_weights, magnitude = reference_round(state)
    survivors = sum(int(k.sum()) for k in keep)
    for k, w in zip(keep, weights):
        assert bool((w.reshape(k.shape)[~k] == 0).all()), f"{method}: a pruned weight is not zero"
    if method in ("rgprune", "reference"):
        assert survivors == state.survivors - state.k
        for k, want in zip(keep, want_keep):
            assert torch.equal(k.reshape(want.shape), want), method
        for w, want in zip(weights, want_weights):
            assert torch.equal(bits_of(w), bits_of(want)), f"{method}: weights differ from the reference's (bits)"
        return
    # torch.prune (exactly k, its own order among ties) and naive (every weight up to the threshold): they may
    # differ from the reference only at weights whose magnitude is the threshold
    if method == "torch_prune":
        assert survivors == state.survivors - state.k
    else:
        assert survivors <= state.survivors - state.k
    for k, want, w in zip(keep, want_keep, state.weights):
        differ = k.reshape(want.shape) != want
        assert bool((w.abs()[differ] == magnitude).all()), f"{method}: masks differ from the reference's off ties"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("round_", [1, 5], ids=["round1", "round5"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("set_name", list(SETS))
def test_prune_round(benchmark, set_name, method, round_, device):
    model, names, states = states_for(set_name, device)
    state = states[round_]
    impl = METHOD_IMPLS[method]
    benchmark.group = f"prune round {round_}: {set_name} on {device}"
    benchmark.extra_info.update(n_weights=state.n_weights, k=state.k, density=state.density)

    def setup():
        ctx = impl.prepare(state, model, names)
        sync(device)
        return (ctx,), {}

    def run(ctx):
        impl.run(ctx, state.k)
        sync(device)
        return ctx

    ctx = benchmark.pedantic(run, setup=setup, rounds=ROUNDS_PER_METHOD[method], warmup_rounds=1)
    check_round(method, state, impl.keep(ctx), method_weights(method, ctx))


def method_weights(method, ctx):
    """The weights a method pruned (torch.prune's are the reparametrized ``weight = weight_orig * weight_mask``)."""
    if method == "torch_prune":
        return [getattr(module, name).detach() for module, name in ctx["pairs"]]
    return ctx["weights"]


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["naive", "rgprune"])
def test_prune_round_bert_base(benchmark, method, device):
    """BERT-base's 85M linear weights, round 1 (torch.prune and the reference take ~10 s each: see
    ``python -m bench.compare``)."""
    spec = WORKLOADS["bert-base"]
    torch.manual_seed(0)
    model = spec.build(torch.device(device))
    named = select_prunable(model, **spec.select)
    names = [n for n, _ in named]
    state = make_states([p.detach() for _, p in named])[1]
    impl = METHOD_IMPLS[method]
    benchmark.group = f"prune round 1: bert-base on {device}"

    def setup():
        return (impl.prepare(state, model, names),), {}

    def run(ctx):
        impl.run(ctx, state.k)
        sync(device)
        return ctx

    ctx = benchmark.pedantic(run, setup=setup, rounds=3, warmup_rounds=0)
    check_round(method, state, impl.keep(ctx), method_weights(method, ctx))

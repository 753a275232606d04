"""The pruning methods compared, and the pruning states they start from.

One IMP pruning round removes k = round(fraction × survivors) of the surviving weights, torch.prune's rule
(``rgprune.schedule.prune_count``; the suite's fraction is ``FRACTION``). The methods:

* ``torch_prune``: ``torch.nn.utils.prune.global_unstructured(..., L1Unstructured, amount=fraction)`` on a
  deep copy of the model (later rounds: the existing masks installed with ``prune.custom_from_mask``);
* ``rgprune_switch``: the same call with ``import rgprune.prune as prune`` (the one-import switch: torch's
  reparametrization, masks read and written by the kernels), from the same state;
* ``naive``: the naive PyTorch way: concatenate ``|w|`` of the survivors, ``torch.kthvalue``, multiply every
  tensor by its bool mask;
* ``naive_topk``: the same with ``torch.topk(k, largest=False)`` for the threshold (not in the suite's
  default set, ``METHODS``);
* ``reference``: rgprune's pure-PyTorch reference (``rgprune.kernels.reference``, called directly);
* ``rgprune``: rgprune's compiled kernels (``rgprune.prune_global_``).

Each is a ``Method``: ``prepare(state, model, names, clone=True) -> ctx`` builds what the method starts
from, ``run(ctx, k)`` is the round that is timed, ``keep(ctx)`` returns the bool masks after it (for counting
and comparing). ``prepare`` and ``keep`` are never timed. The naive methods prune every weight whose
magnitude equals the threshold (more than ``k`` when there are ties); torch.prune and rgprune prune exactly
``k``, choosing among ties in different orders (rgprune: model order).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.utils.prune as tprune

import rgprune
import rgprune.prune as switch
from rgprune.benchmark.measure import sync
from rgprune.kernels import reference
from rgprune.kernels.format import unpack_mask
from rgprune.masks import MaskSet
from rgprune.schedule import prune_count

FRACTION = 0.2
ROUNDS = (1, 5)
METHODS = ("torch_prune", "rgprune_switch", "naive", "reference", "rgprune")  # the suite's default set
ALL_METHODS = ("torch_prune", "rgprune_switch", "naive", "naive_topk", "reference", "rgprune")
METHOD_LABELS = {
    "torch_prune": "torch.nn.utils.prune.global_unstructured (L1Unstructured)",
    "rgprune_switch": "rgprune.prune.global_unstructured (L1Unstructured): the one-import switch",
    "naive": "naive PyTorch: cat |w| of survivors + torch.kthvalue + multiply by bool masks",
    "naive_topk": "naive PyTorch: cat |w| of survivors + torch.topk(largest=False) + multiply by bool masks",
    "reference": "rgprune.kernels.reference (pure PyTorch, called directly)",
    "rgprune": "rgprune.prune_global_ (compiled backend)",
}


class WeightHolder(torch.nn.Module):
    """A module owning one weight, so that torch.nn.utils.prune can prune bare tensors."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)


@dataclass
class State:
    """Weights and bit masks at the start of an IMP round; ``k`` is what that round prunes."""

    round: int
    weights: list
    masks: list
    survivors: int
    fraction: float = FRACTION
    k: int = field(init=False)

    def __post_init__(self):
        self.k = prune_count(self.fraction, self.survivors)

    @property
    def n_weights(self) -> int:
        return sum(w.numel() for w in self.weights)

    @property
    def density(self) -> float:
        return self.survivors / self.n_weights

    def keep_bool(self) -> list:
        return [unpack_mask(m, w.numel()).reshape(w.shape) for w, m in zip(self.weights, self.masks)]


def make_states(weights: list, rounds=ROUNDS, fraction: float = FRACTION) -> dict:
    """{round: State} at the start of each IMP round in ``rounds``: round 1 is dense, round r follows r - 1
    rgprune rounds of ``fraction`` of the survivors (round 5 at 0.2: density 0.8**4 = 0.41)."""
    w = [x.detach().clone() for x in weights]
    m = MaskSet.ones(w).words
    survivors, at, states = sum(x.numel() for x in w), 1, {}
    wanted = sorted(set(rounds))
    for r in wanted:
        while at < r:
            k = prune_count(fraction, survivors)
            rgprune.prune_global_(w, m, k)
            survivors -= k
            at += 1
        last = r == wanted[-1]
        states[r] = State(
            r, w if last else [x.clone() for x in w], m if last else [x.clone() for x in m], survivors, fraction
        )
    return states


def pairs(model, names) -> list:
    """``(module, parameter name)`` for each qualified parameter name, as torch.nn.utils.prune takes them."""
    out = []
    for name in names:
        module_name, _, param_name = name.rpartition(".")
        out.append((model.get_submodule(module_name) if module_name else model, param_name))
    return out


def _tp_prepare(state, model, names, clone=True):
    if model is not None:
        copy_ = copy.deepcopy(model)
        params = dict(copy_.named_parameters())
        with torch.no_grad():
            for n, w in zip(names, state.weights):
                params[n].copy_(w)
        module_pairs = pairs(copy_, names)
    else:  # bare tensors (the memory subprocess): one holder module per tensor
        copy_ = torch.nn.ModuleList([WeightHolder(w.clone() if clone else w) for w in state.weights])
        module_pairs = [(h, "weight") for h in copy_]
    if state.round > 1:
        for (module, pname), keep in zip(module_pairs, state.keep_bool()):
            tprune.custom_from_mask(module, pname, mask=keep)
    return {"model": copy_, "pairs": module_pairs, "fraction": state.fraction}


def _tp_run(ctx, k):
    tprune.global_unstructured(ctx["pairs"], pruning_method=tprune.L1Unstructured, amount=ctx["fraction"])


def _switch_run(ctx, k):
    switch.global_unstructured(ctx["pairs"], pruning_method=switch.L1Unstructured, amount=ctx["fraction"])


def _tp_keep(ctx):
    return [getattr(m, p + "_mask") != 0 for m, p in ctx["pairs"]]


def _naive_prepare(state, model, names, clone=True):
    ws = [w.clone() if clone else w for w in state.weights]
    # round 1: a naive user has no masks yet; later rounds: bool masks (1 byte per weight)
    keep = None if state.round == 1 else state.keep_bool()
    return {"weights": ws, "keep": keep}


def _naive_prune(ctx, k, kth_smallest):
    ws, keep = ctx["weights"], ctx["keep"]
    if keep is None:
        flat = torch.cat([w.reshape(-1).abs() for w in ws])
    else:
        flat = torch.cat([w[m].abs() for w, m in zip(ws, keep)])
    thr = kth_smallest(flat, k)
    del flat
    if keep is None:
        keep = [w.abs() > thr for w in ws]
    else:
        for w, m in zip(ws, keep):
            m &= w.abs() > thr
    for w, m in zip(ws, keep):
        w.mul_(m)
    ctx["keep"] = keep


def _kthvalue(flat, k):
    return torch.kthvalue(flat, k).values


def _topk_max(flat, k):
    return torch.topk(flat, k, largest=False, sorted=False).values.max()


def _naive_run(ctx, k):
    _naive_prune(ctx, k, _kthvalue)


def _naive_topk_run(ctx, k):
    _naive_prune(ctx, k, _topk_max)


def _naive_keep(ctx):
    return ctx["keep"] if ctx["keep"] is not None else [torch.ones_like(w, dtype=torch.bool) for w in ctx["weights"]]


def _packed_prepare(state, model, names, clone=True):
    return {
        "weights": [w.clone() if clone else w for w in state.weights],
        "masks": [m.clone() if clone else m for m in state.masks],
    }


def _ref_run(ctx, k):
    info, _ = reference.global_magnitude_threshold(ctx["weights"], ctx["masks"], k)
    reference.apply_threshold_(ctx["weights"], ctx["masks"], info, 12)


def _rg_run(ctx, k):
    rgprune.prune_global_(ctx["weights"], ctx["masks"], k)


def _packed_keep(ctx):
    return [unpack_mask(m, w.numel()) for w, m in zip(ctx["weights"], ctx["masks"])]


@dataclass
class Method:
    name: str
    prepare: Callable
    run: Callable
    keep: Callable  # bool masks after the run (for counting and comparing; untimed)


METHOD_IMPLS = {
    "torch_prune": Method("torch_prune", _tp_prepare, _tp_run, _tp_keep),
    "rgprune_switch": Method("rgprune_switch", _tp_prepare, _switch_run, _tp_keep),
    "naive": Method("naive", _naive_prepare, _naive_run, _naive_keep),
    "naive_topk": Method("naive_topk", _naive_prepare, _naive_topk_run, _naive_keep),
    "reference": Method("reference", _packed_prepare, _ref_run, _packed_keep),
    "rgprune": Method("rgprune", _packed_prepare, _rg_run, _packed_keep),
}


def warmup(device) -> None:
    """One tiny round (dense, then masked) of every method: library loading and thread pools start here."""
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(64, 64, generator=g).to(device), torch.randn(1000, generator=g).to(device)]
    states = make_states(ws)
    for m in METHOD_IMPLS.values():
        for r in ROUNDS:
            ctx = m.prepare(states[r], None, None)
            m.run(ctx, states[r].k)
    sync(device)

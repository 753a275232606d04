"""``torch.nn.utils.prune``'s functional API, with the global ranking done by rgprune's kernels.

Switching is one changed import; the rest of the code stays as it is::

    import rgprune.prune as prune          # was: import torch.nn.utils.prune as prune

    prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=0.2)
    prune.is_pruned(model), prune.remove(module, "weight")

``global_unstructured`` takes torch's arguments (``parameters`` as (module, name) pairs, ``amount`` a
fraction of the surviving weights or an int count, with torch's rules and errors, ``importance_scores``
a dict {(module, name): tensor}) and installs torch's own reparametrization (``weight_orig``,
``weight_mask`` and the forward pre-hook, through ``custom_from_mask``), so ``remove``, ``is_pruned``,
``state_dict`` and repeated calls (combined with the existing masks in a ``PruningContainer``) behave as
with torch. What differs is the ranking: instead of concatenating every weight (or score) into one vector
and calling ``torch.topk``, ``rgprune.ops.prune_by_scores_`` ranks the tensors where they lie, with
bit-packed masks, one temporary tensor at a time; it also works for ``channels_last`` weights, which
torch's ``parameters_to_vector`` refuses.

The masks equal torch's up to ties: survivors whose magnitude (or score) equals the threshold are pruned
in model order (lower position in ``parameters`` first, then lower row-major index), where ``torch.topk``
picks them in no documented order. ``L1Unstructured`` and ``RandomUnstructured`` are the methods ranked
by the kernels (torch's classes of those names are accepted too); any other unstructured method runs
torch's own implementation. ``RandomUnstructured`` prunes ``k`` survivors chosen uniformly at random, as
torch does, but not the same draw: the count per tensor is drawn from the multivariate hypergeometric
distribution, then each tensor's share is ranked by float64 uniform scores (reproducible under
``torch.manual_seed``). Every other name is torch's own (re-exported unchanged).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
import torch
from torch.nn.utils import prune as torch_prune
from torch.nn.utils.prune import (
    BasePruningMethod,
    CustomFromMask,
    Identity,
    LnStructured,
    PruningContainer,
    RandomStructured,
    custom_from_mask,
    identity,
    is_pruned,
    ln_structured,
    random_structured,
    remove,
)

from rgprune import ops
from rgprune import torch_prune_adoption as adoption
from rgprune import torch_prune_masks as reparametrization
from rgprune.masks import MaskSet, popcount
from rgprune.pruner import GlobalMagnitudePruner
from rgprune.schedule import prune_count

__all__ = [
    "BasePruningMethod",
    "CustomFromMask",
    "Identity",
    "L1Unstructured",
    "LnStructured",
    "PruningContainer",
    "RandomStructured",
    "RandomUnstructured",
    "adopt",
    "custom_from_mask",
    "global_unstructured",
    "identity",
    "is_pruned",
    "l1_unstructured",
    "ln_structured",
    "random_structured",
    "random_unstructured",
    "remove",
]


class L1Unstructured(torch_prune.L1Unstructured):
    """torch's ``L1Unstructured`` (same arguments and reparametrization), ranked by rgprune's kernels: prunes
    the ``amount`` entries with the smallest absolute value (ties in row-major order).

    ``L1Unstructured.apply`` (what ``l1_unstructured`` calls) prunes float weights as ``global_unstructured``
    does with one pair: the masks are read from and written into torch's reparametrization by the kernels
    (a pruned tensor's ``<name>_mask`` is updated in place, its hook kept), ``amount`` counted in the
    survivors, as torch's ``PruningContainer`` counts it."""

    def compute_mask(self, t, default_mask):
        if t.dtype not in ops.FLOAT_DTYPES or default_mask.dtype not in ops.FLOAT_DTYPES:
            return super().compute_mask(t, default_mask)  # e.g. integer importance scores: torch's topk ranks those
        k = count_to_prune(self.amount, t.nelement())
        mask = default_mask.clone(memory_format=torch.contiguous_format)
        if k:
            words = MaskSet.ones([t]).words
            ops.prune_by_scores_([t.detach()], words, k, stats=False)
            ops.apply_masks_([mask], words)
        return mask

    @classmethod
    def apply(cls, module, name, amount, importance_scores=None):
        current = getattr(module, name, None)
        if not (
            isinstance(current, torch.Tensor)
            and current.dtype in ops.FLOAT_DTYPES
            and (importance_scores is None or importance_scores.dtype in ops.FLOAT_DTYPES)
        ):
            return super().apply(module, name, amount=amount, importance_scores=importance_scores)
        if importance_scores is not None and importance_scores.shape != current.shape:
            raise AssertionError(  # torch's error and message
                f"importance_scores should have the same shape as parameter {name} of {module}, got "
                f"{importance_scores.shape} vs {current.shape}"
            )
        method = cls(amount)
        scores = {} if importance_scores is None else {(module, name): importance_scores}
        _prune_pairs([(module, name)], method, scores, make_hook=lambda mask: method)
        return reparametrization.pruning_hook(module, name)


class RandomUnstructured(torch_prune.RandomUnstructured):
    """torch's ``RandomUnstructured``; ``global_unstructured`` draws it without concatenating the weights."""


def l1_unstructured(module, name, amount, importance_scores=None):
    """torch's ``l1_unstructured`` (one tensor), ranked by rgprune's kernels."""
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_unstructured(module, name, amount):
    """torch's ``random_unstructured`` (one tensor)."""
    RandomUnstructured.apply(module, name, amount=amount)
    return module


def count_to_prune(amount, survivors: int) -> int:
    """torch.prune's rule: an int ``amount`` is a count (at most ``survivors``), a float a fraction of the
    survivors, rounded as torch rounds it (``rgprune.schedule.prune_count``). Raises torch's TypeError /
    ValueError, with torch's messages, for anything else."""
    if not isinstance(amount, numbers.Real):
        raise TypeError(f"Invalid type for amount: {amount}. Must be int or float.")
    if isinstance(amount, numbers.Integral):
        if amount < 0:
            raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative integer")
        if amount > survivors:
            raise ValueError(f"amount={amount} should be smaller than the number of parameters to prune={survivors}")
        return int(amount)
    if not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative integer")
    return prune_count(amount, survivors)


def _checked_pairs(parameters) -> list[tuple[torch.nn.Module, str]]:
    if not isinstance(parameters, Iterable):
        raise TypeError("global_unstructured(): parameters is not an Iterable")
    pairs = list(parameters)  # torch iterates it several times: a generator would silently prune nothing
    if not pairs:
        raise ValueError(
            "global_unstructured(): parameters is empty; pass (module, name) pairs, e.g. [(model.fc, 'weight')]"
        )
    for i, pair in enumerate(pairs):
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and isinstance(pair[0], torch.nn.Module)
            and isinstance(pair[1], str)
        ):
            raise TypeError(f"global_unstructured(): parameters[{i}] must be a (module, name) tuple, got {pair!r}")
        module, name = pair
        if not isinstance(getattr(module, name, None), torch.Tensor):
            raise AttributeError(
                f"global_unstructured(): parameters[{i}]: {type(module).__name__} has no tensor named {name!r}"
            )
    return pairs


def _scores(pairs, importance_scores) -> list[torch.Tensor]:
    scores = []
    for module, name in pairs:
        current = getattr(module, name)
        score = importance_scores.get((module, name), current)
        if not isinstance(score, torch.Tensor) or score.shape != current.shape:
            raise ValueError(
                f"importance_scores[({type(module).__name__}, {name!r})] must be a tensor of the "
                f"parameter's shape {tuple(current.shape)}, got "
                f"{tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__}"
            )
        scores.append(score.detach())
    return scores


def _prune_at_random_(words: list[torch.Tensor], shapes, k: int, device) -> None:
    """Clear the bits of ``k`` survivors drawn uniformly from all masks, one tensor at a time: the count per
    tensor from the multivariate hypergeometric distribution, then the smallest of float64 uniform scores
    (ties have probability ~2**-53, so the draw is uniform for any practical size)."""
    survivors = [popcount(w) for w in words]
    seed = int(torch.randint(0, 2**62, (1,)).item())  # torch's generator: torch.manual_seed reproduces the draw
    shares = np.random.default_rng(seed).multivariate_hypergeometric(survivors, k, method="marginals")
    for w, shape, share in zip(words, shapes, shares.tolist()):
        if share:
            ops.prune_global_([torch.rand(shape, dtype=torch.float64, device=device)], [w], share)


def global_unstructured(parameters, pruning_method, importance_scores=None, **kwargs) -> None:
    """torch.nn.utils.prune.global_unstructured with the same arguments and effect (the module docstring
    says what differs: tie order and how the ranking is done). Modifies the modules in place: adds
    ``<name>_orig``, ``<name>_mask`` and the forward pre-hook, or combines with the existing ones."""
    pairs = _checked_pairs(parameters)
    importance_scores = importance_scores if importance_scores is not None else {}
    if not isinstance(importance_scores, dict):
        raise TypeError("global_unstructured(): importance_scores must be of type dict")
    method = pruning_method(**kwargs)  # validates amount as torch does (our classes are torch's subclasses)
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(
            f'Only "unstructured" PRUNING_TYPE supported for the `pruning_method`. Found method '
            f"{pruning_method} of type {method.PRUNING_TYPE}"
        )
    if not isinstance(method, (torch_prune.L1Unstructured, torch_prune.RandomUnstructured)):
        torch_prune.global_unstructured(pairs, pruning_method, importance_scores, **kwargs)
        return
    _prune_pairs(pairs, method, importance_scores)


def _prune_pairs(pairs, method, importance_scores: dict, make_hook=CustomFromMask) -> None:
    """Prune ``method.amount`` of the survivors of ``pairs`` (L1 or random), ranked by the kernels on bit
    masks read from and written into torch's reparametrization (``rgprune.torch_prune_masks``)."""
    current = [getattr(module, name) for module, name in pairs]
    before = reparametrization.survivor_words(pairs)
    words = [w.clone() for w in before]
    k = count_to_prune(method.amount, sum(popcount(w) for w in words))
    with torch.no_grad():
        if isinstance(method, torch_prune.L1Unstructured):
            ops.prune_by_scores_(_scores(pairs, importance_scores), words, k, stats=False)
        else:
            _prune_at_random_(words, [t.shape for t in current], k, current[0].device)
    reparametrization.install_masks(pairs, before, words, make_hook)


def adopt(model: torch.nn.Module, pruner_class=None, **selection):
    """A ``GlobalMagnitudePruner`` (or ``pruner_class``) of a model pruned with torch.nn.utils.prune: its
    masks are read, the reparametrization made permanent (``remove``) and the pruner gets the same masks.
    By default it selects the parameters torch pruned. ``include`` / ``exclude`` patterns that match no
    parameter are refused before anything changes; if the pruner cannot be made for another reason (e.g. a
    selection with nothing to prune), the error is raised with the model as it was
    (``rgprune.torch_prune_adoption.adopt``)."""
    return adoption.adopt(model, GlobalMagnitudePruner if pruner_class is None else pruner_class, **selection)

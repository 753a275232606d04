"""Adopting a model pruned with ``torch.nn.utils.prune``: its masks are read, its reparametrization
(``<name>_orig`` + ``<name>_mask`` + forward pre-hook) made permanent, and a pruner built with the same masks.

``rgprune.prune.adopt`` and ``GlobalMagnitudePruner.from_torch_prune`` both call ``adopt`` here, which takes the
pruner class as an argument: this module imports neither of them, so ``rgprune.pruner`` and ``rgprune.prune``
need not import each other (``prune`` imports ``pruner`` for its default class, never the other way round).
"""

from __future__ import annotations

import torch
from torch.nn.utils.prune import BasePruningMethod, custom_from_mask, remove

from rgprune.masks import MaskSet
from rgprune.prunable import check_patterns, unwrap_model

__all__ = ["adopt", "pruned_pairs"]


def pruned_pairs(model: torch.nn.Module) -> list[tuple[torch.nn.Module, str]]:
    """The (module, name) pairs of ``model`` that carry a torch.nn.utils.prune reparametrization."""
    return [
        (m, hook._tensor_name)
        for m in model.modules()
        for hook in list(m._forward_pre_hooks.values())
        if isinstance(hook, BasePruningMethod)
    ]


def _names_after_remove(model: torch.nn.Module, pruned) -> list[str]:
    """``model``'s qualified parameter names as they will be once ``remove`` has turned each pruned
    ``<name>_orig`` back into ``<name>``: what a selection's patterns are checked against before anything
    changes."""
    orig = {(id(m), name + "_orig"): name for m, name in pruned}
    names = []
    for module_name, module in model.named_modules(remove_duplicate=False):
        for param_name, _ in module.named_parameters(recurse=False, remove_duplicate=False):
            param_name = orig.get((id(module), param_name), param_name)
            names.append(f"{module_name}.{param_name}" if module_name else param_name)
    return names


def _make_permanent(model: torch.nn.Module, pruned) -> tuple[dict, list]:
    """``remove`` the pruning reparametrization of every pair in ``pruned``: their masks as bool tensors keyed
    by (id(module), name), and what ``_undo_permanent`` needs to put them back."""
    keep, undo = {}, []
    for module, name in pruned:
        mask = getattr(module, name + "_mask").detach()
        keep[(id(module), name)] = mask != 0
        # remove() replaces <name>_orig's data by the masked values; hold the old data (a reference, not a
        # copy) so that a failure can restore it
        undo.append((module, name, getattr(module, name + "_orig").data, mask))
        remove(module, name)
    return keep, undo


def _undo_permanent(undo: list) -> None:
    """Put back every ``<name>_orig`` (all its values, the pruned ones too) and ``<name>_mask`` (the hooks are
    then ``CustomFromMask`` ones, the masks unchanged)."""
    for module, name, data, mask in undo:
        getattr(module, name).data = data
        custom_from_mask(module, name, mask=mask)


def adopt(model: torch.nn.Module, pruner_class, **selection):
    """A ``pruner_class`` (``GlobalMagnitudePruner`` or a subclass) of a model pruned with torch.nn.utils.prune:
    its masks are read, the reparametrization made permanent (``remove``) and the pruner gets the same masks.
    By default it selects the parameters torch pruned. ``include`` / ``exclude`` patterns that match no parameter
    are refused before anything changes; if the pruner cannot be made for another reason (e.g. a selection with
    nothing to prune), the error is raised with the model as it was."""
    inner = unwrap_model(model)
    pruned = pruned_pairs(inner)
    if not pruned:
        raise ValueError("the model has no torch.nn.utils.prune reparametrization to import")
    check_patterns(_names_after_remove(inner, pruned), selection.get("include"), selection.get("exclude", ()))
    keep, undo = _make_permanent(inner, pruned)
    try:
        if "include" not in selection:
            lookup = {id(m): n for n, m in inner.named_modules()}
            selection["include"] = [f"{lookup[id(m)]}.{name}" if lookup[id(m)] else name for m, name in pruned]
        pruner = pruner_class(model, **{"masks_from": "ones", **selection})  # the masks are set from torch's below
    except BaseException:
        _undo_permanent(undo)
        raise
    bools = [
        keep.get((id(module), name), torch.ones_like(param, dtype=torch.bool))
        for (module, name), param in zip(pruner.module_param_pairs(), pruner.params)
    ]
    pruner.masks = MaskSet.from_bool(bools, pruner.names).to(pruner.params[0].device)
    pruner.apply_masks()
    return pruner

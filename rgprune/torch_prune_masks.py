"""Bit masks in and out of ``torch.nn.utils.prune``'s reparametrization (``<name>_orig`` parameter,
``<name>_mask`` buffer, forward pre-hook), without unpacking a mask in Python.

``survivor_words`` reads the survivors torch's ``PruningContainer`` would rank (``<name>_mask == 1``, or every
entry of a parameter not pruned yet) as bit masks, through the ``masks_where_one`` kernel op.
``install_masks`` writes bit masks back: into the existing ``<name>_mask`` buffer in place (the
``apply_masks_`` kernel op zeroes exactly the entries pruned since ``survivor_words`` read it, so the
reparametrization, its hook and its buffer stay what they were), or, for a parameter pruned for the first
time, into a new buffer of ones registered with a hook as ``BasePruningMethod.apply`` would. Either way
``<name>`` is then recomputed by the hook's own ``apply_mask``, as torch does after every pruning call.

What differs from torch: torch replaces the mask buffer by a new tensor and wraps the old hook and the new
method in a ``PruningContainer`` on every call; here the buffer is updated in place and the hook kept, so
nothing is reallocated and no history of methods grows. Masks, ``<name>``, ``remove``, ``is_pruned`` and the
state dict are the same. Anything this fast path does not recognise (a parameter that is not an
``nn.Parameter``, a mask of a non-float dtype or on another device, several hooks for one tensor) is handed
to torch's own ``custom_from_mask``, which behaves as torch does.
"""

from __future__ import annotations

import torch
from torch.nn.utils.prune import BasePruningMethod, CustomFromMask, custom_from_mask

from rgprune import ops
from rgprune.kernels import layout
from rgprune.masks import MaskSet

__all__ = ["install_masks", "pruning_hook", "survivor_words"]


def _pruning_hooks(module: torch.nn.Module, name: str) -> list[BasePruningMethod]:
    return [
        h for h in module._forward_pre_hooks.values() if isinstance(h, BasePruningMethod) and h._tensor_name == name
    ]


def pruning_hook(module: torch.nn.Module, name: str) -> BasePruningMethod:
    """The forward pre-hook that prunes ``module.<name>`` (what torch's ``apply`` returns)."""
    hooks = _pruning_hooks(module, name)
    if len(hooks) != 1:
        raise ValueError(f"{type(module).__name__}.{name} has {len(hooks)} pruning hooks; expected one")
    return hooks[0]


def _writable_mask(module: torch.nn.Module, name: str) -> torch.Tensor | None:
    """The ``<name>_mask`` buffer when it can be updated in place by the kernels: one pruning hook for the
    tensor, its ``<name>_orig`` parameter, and a float mask of the parameter's shape on its device."""
    mask = module._buffers.get(name + "_mask")
    orig = module._parameters.get(name + "_orig")
    if mask is None or orig is None or len(_pruning_hooks(module, name)) != 1:
        return None
    if mask.dtype not in ops.FLOAT_DTYPES or mask.shape != orig.shape or mask.device != orig.device:
        return None
    try:
        layout.storage_permutation(mask)
    except ValueError:  # not dense (e.g. an expanded view): torch's path copies it
        return None
    return mask


def _by_device(tensors: list[torch.Tensor]) -> dict[torch.device, list[int]]:
    """The positions of ``tensors`` on each device: one kernel call per device walks all of its tensors."""
    groups: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(t.device, []).append(i)
    return groups


def survivor_words(pairs) -> list[torch.Tensor]:
    """Bit masks of the entries torch's ``PruningContainer`` counts as surviving (``<name>_mask == 1``; every
    entry of a parameter not pruned yet), in logical order, one per (module, name) pair. The float masks are
    read by one ``masks_where_one`` call per device."""
    words: list[torch.Tensor | None] = []
    float_masks, float_at = [], []
    for module, name in pairs:
        mask = getattr(module, name + "_mask", None)
        if mask is None:
            words.append(MaskSet.ones([getattr(module, name)]).words[0])
        elif mask.dtype in ops.FLOAT_DTYPES:
            float_at.append(len(words))
            float_masks.append(mask.detach())
            words.append(None)
        else:
            words.append(MaskSet.from_bool([mask == 1]).words[0])
    for positions in _by_device(float_masks).values():
        read = ops.masks_where_one([float_masks[i] for i in positions])
        for i, w in zip(positions, read):
            words[float_at[i]] = w
    return words


def _pruned_since(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Bit mask whose 0 bits are the entries surviving in ``before`` and pruned in ``after``."""
    return torch.bitwise_or(after, torch.bitwise_not(before))


def _first_mask(module: torch.nn.Module, name: str, after: torch.Tensor, make_hook) -> None:
    """``BasePruningMethod.apply``'s first-time reparametrization, with the mask written by the kernels into
    the ones torch starts from; ``make_hook(mask)`` is the method registered as the hook."""
    orig = module._parameters[name]
    mask = torch.ones_like(orig)
    ops.apply_masks_([mask], [after])
    hook = make_hook(mask)
    hook._tensor_name = name
    module.register_parameter(name + "_orig", orig)
    del module._parameters[name]
    module.register_buffer(name + "_mask", mask)
    setattr(module, name, hook.apply_mask(module))
    module.register_forward_pre_hook(hook)


def install_masks(pairs, before, after, make_hook=CustomFromMask) -> None:
    """Make each pair's reparametrization hold the bit mask ``after[i]``, where ``before[i]`` is what
    ``survivor_words`` read from it (``after`` may only clear bits of ``before``). ``make_hook(mask)`` makes the
    hook of a parameter pruned for the first time (default: ``CustomFromMask``, which torch's
    ``global_unstructured`` registers). The existing mask buffers are cut by one ``apply_masks_`` call per
    device."""
    pairs = list(pairs)
    writable = [_writable_mask(module, name) for module, name in pairs]
    # One cut per buffer: a pair named twice would give one kernel call the same tensor twice, whose threads
    # rewrite whole words (their zeros combined here: entries pruned by either stay pruned, as done in turn).
    cuts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for i, mask in enumerate(writable):
        if mask is not None:
            words = _pruned_since(before[i], after[i])
            if id(mask) in cuts:
                words = torch.bitwise_and(cuts[id(mask)][1], words)
            cuts[id(mask)] = (mask, words)
    masks, words = [m for m, _ in cuts.values()], [w for _, w in cuts.values()]
    with torch.no_grad():
        for positions in _by_device(masks).values():
            ops.apply_masks_([masks[p] for p in positions], [words[p] for p in positions])
    for (module, name), mask, a in zip(pairs, writable, after):
        if mask is not None:
            # The old <name> goes first: when nothing else holds it, the new one (same size) can reuse its
            # memory instead of faulting in fresh pages. Should apply_mask fail, the hook sets <name> again
            # on the next forward.
            module.__dict__.pop(name, None)
            setattr(module, name, pruning_hook(module, name).apply_mask(module))
        elif isinstance(module._parameters.get(name), torch.nn.Parameter) and not hasattr(module, name + "_mask"):
            _first_mask(module, name, a, make_hook)
        else:
            current = getattr(module, name)
            keep = MaskSet([a], [current.shape]).to_bool()[0]
            custom_from_mask(module, name, mask=keep.to(device=current.device, dtype=current.dtype))

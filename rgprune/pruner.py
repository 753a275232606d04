"""GlobalMagnitudePruner: the drop-in pruner for your own training code.

>>> import torch, rgprune
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
>>> pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
>>> report = pruner.prune(fraction=0.5)
>>> report.k, round(pruner.density(), 3)
(96, 0.5)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from rgprune import distributed, ops
from rgprune.masks import MaskSet
from rgprune.prunable import select_prunable, unwrap_model

__all__ = ["GlobalMagnitudePruner", "PruneReport"]


@dataclass(frozen=True)
class PruneReport:
    """What one ``prune`` call did: ``k`` weights removed, the threshold, the survivors' statistics
    (the RG trace's observables, from the same kernel pass) and the density afterwards."""

    k: int
    density: float
    threshold: ops.Threshold
    stats: ops.MagnitudeStats


class GlobalMagnitudePruner:
    """Global magnitude pruning of a model's weights with bit-packed masks.

    ``prune(fraction=0.2)`` removes 20% of the surviving weights with the smallest |w| ranked across all
    selected tensors (``target_density=`` instead prunes down to a density). ``attach(optimizer)`` keeps
    the masks applied: after every ``optimizer.step()`` the pruned weights and their optimizer state
    (momentum, Adam moments) are zeroed in one kernel call, so nothing grows back and no forward hook is
    needed. ``rewind(state_dict)`` resets the model to saved values (e.g. its initialization) and keeps
    pruned weights at 0.

    ``process_group=`` (a ``ProcessGroup``, ``"default"`` or ``torch.distributed.group.WORLD``; default
    None = one process) prunes across torch.distributed ranks. A replicated model (plain or DDP-wrapped:
    every rank holds all of it) is pruned locally, identically on every rank (checked with one tiny
    all_gather). A model sharded with FSDP2 (``fully_shard``: DTensor parameters) is pruned shard by shard
    with the exact global threshold of ``rgprune.distributed`` (ties in model order, so the masks equal
    single-process pruning of the full model); its masks cover the local shards, and ``density``,
    ``num_survivors``, ``stats`` etc. are then global (collectives: call them on every rank).
    """

    def __init__(self, model: torch.nn.Module, include: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 *, prune_embeddings: bool = False, prune_head: bool = False, process_group=None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.selection = dict(include=list(include) if include is not None else None, exclude=list(exclude),
                              prune_embeddings=prune_embeddings, prune_head=prune_head)
        named = select_prunable(model, include, exclude, prune_embeddings=prune_embeddings, prune_head=prune_head)
        dtypes = {p.dtype for _, p in named}
        if len(dtypes) > 1:
            raise TypeError(f"the selected parameters have several dtypes {sorted(map(str, dtypes))}; global "
                            f"ranking needs one dtype: cast the model or select one group with include=")
        self.names = [n for n, _ in named]
        self.process_group = None if process_group is None else distributed.resolve_group(process_group)
        self.sharded = distributed.is_sharded([p for _, p in named], self.process_group)
        self.masks = MaskSet.ones([self._local(p) for _, p in named], names=self.names)
        self._hooks = []

    # ---- parameters and masks -------------------------------------------------------------------
    @property
    def params(self) -> list[torch.nn.Parameter]:
        """The selected parameters, looked up afresh (they change identity under .to() on some setups)."""
        lookup = dict(unwrap_model(self.model).named_parameters(remove_duplicate=False))
        return [lookup[n] for n in self.names]

    def _local(self, p: torch.Tensor) -> torch.Tensor:
        """What this rank prunes of parameter ``p``: its local shard when sharded, else all of it."""
        return distributed.local_shard(p) if self.sharded else p.data

    def _weights(self) -> list[torch.Tensor]:
        params = self.params
        device = params[0].device
        if self.masks.words[0].device != device:  # the model moved (model.to(device)): masks follow
            self.masks = self.masks.to(device)
        return [self._local(p) for p in params]

    def _global_counts(self, counts: list[int]) -> list[int]:
        """Sums of per-rank counts over the ranks when sharded (one all_reduce), else ``counts``."""
        if not self.sharded:
            return counts
        t = torch.tensor(counts, dtype=torch.int64).to(self.masks.words[0].device)
        all_reduce = torch.distributed.all_reduce
        distributed.collective("all_reduce of the survivor counts", self.process_group, all_reduce, t)
        return t.tolist()

    def density(self) -> float:
        if self.sharded:
            survivors, total = self._global_counts([self.num_survivors_local, sum(self.masks.numels())])
            return survivors / total if total else 1.0
        return self.masks.density()

    def layer_densities(self) -> dict[str, float]:
        if self.sharded:
            n = len(self.names)
            counts = self._global_counts(self.masks.survivor_counts() + self.masks.numels())
            return {name: (c / s if s else 1.0) for name, c, s in zip(self.names, counts[:n], counts[n:])}
        return self.masks.layer_densities()

    @property
    def num_weights(self) -> int:
        return self._global_counts([sum(self.masks.numels())])[0]

    @property
    def num_survivors(self) -> int:
        return self._global_counts([self.num_survivors_local])[0]

    @property
    def num_survivors_local(self) -> int:
        """Survivors in this rank's masks (its shards when sharded)."""
        return sum(self.masks.survivor_counts())

    # ---- pruning ----------------------------------------------------------------------------------
    def prune(self, fraction: float | None = None, *, target_density: float | None = None,
              bits: int = 12) -> PruneReport:
        """Prune ``fraction`` of the surviving weights (k = round(fraction * survivors), torch.prune's
        rule), or down to ``target_density`` of all selected weights. Returns a ``PruneReport``."""
        if (fraction is None) == (target_density is None):
            raise ValueError("pass exactly one of fraction= (share of survivors to remove) or target_density=")
        survivors = self.num_survivors
        if fraction is not None:
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
                raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
            k = round(fraction * survivors)
        else:
            if isinstance(target_density, bool) or not isinstance(target_density, (int, float)) \
                    or not 0 <= target_density <= 1:
                raise ValueError(f"target_density must be a number in [0, 1], got {target_density!r}")
            keep = round(target_density * self.num_weights)
            if keep > survivors:
                raise ValueError(f"target_density={target_density} is above the current density "
                                 f"{self.density():.4f}: pruning cannot add weights back")
            k = survivors - keep
        with torch.no_grad():
            if self.sharded:  # exact global threshold; ties in model order (FSDP2 shards are row blocks)
                result = distributed.prune_global_distributed_(self._weights(), self.masks.words, k,
                                                               self.process_group, bits, tie_order="parameter")
                stats = distributed.all_reduce_stats(result.stats, self.process_group)
                result = ops.PruneResult(result.threshold, stats)
            else:
                if self.process_group is not None:  # replicated (DDP): every rank must prune the same model
                    distributed.check_replicated([k, survivors, self.num_weights],
                                                 "the pruned models' k, survivors and size", self.process_group,
                                                 self.masks.words[0].device)
                result = ops.prune_global_(self._weights(), self.masks.words, k, bits)
        return PruneReport(k, self.density(), result.threshold, result.stats)

    def stats(self, bits: int = 12) -> ops.MagnitudeStats:
        """Statistics of the current survivors (histogram, per-tensor count, Σ|w|, Σw²); over all ranks when
        sharded."""
        with torch.no_grad():
            stats = ops.magnitude_histogram(self._weights(), self.masks.words, bits)
            return distributed.all_reduce_stats(stats, self.process_group) if self.sharded else stats

    def apply_masks(self) -> None:
        """Zero the pruned weights (e.g. after loading weights from elsewhere)."""
        with torch.no_grad():
            ops.apply_masks_(self._weights(), self.masks.words)

    # ---- keeping masks applied during training ------------------------------------------------------
    def masked_tensors(self, optimizer) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """What ``attach(optimizer)`` re-masks after each step, with the mask of each: the weights plus every
        optimizer state tensor shaped like its weight (momentum, Adam moments)."""
        weights = self._weights()
        tensors, masks = list(weights), list(self.masks.words)
        for p, w, m in zip(self.params, weights, self.masks.words):
            for value in optimizer.state.get(p, {}).values():
                if self.sharded and isinstance(value, torch.Tensor):
                    value = distributed.local_shard(value)  # FSDP2: moments are DTensors like their parameter
                if isinstance(value, torch.Tensor) and value.shape == w.shape and value.is_floating_point():
                    tensors.append(value)
                    masks.append(m)
        return tensors, masks

    def attach(self, optimizer: torch.optim.Optimizer):
        """Re-apply the masks after every ``optimizer.step()`` (a step post-hook), zeroing pruned weights
        and their optimizer state in one ``apply_masks_`` call. Returns a handle with ``.remove()``."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"attach needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
        ours = {id(p) for p in self.params}
        if not any(id(p) in ours for group in optimizer.param_groups for p in group["params"]):
            raise ValueError("the optimizer does not update any of the pruned parameters; build it from "
                             "this model's parameters (after model.to(device))")

        def after_step(opt, args, kwargs):
            with torch.no_grad():
                tensors, masks = self.masked_tensors(opt)
                ops.apply_masks_(tensors, masks)

        handle = optimizer.register_step_post_hook(after_step)
        self._hooks.append(handle)
        after_step(optimizer, (), {})  # zero any state that already exists
        return handle

    def detach(self) -> None:
        """Remove every optimizer hook installed by ``attach``."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    # ---- rewinding -----------------------------------------------------------------------------------
    def rewind(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Set the model to ``state_dict`` (e.g. saved at initialization or at an early step) and keep the
        pruned weights at 0. ``state_dict`` must hold every selected parameter; parameters and buffers
        it also holds are restored too. A bad ``state_dict`` raises ValueError and changes nothing."""
        model = unwrap_model(self.model)
        # a DDP / DataParallel wrapper's own state_dict() prefixes every key with "module." (once per
        # wrapper); accept it as well as the inner model's, as the pruner's names carry no prefix
        prefix, inner = "", self.model
        while inner is not model:
            prefix, inner = prefix + "module.", inner.module
        if prefix and state_dict and all(n.startswith(prefix) for n in state_dict):
            state_dict = {n[len(prefix):]: value for n, value in state_dict.items()}
        missing = [n for n in self.names if n not in state_dict]
        if missing:
            raise ValueError(f"rewind state_dict lacks {len(missing)} pruned parameters, e.g. {missing[:3]}; save "
                             f"it with model.state_dict() of the same architecture")
        own = model.state_dict()
        unknown = [n for n in state_dict if n not in own]
        if unknown:
            raise ValueError(f"rewind state_dict has entries this model lacks, e.g. {unknown[:3]}")
        with torch.no_grad():
            # validate every entry before copying any, so that a bad state dict changes nothing
            for name, value in state_dict.items():
                if not isinstance(value, torch.Tensor):  # else .shape / copy_ fail with an AttributeError
                    raise ValueError(f"rewind: {name} is a {type(value).__name__}, not a tensor")
                if own[name].shape != value.shape:
                    raise ValueError(f"rewind: {name} has shape {tuple(value.shape)}, the model's is "
                                     f"{tuple(own[name].shape)}")
            for name, value in state_dict.items():
                own[name].copy_(value)
        self.apply_masks()

    # ---- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        # a snapshot: prune() rewrites the mask words in place, and on the CPU MaskSet.state_dict() returns
        # those very tensors, so without the clone a saved state would change with every later prune
        return {"names": list(self.names), "selection": dict(self.selection),
                "masks": self.masks.clone().state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        """Restore masks saved by ``state_dict`` (the selected parameters must match) and apply them."""
        masks = MaskSet.from_state_dict(state["masks"])
        if list(state.get("names", masks.names)) != self.names:
            raise ValueError("saved pruner state is for other parameters: "
                             f"{len(masks.names)} saved vs {len(self.names)} selected here")
        shapes = [w.shape for w in self._weights()]  # the local shards' when sharded
        if list(masks.shapes) != list(shapes):
            raise ValueError("saved masks do not fit the parameters' shapes")
        # clone: MaskSet.from_state_dict adopts the saved tensors, so without it two pruners loaded from
        # one in-memory state would share mask words and pruning one would prune the other's masks
        self.masks = masks.clone().to(self.params[0].device)
        self.apply_masks()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_hooks"] = []  # optimizer hooks belong to this process's optimizer; re-attach after loading
        return state

    # ---- torch.nn.utils.prune interop -------------------------------------------------------------------
    def _module_param_pairs(self) -> list[tuple[torch.nn.Module, str]]:
        model = unwrap_model(self.model)
        pairs = []
        for name in self.names:
            module_name, _, param_name = name.rpartition(".")
            pairs.append((model.get_submodule(module_name) if module_name else model, param_name))
        return pairs

    def export_torch_prune(self) -> None:
        """Reparametrize the model the torch.nn.utils.prune way (``weight_orig`` + ``weight_mask`` + forward
        pre-hook), e.g. to hand it to code that expects that format. The pruner stops tracking the model."""
        self.detach()
        self.masks.to_torch_prune(self._module_param_pairs())

    @classmethod
    def from_torch_prune(cls, model: torch.nn.Module, **selection) -> "GlobalMagnitudePruner":
        """Adopt a model pruned with torch.nn.utils.prune: its masks are read, the reparametrization is
        made permanent (``prune.remove``), and a pruner with the same masks is returned.

        If the pruner cannot be made (e.g. a ``selection`` that matches nothing), the error is raised with
        the model as it was: every ``<name>_orig`` (all its values, the pruned ones too) and ``<name>_mask``
        is put back (the hooks are then ``CustomFromMask`` ones, the mask unchanged)."""
        import torch.nn.utils.prune as tprune
        inner = unwrap_model(model)
        pruned = [(m, hook._tensor_name) for m in inner.modules() for hook in list(m._forward_pre_hooks.values())
                  if isinstance(hook, tprune.BasePruningMethod)]
        if not pruned:
            raise ValueError("the model has no torch.nn.utils.prune reparametrization to import")
        keep, undo = {}, []
        for module, name in pruned:
            mask = getattr(module, name + "_mask").detach()
            keep[(id(module), name)] = mask != 0
            # prune.remove replaces <name>_orig's data by the masked values; hold the old data (a reference,
            # not a copy) so that a failure below can restore it
            undo.append((module, name, getattr(module, name + "_orig").data, mask))
            tprune.remove(module, name)
        try:
            if "include" not in selection:
                lookup = {id(m): n for n, m in inner.named_modules()}
                selection["include"] = [f"{lookup[id(m)]}.{name}" if lookup[id(m)] else name for m, name in pruned]
            pruner = cls(model, **selection)
        except BaseException:
            for module, name, data, mask in undo:
                getattr(module, name).data = data
                tprune.custom_from_mask(module, name, mask=mask)
            raise
        bools = []
        for (module, name), param in zip(pruner._module_param_pairs(), pruner.params):
            bools.append(keep.get((id(module), name), torch.ones_like(param, dtype=torch.bool)))
        pruner.masks = MaskSet.from_bool(bools, pruner.names).to(pruner.params[0].device)
        pruner.apply_masks()
        return pruner

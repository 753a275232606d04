"""GlobalMagnitudePruner: the drop-in pruner for your own training code.

>>> import torch, rgprune
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
>>> pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
>>> report = pruner.prune(fraction=0.5)
>>> report.k, round(pruner.density(), 3)
(96, 0.5)
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from rgprune import distributed, ops
from rgprune.kernels.layout import StorageMaskCache
from rgprune.masks import MaskSet
from rgprune.optim_hooks import hookable_optimizer
from rgprune.prunable import as_patterns, select_prunable, unwrap_model, unwrap_state_dict
from rgprune.schedule import prune_count
from rgprune.torch_prune_adoption import adopt

__all__ = ["ALREADY_PRUNED_SHARE", "GlobalMagnitudePruner", "PruneReport", "select_prunable"]

#: share of exact zeros among the selected weights above which a pruner starting from all-ones masks warns
ALREADY_PRUNED_SHARE = 0.05
#: every pruner with an optimizer hook, so that two pruners cannot keep masks on the same parameters
_ATTACHED: weakref.WeakSet = weakref.WeakSet()


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
    selected tensors (``target_density=`` instead prunes down to a density; ``scores=`` ranks by other
    scores). ``attach(optimizer)`` keeps the masks applied: after every ``optimizer.step()`` the pruned
    weights and their optimizer state (momentum, Adam moments) are zeroed in one kernel call, so nothing
    grows back and no forward hook is needed. ``rewind(state_dict)`` resets the model to saved values (e.g.
    its initialization) and keeps pruned weights at 0.

    The model may be wrapped in DDP / DataParallel or compiled with ``torch.compile``: the pruner sees the
    model inside (same names, selection and state as on the plain model). Weights may be in any dense
    memory layout (``channels_last`` ...): they are pruned in place in their layout, with the masks and tie
    order of the logical index, so the masks equal those of the same model in the contiguous layout.

    ``masks_from``: where the masks start. ``None`` (default): all weights survive, with a warning when
    many weights are already exactly 0 (more than ``ALREADY_PRUNED_SHARE``: the model looks pruned);
    ``"ones"``: all weights survive, silently; ``"zeros"``: exactly the nonzero weights survive (adopt a
    model pruned elsewhere, or a checkpoint saved without the pruner's state).

    ``process_group=`` (a ``ProcessGroup``, ``"default"`` or ``torch.distributed.group.WORLD``; default
    None = one process) prunes across torch.distributed ranks. A replicated model (plain or DDP-wrapped:
    every rank holds all of it) is pruned locally, identically on every rank (checked with one tiny
    all_gather). A model sharded with FSDP2 (``fully_shard``: DTensor parameters) is pruned shard by shard
    with the exact global threshold of ``rgprune.distributed`` (ties in model order, so the masks equal
    single-process pruning of the full model); its masks cover the local shards, and ``density``,
    ``num_survivors``, ``stats`` etc. are then global (collectives: call them on every rank).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str = (),
        *,
        prune_embeddings: bool = False,
        prune_head: bool = False,
        process_group=None,
        masks_from: str | None = None,
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if masks_from not in (None, "ones", "zeros"):
            raise ValueError(f"masks_from must be None, 'ones' or 'zeros', got {masks_from!r}")
        include = as_patterns(include, "include") if include is not None else None
        exclude = as_patterns(exclude, "exclude")
        self.model = model
        self.selection = dict(
            include=include, exclude=exclude, prune_embeddings=prune_embeddings, prune_head=prune_head
        )
        named = select_prunable(model, include, exclude, prune_embeddings=prune_embeddings, prune_head=prune_head)
        meta = [n for n, p in named if p.is_meta]
        if meta:
            raise ValueError(
                f"the model's parameters are on the meta device (shapes without values, e.g. "
                f"{meta[:3]}): there are no magnitudes to rank. Materialize the model first (e.g. "
                f"model.to_empty(device='cpu') and load its weights, or build it outside a "
                f"torch.device('meta') context), then build the pruner"
            )
        dtypes = {p.dtype for _, p in named}
        if len(dtypes) > 1:
            raise TypeError(
                f"the selected parameters have several dtypes {sorted(map(str, dtypes))}; global "
                f"ranking needs one dtype: cast the model or select one group with include="
            )
        self.names = [n for n, _ in named]
        self.process_group = None if process_group is None else distributed.resolve_group(process_group)
        self.sharded = distributed.is_sharded([p for _, p in named], self.process_group)
        self._masks_generation = 0
        self._emptied: set[str] = set()  # tensors whose emptying has been warned about
        self._storage_masks = StorageMaskCache()
        self._attached: list[tuple[weakref.ref, object]] = []
        local = [self._local(p) for _, p in named]
        if masks_from == "zeros":
            self.masks = MaskSet.from_nonzero(local, names=self.names)
        else:
            self.masks = MaskSet.ones(local, names=self.names)
            if masks_from is None:
                self._warn_if_already_pruned(local)

    def _warn_if_already_pruned(self, tensors: list[torch.Tensor]) -> None:
        total = sum(t.numel() for t in tensors)
        counts = [torch.count_nonzero(t) for t in tensors]
        if len({c.device for c in counts}) == 1:  # one host sync, not one per tensor
            counts = [torch.stack(counts).sum()]
        zeros = total - sum(int(c) for c in counts)
        if total and zeros > ALREADY_PRUNED_SHARE * total:
            warnings.warn(
                f"GlobalMagnitudePruner: {zeros / total:.1%} of the selected weights are exactly 0, as in "
                f"a pruned model, but the masks start with every weight surviving: density() would "
                f"report 1.0 and prune() would first remove weights that are already 0. Pass "
                f"masks_from='zeros' to build the masks from the zeros (or load the pruner's saved "
                f"state); masks_from='ones' silences this warning",
                RuntimeWarning,
                stacklevel=3,
            )

    # ---- parameters and masks -------------------------------------------------------------------
    @property
    def masks(self) -> MaskSet:
        """The masks, in the order of ``names``. Replace them by assignment (or ``load_state_dict``), not by
        editing their words in place, so that the cached storage-order masks of ``attach`` follow."""
        return self._masks

    @masks.setter
    def masks(self, masks: MaskSet) -> None:
        if not isinstance(masks, MaskSet):
            raise TypeError(f"masks must be a rgprune.MaskSet, got {type(masks).__name__}")
        self._masks = masks
        self._masks_generation += 1

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
        """Surviving share of the selected weights, as the masks say (``check()`` compares the weights)."""
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
    def _count_to_prune(self, fraction, target_density) -> int:
        if (fraction is None) == (target_density is None):
            raise ValueError("pass exactly one of fraction= (share of survivors to remove) or target_density=")
        survivors = self.num_survivors
        if fraction is not None:
            return prune_count(fraction, survivors)
        if (
            isinstance(target_density, bool)
            or not isinstance(target_density, (int, float))
            or not 0 <= target_density <= 1
        ):
            raise ValueError(f"target_density must be a number in [0, 1], got {target_density!r}")
        keep = round(target_density * self.num_weights)
        if keep > survivors:
            raise ValueError(
                f"target_density={target_density} is above the current density "
                f"{self.density():.4f}: pruning cannot add weights back"
            )
        return survivors - keep

    def _score_tensors(self, scores, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """``scores`` (a mapping name -> tensor, or a sequence in the order of ``names``) as a checked list."""
        if self.sharded:
            raise ValueError("prune(scores=...) is not supported for sharded (FSDP2) models; prune by magnitude")
        if isinstance(scores, Mapping):
            missing = [n for n in self.names if n not in scores]
            unknown = [n for n in scores if n not in self.names]
            if missing or unknown:
                raise ValueError(
                    f"scores must hold one tensor per pruned parameter (pruner.names): missing "
                    f"{missing[:3]}, not pruned {unknown[:3]}"
                )
            scores = [scores[n] for n in self.names]
        elif isinstance(scores, torch.Tensor) or not isinstance(scores, Sequence):
            raise TypeError(
                f"scores must be a dict name -> tensor or a list in the order of pruner.names, got "
                f"{type(scores).__name__}"
            )
        if len(scores) != len(weights):
            raise ValueError(f"got {len(scores)} score tensors for {len(weights)} pruned parameters")
        for name, s, w in zip(self.names, scores, weights):
            if not isinstance(s, torch.Tensor) or s.shape != w.shape:
                raise ValueError(
                    f"the score of {name} must be a tensor of its shape {tuple(w.shape)}, got "
                    f"{tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__}"
                )
        return list(scores)

    def prune(
        self, fraction: float | None = None, *, target_density: float | None = None, scores=None, bits: int = 12
    ) -> PruneReport:
        """Prune ``fraction`` of the surviving weights (k = round(fraction * survivors), torch.prune's rule:
        ``rgprune.schedule.prune_count``), or down to ``target_density`` of all selected weights. Returns a
        ``PruneReport``.

        ``scores`` (a dict name -> tensor shaped like that weight, or a list in the order of ``names``)
        ranks by ``|score|`` instead of ``|w|`` and prunes the weights (e.g. ``{n: (p * p.grad).abs()}``); the
        scores are not modified, and the extra memory is one score tensor (``rgprune.ops.prune_by_scores_``).
        Under DDP pass the same scores on every rank. Refuses, like ``check(strict=True)`` and before changing
        anything, to rank masks that disagree with the weights: for magnitude ranking the threshold's first pass
        counts those weights (``Threshold.n_outside``), so the check costs no read of its own."""
        k = self._count_to_prune(fraction, target_density)
        if self.sharded or scores is not None:  # these thresholds do not read the weights' pruned entries
            self.check(strict=True)
        try:
            result = self._prune_k(k, scores, bits)
        except ops.NaNSurvivorsError as exc:  # the op numbers the tensors; the user knows the parameters
            raise exc.named(self.names) from None
        self._masks_generation += 1  # the words changed in place
        self._warn_if_layers_emptied(result.stats.counts)
        return PruneReport(k, self.density(), result.threshold, result.stats)

    def _prune_k(self, k: int, scores, bits: int) -> ops.PruneResult:
        """Prune the ``k`` lowest-ranked survivors (``prune``'s body, after its checks); returns the op's result."""
        with torch.no_grad():
            weights = self._weights()
            score_list = self._score_tensors(scores, weights) if scores is not None else None
            if self.sharded:  # exact global threshold; ties in model order (FSDP2 shards are row blocks)
                result = distributed.prune_global_distributed_(
                    weights, self.masks.words, k, self.process_group, bits, tie_order="parameter"
                )
                stats = distributed.all_reduce_stats(result.stats, self.process_group)
                result = ops.PruneResult(result.threshold, stats)
            else:
                if self.process_group is not None:  # replicated (DDP): every rank must prune the same model
                    distributed.check_replicated(
                        [k, self.num_survivors, self.num_weights],
                        "the pruned models' k, survivors and size",
                        self.process_group,
                        self.masks.words[0].device,
                    )
                if score_list is None:  # the threshold's read-only passes run on the cached storage order
                    threshold = ops.global_magnitude_threshold(*self._storage_order(weights), k)
                    if threshold.n_outside:
                        self.check(strict=True)  # names the tensors and raises
                    result = ops.PruneResult(
                        threshold, ops.apply_threshold_(weights, self.masks.words, threshold, bits)
                    )
                else:
                    result = ops.prune_by_scores_(score_list, self.masks.words, k, weights, bits)
        return result

    def _warn_if_layers_emptied(self, counts: torch.Tensor) -> None:
        """Warn, once per tensor, when global ranking has removed every weight of a selected tensor: the layer
        then passes nothing on (layer collapse), which a model reading through it cannot train around. A tensor
        with no weights at all (``p.numel()`` is the global size, also of a sharded DTensor) had none to lose."""
        sizes = [p.numel() for p in self.params]
        emptied = [
            n for n, c, size in zip(self.names, counts.tolist(), sizes) if c == 0 and size and n not in self._emptied
        ]
        if not emptied:
            return
        self._emptied.update(emptied)
        warnings.warn(
            f"global pruning has removed every weight of {emptied[:4]}{' ...' if len(emptied) > 4 else ''}: "
            f"the layer passes no signal now, and what reads through it (e.g. a classifier behind an emptied "
            f"pooler) sees a constant. Tensors whose weights are far smaller than the rest (an untrained pooler) "
            f"go first; keep them dense with exclude=[...] (rgprune imp --exclude)",
            RuntimeWarning,
            stacklevel=3,
        )

    def stats(self, bits: int = 12) -> ops.MagnitudeStats:
        """Statistics of the current survivors (histogram, per-tensor count, Σ|w|, Σw², NaN count); over all
        ranks when sharded."""
        with torch.no_grad():
            stats = ops.magnitude_histogram(self._weights(), self.masks.words, bits)
            return distributed.all_reduce_stats(stats, self.process_group) if self.sharded else stats

    def apply_masks(self) -> None:
        """Zero the pruned weights (e.g. after loading weights from elsewhere)."""
        with torch.no_grad():
            ops.apply_masks_(self._weights(), self.masks.words)

    def check(self, strict: bool = False) -> dict[str, int]:
        """The weights outside the masks that are not 0 (they grew back: trained without ``attach``, or
        loaded from elsewhere), as {parameter name: count}; empty when masks and weights agree. One read of
        the weights. Warns when some are found, or with ``strict`` raises ValueError (``prune`` does)."""
        with torch.no_grad():
            counts = self._global_counts(ops.count_outside_masks(*self._storage_order(self._weights())))
        grown = {name: c for name, c in zip(self.names, counts) if c}
        if grown:
            message = (
                f"{sum(grown.values())} weights outside the masks are not 0 (e.g. "
                f"{dict(list(grown.items())[:3])}): they grew back since the masks were last applied, so "
                f"density() ({self.density():.4f}) no longer describes the model. Keep the masks applied "
                f"during training with pruner.attach(optimizer), or zero them now with "
                f"pruner.apply_masks()"
            )
            if strict:
                raise ValueError(message + " before pruning")
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        return grown

    # ---- keeping masks applied during training ------------------------------------------------------
    def masked_tensors(self, optimizer) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """What ``attach(optimizer)`` re-masks after each step, with the mask of each: the weights plus every
        optimizer state tensor shaped like its weight (momentum, Adam moments), in whatever layout.
        ``optimizer`` may be wrapped, as for ``attach``."""
        optimizer = hookable_optimizer(optimizer)
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

    def _storage_order(self, tensors, masks=None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Storage views of ``tensors`` (masked by ``masks``, default ``self.masks``) and their masks in storage
        order, converted once per mask change for weights in permuted layouts (``rgprune.kernels.layout``)."""
        masks = self.masks.words if masks is None else masks
        return self._storage_masks.storage_order(tensors, masks, self._masks_generation)

    def _reapply(self, optimizer) -> None:
        """The step hook: zero the pruned weights and optimizer state in one ``apply_masks_`` call."""
        with torch.no_grad():
            ops.apply_masks_(*self._storage_order(*self.masked_tensors(optimizer)))

    @property
    def attached(self) -> bool:
        """Whether an ``attach`` hook is installed on an optimizer that still exists."""
        return any(ref() is not None for ref, _ in self._attached)

    def attach(self, optimizer):
        """Re-apply the masks after every ``optimizer.step()`` (a step post-hook), zeroing pruned weights
        and their optimizer state in one ``apply_masks_`` call. Returns a handle with ``.remove()``.

        ``optimizer`` is a ``torch.optim.Optimizer`` or a wrapper that exposes the one it wraps as
        ``.optimizer`` (Accelerate's ``AcceleratedOptimizer``, as Hugging Face Trainer uses): the hook goes
        on the innermost optimizer that runs step hooks. Attaching twice to one optimizer, or while another
        attached pruner keeps masks on some of the same parameters, is refused (their masks would fight)."""
        target = hookable_optimizer(optimizer)
        ours = {id(p) for p in self.params}
        if not any(id(p) in ours for group in target.param_groups for p in group["params"]):
            raise ValueError(
                "the optimizer does not update any of the pruned parameters; build it from "
                "this model's parameters (after model.to(device))"
            )
        if any(ref() is target for ref, _ in self._attached):
            raise ValueError(
                "this pruner is already attached to this optimizer: a second hook would only repeat "
                "the first; call detach() first to re-attach"
            )
        for other in list(_ATTACHED):
            if other is not self and other.attached and ours & {id(p) for p in other.params}:
                raise ValueError(
                    "another GlobalMagnitudePruner is attached to an optimizer of some of the same "
                    "parameters: two pruners would keep different masks on them. Use one pruner, or "
                    "call detach() on the other first"
                )

        def after_step(opt, args, kwargs):  # holds the pruner: it keeps working while the optimizer lives
            self._reapply(opt)

        handle = target.register_step_post_hook(after_step)
        self._attached.append((weakref.ref(target), handle))
        _ATTACHED.add(self)
        self._reapply(target)  # zero any state that already exists
        return handle

    def detach(self) -> None:
        """Remove every optimizer hook installed by ``attach``."""
        for _, handle in self._attached:
            handle.remove()
        self._attached.clear()
        _ATTACHED.discard(self)

    # ---- rewinding -----------------------------------------------------------------------------------
    def rewind(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Set the model to ``state_dict`` (e.g. saved at initialization or at an early step) and keep the
        pruned weights at 0. ``state_dict`` must hold every selected parameter; parameters and buffers
        it also holds are restored too. A bad ``state_dict`` raises ValueError and changes nothing."""
        model = unwrap_model(self.model)
        state_dict = unwrap_state_dict(self.model, state_dict)  # the names carry no wrapper prefix
        missing = [n for n in self.names if n not in state_dict]
        if missing:
            raise ValueError(
                f"rewind state_dict lacks {len(missing)} pruned parameters, e.g. {missing[:3]}; save "
                f"it with model.state_dict() of the same architecture"
            )
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
                    raise ValueError(
                        f"rewind: {name} has shape {tuple(value.shape)}, the model's is {tuple(own[name].shape)}"
                    )
            for name, value in state_dict.items():
                own[name].copy_(value)
        self.apply_masks()

    # ---- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        # a snapshot: prune() rewrites the mask words in place, and on the CPU MaskSet.state_dict() returns
        # those very tensors, so without the clone a saved state would change with every later prune
        return {"names": list(self.names), "selection": dict(self.selection), "masks": self.masks.clone().state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        """Restore masks saved by ``state_dict`` (the selected parameters must match) and apply them."""
        masks = MaskSet.from_state_dict(state["masks"])
        if list(state.get("names", masks.names)) != self.names:
            raise ValueError(
                "saved pruner state is for other parameters: "
                f"{len(masks.names)} saved vs {len(self.names)} selected here"
            )
        shapes = [w.shape for w in self._weights()]  # the local shards' when sharded
        if list(masks.shapes) != list(shapes):
            raise ValueError("saved masks do not fit the parameters' shapes")
        # clone: MaskSet.from_state_dict adopts the saved tensors, so without it two pruners loaded from
        # one in-memory state would share mask words and pruning one would prune the other's masks
        self.masks = masks.clone().to(self.params[0].device)
        self.apply_masks()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_attached"] = []  # optimizer hooks belong to this process's optimizer; re-attach after loading
        state["_storage_masks"] = StorageMaskCache()
        return state

    # ---- torch.nn.utils.prune interop (rgprune.prune) ---------------------------------------------------
    def module_param_pairs(self) -> list[tuple[torch.nn.Module, str]]:
        """The pruned parameters as (module, name) pairs, in the order of ``names``: the ``parameters`` of
        ``torch.nn.utils.prune.global_unstructured`` / ``rgprune.prune.global_unstructured``."""
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
        self.masks.to_torch_prune(self.module_param_pairs())

    @classmethod
    def from_torch_prune(cls, model: torch.nn.Module, **selection) -> GlobalMagnitudePruner:
        """Adopt a model pruned with torch.nn.utils.prune: its masks are read, the reparametrization is
        made permanent (``prune.remove``), and a pruner with the same masks is returned
        (``rgprune.torch_prune_adoption.adopt``, as ``rgprune.prune.adopt``: a pattern that matches no
        parameter is refused before anything changes; if the pruner cannot be made, the model is left as it
        was)."""
        return adopt(model, cls, **selection)

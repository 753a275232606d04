"""rgprune: fast exact global magnitude pruning, iterative magnitude pruning (lottery tickets) and the
renormalization-group flow it induces.

Public API (the heavier parts — models, data, IMP, RG analysis — are submodules imported on use):

* ``backend()``: which kernel implementation is active. The typed entry points live in ``rgprune.ops``.
* kernels over lists of tensors (any dense memory layout): ``magnitude_histogram``,
  ``global_magnitude_threshold``, ``apply_threshold_``, ``apply_masks_``, ``prune_global_``,
  ``radix_histogram`` (also as ``torch.ops.rgprune.*``), and ``prune_by_scores_`` (rank one list, prune
  another). Across torch.distributed ranks: ``rgprune.distributed``.
* ``MaskSet``: bit-packed masks; ``GlobalMagnitudePruner``: the drop-in pruner for training code.
* ``rgprune.prune``: torch.nn.utils.prune's API (``global_unstructured`` ...) ranked by the kernels.
* ``rgprune.integrations.transformers``: a Hugging Face Trainer callback.
"""

from rgprune.masks import MaskSet
from rgprune.ops import (
    MagnitudeStats,
    PruneResult,
    Threshold,
    apply_masks_,
    apply_threshold_,
    backend,
    global_magnitude_threshold,
    magnitude_histogram,
    prune_by_scores_,
    prune_global_,
    radix_histogram,
)
from rgprune.pruner import GlobalMagnitudePruner, PruneReport

__version__ = "0.1.0"

__all__ = [
    "MagnitudeStats",
    "GlobalMagnitudePruner",
    "MaskSet",
    "PruneReport",
    "PruneResult",
    "Threshold",
    "apply_masks_",
    "apply_threshold_",
    "backend",
    "global_magnitude_threshold",
    "magnitude_histogram",
    "prune_by_scores_",
    "prune_global_",
    "radix_histogram",
]

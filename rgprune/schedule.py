"""How many weights a prune of a fraction removes: the one definition of k = round(fraction × survivors).

Everything that prunes a fraction of the survivors asks ``prune_count``: ``GlobalMagnitudePruner.prune``,
``rgprune.prune``'s float ``amount``, the benchmark's IMP rounds, ``rgprune prune-demo``, and the rescaled
observables of a trace that knows only its pruning fraction. It imports nothing from rgprune, so any module
can import it without a cycle.
"""

from __future__ import annotations

import numbers

__all__ = ["prune_count"]


def prune_count(fraction, survivors) -> int:
    """The number of survivors a prune of ``fraction`` removes: ``round(fraction * survivors)``.

    This is torch.nn.utils.prune's rule for a float ``amount`` (``_compute_nparams_toprune``), with Python's
    ``round``, which rounds half to even: 0.5 × 5 = 2.5 gives 2 and 0.5 × 7 = 3.5 gives 4. It matters because
    rgprune's masks must equal torch.prune's on the same weights and amount (up to ties): a count rounded half
    up would prune one weight more whenever fraction × survivors ends in .5, and the masks would differ. The
    product is formed in the fraction's own type, as torch forms it (a NumPy float32 rounds as torch's does).

    ``fraction``: a real number in [0, 1], not a bool; ``survivors``: an int >= 0. ValueError otherwise.

    >>> prune_count(0.5, 5), prune_count(0.5, 7), prune_count(0.2, 1000)
    (2, 4, 200)
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    if isinstance(survivors, bool) or not isinstance(survivors, numbers.Integral) or survivors < 0:
        raise ValueError(f"survivors must be an int >= 0, got {survivors!r}")
    return int(round(fraction * int(survivors)))

"""Ticket transfer: task A's winning ticket retrained on task B, and its link to the RG flows.

One module per job:

* ``ticket``: ``transfer_ticket`` (A's round-n ticket trained on B's task exactly as B's own round n was) and
  ``random_mask_baseline`` (B's random-mask accuracy at round n: the run's own, else trained the same way);
* ``statistics``: ``transfer_statistics``, the normalized transfer gain averaged to tasks and the Mantel tests
  (plain, and partial on the distance between the dense models) of flow distance against it;
* ``matrix``: ``transfer_matrix``, every ordered pair of several runs, resumable, with transfer.json / .md.

A target run is rebuilt from its directory (config and inputs.json, checked); a run on datasets or a model factory
its program passed to ``run_imp`` (``given-*:NAME``, ``given:NAME``) is refused up front unless they are passed
again (``train=``, ``test=``, ``model_fn=``; ``transfer_matrix(given={run: {...}})``): the command line cannot.

The claim tested (Redman et al. 2022): the closer two IMP flows, the better their tickets transfer, i.e. a
negative correlation between flow distance and transfer gain, fixed as the one-sided alternative in advance.

Example (``rgprune transfer RUN_A RUN_B RUN_C --out runs/transfer``)::

    >>> from rgprune.transfer import transfer_statistics
    >>> accuracy = [[0.90, 0.80, 0.60], [0.85, 0.90, 0.65], [0.60, 0.62, 0.80]]   # row ticket on column task
    >>> distance = [[0, 1, 3], [1, 0, 2.5], [3, 2.5, 0]]                           # flow distances
    >>> dense = [[0, 1, 1], [1, 0, 1.5], [1, 1.5, 0]]                              # dense models' distances
    >>> stats = transfer_statistics(accuracy, [0.5, 0.5, 0.5], ["a", "b", "c"], distance, dense)
    >>> round(stats["gain"][0][1], 3), stats["mantel"]["p_value"], stats["mantel"]["smallest_p"]  # 3 tasks: p >= 1/6
    (0.75, 0.16666666666666666, 0.16666666666666666)
"""

from rgprune.transfer.matrix import transfer_matrix
from rgprune.transfer.statistics import task_average, transfer_statistics
from rgprune.transfer.ticket import (
    RANDOM_MASK,
    REPORT_FILE,
    RESULT_FILE,
    BaselineResult,
    TransferResult,
    random_mask_baseline,
    transfer_ticket,
    write_transfer_result,
)

__all__ = [
    "RANDOM_MASK",
    "REPORT_FILE",
    "RESULT_FILE",
    "BaselineResult",
    "TransferResult",
    "random_mask_baseline",
    "task_average",
    "transfer_matrix",
    "transfer_statistics",
    "transfer_ticket",
    "write_transfer_result",
]

"""The memory subprocess: ``python -m rgprune.benchmark.memory_worker JOBS_JSON``.

Each job loads a saved pruning state and measures one method's round in this fresh process (peak RSS minus
RSS before the op, ``measure.peak_rss_during``), so that nothing the parent allocated hides the op's peak.
Prints one line: ``WORKER_MARK`` followed by the results as JSON.
"""

from __future__ import annotations

import gc
import json
import sys

import torch

from rgprune.benchmark.measure import WORKER_MARK, peak_rss_during
from rgprune.benchmark.methods import METHOD_IMPLS, State, warmup


def run_job(job: dict) -> dict:
    """Loads a state, then measures one method's round."""
    data = torch.load(job["state"], weights_only=True)
    state = State(data["round"], data["weights"], data["masks"], data["survivors"], data["fraction"])
    method = METHOD_IMPLS[job["method"]]
    ctx = method.prepare(state, None, None, clone=False)
    measured = peak_rss_during(lambda: method.run(ctx, state.k))
    pruned = state.survivors - sum(int(k.sum()) for k in method.keep(ctx))
    return {"method": job["method"], "round": state.round, **measured, "pruned": pruned, "k": state.k}


def main(jobs_json: str) -> None:
    jobs = json.loads(jobs_json)
    warmup("cpu")
    gc.collect()
    gc.freeze()
    results = []
    for job in jobs:
        gc.collect()
        res = run_job(job)
        res.pop("round")
        results.append(res)
        gc.collect()
    print(WORKER_MARK + json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m rgprune.benchmark.memory_worker JOBS_JSON (started by the benchmark itself)")
    main(sys.argv[1])

"""Small summaries of IMP runs, for committing beside the document (no weights, no run directories).

A run's summary holds its identity (model, task, seed, config), per round the metrics the findings use, and its
``FlowTrace`` in a compact form (each round's 4096-bin histogram cut to its occupied range); what a finding needs
from the checkpoints themselves is computed here once and stored with it: histograms of equal-size random
subsamples of the survivors (finding 3), the retraining part of each step in parameter space and the Gram matrix
of the checkpoints (finding 2), and the distance between two runs' dense models (finding 1).

Summaries are gzipped JSON written atomically (``write_summary``), read back with ``read_summary``.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rgprune._io import atomic_write
from rgprune.imp import RunDir
from rgprune.rg.trace import FlowTrace

__all__ = [
    "checkpoint_steps",
    "compact_trace",
    "dense_distance",
    "expand_trace",
    "read_summary",
    "run_summary",
    "subsampled_trace",
    "survivors",
    "write_summary",
]

#: the per-round metrics a summary keeps
ROUND_FIELDS = ("round", "density", "survivors", "weights", "accuracy", "train_loss", "steps")


def compact_trace(trace: FlowTrace) -> dict:
    """``trace.to_dict()`` with each round's histogram cut to its occupied bins: ``{"offset": first occupied bin,
    "counts": [...]}`` (what ``expand_trace`` reverses exactly)."""
    data = trace.to_dict()
    for entry in data["rounds"]:
        hist = entry["histogram"]
        occupied = [i for i, count in enumerate(hist) if count]
        first, last = (occupied[0], occupied[-1]) if occupied else (0, -1)
        entry["histogram"] = {"offset": first, "counts": hist[first : last + 1], "bins": len(hist)}
    return data


def expand_trace(data: dict) -> FlowTrace:
    """The ``FlowTrace`` of a ``compact_trace`` dict."""
    data = json.loads(json.dumps(data))  # a deep copy: the caller's dict is left as it was
    for entry in data["rounds"]:
        cut = entry["histogram"]
        hist = [0] * cut["bins"]
        hist[cut["offset"] : cut["offset"] + len(cut["counts"])] = cut["counts"]
        entry["histogram"] = hist
    return FlowTrace.from_dict(data)


def write_summary(path: str | os.PathLike, summary: dict) -> None:
    """Write ``summary`` as gzipped JSON (atomically; the gzip header carries no time stamp, so equal summaries
    give equal files)."""
    payload = json.dumps(summary, sort_keys=True, separators=(",", ":")).encode()

    def write(tmp):
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            f.write(payload)

    atomic_write(path, write)


def read_summary(path: str | os.PathLike) -> dict:
    with gzip.open(path, "rt") as f:
        return json.load(f)


def run_summary(run_dir: str | os.PathLike, **identity) -> dict:
    """The summary of a complete IMP run: ``identity`` (e.g. model, task, seed), its config, per-round metrics
    (``ROUND_FIELDS`` and the baselines' accuracies) and its compact trace. ``ValueError`` for an incomplete run."""
    run = RunDir(run_dir)
    summary = run.read_summary()
    if not summary["complete"]:
        raise ValueError(f"{run.path} is not complete ({len(summary['rounds'])} rounds); finish it first")
    rounds = [
        {
            **{k: m.get(k) for k in ROUND_FIELDS},
            "baselines": {name: b["accuracy"] for name, b in m.get("baselines", {}).items()},
            "threshold": (m.get("threshold") or {}).get("magnitude"),
        }
        for m in summary["rounds"]
    ]
    return {
        **identity,
        "name": run.path.name,
        "config": summary["config"],
        "steps_per_epoch": summary["steps_per_epoch"],
        "rounds": rounds,
        "trace": compact_trace(run.load_trace()),
    }


def survivors(run: RunDir, n: int) -> dict[str, torch.Tensor]:
    """Round n's trained weights θ_n of the pruned tensors, with the weights its mask m_n pruned set to 0:
    ``{tensor name: float tensor}`` in the mask's order."""
    weights, masks = run.load_weights(n), run.load_masks(n)
    return {name: weights[name] * keep.reshape(weights[name].shape) for name, keep in zip(masks.names, masks.to_bool())}


def subsampled_trace(run_dir: str | os.PathLike, rounds: Sequence[int], size: int, seed: int) -> FlowTrace:
    """A ``FlowTrace`` of the rounds ``rounds`` of a run, each made of ``size`` of θ_n's surviving weights drawn
    uniformly without replacement (generator seeded from ``(seed, n)``) instead of all of them.

    Each round records the histogram of its sample on the kernels' bins and, as the round's prune, the sample's
    weights at or above the threshold the run pruned θ_n at (its recorded key): so every rescaled observable of
    ``FlowTrace.trajectory`` is computed from ``size`` weights whatever the model's size.
    """
    from rgprune.kernels.format import magnitude_keys, pack_mask
    from rgprune.ops import magnitude_histogram
    from rgprune.train import mix_seed

    run = RunDir(run_dir)
    trace = FlowTrace(["subsample"], [size], fraction=run.read_config().fraction, source=f"{run.path} subsample")
    for n in rounds:
        values = torch.cat([w[w != 0] for w in survivors(run, n).values()])
        if values.numel() < size:
            raise ValueError(f"{run.path} round {n} has {values.numel()} survivors, fewer than the subsample of {size}")
        generator = torch.Generator().manual_seed(mix_seed(seed, n, "subsample") % (1 << 62))
        sample = values[torch.randperm(values.numel(), generator=generator)[:size]].contiguous()
        histogram = magnitude_histogram([sample], [pack_mask(torch.ones(size, dtype=torch.bool))]).histogram
        key = int(run.read_observables(n)["threshold"]["key"])
        kept = sample[magnitude_keys(sample) >= key]
        trace.record(
            n,
            histogram,
            torch.tensor([kept.numel()]),
            torch.tensor([float(kept.abs().sum())]),
            torch.tensor([float((kept.double() ** 2).sum())]),
            threshold_key=key,
        )
    return trace


def checkpoint_steps(run_dir: str | os.PathLike) -> list[dict]:
    """Per step n -> n+1 of a run, from its checkpoints: ``retraining`` = ‖θ_{n+1} − m_{n+1}⊙θ_n‖ / ‖m_{n+1}⊙θ_n‖
    (how far retraining moves the pruned weights θ_n, all in the pruned tensors; with rewinding this includes the
    jump back to the rewind point) and ``rewound`` = ‖θ_{n+1} − m_{n+1}⊙θ_k‖ / ‖m_{n+1}⊙θ_k‖ (how far training
    moves the rewound ticket). float64 sums, one tensor at a time."""
    run = RunDir(run_dir)
    last = run.complete_rounds(run.read_config().rounds)
    rewind = run.load_rewind()
    out = []
    previous = run.load_weights(0)
    for n in range(last):
        masks, after = run.load_masks(n + 1), run.load_weights(n + 1)
        sums = np.zeros(4)
        for name, keep in zip(masks.names, masks.to_bool()):
            keep = keep.reshape(after[name].shape)
            new = after[name].double()
            pruned_old, pruned_rewind = previous[name].double() * keep, rewind[name].double() * keep
            sums += [
                float((new - pruned_old).pow(2).sum()),
                float(pruned_old.pow(2).sum()),
                float((new - pruned_rewind).pow(2).sum()),
                float(pruned_rewind.pow(2).sum()),
            ]
        out.append(
            {
                "round": n + 1,
                "retraining": float(np.sqrt(sums[0] / sums[1])),
                "rewound": float(np.sqrt(sums[2] / sums[3])),
            }
        )
        previous = after
    return out


def dense_distance(run_a: str | os.PathLike, run_b: str | os.PathLike) -> float:
    """‖θ_0^a − θ_0^b‖ / sqrt(‖θ_0^a‖ ‖θ_0^b‖) over the prunable tensors of two runs' dense trained models (round
    0): how far training on two tasks took one architecture (from the same initialization, for one seed)."""
    a, b = RunDir(run_a), RunDir(run_b)
    names = a.load_masks(0).names
    if list(names) != list(b.load_masks(0).names):
        raise ValueError(f"{a.path} and {b.path} prune other tensors: dense models of one architecture only")
    wa, wb = a.load_weights(0), b.load_weights(0)
    diff = sum(float((wa[n].double() - wb[n].double()).pow(2).sum()) for n in names)
    norm_a = sum(float(wa[n].double().pow(2).sum()) for n in names)
    norm_b = sum(float(wb[n].double().pow(2).sum()) for n in names)
    return float(np.sqrt(diff) / np.sqrt(np.sqrt(norm_a * norm_b)))


#: the folder of a finding's per-run summaries (small JSON, never weights) under the summaries root
RUN_SUMMARIES = "run-summaries"


def summary_path(root: str | os.PathLike, finding: str, name: str) -> Path:
    """Where the summary of run ``name`` of ``finding`` goes under the summaries root."""
    return Path(root) / finding / RUN_SUMMARIES / f"{name}.json.gz"


def run_summary_paths(root: str | os.PathLike, finding: str) -> list[Path]:
    """The run summaries of ``finding`` under the summaries root, in name order."""
    return sorted((Path(root) / finding / RUN_SUMMARIES).glob("*.json.gz"))

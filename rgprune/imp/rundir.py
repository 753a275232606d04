"""``RunDir``: the on-disk layout of an IMP run, and the only code that knows it.

Every file is written to a temp file and renamed into place (``rgprune._io.atomic_write``)::

    config.json                  the IMPConfig (written first; a resume must match it)
    inputs.json                  what the run started from: the task's spec and data fingerprint, the model's
                                 spec and the SHA-256 of its weight files (a resume must match it too)
    init.safetensors             θ_init, the full state dict before training
    rewind.safetensors           θ_k, the rewind point; absent when it is θ_init (rewind_step = 0): then
                                 init.safetensors's metadata says ``"rewind": "init"`` and ``load_rewind``
                                 reads θ_init (a run made before this, with both files, loads as it did)
    round-XX/weights.safetensors θ_n, the trained weights (weights pruned by m_n are 0)
    round-XX/masks.safetensors   m_n (MaskSet.save), the mask θ_n was trained with
    round-XX/observables.json    the RG observables of θ_n, from the PruneReport of pruning θ_n (below)
    round-XX/metrics.json        accuracy, density, per-layer densities, the threshold that made m_n,
                                 baselines, timings; written last: a round is complete exactly when this
                                 file exists
    metrics.json                 all complete rounds and their baselines (a summary, rewritten per round)
    trace.json                   the run's rgprune.rg.FlowTrace (rewritten per round)
    flow.json, report.md, *.png  the flow report of a complete run (rgprune.rg.report.write_flow_report)
    run.log                      what the run printed (rgprune.imp.progress): per-epoch and per-round lines,
                                 each prefixed with its UTC time; appended, not replaced, so a resumed run
                                 continues it ("resumed at round N"). Not part of the run's result: resume
                                 never reads it, and a crash loses at most the line being written
    .lock                        held (flock) by the process writing the run

``observables.json`` of round n: ``histogram_before``, θ_n's survivors (mask m_n) on the 4096 logarithmic
bins of the threshold pass (``report.threshold.histogram``); ``counts_after``, ``abs_sums_after``,
``sq_sums_after``: per tensor, the survivors kept for round n+1 (``report.stats``); ``threshold``: the
threshold of that prune; ``density_after``. Round n of ``trace.json`` is exactly this (the semantics of
``FlowTrace.record_prune``), so the trace is assembled without another pass over the weights.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rgprune._io import atomic_write, atomic_write_json, directory_lock, remove_temp_files
from rgprune.imp.config import CONFIG_VERSION, ConfigError, IMPConfig
from rgprune.masks import MaskSet

__all__ = ["RunDir", "RunNotFoundError", "observables_record", "threshold_record"]


class RunNotFoundError(ConfigError, FileNotFoundError):
    """A directory that holds no IMP run (no config.json)."""


def threshold_record(threshold) -> dict:
    """A ``Threshold`` (the kernels' result) as JSON: k, key, magnitude (None when infinite) and the counts."""
    magnitude = float(threshold.magnitude)
    return {
        "k": int(threshold.k),
        "key": int(threshold.key),
        "magnitude": magnitude if math.isfinite(magnitude) else None,
        "n_below": int(threshold.n_below),
        "n_ties": int(threshold.n_ties),
        "n_equal": int(threshold.n_equal),
        "n_survivors": int(threshold.n_survivors),
    }


def observables_record(n: int, pruner, report) -> dict:
    """The RG observables of round n from the ``PruneReport`` of pruning θ_n (no extra pass over the weights)."""
    stats = report.stats
    return {
        "round": n,
        "tensor_names": list(pruner.names),
        "tensor_sizes": pruner.masks.numels(),
        "dtype": str(pruner.params[0].dtype).removeprefix("torch."),
        "bits": 12,
        "threshold": threshold_record(report.threshold),
        "histogram_before": [int(x) for x in report.threshold.histogram.tolist()],
        "counts_after": [int(x) for x in stats.counts.tolist()],
        "abs_sums_after": [float(x) for x in stats.abs_sums.tolist()],
        "sq_sums_after": [float(x) for x in stats.sq_sums.tolist()],
        "density_after": report.density,
    }


def _read_json(path: Path):
    with open(path) as f:
        return json.load(f)


class RunDir:
    """The run directory of one IMP run at ``path`` (see the module docstring for the layout).

    Reading (``read_config``, ``complete_rounds``, ``read_round_metrics``, ``load_weights``, ``load_masks``,
    ``load_rewind``, ``checkpoints``, ``load_trace``, ``read_summary``) works on any run directory. Writing
    is for the process that holds ``lock()``, after ``prepare(config)``.
    """

    _CONFIG, _INPUTS, _INIT, _REWIND, _SUMMARY = (
        "config.json",
        "inputs.json",
        "init.safetensors",
        "rewind.safetensors",
        "metrics.json",
    )
    _LOG = "run.log"
    #: the safetensors metadata of init.safetensors that marks θ_init as the rewind point too
    _REWIND_KEY, _REWIND_IS_INIT = "rewind", "init"
    _ROUND_PREFIX = "round-"
    _WEIGHTS, _MASKS, _OBSERVABLES, _METRICS = (
        "weights.safetensors",
        "masks.safetensors",
        "observables.json",
        "metrics.json",
    )

    def __init__(self, path: str | os.PathLike):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"a run directory is a path (str or os.PathLike), got {type(path).__name__}")
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- paths ---------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / self._CONFIG

    @property
    def inputs_path(self) -> Path:
        return self.path / self._INPUTS

    @property
    def init_path(self) -> Path:
        return self.path / self._INIT

    @property
    def rewind_path(self) -> Path:
        return self.path / self._REWIND

    @property
    def summary_path(self) -> Path:
        return self.path / self._SUMMARY

    @property
    def log_path(self) -> Path:
        """run.log: the lines the run printed (``append_log``)."""
        return self.path / self._LOG

    def _flow_report_path(self, key: str) -> Path:
        from rgprune.rg.report import FLOW_REPORT_FILES  # the run directory is also its flow report's directory

        return self.path / FLOW_REPORT_FILES[key]

    @property
    def trace_path(self) -> Path:
        return self._flow_report_path("trace")

    @property
    def flow_path(self) -> Path:
        """flow.json of the flow report, written when the run completes."""
        return self._flow_report_path("flow")

    @property
    def report_path(self) -> Path:
        """report.md of the flow report, written when the run completes."""
        return self._flow_report_path("report")

    def round_dir(self, n: int) -> Path:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"a round number is an int >= 0, got {n!r}")
        return self.path / f"{self._ROUND_PREFIX}{n:02d}"

    def weights_path(self, n: int) -> Path:
        return self.round_dir(n) / self._WEIGHTS

    def masks_path(self, n: int) -> Path:
        return self.round_dir(n) / self._MASKS

    def _observables_path(self, n: int) -> Path:
        return self.round_dir(n) / self._OBSERVABLES

    def _metrics_path(self, n: int) -> Path:
        return self.round_dir(n) / self._METRICS

    def round_numbers(self) -> list[int]:
        """The rounds that have a folder (complete or not), in increasing order."""
        numbers = []
        for folder in self.path.glob(f"{self._ROUND_PREFIX}*"):
            suffix = folder.name[len(self._ROUND_PREFIX) :]
            if folder.is_dir() and suffix.isdigit():
                numbers.append(int(suffix))
        return sorted(numbers)

    def checkpoints(self) -> list[Path]:
        """The per-round weight checkpoints θ_n (safetensors state dicts) in round order: every round folder
        that holds one, complete or not (a checkpoint is written whole or not at all)."""
        return [self.weights_path(n) for n in self.round_numbers() if self.weights_path(n).is_file()]

    # ---- what the directory holds --------------------------------------------------------------------
    def holds_run(self) -> bool:
        return self.config_path.is_file()

    def read_config(self) -> IMPConfig:
        """The run's IMPConfig; ``RunNotFoundError`` (a FileNotFoundError) when the directory holds no run."""
        if not self.holds_run():
            raise RunNotFoundError(f"{self.path} holds no IMP run (no {self._CONFIG})")
        try:
            return IMPConfig.from_dict(_read_json(self.config_path))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise ConfigError(f"{self.config_path} is not a readable IMP config ({exc})") from None

    def read_inputs(self) -> dict | None:
        """inputs.json (``RoundTrainer.inputs()``: the task's and the model's identity), None for a run made before
        runs recorded it."""
        return _read_json(self.inputs_path) if self.inputs_path.is_file() else None

    def complete_rounds(self, rounds: int) -> int:
        """The last round n <= ``rounds`` such that rounds 0..n are all complete (-1 if none)."""
        last = -1
        if not self.has_rewind():
            return last
        while last < rounds and self._metrics_path(last + 1).is_file():
            last += 1
        return last

    def rewind_is_init(self) -> bool:
        """Whether the rewind point θ_k is θ_init itself, saved once: no rewind.safetensors, and init.safetensors's
        metadata says so (``save_init(init, None)``, a run with rewind_step = 0)."""
        if self.rewind_path.is_file() or not self.init_path.is_file():
            return False
        from safetensors import safe_open

        with safe_open(str(self.init_path), framework="pt") as f:
            return (f.metadata() or {}).get(self._REWIND_KEY) == self._REWIND_IS_INIT

    def has_rewind(self) -> bool:
        """Whether θ_k is saved: rewind.safetensors, or init.safetensors marked as the rewind point too."""
        return self.rewind_path.is_file() or self.rewind_is_init()

    def read_round_metrics(self, n: int) -> dict:
        return _read_json(self._metrics_path(n))

    def read_observables(self, n: int) -> dict:
        return _read_json(self._observables_path(n))

    def read_summary(self) -> dict:
        """metrics.json: the run's description and the metrics of its complete rounds (``"rounds"``)."""
        if not self.summary_path.is_file():
            raise RunNotFoundError(f"{self.path} holds no IMP run summary (no {self._SUMMARY})")
        return _read_json(self.summary_path)

    def load_trace(self):
        """The run's ``rgprune.rg.trace.FlowTrace``, recorded during the run."""
        from rgprune.rg.trace import FlowTrace

        if not self.trace_path.is_file():
            raise RunNotFoundError(
                f"{self.path} holds no recorded flow ({self.trace_path.name}): not an IMP run "
                f"directory with a complete round"
            )
        return FlowTrace.load(self.trace_path)

    # ---- state dicts and masks -----------------------------------------------------------------------
    @staticmethod
    def save_state(
        path: str | os.PathLike, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
    ) -> None:
        """Save a state dict as safetensors (on the CPU, contiguous), atomically; ``metadata``: extra str entries of
        the file's header."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        header = {"rgprune": "state_dict", **(metadata or {})}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))

    @staticmethod
    def load_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
        """A state dict saved by ``save_state`` (on the CPU)."""
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")

    def load_init(self) -> dict[str, torch.Tensor]:
        return self.load_state(self.init_path)

    def load_rewind(self) -> dict[str, torch.Tensor]:
        """θ_k: rewind.safetensors, or θ_init when the run saved it as the rewind point too (rewind_step = 0)."""
        if not self.rewind_path.is_file() and self.rewind_is_init():
            return self.load_init()
        return self.load_state(self.rewind_path)

    def load_weights(self, n: int) -> dict[str, torch.Tensor]:
        return self.load_state(self.weights_path(n))

    def load_masks(self, n: int) -> MaskSet:
        return MaskSet.load(self.masks_path(n))

    # ---- writing (the process holding the lock) ------------------------------------------------------
    def lock(self) -> contextlib.AbstractContextManager[None]:
        """An advisory lock on the run directory (created if missing): two processes must not write one run at
        once. The kernel drops it when the process dies, so a killed run never leaves the directory locked."""
        busy = (
            f"{self.path} is being written by another running IMP process; wait for it or use another output directory"
        )
        return directory_lock(self.path, busy=busy, error=ConfigError)

    def prepare(self, config: IMPConfig, inputs: Mapping[str, Any] | None = None) -> int:
        """Make the directory ready to run ``config`` on ``inputs`` (``RoundTrainer.inputs()``): write config.json and
        inputs.json into a new (or empty) directory, or check that the run it holds has the same config and inputs
        (``ConfigError`` otherwise, nothing touched; a run without inputs.json, made before runs recorded it, gets
        one); then remove the leftovers of an interrupted round. Returns the last complete round (-1 if none)."""
        if self.holds_run():
            try:
                saved = self.read_config()
            except ConfigError as exc:
                raise ConfigError(f"{exc}; use another output directory") from None
            diff = saved.differences(config)
            if diff:
                lines = "; ".join(f"{k}: saved {a!r}, given {b!r}" for k, (a, b) in diff.items())
                raise ConfigError(
                    f"{self.path} holds an IMP run with a different config, refusing to resume it. "
                    f"Differing fields: {lines}. Use another output directory, or the saved config "
                    f"(IMPConfig.from_dict(json.load(open('{self.config_path}'))))"
                )
            if inputs is not None:
                self._check_inputs(inputs)
        else:
            foreign = [p.name for p in self.path.iterdir() if not p.name.startswith(".")] if self.path.exists() else []
            if foreign:
                raise ConfigError(
                    f"{self.path} is not empty and holds no IMP run (no {self._CONFIG}; found "
                    f"{sorted(foreign)[:5]}); use a new or empty output directory"
                )
            atomic_write_json(self.config_path, {"version": CONFIG_VERSION, **config.to_dict()})
        if inputs is not None and not self.inputs_path.is_file():
            atomic_write_json(self.inputs_path, dict(inputs))
        last = self.complete_rounds(config.rounds)
        self._clean_partial(last)
        return last

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        """Refuse to resume on data or weights other than those the run started from (inputs.json)."""
        saved = self.read_inputs()
        if saved is None:
            return
        task, model = saved.get("task", {}), saved.get("model", {})
        if task != inputs["task"]:
            raise ConfigError(
                f"{self.path} holds a run on other data, refusing to resume it: task "
                f"{task.get('spec')!r} had data fingerprint {task.get('fingerprint')}, the data given "
                f"now ({inputs['task']['spec']!r}) has {inputs['task']['fingerprint']} (files changed, "
                "or other preprocessing). Use another output directory, or the data the run started "
                "with"
            )
        if model != inputs["model"]:
            raise ConfigError(
                f"{self.path} holds a run that started from other model weights, refusing to resume "
                f"it: saved {model}, given {dict(inputs['model'])}. Use another output directory, or "
                "the weights the run started from"
            )

    def _clean_partial(self, last: int) -> None:
        """Remove the leftovers of an interrupted round: temp files (atomic_write's ``.tmp-*``) and the round
        folders after the last complete one."""
        remove_temp_files(self.path, *(self.round_dir(n) for n in self.round_numbers()))
        for n in self.round_numbers():
            if n > last:
                shutil.rmtree(self.round_dir(n))

    def append_log(self, lines: str | list[str], when: datetime.datetime | None = None) -> None:
        """Append ``lines`` to run.log, each prefixed with ``when`` (default: now) in UTC, in one write of a file
        opened for appending and closed at once: a crash (or kill) loses at most this write, never a line
        written before, and a resumed run appends after the lines of the interrupted one. run.log is the one
        file of the run directory not replaced atomically: it is a log, not part of the run's result."""
        if isinstance(lines, str):
            lines = [lines]
        stamp = (when or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
        prefix = stamp.strftime("%Y-%m-%d %H:%M:%SZ")
        text = "".join(f"{prefix}  {line}\n" for line in lines)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(text)

    def save_init(self, init: Mapping[str, torch.Tensor], theta_k: Mapping[str, torch.Tensor] | None) -> None:
        """θ_init and the rewind point θ_k, saved once round 0 has trained. ``theta_k`` None: θ_k is θ_init
        (rewind_step = 0), saved once: init.safetensors alone, its metadata marking it as the rewind point too (one
        atomic write, so θ_k is saved exactly when θ_init is)."""
        if theta_k is None:
            self.save_state(self.init_path, init, {self._REWIND_KEY: self._REWIND_IS_INIT})
            return
        self.save_state(self.init_path, init)
        self.save_state(self.rewind_path, theta_k)

    def save_checkpoint(self, n: int, state: Mapping[str, torch.Tensor], masks: MaskSet) -> None:
        """θ_n and m_n, the first files of round n."""
        self.round_dir(n).mkdir(parents=True, exist_ok=True)
        self.save_state(self.weights_path(n), state)
        masks.save(self.masks_path(n))

    def save_observables(self, n: int, record: Mapping[str, Any]) -> None:
        atomic_write_json(self._observables_path(n), record)

    def save_round_metrics(self, n: int, metrics: Mapping[str, Any]) -> None:
        """Round n's metrics.json, written last: it marks the round complete."""
        atomic_write_json(self._metrics_path(n), metrics)

    def write_summary(self, summary: Mapping[str, Any], fraction: float) -> None:
        """metrics.json (``summary``, whose ``"rounds"`` are the complete rounds' metrics) and trace.json (the
        run's FlowTrace, assembled from those rounds' observables.json)."""
        from rgprune.rg.trace import FlowTrace

        atomic_write_json(self.summary_path, summary)
        rounds = summary["rounds"]
        observables = [self.read_observables(m["round"]) for m in rounds]
        first = observables[0]
        trace = FlowTrace(
            first["tensor_names"],
            first["tensor_sizes"],
            dtype=first["dtype"],
            bits=first["bits"],
            fraction=fraction,
            source=str(self.path),
        )
        for metrics, o in zip(rounds, observables):
            extra = {"accuracy": metrics["accuracy"], "train_density": metrics["density"]}
            for name, b in metrics.get("baselines", {}).items():
                extra[f"{name}_accuracy"] = b["accuracy"]
            trace.record(
                metrics["round"],
                torch.tensor(o["histogram_before"]),
                torch.tensor(o["counts_after"]),
                torch.tensor(o["abs_sums_after"], dtype=torch.float64),
                torch.tensor(o["sq_sums_after"], dtype=torch.float64),
                extra,
                threshold_key=o["threshold"]["key"],
            )
        trace.save(self.trace_path)

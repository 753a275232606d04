"""``--model`` takes the model specs of ``rgprune imp``: ``torchvision:NAME``, ``hf:DIR`` and ``module:pkg.mod:fn``,
parsed and built by ``rgprune.models`` (one parser for both commands) and registered with the benchmark's
``register_model_spec`` when ``rgprune.benchmark`` is imported.

The benchmark times pruning, not a task, so the classifier head gets a fixed size: ``VISION_CLASSES`` outputs for
vision models (torchvision's ImageNet default), ``TEXT_CLASSES`` for ``module:`` text models, the checkpoint's own
label count for ``hf:DIR``. The head is not pruned unless ``--prune-head`` says so.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rgprune.benchmark.workloads import BenchmarkError, register_model_spec

__all__ = ["TEXT_CLASSES", "VISION_CLASSES", "build_spec_model"]

VISION_CLASSES = 1000
TEXT_CLASSES = 2


def _hf_labels(folder: str) -> int:
    from transformers import AutoConfig

    return max(int(AutoConfig.from_pretrained(folder, local_files_only=True).num_labels), 2)


def build_spec_model(spec: str) -> torch.nn.Module:
    """The model of an ``rgprune imp`` model spec, seeded, on the CPU; ``BenchmarkError`` naming the valid forms when
    the spec is not usable."""
    from rgprune.models import build_model, parse_model_spec

    try:
        parsed = parse_model_spec(spec)
        if parsed.source == "given":
            raise ValueError(
                "given:NAME models are passed in by a program; the benchmark takes an nn.Module for "
                "that (rgprune.benchmark.run(model))"
            )
        classes = (
            _hf_labels(parsed.target)
            if parsed.source == "hf"
            else TEXT_CLASSES
            if parsed.kind == "text"
            else VISION_CLASSES
        )
        return build_model(spec, classes, seed=0)
    except (ValueError, TypeError, OSError) as exc:
        raise BenchmarkError(f"--model {spec}: {exc}") from exc


def _loader(source: str) -> Callable[[str], torch.nn.Module]:
    def load(argument: str) -> torch.nn.Module:
        return build_spec_model(f"{source}:{argument}")

    load.__name__ = f"load_{source}"
    return load


for _source in ("torchvision", "hf", "module"):
    register_model_spec(_source, _loader(_source))

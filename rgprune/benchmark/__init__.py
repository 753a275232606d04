"""rgprune's benchmark: exact global magnitude pruning by rgprune against torch.nn.utils.prune, the naive
PyTorch ways and rgprune's pure-PyTorch reference, side by side in one run, on the user's own model.

``run(model, device=..., ...)`` benchmarks one model, ``run_scale(...)`` a synthetic series of growing size;
both return the result document that ``bench/results/`` holds (``report.SCHEMA``) and ``tables.summary``
prints. ``rgprune.benchmark.cli`` is the command line (``python -m rgprune.benchmark``).

Modules, one job each: ``methods`` (the pruning methods and the states they start from), ``workloads`` (the
weight sets and the user's model specs), ``measure`` (interleaved timing, peak memory, the bandwidth floor),
``model_specs`` (``--model`` takes ``rgprune imp``'s model specs),
``sections`` and ``training`` (what is timed on one weight set), ``targets``, ``report`` (the result
document, the machine, the output path), ``tables`` (tables of a result), ``runner`` (a run on one device),
``api`` and ``scale`` (the entry points). The suite in the source tree (``python -m bench.compare``) is a
thin caller of this package.
"""

from rgprune.benchmark import model_specs  # noqa: F401 (registers the model specs of rgprune imp for --model)
from rgprune.benchmark.api import run
from rgprune.benchmark.scale import run_scale
from rgprune.benchmark.workloads import BenchmarkError, register_model_spec

__all__ = ["BenchmarkError", "register_model_spec", "run", "run_scale"]

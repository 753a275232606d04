"""rgprune's benchmark: exact global magnitude pruning by rgprune against torch.nn.utils.prune, the naive
PyTorch way and rgprune's pure-PyTorch reference, side by side in one run.

Modules, one job each: ``methods`` (the pruning methods and the states they start from), ``workloads`` (the
weight sets), ``measure`` (interleaved timing, peak memory, the bandwidth floor), ``sections`` and
``training`` (what is timed on one weight set), ``targets``, ``report`` (the result document, the machine,
the output path), ``tables`` (markdown tables of a result), ``runner`` (a run on one device). The suite in
the source tree (``python -m bench.compare``) is a thin caller of this package.
"""

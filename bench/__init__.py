"""rgprune's benchmark suite (the implementation is the installed package's ``rgprune.benchmark``).

* ``python -m bench.compare``: rgprune against torch.nn.utils.prune and the naive PyTorch way, side by
  side in one run (ResNet-50, BERT-base, and a 1B-weight synthetic set on a GPU); writes
  ``bench/results/<cpu|gpu>-<device>-<date>.json`` and prints markdown tables.
* ``python bench/readme_table.py [--write]``: the README's performance table from the committed JSON.
* ``make bench``: pytest-benchmark benchmarks of the same operations at a smaller size.
"""

"""Integrations with training frameworks, one module each, imported on use (each needs its framework):

* ``rgprune.integrations.transformers``: ``PruningCallback`` for the Hugging Face ``Trainer``.
* ``rgprune.integrations.lightning``: ``PruningCallback`` for a Lightning ``Trainer`` (``lightning`` package).
"""

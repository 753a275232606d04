"""Optimizers as ``GlobalMagnitudePruner.attach`` sees them: the optimizer that runs step hooks, found
inside the wrappers that training frameworks put around it."""

from __future__ import annotations

import torch

__all__ = ["hookable_optimizer"]


def hookable_optimizer(optimizer) -> torch.optim.Optimizer:
    """The optimizer that runs step hooks: ``optimizer`` itself, or the one a wrapper holds as ``.optimizer``
    (Accelerate's ``AcceleratedOptimizer``, as Hugging Face Trainer uses, subclasses Optimizer without
    running its ``__init__``, so it has no hooks; its ``step()`` calls the wrapped optimizer's)."""
    target = optimizer
    # an Optimizer whose __init__ ran has step hooks; a wrapper subclassing Optimizer may lack them
    while not (isinstance(target, torch.optim.Optimizer) and hasattr(target, "_optimizer_step_post_hooks")):
        inner = getattr(target, "optimizer", None)
        if inner is None or inner is target:
            raise TypeError(
                f"attach needs a torch.optim.Optimizer (or a wrapper exposing it as .optimizer), got "
                f"{type(optimizer).__name__}"
            )
        target = inner
    return target

"""Iterative magnitude pruning (lottery tickets) with rewinding, checkpointed and resumable.

>>> from rgprune.imp import IMPConfig
>>> config = IMPConfig(model="resnet20", task="digits", rounds=8, rewind_step=20, image_size=16)
>>> config.name.startswith("resnet20-digits-"), config.optimizer, config.lr
(True, 'sgd', 0.1)

``run_imp(config, out_dir)`` trains, prunes, rewinds and trains again for ``config.rounds`` rounds, and can
be stopped at any point and resumed with the same result. ``config.model`` and ``config.task`` are specs: built-in
names, ``torchvision:NAME`` / ``hf:DIR`` / ``module:pkg.mod:fn`` models, and embedded tasks or local data
(``cifar10:ROOT``, ``imagefolder:ROOT``, ``glue-sst2:ROOT``, ``hf-disk:PATH``, ``csv:PATH``, ...). A program's
own model and datasets::

    config = IMPConfig(model="given:mynet", task="given-vision:mydata", rounds=5, epochs=20)
    run_imp(config, "runs/mine", model_fn=MyNet, train=train_set, test=test_set)  # MyNet(num_classes=, in_channels=)

One module per job:

* ``config``: ``IMPConfig``, every field validated and documented (the ``rgprune imp`` options come from it);
  ``fields``: the field metadata, and ``ConfigError``, the error of an unusable configuration or run directory;
* ``rundir``: ``RunDir``, the run directory's layout: the only code that knows its file names;
* ``trainer``: ``RoundTrainer``, how a round builds, trains (masks kept applied) and evaluates a model, and
  trains the baselines; ``deterministic``, ``seed_all``;
* ``pipeline``: the input pipeline per device (DataLoader workers, pinned memory, channels-last, AMP dtype,
  ``torch.compile``), its data order and augmentation seeded whatever the number of workers;
* ``rounds``: ``run_imp``, the round loop (what a round does, resume);
* ``coordination``: the same under torchrun (rank 0 decides and writes, DDP on data shards);
* ``results``: ``RoundResult``, ``IMPResult``, ``load_result``;
* ``flow_report``: ``write_run_flow_report``, the RG flow report of a complete run.
"""

from rgprune.imp.config import BASELINES, OPTIMIZERS, SCHEDULES, ConfigError, ConfigTypeError, IMPConfig
from rgprune.imp.flow_report import write_run_flow_report
from rgprune.imp.results import IMPResult, RoundResult, load_result
from rgprune.imp.rounds import run_imp
from rgprune.imp.rundir import RunDir, RunNotFoundError
from rgprune.imp.trainer import RoundTrainer, deterministic

__all__ = [
    "BASELINES",
    "ConfigError",
    "ConfigTypeError",
    "IMPConfig",
    "IMPResult",
    "OPTIMIZERS",
    "RoundResult",
    "RoundTrainer",
    "RunDir",
    "RunNotFoundError",
    "SCHEDULES",
    "deterministic",
    "load_result",
    "run_imp",
    "write_run_flow_report",
]

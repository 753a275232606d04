"""The designs of the three findings (docs/findings.md), fixed before any of their runs: what is run, and the
statistic each finding is judged by.

Every number a statistic depends on is a constant here, so the document, the runs and the analysis read one
definition. A design is a list of IMP runs (``RunSpec``: the config and the directory name under the runs root)
plus what is done with them afterwards (transfers, subsamples, checkpoint statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

from rgprune.data.digits import EQUAL_TASK_NAMES

__all__ = [
    "DEPTH_MODELS",
    "F1",
    "F2",
    "F3",
    "FINDINGS",
    "Finding1Design",
    "Finding2Design",
    "Finding3Design",
    "RunSpec",
    "design",
]


@dataclass(frozen=True)
class RunSpec:
    """One IMP run of a design: ``name`` (its directory under the runs root) and the ``rgprune.imp.IMPConfig``
    fields that are not defaults (``fields``), plus what identifies it in the analysis."""

    name: str
    model: str
    task: str
    seed: int
    fields: tuple[tuple[str, object], ...]

    def config(self):
        """The run's ``IMPConfig``."""
        from rgprune.imp import IMPConfig

        return IMPConfig(model=self.model, task=self.task, seed=self.seed, **dict(self.fields))


def _vision_fields(rounds: int, epochs: int, lr: float) -> tuple[tuple[str, object], ...]:
    return (
        ("rounds", rounds),
        ("fraction", 0.2),
        ("epochs", epochs),
        ("batch_size", 64),
        ("lr", lr),
        ("rewind_step", 10),
        ("image_size", 8),
    )


@dataclass(frozen=True)
class Finding1Design:
    """Finding 1: do tickets transfer better between tasks whose flows are closer?

    ResNet-20 on the equal-size digits tasks (every task trains on 700 images: 11 steps per epoch), seeds
    ``seeds``. The tickets of ``transfer_rounds`` (densities 0.8**n: 0.055 and 0.0047) are trained on every other
    task of the same seed (``rgprune.transfer.transfer_ticket``), and a random mask of the target run's per-layer
    survivor counts, rewound like the ticket (the ``random-mask`` baseline of ``rgprune.imp``), on every task.
    """

    model: str = "resnet20"
    tasks: tuple[str, ...] = EQUAL_TASK_NAMES[:-1]  # the eight tasks of the tests
    control: str = EQUAL_TASK_NAMES[-1]  # digits700-shuffled: the negative control, reported apart
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    rounds: int = 24
    epochs: int = 8
    lr: float = 0.02
    transfer_rounds: tuple[int, ...] = (13, 24)
    #: the observable whose flows are compared, and over which rounds (0..n for the tickets of round n)
    observable: str = "excess"
    #: significance level of the go/no-go test, and of each of the two Mantel tests (Bonferroni over the two rounds)
    go_level: float = 0.05
    mantel_level: float = 0.025
    permutations: int = 9999
    #: a target task whose own ticket beats the random mask by less than this (mean over seeds) has no ticket
    #: effect to normalize by: it is left out of the Mantel test at that round (and said so)
    min_gap: float = 0.01

    @property
    def all_tasks(self) -> tuple[str, ...]:
        return self.tasks + (self.control,)

    def run_name(self, task: str, seed: int) -> str:
        return f"f1-{self.model}-{task}-s{seed}"

    def runs(self) -> list[RunSpec]:
        fields = _vision_fields(self.rounds, self.epochs, self.lr)
        return [RunSpec(self.run_name(t, s), self.model, t, s, fields) for s in self.seeds for t in self.all_tasks]


#: the depth series of finding 3: model name -> depth
DEPTH_MODELS = {"resnet8": 8, "resnet14": 14, "resnet20": 20, "resnet32": 32, "resnet56": 56}


@dataclass(frozen=True)
class Finding3Design:
    """Finding 3: are the flows of smaller models more alike (across tasks and seeds) than those of larger ones?

    The depth series on a subset of finding 1's tasks and seeds, with finding 1's training settings (the
    ResNet-20 runs are finding 1's). Compared at matched numbers of surviving weights: a window of
    ``window_rounds`` rounds, starting for each depth at the round whose survivor count is closest to
    ``window_start_survivors`` (every depth prunes 20% a round, so the windows then cover the same survivor
    counts, within half a round). Each snapshot's histogram is made from ``subsample`` survivors drawn at random
    from the checkpoint (seeds ``subsample_seeds``: the second draw measures the sampling noise floor), so every
    depth's observable carries the same sampling noise.
    """

    models: tuple[str, ...] = tuple(DEPTH_MODELS)
    tasks: tuple[str, ...] = ("digits700", "digits700-rotated", "digits700-parity")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 8
    lr: float = 0.02
    window_rounds: int = 15
    #: ResNet-20's round 6 (0.8**6 of its 267 408 prunable weights): ResNet-8 starts dense at 73 728
    window_start_survivors: int = 70_000
    subsample: int = 2000
    subsample_seeds: tuple[int, int] = (0, 1)
    observable: str = "excess"
    level: float = 0.05
    permutations: int = 9999

    def run_name(self, model: str, task: str, seed: int) -> str:
        return F1.run_name(task, seed) if model == F1.model else f"f3-{model}-{task}-s{seed}"

    def rounds_for(self, prunable: int) -> tuple[int, int]:
        """(first, last) round of the window of a model with ``prunable`` weights."""
        import math

        start = max(0, round(math.log(prunable / self.window_start_survivors) / math.log(1 / 0.8)))
        return start, start + self.window_rounds - 1

    def runs(self, prunable: dict[str, int]) -> list[RunSpec]:
        """The runs (``prunable``: each model's prunable weight count, which sets its rounds); finding 1's
        ResNet-20 runs are not repeated."""
        out = []
        for model in self.models:
            if model == F1.model:
                continue
            fields = _vision_fields(self.rounds_for(prunable[model])[1], self.epochs, self.lr)
            out += [RunSpec(self.run_name(model, t, s), model, t, s, fields) for s in self.seeds for t in self.tasks]
        return out


@dataclass(frozen=True)
class Finding2Design:
    """Finding 2: does pretrained MiniLM sit nearer a fixed point of the flow than two controls?

    ``minilm`` against ``minilm-shuffled`` (each pretrained tensor's values permuted: same histograms) and
    ``minilm-random``, on the two lexicon tasks, ``rounds`` rounds of 20%, seeds ``seeds``. To fit 2 CPU cores
    each task is trained on a fixed subsample of ``train_size`` entries (stratified, ``subsample_seed``) and
    tokens are cut to ``max_length`` (entries are 1-3 word pieces; longer ones are dropped, not truncated), and
    the whole test set is kept.

    Design version 2 (docs/findings.md): the tensors matching ``exclude`` (the checkpoint's untrained pooler) are
    kept dense, and the budget (``train_size``, ``epochs``, ``max_length``) is the one at which the controls fit
    their training words; version 1 (800 entries, 4 epochs, 8 tokens, pooler pruned) was stopped unsummarized.
    """

    models: tuple[str, ...] = ("minilm", "minilm-shuffled", "minilm-random")
    tasks: tuple[str, ...] = ("vader", "afinn")
    seeds: tuple[int, ...] = (0, 1, 2)
    rounds: int = 6
    epochs: int = 12
    batch_size: int = 32
    lr: float = 1e-4
    train_size: int = 400
    subsample_seed: int = 0
    max_length: int = 6
    exclude: tuple[str, ...] = ("bert.pooler.*",)
    observable: str = "excess"
    n_boot: int = 2000
    level: float = 0.9

    def run_name(self, model: str, task: str, seed: int) -> str:
        return f"f2-{model}-{task}-s{seed}"

    def runs(self) -> list[RunSpec]:
        fields = (
            ("rounds", self.rounds),
            ("fraction", 0.2),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("lr", self.lr),
            ("exclude", self.exclude),
        )
        return [
            RunSpec(self.run_name(m, t, s), m, f"given-text:{t}-{self.train_size}", s, fields)
            for s in self.seeds
            for t in self.tasks
            for m in self.models
        ]


F1, F2, F3 = Finding1Design(), Finding2Design(), Finding3Design()
FINDINGS = {"finding1": F1, "finding2": F2, "finding3": F3}


def design(name: str):
    """The design called ``name`` (``finding1``, ``finding2``, ``finding3``)."""
    if name not in FINDINGS:
        raise ValueError(f"unknown finding {name!r}; choose one of {list(FINDINGS)}")
    return FINDINGS[name]

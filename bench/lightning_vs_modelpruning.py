"""rgprune's Lightning callback against Lightning's own ``ModelPruning``, both doing IMP inside one ``fit()``.

    python bench/lightning_vs_modelpruning.py                      # ResNet-18 (CIFAR-sized input), CPU, 1 thread
    python bench/lightning_vs_modelpruning.py --quick              # a tiny CNN, seconds
    python bench/lightning_vs_modelpruning.py --out bench/results/lightning-vs-modelpruning.md

Two copies of one model (same seed), trained on the same synthetic batches (no shuffling) for ``--epochs``
epochs, pruning 20% of the surviving conv/linear weights at the end of every epoch and rewinding the
survivors to their initial values (the lottery ticket), by

* ``rgprune.integrations.lightning.PruningCallback(every_n_epochs=1, fraction=0.2, rewind_to_step=0,
  reset_optimizer=False)`` (``reset_optimizer=False``: ModelPruning keeps the optimizer's state too), and
* ``lightning.pytorch.callbacks.ModelPruning("l1_unstructured", amount=0.2, use_global_unstructured=True,
  use_lottery_ticket_hypothesis=True, parameters_to_prune=<the same weights>)``.

Reported: whether the masks agree event by event (the two runs see the same weights until their masks or
rewinds differ), whether each callback's masks equal ``torch.nn.utils.prune.global_unstructured`` with
``L1Unstructured`` on that callback's own weights at that moment, whether the survivors were rewound to the
initial weights, the time of each pruning event (the callback's whole event: ranking, masking, rewinding)
and the median training step after the first event (ModelPruning's forward pre-hooks recompute
``weight = weight_orig * weight_mask`` at every forward; rgprune re-zeroes after each optimizer step).
Times are medians of the events of one run on a shared machine: read the ratios, not the seconds (the
load average is printed beside them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import lightning  # noqa: E402
from lightning.pytorch.callbacks import ModelPruning  # noqa: E402

from rgprune import GlobalMagnitudePruner  # noqa: E402
from rgprune.integrations.lightning import PruningCallback  # noqa: E402


class Net(lightning.LightningModule):
    def __init__(self, quick: bool):
        super().__init__()
        torch.manual_seed(0)
        if quick:
            self.model = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(16, 32, 3, padding=1, stride=2),
                torch.nn.ReLU(),
                torch.nn.AdaptiveAvgPool2d(1),
                torch.nn.Flatten(),
                torch.nn.Linear(32, 10),
            )
        else:
            import torchvision

            self.model = torchvision.models.resnet18(num_classes=10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def loader(batches: int, batch_size: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batches * batch_size, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (len(x),), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def torch_reference(weights, previous, amount):
    """torch.prune's global L1 masks for ``amount`` of the survivors of ``previous``, on copies."""
    holders = []
    for w, keep in zip(weights, previous):
        holder = torch.nn.Module()
        holder.weight = torch.nn.Parameter(w.detach().clone())
        torch.nn.utils.prune.custom_from_mask(holder, "weight", keep)
        holders.append(holder)
    pairs = [(h, "weight") for h in holders]
    torch.nn.utils.prune.global_unstructured(pairs, pruning_method=torch.nn.utils.prune.L1Unstructured, amount=amount)
    return [h.weight_mask.bool() for h in holders]


class Recorder(lightning.Callback):
    """Times the training steps; ``wrap`` times a callback's pruning event and snapshots around it."""

    def __init__(self):
        self.steps, self.events, self._t = [], [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append((trainer.current_epoch, time.perf_counter() - self._t))

    def wrap(self, obj, method, weights_of, masks_of, ranked_of):
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            before = [w.detach().clone() for w in weights_of()]
            ranked = [w.detach().clone() for w in ranked_of()]
            previous = [m.clone() for m in masks_of()]
            t = time.perf_counter()
            inner(*args, **kwargs)
            seconds = time.perf_counter() - t
            after = [w.detach().clone() for w in weights_of()]
            self.events.append(
                dict(seconds=seconds, before=before, ranked=ranked, previous=previous, masks=masks_of(), after=after)
            )

        setattr(obj, method, timed)


def lightning_weights(pairs):
    # ModelPruning reparametrizes: the trained values are weight_orig, the used ones weight = orig * mask
    return [getattr(m, n + "_orig", getattr(m, n)) for m, n in pairs]


def lightning_masks(pairs):
    return [
        getattr(m, n + "_mask").bool().clone() if hasattr(m, n + "_mask") else torch.ones_like(w, dtype=torch.bool)
        for (m, n), w in zip(pairs, lightning_weights(pairs))
    ]


def run(which: str, args) -> dict:
    module = Net(args.quick)
    init = {n: p.detach().clone() for n, p in module.named_parameters()}
    recorder = Recorder()
    pruner = GlobalMagnitudePruner(module, masks_from="ones")  # conv + linear weights (the fc inside: pruned)
    pairs = pruner.module_param_pairs()
    names = list(pruner.names)
    if which == "rgprune":
        callback = PruningCallback(
            every_n_epochs=1, fraction=args.amount, rewind_to_step=0, reset_optimizer=False, pruner=pruner
        )
        recorder.wrap(
            callback,
            "_prune",
            lambda: pruner.params,
            lambda: [m.clone() for m in pruner.masks.to_bool()],
            lambda: pruner.params,
        )
    else:
        callback = ModelPruning(
            "l1_unstructured",
            amount=args.amount,
            use_global_unstructured=True,
            use_lottery_ticket_hypothesis=True,
            parameters_to_prune=pairs,
            verbose=0,
        )
        # torch.prune ranks module.weight: once reparametrized, weight_orig * weight_mask as of the last forward
        ranked = lambda: [getattr(m, n) for m, n in pairs]  # noqa: E731
        recorder.wrap(
            callback, "_run_pruning", lambda: lightning_weights(pairs), lambda: lightning_masks(pairs), ranked
        )
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.epochs,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[recorder, callback],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader(args.batches, args.batch_size))
    initial = [init[n] for n in names]
    for event in recorder.events:
        event["current"] = versus_torch(event["masks"], event.pop("before"), event["previous"], args.amount)
        event["ranked"] = versus_torch(event["masks"], event.pop("ranked"), event.pop("previous"), args.amount)
        event["rewound_to_init"] = all(
            torch.equal(a[m], w0[m]) for a, m, w0 in zip(event.pop("after"), event["masks"], initial)
        )
    steps_after_first = [s for epoch, s in recorder.steps if epoch >= 1]
    return dict(events=recorder.events, steps=steps_after_first, weights=pruner.num_weights)


def versus_torch(masks, weights, previous, amount) -> str:
    """ "yes" when ``masks`` equal torch.prune's on ``weights``; else how many differ, and whether all of
    those are ties: weights of exactly the magnitude of torch's largest newly pruned one (either choice of
    which tied weights to prune is a correct global magnitude pruning)."""
    reference = torch_reference(weights, previous, amount)
    differ = [m != r for m, r in zip(masks, reference)]
    n = sum(int(d.sum()) for d in differ)
    if n == 0:
        return "yes"
    newly = [(w.abs()[p & ~r]) for w, p, r in zip(weights, previous, reference)]
    threshold = max(float(x.max()) for x in newly if x.numel())
    tied = all(bool((w.abs()[d] == threshold).all()) for w, d in zip(weights, differ))
    return f"ties ({n} tied weights differ)" if tied else f"NO ({n} differ)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny CNN instead of ResNet-18")
    parser.add_argument("--epochs", type=int, default=5, help="pruning events (one per epoch)")
    parser.add_argument("--batches", type=int, default=4, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--amount", type=float, default=0.2, help="share of the survivors pruned per event")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--repeats", type=int, default=2, help="fits of each callback, in ABBA order")
    parser.add_argument("--out", type=Path, help="write the markdown summary here too")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    runs = {"rgprune": [], "lightning": []}
    for r in range(args.repeats):  # ABBA order: a machine getting busier slows both alike
        for which in ("rgprune", "lightning") if r % 2 == 0 else ("lightning", "rgprune"):
            runs[which].append(run(which, args))
    load_after = os.getloadavg()
    ours, theirs = runs["rgprune"][0], runs["lightning"][0]  # the masks: every repeat trains the same

    def event_ms(which, i):
        return statistics.median(r["events"][i]["seconds"] for r in runs[which]) * 1e3

    rows = []
    for i, (a, b) in enumerate(zip(ours["events"], theirs["events"])):
        agree = all(torch.equal(x, y) for x, y in zip(a["masks"], b["masks"]))
        differ = sum(int((x != y).sum()) for x, y in zip(a["masks"], b["masks"]))
        density = sum(int(m.sum()) for m in a["masks"]) / ours["weights"]
        t_a, t_b = event_ms("rgprune", i), event_ms("lightning", i)
        rows.append(
            f"| {i + 1} | {density:.4f} | {'yes' if agree else f'no ({differ} weights differ)'} | "
            f"{a['current']} / {b['current']} | {a['ranked']} / {b['ranked']} | "
            f"{'yes' if a['rewound_to_init'] else 'no'} / {'yes' if b['rewound_to_init'] else 'no'} | "
            f"{t_a:.1f} | {t_b:.1f} | {t_b / t_a:.1f}x |"
        )
    t_ours = statistics.median(e["seconds"] for r in runs["rgprune"] for e in r["events"])
    t_theirs = statistics.median(e["seconds"] for r in runs["lightning"] for e in r["events"])
    step_ours = statistics.median(s for r in runs["rgprune"] for s in r["steps"])
    step_theirs = statistics.median(s for r in runs["lightning"] for s in r["steps"])
    model = "tiny CNN" if args.quick else "ResNet-18 (10 classes, 32x32 input)"
    text = "\n".join(
        [
            f"# rgprune PruningCallback vs Lightning ModelPruning (lottery ticket), {time.strftime('%Y-%m-%d')}",
            "",
            f"`python bench/lightning_vs_modelpruning.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
            f": {model}, {ours['weights']:,} conv/linear weights pruned, {args.epochs} events of "
            f"{args.amount:.0%} of the survivors, {args.batches} batches an epoch, SGD momentum, batch "
            f"{args.batch_size}, {args.threads} torch "
            f"thread(s), torch {torch.__version__}, lightning {lightning.__version__}, CPU; load average "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (a shared machine: read ratios).",
            "",
            "| event | density after | masks agree | = torch.prune on own current weights (rgprune / Lightning) "
            "| = torch.prune on the tensors it ranked (rgprune / Lightning) "
            "| survivors = initial weights (rgprune / Lightning) | rgprune ms | ModelPruning ms | ratio |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Median pruning event: rgprune {t_ours * 1e3:.1f} ms, ModelPruning {t_theirs * 1e3:.1f} ms "
            f"({t_theirs / t_ours:.1f}x). Median training step after the first event: rgprune "
            f"{step_ours * 1e3:.1f} ms, ModelPruning {step_theirs * 1e3:.1f} ms ({step_theirs / step_ours:.2f}x). "
            f"Times: medians over {args.repeats} fit(s) of each, run in ABBA order.",
            "",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

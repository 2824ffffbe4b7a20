"""The command line the example scripts share: flags, data, trainer, figures.

Every script in ``examples/`` reads like this, top to bottom::

    parser = example_parser(__doc__, name="gwae", dataset="celeba", max_steps=50_000,
                            batch_size=64)
    args = parser.parse_args(argv)
    seed_everything(args.seed)                      # the model's initialisation too
    data = load_training_data(args)                 # clear message if files are missing
    model = GWAE(data_shape(data), ...)
    trainer = make_trainer(model, args, **GWAE.training_defaults)
    summary = fit(trainer, data, args)              # checkpoint.pt, metrics.jsonl
    figures = save_figures(model, data, args.out)   # reconstructions.png, samples.png
    report(summary, figures)

Shared flags: ``--data-root``, ``--dataset``, ``--out``, ``--max-steps``, ``--batch-size``,
``--device``, ``--seed``, ``--resume``, plus ``--overwrite``, ``--image-size``, ``--lr``,
``--critic-lr``, ``--log-every``, ``--checkpoint-every`` and ``--no-progress``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from otloss.data import CorruptDatasetError, DatasetNotFoundError, load_dataset
from otloss.train import CHECKPOINT, METRICS, NonFiniteLossError, Trainer, TrainSummary

__all__ = [
    "ExampleParser",
    "data_shape",
    "example_parser",
    "first_images",
    "fit",
    "load_training_data",
    "make_trainer",
    "report",
    "save_figures",
    "will_resume",
]


class ExampleParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose ``parse_args`` also fills in the default ``--out``,
    ``runs/<name>-<dataset>``, which depends on the dataset chosen."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.prog = f"examples/{self.prog}" if self.prog.endswith(".py") else self.prog

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        parsed = super().parse_args(args, namespace)
        parsed.script = self.prog
        if parsed.out is None:
            parsed.out = f"runs/{self.name}-{parsed.dataset}"
        return parsed


def example_parser(
    description: str | None,
    *,
    name: str,
    dataset: str,
    max_steps: int,
    batch_size: int,
) -> ExampleParser:
    """A parser with the flags every example shares.

    Args:
        description: the script's help text (its module docstring).
        name: short name of the script, for the default run folder
            ``runs/<name>-<dataset>``.
        dataset: default ``--dataset``.
        max_steps: default ``--max-steps``.
        batch_size: default ``--batch-size``.

    Returns:
        The parser; scripts add their own model flags before parsing.
    """
    parser = ExampleParser(
        name, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--dataset", default=dataset, help=f"dataset name (default: {dataset}); see "
        "otloss.data.load_dataset: digits and sprites need no files")
    add("--data-root", default=None, help="data root (default: $OTLOSS_DATA, else "
        "~/.otloss/data)")
    add("--out", default=None, help="run folder for checkpoint.pt, metrics.jsonl and figures "
        f"(default: runs/{name}-<dataset>)")
    add("--max-steps", type=int, default=max_steps, help=f"generator steps (default: {max_steps})")
    add("--batch-size", type=int, default=batch_size, help=f"default: {batch_size}")
    add("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda when available)")
    add("--seed", type=int, default=0, help="seed of the initialisation and the data order")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add("--overwrite", action="store_true", help="start afresh over a run already in --out")
    add("--image-size", type=int, default=None, help="image side (default: the dataset's)")
    add("--lr", type=float, default=None, help="learning rate (default: the paper's)")
    add("--critic-lr", type=float, default=None,
        help="critic learning rate (default: the paper's)")
    add("--log-every", type=int, default=50, help="steps between metrics.jsonl records")
    add("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def load_training_data(
    args: argparse.Namespace, *, fallback: str | None = None, **kwargs: Any
) -> Dataset:
    """The training split of ``args.dataset`` (``args.data_root``, ``args.image_size``).

    A missing or corrupt dataset stops the script with the reader's message (where to
    get the files, where to put them) and the command that runs it on the embedded digits
    instead. With ``fallback`` (e.g. ``"sprites"`` for dSprites), a missing dataset is
    replaced by that one, with a note, and ``args.dataset`` is updated.
    """
    try:
        return load_dataset(args.dataset, args.data_root, "train", args.image_size, **kwargs)
    except DatasetNotFoundError as err:
        if fallback is not None:
            print(f"note: {args.dataset} is not on disk; using {fallback} instead "
                  f"({str(err).split('. ')[0]})")
            args.dataset = fallback
            return load_dataset(fallback, args.data_root, "train", args.image_size, **kwargs)
        raise SystemExit(
            f"error: {err}\nTo run without any files: python {args.script} --dataset digits"
        ) from None
    except CorruptDatasetError as err:
        raise SystemExit(f"error: {err}") from None


def data_shape(data: Dataset) -> tuple[int, ...]:
    """Shape of one sample of a dataset of ``(image, target)`` items."""
    item = data[0]
    x = item[0] if isinstance(item, (tuple, list)) else item
    return tuple(x.shape)


def will_resume(args: argparse.Namespace) -> bool:
    """Whether ``--resume`` will continue a checkpoint in ``--out`` (or its previous copy)."""
    out = Path(args.out)
    return args.resume and any(
        (out / name).exists() for name in (CHECKPOINT, CHECKPOINT.replace(".pt", ".prev.pt"))
    )


def make_trainer(model: nn.Module, args: argparse.Namespace, **defaults: Any) -> Trainer:
    """A :class:`~otloss.train.Trainer` from the shared flags over ``defaults``.

    Args:
        model: the model to train.
        args: the parsed shared flags; ``args.out`` must be set.
        **defaults: :class:`~otloss.train.TrainConfig` fields, e.g. a model's
            ``training_defaults``; the flags take precedence.
    """
    rates = {"lr": args.lr, "critic_lr": args.critic_lr}
    config = {
        **defaults,
        **{name: value for name, value in rates.items() if value is not None},
        "out_dir": args.out,
        "batch_size": args.batch_size,
        "device": args.device,
        "seed": args.seed,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "log_every": args.log_every,
        "checkpoint_every": args.checkpoint_every,
        "progress": not args.no_progress,
    }
    return Trainer(model, **config)


def fit(trainer: Trainer, data: Any, args: argparse.Namespace) -> TrainSummary:
    """Train to ``args.max_steps``; an existing run or a non-finite loss ends the script
    with a message saying what to do."""
    print(f"training {type(trainer.model).__name__} on {args.dataset} ({trainer.device}); "
          f"run folder: {trainer.out_dir}")
    try:
        return trainer.fit(data, max_steps=args.max_steps)
    except FileExistsError as err:
        raise SystemExit(f"error: {err}") from None
    except NonFiniteLossError as err:
        raise SystemExit(f"error: {err}") from None


def first_images(data: Dataset, n: int) -> Tensor:
    """The first ``n`` images of ``data`` stacked into ``(n, C, H, W)``."""
    items = [data[i] for i in range(min(n, len(data)))]
    return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])


@torch.no_grad()
def save_figures(model: nn.Module, data: Dataset, out: str | Path, *, n: int = 32) -> list[Path]:
    """``reconstructions.png`` (the first ``n`` training images over their
    reconstructions), ``samples.png`` (``n`` samples from the prior) and ``losses.png``
    (each term of ``metrics.jsonl`` against the step) in ``out``.

    The model is put in eval mode and left there.
    """
    from otloss.plots import plot_losses, plot_reconstructions, plot_samples

    out = Path(out)
    model.eval()
    device = next(model.parameters()).device
    x = first_images(data, n).to(device)
    return [
        plot_reconstructions(x.cpu(), model.reconstruct(x).cpu(), out / "reconstructions.png"),
        plot_samples(model.sample(n).cpu(), out / "samples.png"),
        plot_losses(out / METRICS, out / "losses.png"),
    ]


def report(summary: TrainSummary, figures: Sequence[Path]) -> None:
    """Print where the run left its checkpoint, metrics and figures, and its last losses."""
    losses = ", ".join(f"{k}={v:.4g}" for k, v in summary.metrics.items())
    print(f"step {summary.step} ({summary.seconds:.0f} s): {losses}")
    print(f"run folder: {summary.out_dir}")
    for path in [summary.checkpoint, summary.out_dir / "metrics.jsonl", *figures]:
        print(f"  {path}")

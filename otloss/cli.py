"""The examples' application layer: flags, data, model, trainer, figures and messages.

This module serves command-line programs; the rest of otloss never prints or exits. Here
too, the functions that do the work (`load_training_data`, `build_model`,
`make_trainer`, `fit`, `save_figures`) return values or raise
`ExampleError`, whose message says what to do. Two kinds of function talk to the
person at the terminal, and only they: `application`, the decorator of a script's
``main``, turns an `ExampleError` into an ``error:`` line and exit status 2 (as
argparse does for a bad flag), and `announce` / `report` print what a run
does and leaves.

Every script in ``examples/`` reads like this, top to bottom::

    @cli.application
    def main(argv=None):
        parser = cli.example_parser(__doc__, model=GWAE, dataset="celeba",
                                    max_steps=50_000, batch_size=64)
        parser.model_flag("latent_dim", help="latent width L")   # default: GWAE's
        args = parser.parse_args(argv)
        data = cli.load_training_data(args)             # clear message if files are missing
        seed_everything(args.seed)                      # the model's initialisation too
        model = cli.build_model(args, data_shape=cli.data_shape(data))
        trainer = cli.make_trainer(model, args)         # the model's training_defaults
        cli.announce(trainer, args)                     # what trains on what, where
        summary = cli.fit(trainer, data, args)          # checkpoint.pt, metrics.jsonl
        cli.report(summary, cli.save_figures(model, data, args.out))

Model flags are named after the model's constructor arguments and default to its
defaults. With ``--resume``, the model is rebuilt from the arguments stored in the run and
the training settings come from the run, except those given on the command line that may
change (``--lr``, ``--critic-lr``, ``--grad-clip``, ``--log-every``,
``--checkpoint-every``); any other flag given that contradicts the run is an error naming
both values.

Shared flags: ``--data-root``, ``--dataset``, ``--out``, ``--max-steps``, ``--batch-size``,
``--device``, ``--seed``, ``--resume``, plus ``--overwrite``, ``--image-size``, ``--lr``,
``--critic-lr``, ``--grad-clip``, ``--log-every``, ``--checkpoint-every``,
``--precision`` and ``--no-progress``.

Every script runs unchanged under ``torchrun --nproc_per_node=K`` (see
`otloss.train.Trainer`): ``--batch-size`` is then each process's batch, rank 0 alone
prints, writes the figures and the run folder, and the other processes end after
training (`fit` stops them; `application` returns ``None`` there and closes the
process group).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Dataset

from otloss.data import DATASETS, CorruptDatasetError, DatasetNotFoundError, load_dataset
from otloss.models import OTAutoencoder
from otloss.train import (
    METRICS,
    MODEL_CONFIG,
    RESUMABLE_FIELDS,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    TrainSummary,
    has_checkpoint,
    load_checkpoint,
    parallel,
)
from otloss.train.config import resolve_device
from otloss.train.precision import PRECISIONS

__all__ = [
    "ExampleError",
    "ExampleParser",
    "announce",
    "application",
    "build_model",
    "data_shape",
    "example_parser",
    "first_images",
    "fit",
    "load_training_data",
    "make_trainer",
    "model_arguments",
    "report",
    "save_figures",
    "train_settings",
    "will_resume",
]

#: Defaults of the shared training flags that are not the model's or TrainConfig's.
_CLI_DEFAULTS = {"log_every": 50, "checkpoint_every": 500, "seed": 0}


class ExampleError(Exception):
    """A problem the person running an example can fix; the message says how."""


class _TrainedOnAnotherRank(Exception):
    """Raised by `fit` on the ranks other than 0 of a multi-process run: their work ends
    with training (rank 0 writes the figures and prints)."""


def application(main: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a script's ``main(argv)``: an `ExampleError` becomes the line
    ``error: <message>`` on standard error and exit status 2, with no traceback.

    In a multi-process run, ``main`` returns ``None`` on the ranks other than 0 once
    training is done, and the process group is closed on every rank.
    """

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except _TrainedOnAnotherRank:
            return None
        except ExampleError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()

    return run


class ExampleParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` for an example script that trains ``model``.

    ``parse_args`` fills in the default ``--out``, ``runs/<name>-<dataset>``, checks
    ``--device``, and records which flags were given (``args.given``) so that a resumed
    run can take the others from the run folder.
    """

    def __init__(self, name: str, model: type[OTAutoencoder] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.name, self.model = name, model
        self.prog = f"examples/{self.prog}" if self.prog.endswith(".py") else self.prog
        self.model_defaults: dict[str, Any] = {}  # flag -> default (value or callable)
        self.train_defaults: dict[str, Any] = {}

    def model_flag(
        self,
        name: str,
        *,
        help: str,
        default: Any = inspect.Parameter.empty,
        **kwargs: Any,
    ) -> None:
        """Add ``--<name>`` for the model's constructor argument ``name``.

        Its default is the model's (read from its signature) unless ``default`` is given:
        a value, or a function of the parsed flags (returning ``None`` for the model's).
        A ``False`` default gives a switch; other types follow the default's type unless
        ``type=`` is passed. Pass ``choices=`` for a closed set.
        """
        model_default = _signature_default(self.model, name)
        shown = default if default is not inspect.Parameter.empty else model_default
        if isinstance(shown, bool):
            self.add_argument(_flag(name), action="store_true", default=None, help=help)
        else:
            if "type" not in kwargs and shown is not None and not callable(shown):
                kwargs["type"] = type(shown)
            note = "" if shown is None or callable(shown) else f" (default: {shown})"
            self.add_argument(_flag(name), default=None, help=help + note, **kwargs)
        self.model_defaults[name] = model_default if shown is None else shown

    def train_flag(self, name: str, *, help: str, **kwargs: Any) -> None:
        """Add ``--<name>`` for the `TrainConfig` field ``name``; its
        default is the model's ``training_defaults``, else TrainConfig's."""
        default = _train_default(self.model, name, self.train_defaults)
        kwargs.setdefault("type", type(default) if default is not None else float)
        self.add_argument(_flag(name), default=None, help=f"{help} (default: {default})",
                          **kwargs)
        self.train_defaults.setdefault(name, default)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        parsed = super().parse_args(args, namespace)
        parsed.script = self.prog
        tracked = [*self.train_defaults, *self.model_defaults]
        parsed.given = {name for name in tracked if getattr(parsed, name) is not None}
        parsed.out_given = parsed.out is not None
        if parsed.out is None:
            parsed.out = f"runs/{self.name}-{parsed.dataset}"
        parsed.parser = self
        try:
            resolve_device(parsed.device)
        except (ValueError, RuntimeError) as err:
            self.error(f"argument --device: {err}; use --device cpu, or leave --device out "
                       "to use CUDA when there is a GPU")
        if parsed.max_steps < 0:
            self.error(f"argument --max-steps: must be 0 or more, got {parsed.max_steps}")
        if parsed.seed is None:  # seed_everything(args.seed) before the model is built
            parsed.seed = self.train_defaults["seed"]
        return parsed


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _signature_default(model: type | None, name: str) -> Any:
    if model is None:
        raise ValueError("model_flag needs the parser's model (example_parser(model=...))")
    parameter = inspect.signature(model.__init__).parameters.get(name)
    if parameter is None:
        raise ValueError(f"{model.__name__} has no constructor argument {name!r}")
    return None if parameter.default is inspect.Parameter.empty else parameter.default


def _train_default(model: type | None, name: str, script: dict[str, Any]) -> Any:
    if name in script:
        return script[name]
    defaults = getattr(model, "training_defaults", {}) if model is not None else {}
    if name in defaults:
        return defaults[name]
    if name in _CLI_DEFAULTS:
        return _CLI_DEFAULTS[name]
    return TrainConfig.__dataclass_fields__[name].default


def example_parser(
    description: str | None,
    *,
    dataset: str,
    max_steps: int,
    batch_size: int,
    model: type[OTAutoencoder] | None = None,
    name: str | None = None,
) -> ExampleParser:
    """A parser with the flags every example shares.

    Args:
        description: the script's help text (its module docstring).
        dataset: default ``--dataset``.
        max_steps: default ``--max-steps``.
        batch_size: default ``--batch-size``.
        model: the model class the script trains (its defaults feed the model flags).
        name: short name for the default run folder ``runs/<name>-<dataset>``
            (default: the model's class name in lower case).

    Returns:
        The parser; scripts add their model flags (`ExampleParser.model_flag`)
        before parsing.
    """
    name = name or (model.__name__.lower() if model is not None else "otloss")
    parser = ExampleParser(
        name, model, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.train_defaults["batch_size"] = batch_size
    add = parser.add_argument
    add("--dataset", default=dataset, help=f"dataset name (default: {dataset}); one of "
        f"{', '.join(DATASETS)}: digits and sprites need no files")
    add("--data-root", default=None, help="data root (default: $OTLOSS_DATA, else "
        "~/.otloss/data)")
    add("--out", default=None, help="run folder for checkpoint.pt, metrics.jsonl and figures "
        f"(default: runs/{name}-<dataset>)")
    add("--max-steps", type=int, default=max_steps, help=f"generator steps (default: {max_steps})")
    parser.train_flag("batch_size", help="samples per batch", type=int)
    add("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda when available)")
    parser.train_flag("seed", help="seed of the initialisation and the data order", type=int)
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint, "
        "with its model and settings")
    add("--overwrite", action="store_true", help="start afresh over a run already in --out")
    add("--image-size", type=int, default=None, help="image side (default: the dataset's)")
    parser.train_flag("lr", help="learning rate (the paper's)", type=float)
    parser.train_flag("critic_lr", help="critic learning rate (the paper's; None: --lr)",
                      type=float)
    parser.train_flag("grad_clip", help="maximum gradient norm (None: no clipping)", type=float)
    parser.train_flag("log_every", help="steps between metrics.jsonl records", type=int)
    parser.train_flag("checkpoint_every", help="steps between checkpoints", type=int)
    parser.train_flag("precision", help="autocast bf16/fp16 (fp16 with a gradient scaler)",
                      type=str, choices=PRECISIONS)
    add("--no-progress", action="store_true",
        help="no progress bar: a log line per record instead")
    return parser


# --------------------------------------------------------------------------------- data


def load_training_data(
    args: argparse.Namespace, *, fallback: str | None = None, **kwargs: Any
) -> Dataset:
    """The training split of ``args.dataset`` (``args.data_root``, ``args.image_size``).

    With ``fallback`` (e.g. ``"sprites"`` for dSprites), a missing dataset is replaced by
    that one: ``args.dataset`` becomes it, the default run folder is named after it, and
    ``args.note`` says so (printed by `announce`).

    Raises:
        ExampleError: an unknown dataset name, missing or corrupt files (with the
            reader's message: where to get them, where to put them), or a batch larger
            than the data.
    """
    try:
        data = load_dataset(args.dataset, args.data_root, "train", args.image_size, **kwargs)
    except DatasetNotFoundError as err:
        if fallback is None:
            raise ExampleError(
                f"{err}\nGive the data root with --data-root. To run without any files: "
                f"python {args.script} --dataset digits"
            ) from None
        args.note = (f"{args.dataset} is not on disk; using {fallback} instead "
                     f"({str(err).split('. ')[0]})")
        args.dataset = fallback
        if not args.out_given:
            args.out = f"runs/{args.parser.name}-{fallback}"
        return load_training_data(args, **kwargs)
    except CorruptDatasetError as err:
        raise ExampleError(str(err)) from None
    except ValueError as err:
        if "unknown dataset" not in str(err):
            raise
        close = difflib.get_close_matches(str(args.dataset).lower(), list(DATASETS), n=1)
        hint = f"; did you mean --dataset {close[0]}?" if close else ""
        raise ExampleError(f"argument --dataset: {err}{hint}") from None
    batch_size, processes = train_settings(args)["batch_size"], parallel.planned_world_size()
    if len(data) < batch_size * processes:
        each = f" x {processes} processes" if processes > 1 else ""
        raise ExampleError(
            f"argument --batch-size: {batch_size}{each} is more than the {len(data)} training "
            f"samples of {args.dataset}; use --batch-size {len(data) // processes} or fewer"
        )
    return data


def data_shape(data: Dataset) -> tuple[int, ...]:
    """Shape of one sample of a dataset of ``(image, target)`` items."""
    item = data[0]
    x = item[0] if isinstance(item, (tuple, list)) else item
    return tuple(x.shape)


def first_images(data: Dataset, n: int) -> Tensor:
    """The first ``n`` images of ``data`` stacked into ``(n, C, H, W)``."""
    items = [data[i] for i in range(min(n, len(data)))]
    return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])


# --------------------------------------------------------------------- the stored run


def will_resume(args: argparse.Namespace) -> bool:
    """Whether ``--resume`` will continue a checkpoint in ``--out`` (or its previous copy)."""
    return bool(args.resume) and has_checkpoint(args.out)


def _stored(args: argparse.Namespace) -> dict[str, Any] | None:
    """The resumed run's training config and model config (read once), or None."""
    if not will_resume(args):
        return None
    cache = vars(args).setdefault("_stored_run", {})
    if args.out not in cache:
        state = load_checkpoint(args.out)
        model_config = state.get("model_config")
        sidecar = Path(args.out) / MODEL_CONFIG
        if model_config is None and sidecar.exists():
            model_config = json.loads(sidecar.read_text(encoding="utf-8"))
        cache[args.out] = {"config": state["config"], "model_config": model_config}
    return cache[args.out]


def _same(a: Any, b: Any) -> bool:
    """Equality of plain values as stored in JSON (tuples as lists, 1 == 1.0)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def _contradiction(flag: str, given: Any, stored: Any, out: str) -> ExampleError:
    return ExampleError(
        f"{flag} {given} contradicts the run in {out}, trained with {stored}; leave "
        f"{flag} out to resume it, or start a new run (--out elsewhere, or --overwrite)"
    )


def model_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The model flags' values: given on the command line, else the resumed run's, else
    the script's default, else the model's.

    Raises:
        ExampleError: a flag given on resume contradicts the run's value.
    """
    parser: ExampleParser = args.parser
    stored = _stored(args)
    run = (stored or {}).get("model_config") or {}
    run_arguments = run.get("arguments", {})
    values = {}
    for name, default in parser.model_defaults.items():
        given = getattr(args, name) if name in args.given else None
        if name in run_arguments:
            if given is not None and not _same(given, run_arguments[name]):
                raise _contradiction(_flag(name), given, run_arguments[name], args.out)
            values[name] = run_arguments[name]
        elif given is not None:
            values[name] = given
        else:
            value = default(args) if callable(default) else default
            values[name] = _signature_default(parser.model, name) if value is None else value
    return values


def build_model(args: argparse.Namespace, **derived: Any) -> OTAutoencoder:
    """The parser's model from `model_arguments` and the arguments the script
    derives from the data (``data_shape=...``, ``dataset_size=...``, or a default that
    depends on the data), which replace those of `model_arguments` unless given as
    flags.

    On resume the model is built from the run's stored arguments; a derived one that
    differs (other data) is an `ExampleError` naming both values.
    """
    parser: ExampleParser = args.parser
    derived = {k: v for k, v in derived.items() if k not in args.given}
    arguments = {**model_arguments(args), **derived}
    run = (_stored(args) or {}).get("model_config")
    if run is not None:
        for name, value in derived.items():
            if name in run["arguments"] and not _same(value, run["arguments"][name]):
                raise ExampleError(
                    f"the data gives {name}={tuple(value) if isinstance(value, list) else value}"
                    f" but the run in {args.out} was trained with {name}="
                    f"{run['arguments'][name]}; resume with the run's --dataset and "
                    "--image-size"
                )
        arguments = {**arguments, **run["arguments"]}
    try:
        return parser.model(**arguments)
    except (TypeError, ValueError) as err:  # the model's checks of its arguments
        raise ExampleError(f"{err} (see --help for the model flags)") from None


# ---------------------------------------------------------------------------- training


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The training flags' values: given, else the resumed run's, else the defaults
    (the script's, the model's ``training_defaults``, TrainConfig's).

    Raises:
        ExampleError: a flag given on resume that cannot change (``--batch-size``,
            ``--n-critic``, ``--seed``...) contradicts the run's value.
    """
    parser: ExampleParser = args.parser
    run = (_stored(args) or {}).get("config", {})
    values = {}
    for name, default in parser.train_defaults.items():
        given = getattr(args, name) if name in args.given else None
        if name in run:
            if given is not None and name not in RESUMABLE_FIELDS and not _same(given, run[name]):
                raise _contradiction(_flag(name), given, run[name], args.out)
            values[name] = given if given is not None else run[name]
        else:
            values[name] = given if given is not None else default
    return values


def make_trainer(model: nn.Module, args: argparse.Namespace, **defaults: Any) -> Trainer:
    """A `Trainer` for ``model`` from the flags (`train_settings`)
    over the model's ``training_defaults`` and ``defaults``.

    Raises:
        ExampleError: a setting out of range (``--batch-size 0``...).
    """
    fields = {
        **getattr(model, "training_defaults", {}),
        **defaults,
        **train_settings(args),
        "out_dir": args.out,
        "device": args.device,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "progress": "lines" if args.no_progress else True,
    }
    try:
        config = TrainConfig(**fields)
    except ValueError as err:
        raise ExampleError(f"{err} (see --help for the training flags)") from None
    return Trainer(model, config)


def fit(trainer: Trainer, data: Any, args: argparse.Namespace) -> TrainSummary:
    """Train to ``args.max_steps``; on the ranks other than 0 of a multi-process run, end
    the script's ``main`` there (see `application`).

    Raises:
        ExampleError: the run folder holds a run and neither ``--resume`` nor
            ``--overwrite`` was given, or a loss became non-finite.
    """
    try:
        summary = trainer.fit(data, max_steps=args.max_steps)
    except FileExistsError as err:
        raise ExampleError(str(err)) from None
    except NonFiniteLossError as err:
        raise ExampleError(f"{err} (flags: --lr, --grad-clip, --resume)") from None
    if trainer.rank != 0:
        raise _TrainedOnAnotherRank
    return summary


# ------------------------------------------------------------------------------ output


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


def announce(trainer: Trainer, args: argparse.Namespace) -> None:
    """Print what is about to train, on what, where (and the data fallback's note); rank
    0 only."""
    if trainer.rank != 0:
        return
    if getattr(args, "note", None):
        print(f"note: {args.note}")
    where = str(trainer.device)
    if trainer.world_size > 1:
        where += (f", {trainer.world_size} processes x batch {trainer.config.batch_size}"
                  f" = {trainer.world_size * trainer.config.batch_size}")
    print(f"training {type(trainer.model).__name__} on {args.dataset} ({where}); "
          f"run folder: {trainer.out_dir}")


def report(summary: TrainSummary, figures: Sequence[Path]) -> None:
    """Print where the run left its checkpoint, metrics and figures, and its last losses."""
    losses = ", ".join(f"{k}={v:.4g}" for k, v in summary.metrics.items())
    print(f"step {summary.step} ({summary.seconds:.0f} s): {losses}")
    print(f"run folder: {summary.out_dir}")
    model_config = summary.out_dir / MODEL_CONFIG
    listed = [summary.checkpoint, *([model_config] if model_config.exists() else [])]
    for path in [*listed, summary.out_dir / METRICS, *figures]:
        print(f"  {path}")

"""Training loop for OT autoencoders: alternating optimisers, logs, checkpoints, exact resume.

Read top to bottom: the model protocol, the configuration, random-state helpers, the
data iterator, checkpoint files, then :class:`Trainer`.

A model trains if it follows :class:`OTAutoencoder` (``losses(x) -> dict``); an
adversarial model (a critic or discriminator, e.g. GWAE's joint critic, WAE-GAN,
TCWAE-GAN) also follows :class:`AdversarialOTAutoencoder`. Each generator step is
preceded by ``n_critic`` critic steps, each on its own batch.

Everything that decides the future of a run is checkpointed: the model, both optimisers,
the step, every random generator (torch CPU and CUDA, numpy, Python's ``random``) and the
position of the data iterator. So N steps straight and N/2 steps, a restart with
``resume=True``, and N/2 more give bitwise identical parameters on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from otloss import __version__
from otloss._checks import check_choice, check_positive

__all__ = [
    "AdversarialOTAutoencoder",
    "InfiniteBatches",
    "NonFiniteLossError",
    "OTAutoencoder",
    "TrainConfig",
    "TrainSummary",
    "Trainer",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
]

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
OPTIMIZERS = ("adam", "adamw", "rmsprop")
CRITIC_PREFIX = "critic/"  # critic terms are logged as "critic/<name>"


# ----------------------------------------------------------------------------- protocol


@runtime_checkable
class OTAutoencoder(Protocol):
    """What :class:`Trainer` needs from a model (an ``nn.Module``).

    ``losses(x)`` returns a dict of scalar tensors: the total to minimise under
    ``"loss"``, and every term that makes it up (``"gw"``, ``"reconstruction"``, ...),
    which are logged but not differentiated. All parameters of the model that are not
    critic parameters are trained on ``"loss"``.
    """

    def losses(self, x: Tensor) -> dict[str, Tensor]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@runtime_checkable
class AdversarialOTAutoencoder(OTAutoencoder, Protocol):
    """An :class:`OTAutoencoder` with a critic trained by its own optimiser.

    ``critic_losses(x)`` returns the critic's objective under ``"loss"`` (to minimise,
    e.g. ``-(E f(real) - E f(fake)) + gradient penalty``) plus its terms;
    ``critic_parameters()`` yields the critic's parameters. The generator's parameters
    are the model's other parameters, found by identity. A critic step updates only the
    critic and a generator step only the generator, whatever graph the losses build.
    """

    def critic_losses(self, x: Tensor) -> dict[str, Tensor]: ...

    def critic_parameters(self) -> Iterable[nn.Parameter]: ...


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the run stopped and its checkpoint was kept.

    Attributes:
        terms: names of the terms that were non-finite first (critic terms are prefixed
            ``"critic/"``); ``term`` is the first of them.
        step: the 1-based step at which they became non-finite.
        checkpoint: the untouched last good checkpoint, or ``None`` if none was written.
    """

    def __init__(self, terms: list[str], step: int, checkpoint: Path | None) -> None:
        self.terms, self.term, self.step, self.checkpoint = terms, terms[0], step, checkpoint
        names = ", ".join(repr(t) for t in terms)
        kept = (
            f"the last good checkpoint {checkpoint} was left untouched"
            if checkpoint is not None
            else "no checkpoint had been written yet"
        )
        super().__init__(
            f"non-finite loss: term {names} became NaN or infinite at step {step}; "
            f"training stopped and {kept}. Lower the learning rate, clip gradients "
            "(grad_clip) or check the data, then resume."
        )


# ----------------------------------------------------------------------- configuration


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of a run; stored in every checkpoint under ``"config"``.

    The papers' optimisers: GWAE uses ``optimizer="rmsprop", lr=1e-4, critic_lr=5e-5``
    and several critic steps per generator step; TCWAE uses ``optimizer="adam",
    lr=4e-4, eps=8e-4`` and, for its discriminator, ``critic_lr=1e-4,
    critic_betas=(0.5, 0.9)``; WAE uses Adam at ``1e-3``.

    Attributes:
        out_dir: run folder for ``checkpoint.pt``, ``metrics.jsonl`` and TensorBoard logs.
        batch_size: samples per batch (when ``fit`` gets a dataset).
        optimizer: ``"adam"``, ``"adamw"`` or ``"rmsprop"`` for the generator.
        lr: the generator's learning rate.
        betas: Adam's moment coefficients (RMSprop uses ``alpha=0.99``).
        eps: the optimisers' denominator epsilon (both optimisers).
        weight_decay: L2 penalty of both optimisers.
        critic_optimizer: the critic's optimiser; ``None`` uses ``optimizer``.
        critic_lr: the critic's learning rate; ``None`` uses ``lr``.
        critic_betas: the critic's Adam betas; ``None`` uses ``betas``.
        n_critic: critic steps (each on a fresh batch) before every generator step.
        grad_clip: maximum total L2 norm of each optimiser's gradients, or ``None``.
        log_every: steps between records in ``metrics.jsonl`` (means over the interval)
            and non-finite checks; the only steps that synchronise with the device.
        checkpoint_every: steps between checkpoints (one is also written at the end).
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``...; ``None`` picks CUDA when available.
        seed: seeds torch, numpy, ``random`` and the data order of a fresh run.
        resume: continue from ``out_dir/checkpoint.pt`` when there is one.
        overwrite: let a fresh run replace an existing checkpoint (otherwise refused).
        num_workers: ``DataLoader`` worker processes that load batches (the order stays
            exact; keep 0 for in-memory data).
        progress: show a tqdm progress bar (when tqdm is installed).
        tensorboard: also log to ``out_dir/tensorboard`` (when tensorboard is installed).
    """

    out_dir: str = "runs/otloss"
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    critic_optimizer: str | None = None
    critic_lr: float | None = None
    critic_betas: tuple[float, float] | None = None
    n_critic: int = 1
    grad_clip: float | None = None
    log_every: int = 50
    checkpoint_every: int = 1000
    device: str | None = None
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    num_workers: int = 0
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.out_dir = str(self.out_dir)
        self.betas = tuple(self.betas)
        if self.critic_betas is not None:
            self.critic_betas = tuple(self.critic_betas)
        for name in ("batch_size", "n_critic", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative int, got {self.num_workers!r}")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.critic_optimizer is not None:
            check_choice("critic_optimizer", self.critic_optimizer, OPTIMIZERS)
        check_positive("lr", self.lr)
        check_positive("eps", self.eps)
        if self.critic_lr is not None:
            check_positive("critic_lr", self.critic_lr)
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip)


#: Fields that may change between a run and its resumption without a warning.
_RUNTIME_FIELDS = {"out_dir", "resume", "overwrite", "num_workers", "progress", "tensorboard"}


def _make_optimizer(
    name: str, params: list[nn.Parameter], *, lr: float, betas: tuple, eps: float, wd: float
) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, eps=eps, weight_decay=wd)


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available")
    return device


# ------------------------------------------------------------------------ random state


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's global generator and ``random``.

    Call it before building the model so that its initialisation is reproducible too.
    """
    torch.manual_seed(seed)  # also seeds every CUDA device
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global state user code draws from)
    random.seed(seed)


def _rng_state(device: torch.device) -> dict[str, Any]:
    """All global random states, as tensors and plain Python values (``weights_only``-safe)."""
    kind, key, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    kind, key, pos, has_gauss, cached = state["numpy"]
    key = key.numpy().astype(np.uint32)
    np.random.set_state((kind, key, pos, has_gauss, cached))  # noqa: NPY002
    random.setstate(state["python"])
    if device.type == "cuda":
        if "cuda" in state and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            logger.warning("checkpoint has no CUDA random state for this machine; not restored")


# --------------------------------------------------------------------------------- data


class InfiniteBatches:
    """Endless, exactly resumable batches from a map-style dataset (or a tensor of samples).

    Epoch ``e`` visits the samples in ``torch.randperm`` order drawn from a
    ``torch.Generator`` seeded with ``(seed, e)`` and drops the last incomplete batch, so
    every batch has ``batch_size`` samples (estimators such as GW and unbiased MMD depend
    on the batch size). The whole state is ``(seed, epoch, position)``: saving and
    restoring it with :meth:`state_dict` / :meth:`load_state_dict` reproduces the batch
    order exactly, with or without worker processes.

    Args:
        dataset: a ``Tensor`` of samples ``(N, ...)``, a ``TensorDataset``, or any
            ``Dataset`` with ``__len__`` and ``__getitem__`` (items collated with
            ``torch.utils.data.default_collate``).
        batch_size: samples per batch, at most ``len(dataset)``.
        seed: the data-order seed.
        num_workers: ``DataLoader`` workers fetching items (``Dataset`` only).
    """

    def __init__(
        self, dataset: Any, batch_size: int, *, seed: int = 0, num_workers: int = 0
    ) -> None:
        size = len(dataset)
        if size < batch_size:
            raise ValueError(
                f"the dataset has {size} samples, fewer than batch_size={batch_size}; "
                "use a smaller batch"
            )
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.num_workers = num_workers
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order(0)
        self._batches: Iterator[Any] | None = None

    def _epoch_order(self, epoch: int) -> Tensor:
        """Sample indices of one epoch, shape ``(n_batches, batch_size)``."""
        high, low = np.random.SeedSequence([self.seed, epoch]).generate_state(2)
        generator = torch.Generator().manual_seed(int(high) << 32 | int(low))
        order = torch.randperm(len(self.dataset), generator=generator)
        n_batches = len(self.dataset) // self.batch_size
        return order[: n_batches * self.batch_size].view(n_batches, self.batch_size)

    def _fetch(self, indices: Tensor) -> Any:
        if isinstance(self.dataset, Tensor):
            return self.dataset[indices]
        if isinstance(self.dataset, TensorDataset):
            return tuple(t[indices] for t in self.dataset.tensors)
        return torch.utils.data.default_collate([self.dataset[i] for i in indices.tolist()])

    def _rest_of_epoch(self) -> Iterator[Any]:
        remaining = self._order[self.position :]
        if self.num_workers == 0 or isinstance(self.dataset, (Tensor, TensorDataset)):
            return (self._fetch(indices) for indices in remaining)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=remaining.tolist(), num_workers=self.num_workers
        )
        return iter(loader)

    def __iter__(self) -> InfiniteBatches:
        return self

    def __next__(self) -> Any:
        if self._batches is None:
            self._batches = self._rest_of_epoch()
        for batch in self._batches:
            self.position += 1
            return batch
        self.epoch, self.position = self.epoch + 1, 0
        self._order = self._epoch_order(self.epoch)
        self._batches = None
        return next(self)

    def state_dict(self) -> dict[str, int]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "size": len(self.dataset),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from ``state``; the dataset size and batch size must be the same."""
        if (state["size"], state["batch_size"]) != (len(self.dataset), self.batch_size):
            raise ValueError(
                f"cannot resume the data order: the checkpoint was made with "
                f"{state['size']} samples in batches of {state['batch_size']}, this run "
                f"has {len(self.dataset)} samples in batches of {self.batch_size}"
            )
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._order = self._epoch_order(self.epoch)
        self._batches = None


class _Repeat:
    """Cycles over a user's iterable of batches (a DataLoader, a list...), epoch after epoch."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches, self._it = batches, iter(batches)

    def __next__(self) -> Any:
        for batch in self._it:
            return batch
        self._it = iter(self.batches)
        for batch in self._it:
            return batch
        raise ValueError("the batch iterable passed to Trainer.fit yielded no batches")


# -------------------------------------------------------------------------- checkpoints


def _previous(path: Path) -> Path:
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` atomically to ``path``, keeping the file it replaces as ``*.prev.pt``.

    The state goes to a temporary file in the same directory, is flushed and fsynced,
    then the current checkpoint is renamed to ``checkpoint.prev.pt`` and the new one
    renamed into place (``os.replace`` is atomic). A crash at any point leaves at least
    one complete checkpoint that :func:`load_checkpoint` finds.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, _previous(path))
    os.replace(tmp, path)
    if os.name == "posix":  # make the renames durable too
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


_REQUIRED_KEYS = {"model", "optimizers", "step", "rng", "config"}


def _read_checkpoint(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not _REQUIRED_KEYS <= state.keys():
        missing = sorted(_REQUIRED_KEYS - (state.keys() if isinstance(state, dict) else set()))
        raise ValueError(f"{path} is not an otloss checkpoint (missing {missing})")
    return state


def _load_with_fallback(path: Path) -> tuple[dict[str, Any], Path]:
    errors = []
    for candidate in (path, _previous(path)):
        if not candidate.exists():
            errors.append(f"{candidate}: missing")
            continue
        try:
            state = _read_checkpoint(candidate)
        except Exception as err:  # a truncated or corrupt file fails in many ways
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            errors.append(f"{candidate}: {type(err).__name__}: {first_line}")
            continue
        if candidate != path:
            message = f"{errors[0]}; falling back to the previous checkpoint {candidate}"
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        return state, candidate
    raise FileNotFoundError("no readable checkpoint: " + "; ".join(errors))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :class:`Trainer` (a run folder or a ``.pt`` path).

    A missing, truncated or corrupt ``checkpoint.pt`` is detected at load and the
    previous checkpoint (``checkpoint.prev.pt``) is used instead, with a warning.

    Returns:
        The checkpoint dict: ``model`` (state dict), ``optimizers`` (``"generator"`` and,
        for adversarial models, ``"critic"``), ``step``, ``rng``, ``data``, ``metrics``,
        ``config`` (a :class:`TrainConfig` as a dict) and ``otloss_version``.

    Raises:
        FileNotFoundError: neither file exists or can be read.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    return _load_with_fallback(path)[0]


# ---------------------------------------------------------------------- loss bookkeeping


class _LossTracker:
    """Device-side running sums of the loss terms and the first step each was non-finite.

    Adding a step queues a few kernels and never waits for the device; reading the means
    or the non-finite steps synchronises once.
    """

    def __init__(self, device: torch.device) -> None:
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.device = device
        self.names: dict[str, list[str]] = {}  # group prefix -> term names
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.first_bad: dict[str, Tensor] = {}

    def add(self, prefix: str, terms: dict[str, Tensor], step: int) -> None:
        values = torch.stack([t.detach().to(self.dtype).reshape(()) for t in terms.values()])
        if prefix not in self.names:
            self.names[prefix] = [prefix + name for name in terms]
            self.sums[prefix] = torch.zeros_like(values)
            self.counts[prefix] = 0
            self.first_bad[prefix] = torch.full(values.shape, -1, device=values.device)
        elif len(self.names[prefix]) != len(terms):
            raise ValueError(f"the loss terms changed during training: got {list(terms)}")
        self.sums[prefix] += values
        self.counts[prefix] += 1
        bad = self.first_bad[prefix]
        self.first_bad[prefix] = torch.where((bad < 0) & ~values.isfinite(), step, bad)

    def means(self) -> dict[str, float]:
        """Mean of every term since the last call, then restart the sums."""
        out = {}
        for prefix, names in self.names.items():
            if self.counts[prefix]:
                values = (self.sums[prefix] / self.counts[prefix]).tolist()
                out.update(zip(names, values, strict=True))
            self.sums[prefix].zero_()
            self.counts[prefix] = 0
        return out

    def first_nonfinite(self) -> tuple[list[str], int] | None:
        """The earliest step at which some term was non-finite, and those terms."""
        steps = {
            name: step
            for prefix, names in self.names.items()
            for name, step in zip(names, self.first_bad[prefix].tolist(), strict=True)
            if step >= 0
        }
        if not steps:
            return None
        first = min(steps.values())
        terms = sorted((n for n, s in steps.items() if s == first), key=_totals_last)
        return terms, first

    def state_dict(self) -> dict[str, Any]:
        return {"names": self.names, "sums": self.sums, "counts": self.counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.names, self.counts = state["names"], state["counts"]
        self.sums = {k: v.to(self.device) for k, v in state["sums"].items()}
        self.first_bad = {
            k: torch.full(v.shape, -1, device=self.device) for k, v in self.sums.items()
        }


def _totals_last(name: str) -> bool:
    return name.removeprefix(CRITIC_PREFIX) == "loss"


def _check_terms(terms: object, method: str) -> dict[str, Tensor]:
    """The protocol's contract on ``losses``/``critic_losses`` outputs, from metadata only."""
    if not isinstance(terms, dict) or "loss" not in terms:
        got = list(terms) if isinstance(terms, dict) else type(terms).__name__
        raise TypeError(
            f"model.{method}(x) must return a dict with the total under 'loss', got {got}"
        )
    for name, value in terms.items():
        if not isinstance(value, Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"model.{method}(x)[{name!r}] must be a scalar tensor, got {shape}")
    return terms


# ------------------------------------------------------------------------------ trainer


@dataclasses.dataclass
class TrainSummary:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        step: steps done in total (including those before a resume).
        start_step: the step this call started from (0, or the checkpoint's step).
        resumed: whether the call resumed from a checkpoint.
        metrics: the last record written to ``metrics.jsonl`` (without ``"step"``).
        checkpoint: path of the final checkpoint.
        out_dir: the run folder.
        seconds: wall-clock time of this call.
    """

    step: int
    start_step: int
    resumed: bool
    metrics: dict[str, float]
    checkpoint: Path
    out_dir: Path
    seconds: float


class Trainer:
    r"""Train an :class:`OTAutoencoder` (optionally adversarial) with exact resume.

    One step: for adversarial models ``n_critic`` critic steps, each on a fresh batch
    (minimise ``critic_losses(x)["loss"]`` over the critic's parameters), then one
    generator step on a fresh batch (minimise ``losses(x)["loss"]`` over all other
    parameters). Gradients reach only the parameters being stepped
    (``backward(inputs=...)``), so critic losses that depend on the encoder leave no
    stale gradients in it.

    Every ``log_every`` steps the mean of every term over the interval is appended to
    ``out_dir/metrics.jsonl`` as ``{"step": s, "loss": ..., "critic/loss": ...}``
    (also to TensorBoard when installed, and to the progress bar), ``on_log(step,
    metrics)`` is called, and the run stops with :class:`NonFiniteLossError` if any term
    was NaN or infinite, naming it and the step, without writing a checkpoint. Every
    ``checkpoint_every`` steps and at the end, ``out_dir/checkpoint.pt`` is written
    atomically (see :func:`save_checkpoint`) and ``on_checkpoint(step, path)`` is
    called. A run that is killed loses at most the steps since its last checkpoint.

    Args:
        model: an ``nn.Module`` following the protocol; moved to the chosen device.
        config: a :class:`TrainConfig` (default: ``TrainConfig()``).
        on_log: called as ``on_log(step, metrics)`` after each record.
        on_checkpoint: called as ``on_checkpoint(step, path)`` after each checkpoint.
        **overrides: :class:`TrainConfig` fields replacing those of ``config``.

    Example:
        >>> trainer = Trainer(model, out_dir="runs/gwae", optimizer="rmsprop", lr=1e-4,
        ...                   critic_lr=5e-5, n_critic=5, resume=True)
        >>> summary = trainer.fit(dataset, max_steps=10_000)
        >>> summary.metrics["loss"]
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig | None = None,
        *,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
        on_checkpoint: Callable[[int, Path], None] | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(model, nn.Module) or not callable(getattr(model, "losses", None)):
            raise TypeError("model must be an nn.Module with a losses(x) -> dict method")
        has_critic = [hasattr(model, m) for m in ("critic_losses", "critic_parameters")]
        if any(has_critic) and not all(has_critic):
            raise TypeError(
                "an adversarial model needs both critic_losses(x) and critic_parameters()"
            )
        self.config = cfg = dataclasses.replace(config or TrainConfig(), **overrides)
        self.device = _device(cfg.device)
        self.model = model.to(self.device)
        self.adversarial = all(has_critic)
        self.on_log, self.on_checkpoint = on_log, on_checkpoint

        critic = list(model.critic_parameters()) if self.adversarial else []
        critic_ids = {id(p) for p in critic}
        self.critic_params = [p for p in critic if p.requires_grad]
        self.generator_params = [
            p for p in model.parameters() if p.requires_grad and id(p) not in critic_ids
        ]
        self.optimizers = {
            "generator": _make_optimizer(
                cfg.optimizer,
                self.generator_params,
                lr=cfg.lr,
                betas=cfg.betas,
                eps=cfg.eps,
                wd=cfg.weight_decay,
            )
        }
        if self.adversarial:
            self.optimizers["critic"] = _make_optimizer(
                cfg.critic_optimizer or cfg.optimizer,
                self.critic_params,
                lr=cfg.critic_lr or cfg.lr,
                betas=cfg.critic_betas or cfg.betas,
                eps=cfg.eps,
                wd=cfg.weight_decay,
            )
        self.step = 0
        self.out_dir = Path(cfg.out_dir)
        self._tracker = _LossTracker(self.device)
        self._data: tuple[Any, Any] | None = None  # (what fit got, its batch iterator)

    # -- one update each -------------------------------------------------------------

    def generator_step(self, x: Tensor) -> dict[str, Tensor]:
        """Minimise ``model.losses(x)["loss"]`` over the generator's parameters once."""
        terms = _check_terms(self.model.losses(x), "losses")
        self._update(terms["loss"], self.generator_params, self.optimizers["generator"])
        return terms

    def critic_step(self, x: Tensor) -> dict[str, Tensor]:
        """Minimise ``model.critic_losses(x)["loss"]`` over the critic's parameters once."""
        terms = _check_terms(self.model.critic_losses(x), "critic_losses")
        self._update(terms["loss"], self.critic_params, self.optimizers["critic"])
        return terms

    def _update(self, loss: Tensor, params: list[nn.Parameter], opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        opt.step()

    # -- the loop ----------------------------------------------------------------------

    def fit(self, data: Any, *, max_steps: int) -> TrainSummary:
        """Train until ``max_steps`` steps in total, resuming first if configured.

        Args:
            data: a ``torch.utils.data.Dataset`` or a tensor of samples (batched by
                :class:`InfiniteBatches`, exactly resumable), an :class:`InfiniteBatches`,
                or any other iterable of batches, such as a ``DataLoader`` or a list
                (cycled; its order is restored on resume only if it has
                ``state_dict``/``load_state_dict``). A batch that is a tuple or
                list ``(x, labels, ...)`` passes only ``x`` to the model.
            max_steps: total number of generator steps of the run.

        Returns:
            A :class:`TrainSummary`.

        Raises:
            NonFiniteLossError: a loss term became non-finite.
            FileExistsError: a fresh run (``resume=False``) found a checkpoint in
                ``out_dir`` and ``overwrite`` is False.
        """
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 0:
            raise ValueError(f"max_steps must be a non-negative int, got {max_steps!r}")
        cfg, started = self.config, time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        batches = self._batches(data)
        resumed = self._start(batches)
        start_step, metrics = self.step, {}
        self.model.train()
        progress = _progress_bar(cfg.progress, start_step, max_steps)
        writer = _tensorboard_writer(cfg.tensorboard, self.out_dir)
        try:
            with open(self.out_dir / METRICS, "a", encoding="utf-8") as log_file:
                while self.step < max_steps:
                    if self.adversarial:
                        for _ in range(cfg.n_critic):
                            terms = self.critic_step(self._next_input(batches))
                            self._tracker.add(CRITIC_PREFIX, terms, self.step + 1)
                    terms = self.generator_step(self._next_input(batches))
                    self._tracker.add("", terms, self.step + 1)
                    self.step += 1
                    if progress is not None:
                        progress.update(1)
                    last = self.step == max_steps
                    if self.step % cfg.log_every == 0 or last:
                        metrics = self._log(log_file, progress, writer)
                    if self.step % cfg.checkpoint_every == 0 or last:
                        self._raise_if_nonfinite()
                        self._save(batches)
        finally:
            if progress is not None:
                progress.close()
            if writer is not None:
                writer.close()
        if start_step >= max_steps:
            logger.info("step %d already reached max_steps=%d", start_step, max_steps)
        return TrainSummary(
            step=self.step,
            start_step=start_step,
            resumed=resumed,
            metrics=metrics,
            checkpoint=self.out_dir / CHECKPOINT,
            out_dir=self.out_dir,
            seconds=time.perf_counter() - started,
        )

    def _batches(self, data: Any) -> Any:
        if self._data is not None and self._data[0] is data:
            return self._data[1]  # a second fit() on the same data continues its order
        if isinstance(data, InfiniteBatches):
            batches = data
        elif isinstance(data, (Tensor, torch.utils.data.Dataset)):
            batches = InfiniteBatches(
                data,
                self.config.batch_size,
                seed=self.config.seed,
                num_workers=self.config.num_workers,
            )
        elif isinstance(data, Iterable):
            batches = _Repeat(data)
        else:
            raise TypeError(f"fit() needs a Dataset, a Tensor or batches, got {type(data)}")
        self._data = (data, batches)
        return batches

    def _next_input(self, batches: Any) -> Tensor:
        batch = next(batches)
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(x, Tensor):
            raise TypeError(f"a batch must be a Tensor or (Tensor, ...), got {type(x).__name__}")
        return x.to(self.device, non_blocking=True)

    def _start(self, batches: Any) -> bool:
        """Resume from the run folder or start fresh; True when resumed."""
        path = self.out_dir / CHECKPOINT
        found = path.exists() or _previous(path).exists()
        if self.step > 0:  # fit() called again on this trainer: continue in memory
            return False
        if found and self.config.resume:
            state, used = _load_with_fallback(path)
            if used != path and path.exists():  # keep the corrupt file out of the rotation
                os.replace(path, path.with_name(f"{path.stem}.corrupt{path.suffix}"))
            self.load_state_dict(state, batches)
            _truncate_metrics(self.out_dir / METRICS, self.step)
            logger.info("resumed from %s at step %d", used, self.step)
            return True
        if found and not self.config.overwrite:
            raise FileExistsError(
                f"{self.out_dir} already holds a checkpoint; pass resume=True (--resume) to "
                "continue it, overwrite=True to start again over it, or another out_dir"
            )
        seed_everything(self.config.seed)
        (self.out_dir / METRICS).write_text("", encoding="utf-8")
        return False

    def _log(self, log_file: Any, progress: Any, writer: Any) -> dict[str, float]:
        metrics = self._tracker.means()  # the one host sync of the interval
        self._raise_if_nonfinite()
        log_file.write(json.dumps({"step": self.step, **metrics}) + "\n")
        log_file.flush()
        text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        logger.info("step %d: %s", self.step, text)
        if progress is not None:
            progress.set_postfix_str(text, refresh=False)
        if writer is not None:
            for name, value in metrics.items():
                writer.add_scalar(name, value, self.step)
        if self.on_log is not None:
            self.on_log(self.step, metrics)
        return metrics

    def _raise_if_nonfinite(self) -> None:
        found = self._tracker.first_nonfinite()
        if found is None:
            return
        terms, step = found
        path = self.out_dir / CHECKPOINT
        error = NonFiniteLossError(terms, step, path if path.exists() else None)
        logger.error("%s", error)
        raise error

    def _save(self, batches: Any) -> None:
        path = save_checkpoint(self.state_dict(batches), self.out_dir / CHECKPOINT)
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.step, path)

    # -- state ---------------------------------------------------------------------------

    def state_dict(self, batches: Any = None) -> dict[str, Any]:
        """Everything a checkpoint holds (``batches``: the data iterator to record)."""
        data = batches.state_dict() if hasattr(batches, "state_dict") else None
        return {
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "step": self.step,
            "rng": _rng_state(self.device),
            "data": data,
            "metrics": self._tracker.state_dict(),
            "config": dataclasses.asdict(self.config),
            "otloss_version": __version__,
        }

    def load_state_dict(self, state: dict[str, Any], batches: Any = None) -> None:
        """Restore a checkpoint's model, optimisers, step, metrics and random states."""
        self.model.load_state_dict(state["model"])
        if state["optimizers"].keys() != self.optimizers.keys():
            raise ValueError(
                f"the checkpoint has optimisers {sorted(state['optimizers'])}, this model "
                f"needs {sorted(self.optimizers)}"
            )
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.step = state["step"]
        self._tracker.load_state_dict(state["metrics"])
        changed = {
            k: (v, getattr(self.config, k))
            for k, v in state["config"].items()
            if k not in _RUNTIME_FIELDS and getattr(self.config, k, v) != v
        }
        if changed:
            logger.warning(
                "resuming with a changed configuration (checkpoint, now): %s; the "
                "optimisers' settings come from the checkpoint",
                changed,
            )
        if batches is not None:
            if state.get("data") is not None and hasattr(batches, "load_state_dict"):
                batches.load_state_dict(state["data"])
            else:
                logger.warning("the data iterator has no state: the batch order is not resumed")
        _set_rng_state(state["rng"], self.device)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records after ``step`` (written after the checkpoint, redone on resume)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError):  # a line cut short by a kill
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


def _progress_bar(enabled: bool, start: int, total: int) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None  # progress goes to the "otloss.train" logger instead
    return tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)


def _tensorboard_writer(enabled: bool, out_dir: Path) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.debug("tensorboard is not installed; logging to metrics.jsonl only")
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))

"""A run's hyper-parameters (`TrainConfig`), its optimisers and its device."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from otloss._checks import check_choice, check_positive
from otloss.train.precision import PRECISIONS

__all__ = ["OPTIMIZERS", "RESUMABLE_FIELDS", "RUNTIME_FIELDS", "TrainConfig"]

OPTIMIZERS = ("adam", "adamw", "rmsprop")


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of a run; stored in every checkpoint under ``"config"``.

    The papers' optimisers: GWAE uses ``optimizer="rmsprop", lr=1e-4, critic_lr=5e-5``
    and several critic steps per generator step; TCWAE uses ``optimizer="adam",
    lr=4e-4, eps=8e-4`` and, for its discriminator, ``critic_lr=1e-4,
    critic_betas=(0.5, 0.9)``; WAE uses Adam at ``1e-3``.

    On resume, the fields in `RESUMABLE_FIELDS` (learning rates, gradient clipping,
    log and checkpoint intervals) and `RUNTIME_FIELDS` take this configuration's
    values; every other field comes from the run's checkpoint.

    Attributes:
        out_dir: run folder for ``checkpoint.pt``, ``metrics.jsonl`` and TensorBoard logs.
        batch_size: samples per batch of each process (when ``fit`` gets a dataset); a
            run of K processes (``torchrun``) has global batches of ``K * batch_size``.
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
        progress: ``True``: a tqdm bar on a terminal, otherwise (no tqdm, or output to a
            file) one line per record on standard error; ``"lines"``: always the lines;
            ``False``: nothing (the ``otloss.train`` logger still gets every record).
        tensorboard: also log to ``out_dir/tensorboard`` (when tensorboard is installed).
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast and a
            gradient scaler), see `otloss.train.precision`; kept from the run on resume.
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
    progress: bool | str = True
    tensorboard: bool = True
    precision: str = "fp32"

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
        check_choice("precision", self.precision, PRECISIONS)
        if self.critic_optimizer is not None:
            check_choice("critic_optimizer", self.critic_optimizer, OPTIMIZERS)
        check_positive("lr", self.lr)
        check_positive("eps", self.eps)
        if self.critic_lr is not None:
            check_positive("critic_lr", self.critic_lr)
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip)
        if self.progress not in (True, False, "lines"):
            raise ValueError(f"progress must be True, False or 'lines', got {self.progress!r}")

    @property
    def critic_settings(self) -> dict[str, Any]:
        """The critic optimiser's name, learning rate and betas, defaults filled in."""
        return {
            "name": self.critic_optimizer or self.optimizer,
            "lr": self.critic_lr or self.lr,
            "betas": self.critic_betas or self.betas,
        }


#: Fields that a resumed run takes from the new configuration (they change no state that
#: the checkpoint holds, or, for the learning rates, override the optimisers' restored ones).
RESUMABLE_FIELDS = ("lr", "critic_lr", "grad_clip", "log_every", "checkpoint_every")

#: Fields about this process, not the run: never compared with the checkpoint.
RUNTIME_FIELDS = ("out_dir", "resume", "overwrite", "num_workers", "progress", "tensorboard",
                  "device")


def make_optimizer(
    name: str, params: list[nn.Parameter], *, lr: float, betas: tuple, eps: float, wd: float
) -> torch.optim.Optimizer:
    """The optimiser ``name`` (one of `OPTIMIZERS`) over ``params``."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, eps=eps, weight_decay=wd)


def resolve_device(name: str | None) -> torch.device:
    """``torch.device(name)``; ``None`` picks CUDA when available. CUDA that is asked for
    but absent is a ``ValueError``."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available")
    return device

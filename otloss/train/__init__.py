"""Training for OT autoencoders: alternating optimisers, logs, checkpoints, exact resume.

The package's modules, each one idea:

- `otloss.train.protocol`: what a model must provide (`TrainableModel`,
  `AdversarialModel`) and `is_adversarial`, the one test for a critic;
- `otloss.train.config`: `TrainConfig` and the optimisers it builds;
- `otloss.train.batches`: `InfiniteBatches`, an exactly resumable data order;
- `otloss.train.checkpoint`: random state, atomic files, checksummed checkpoints and
  the names of a run folder's files;
- `otloss.train.logs`: interval means, ``metrics.jsonl`` and the progress display;
- `otloss.train.precision`: autocast and the fp16 gradient scaler (``precision``);
- `otloss.train.parallel`: the process group and DDP of a ``torchrun`` run;
- `otloss.train.trainer`: `Trainer`, the loop.
"""

from __future__ import annotations

import warnings

from otloss.train.batches import InfiniteBatches
from otloss.train.checkpoint import (
    CHECKPOINT,
    METRICS,
    MODEL_CONFIG,
    CorruptCheckpointError,
    has_checkpoint,
    load_checkpoint,
    previous_checkpoint,
    save_checkpoint,
    seed_everything,
)
from otloss.train.config import OPTIMIZERS, RESUMABLE_FIELDS, TrainConfig
from otloss.train.logs import CRITIC_PREFIX
from otloss.train.precision import PRECISIONS
from otloss.train.protocol import AdversarialModel, TrainableModel, is_adversarial
from otloss.train.trainer import NonFiniteLossError, Trainer, TrainSummary

__all__ = [
    "CHECKPOINT",
    "CRITIC_PREFIX",
    "METRICS",
    "MODEL_CONFIG",
    "OPTIMIZERS",
    "PRECISIONS",
    "RESUMABLE_FIELDS",
    "AdversarialModel",
    "CorruptCheckpointError",
    "InfiniteBatches",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainSummary",
    "TrainableModel",
    "Trainer",
    "has_checkpoint",
    "is_adversarial",
    "load_checkpoint",
    "previous_checkpoint",
    "save_checkpoint",
    "seed_everything",
]

#: Old names of the protocols (they clashed with `otloss.models.OTAutoencoder`).
_RENAMED = {"OTAutoencoder": "TrainableModel", "AdversarialOTAutoencoder": "AdversarialModel"}


def __getattr__(name: str) -> object:
    if name in _RENAMED:
        new = _RENAMED[name]
        warnings.warn(
            f"otloss.train.{name} is now otloss.train.{new}", DeprecationWarning, stacklevel=2
        )
        return globals()[new]
    raise AttributeError(f"module 'otloss.train' has no attribute {name!r}")

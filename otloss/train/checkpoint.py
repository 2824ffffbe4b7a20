"""Random state and checkpoint files: atomic writes, an integrity checksum, a fallback.

The run folder's file names are defined here, once (`CHECKPOINT`,
`previous_checkpoint`, `METRICS`, `MODEL_CONFIG`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import stat
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CHECKPOINT",
    "METRICS",
    "MODEL_CONFIG",
    "CorruptCheckpointError",
    "atomic_write",
    "checkpoint_digest",
    "has_checkpoint",
    "load_checkpoint",
    "previous_checkpoint",
    "remove_stale_temporary_files",
    "save_checkpoint",
    "seed_everything",
    "write_json",
]

logger = logging.getLogger("otloss.train")

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
MODEL_CONFIG = "model.json"  # the model's constructor arguments, also in the checkpoint
#: Key of the integrity digest inside a checkpoint.
CHECKSUM = "sha256"


def previous_checkpoint(path: str | os.PathLike) -> Path:
    """The copy that `save_checkpoint` keeps of the file it replaces."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def has_checkpoint(out_dir: str | os.PathLike) -> bool:
    """Whether ``out_dir`` holds a checkpoint (current or previous) to resume."""
    path = Path(out_dir) / CHECKPOINT
    return path.exists() or previous_checkpoint(path).exists()


# ------------------------------------------------------------------------ random state


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's global generator and ``random``.

    Call it before building the model so that its initialisation is reproducible too.
    """
    torch.manual_seed(seed)  # also seeds every CUDA device
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global state user code draws from)
    random.seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
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


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what `rng_state` recorded."""
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


# ------------------------------------------------------------------------ atomic files


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[bytes]], None],
    *,
    previous: str | os.PathLike | None = None,
) -> Path:
    """Replace ``path`` by what ``write(file)`` writes, atomically and durably.

    The temporary file is created by ``tempfile.mkstemp`` in the same folder (a fresh
    name opened with ``O_EXCL``), so an existing file or symbolic link, such as one planted
    at ``path + ".tmp"``, is never followed or overwritten. It is flushed, fsynced and
    renamed over ``path`` with ``os.replace`` (atomic), which replaces a link at ``path``
    itself rather than its target. With ``previous``, the file being replaced is first
    renamed to ``previous``. A crash leaves the old file, or the new one (and then the old
    one as ``previous``). The new file keeps the old one's permission bits (0644 if new).
    """
    path = Path(path)
    old = path.lstat() if path.exists() or path.is_symlink() else None
    mode = old.st_mode & 0o777 if old is not None and stat.S_ISREG(old.st_mode) else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def remove_stale_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that `atomic_write` left in ``folder`` when a
    process was killed mid-write (regular files named ``.<name>.<random>.tmp``); returns
    them. Links and other files are left alone."""
    stale = [p for p in Path(folder).glob(".*.*.tmp") if p.is_file() and not p.is_symlink()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _fsync_folder(folder: Path) -> None:
    if os.name == "posix":  # make the renames durable too
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """``value`` as indented JSON in ``path``, written with `atomic_write`."""
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# -------------------------------------------------------------------------- checkpoints


class CorruptCheckpointError(ValueError):
    """A checkpoint whose content does not match its stored checksum."""


def checkpoint_digest(state: dict[str, Any]) -> str:
    """SHA-256 over every value of ``state`` except its own checksum, as hex.

    Tensors contribute their dtype, shape and bytes; other values (numbers, strings,
    ``None``, the containers around them) their type and ``repr``; dict keys in order.
    A flipped bit in any tensor record or number of a checkpoint changes the digest.
    """
    digest = hashlib.sha256()

    def visit(value: Any) -> None:
        if isinstance(value, Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            items = [(k, v) for k, v in value.items() if value is not state or k != CHECKSUM]
            digest.update(f"D{len(items)}".encode())
            for key, item in items:
                visit(key)
                visit(item)
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__}{len(value)}".encode())
            for item in value:
                visit(item)
        else:
            digest.update(f"{type(value).__name__}:{value!r};".encode())

    visit(state)
    return digest.hexdigest()


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` with its checksum atomically to ``path``, keeping the file it
    replaces as ``*.prev.pt``.

    The file holds ``state`` plus ``"sha256"``, the `checkpoint_digest` of the
    rest, which `load_checkpoint` verifies (``state`` itself is not modified). It
    is serialised into a temporary file of the same folder (see `atomic_write`),
    then the current checkpoint is renamed to ``checkpoint.prev.pt`` and the new one
    renamed into place (``os.replace`` is atomic). A crash at any point leaves at least
    one complete checkpoint that
    `load_checkpoint` finds.
    """
    path = Path(path)
    state = {**state, CHECKSUM: checkpoint_digest(state)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()),
                        previous=previous_checkpoint(path))


_REQUIRED_KEYS = {"model", "optimizers", "step", "rng", "config"}


def read_checkpoint(path: Path) -> dict[str, Any]:
    """One checkpoint file, checked: an otloss checkpoint whose checksum matches."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not _REQUIRED_KEYS <= state.keys():
        missing = sorted(_REQUIRED_KEYS - (state.keys() if isinstance(state, dict) else set()))
        raise ValueError(f"{path} is not an otloss checkpoint (missing {missing})")
    if CHECKSUM not in state:
        logger.warning("%s has no checksum (an older otloss wrote it): not verified", path)
    elif checkpoint_digest(state) != state[CHECKSUM]:
        raise CorruptCheckpointError(
            f"{path} is corrupt: its content does not match its SHA-256 checksum"
        )
    return state


def load_with_fallback(path: Path) -> tuple[dict[str, Any], Path]:
    """The state of ``path``, or of its previous copy (with a warning) if ``path`` is
    missing or unreadable; and the file used."""
    errors = []
    for candidate in (path, previous_checkpoint(path)):
        if not candidate.exists():
            errors.append(f"{candidate}: missing")
            continue
        try:
            state = read_checkpoint(candidate)
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


def checkpoint_path(path: str | os.PathLike) -> Path:
    """``path/checkpoint.pt`` for a run folder, ``path`` itself for a file."""
    path = Path(path)
    return path / CHECKPOINT if path.is_dir() else path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by `Trainer` (a run folder or a
    ``.pt`` path).

    A missing, truncated or corrupt ``checkpoint.pt`` (one that does not load, or whose
    content does not match its stored SHA-256 checksum) is detected at load and the
    previous checkpoint (``checkpoint.prev.pt``) is used instead, with a warning.

    Returns:
        The checkpoint dict: ``model`` (state dict), ``optimizers`` (``"generator"`` and,
        for adversarial models, ``"critic"``), ``scalers`` (their fp16 gradient scalers'
        states, empty dicts in fp32/bf16), ``step``, ``rng``, ``data``, ``metrics``,
        ``config`` (a `TrainConfig` as a dict), ``model_config``
        (the model's constructor arguments, or ``None``), ``elapsed``, ``otloss_version``
        and ``sha256``; a run of several processes adds ``ranks``, every rank's ``rng``
        and ``metrics`` in rank order (the top-level ones are rank 0's).

    Raises:
        FileNotFoundError: neither file exists or can be read.
    """
    return load_with_fallback(checkpoint_path(path))[0]

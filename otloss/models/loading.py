"""Reload a trained reference model from its run folder or checkpoint."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from otloss.models.base import OTAutoencoder

__all__ = ["load_model", "model_class"]


def model_class(config: dict[str, Any]) -> type[OTAutoencoder]:
    """The class a model config (`OTAutoencoder.config`) names; it must be an
    `OTAutoencoder`."""
    module_name, _, name = str(config.get("class", "")).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"the model class {config.get('class')!r} cannot be imported") from err
    if not (isinstance(cls, type) and issubclass(cls, OTAutoencoder)):
        raise ValueError(f"{config['class']} is not an otloss.models.OTAutoencoder")
    return cls


def load_model(path: str | os.PathLike, device: str | torch.device | None = None) -> OTAutoencoder:
    """The trained model of a run: the right class, built with the run's constructor
    arguments, holding the checkpoint's weights, in eval mode.

    Args:
        path: a run folder (its ``checkpoint.pt``, or ``checkpoint.prev.pt`` if that one
            is corrupt, see `otloss.train.load_checkpoint`) or a checkpoint file.
        device: where to put the model (default: the CPU).

    Returns:
        The model; building it does not disturb the global random state.

    Raises:
        FileNotFoundError: no readable checkpoint at ``path``.
        ValueError: the checkpoint does not record the model's constructor arguments
            (the model was not built from plain arguments), or names an unknown class.
    """
    from otloss.train.checkpoint import MODEL_CONFIG, checkpoint_path, load_checkpoint

    state = load_checkpoint(path)
    config = state.get("model_config")
    if config is None:
        sidecar = checkpoint_path(path).parent / MODEL_CONFIG
        if sidecar.exists():
            config = json.loads(sidecar.read_text(encoding="utf-8"))
    if config is None:
        raise ValueError(
            f"{Path(path)} does not record the model's constructor arguments (no "
            f"'model_config' in the checkpoint, no {MODEL_CONFIG}): build the model yourself "
            "and load load_checkpoint(path)['model'] into it"
        )
    with torch.random.fork_rng(devices=[]):
        model = model_class(config).from_config(config)
    model.load_state_dict(state["model"])
    return model.to(torch.device(device) if device is not None else "cpu").eval()

"""Split names of the ground-truth datasets, which have no official train/test split."""

from __future__ import annotations

__all__ = ["WHOLE_DATASET_SPLITS", "check_whole_dataset_split"]

#: Splits accepted by datasets without an official split: both mean every image.
WHOLE_DATASET_SPLITS = ("train", "all")


def check_whole_dataset_split(title: str, split: str) -> str:
    """Accept ``"train"``/``"all"`` (the whole dataset); explain anything else."""
    if split not in WHOLE_DATASET_SPLITS:
        raise ValueError(
            f"{title} has no official {split!r} split: use split='all' (or 'train'), the "
            "whole factor grid, as disentanglement metrics sample from it"
        )
    return split

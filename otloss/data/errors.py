"""Exceptions raised by the dataset readers.

Both name the offending file. A missing file also says where to download it and where
to put it (see `otloss.data.paths`); a corrupt file says what was wrong with it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CorruptDatasetError", "DatasetNotFoundError"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file or folder is not on disk.

    The message names the path that was looked for, where to download the dataset,
    the layout expected under the data root, and how to run on the embedded digits.
    """


class CorruptDatasetError(ValueError):
    """A dataset file exists but is truncated or not in the release format.

    Args:
        path: the offending file.
        problem: what is wrong with it.
        source: where to download a good copy (optional).
    """

    def __init__(self, path: str | Path, problem: str, source: str | None = None) -> None:
        self.path = Path(path)
        message = f"corrupt dataset file {self.path}: {problem}"
        if source:
            message += f". Download it again from {source}"
        super().__init__(message)

"""A file handle opened lazily once per process, so readers work with DataLoader workers.

Archive handles (zip, HDF5) cannot be pickled or shared across a ``fork``: each worker
process opens its own on first access, and pickling a dataset drops the handle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["ProcessLocalHandle"]

T = TypeVar("T")


class ProcessLocalHandle(Generic[T]):
    """Open ``opener()`` on first `get` in each process and reuse it there.

    Args:
        opener: a callable returning an open handle with a ``close()`` method.
    """

    def __init__(self, opener: Callable[[], T]) -> None:
        self._opener = opener
        self._handle: T | None = None
        self._pid: int | None = None

    def get(self) -> T:
        """The handle of the current process, opened if needed."""
        if self._handle is None or self._pid != os.getpid():
            self._handle = self._opener()
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close this process's handle (a later `get` reopens it)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()  # type: ignore[attr-defined]
        self._handle = None
        self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_opener": self._opener, "_handle": None, "_pid": None}

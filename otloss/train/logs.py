"""What a run records: interval means of the loss terms, ``metrics.jsonl``, the display.

Each record of ``metrics.jsonl`` closes a log interval (``step`` a multiple of
``log_every``), except the last record of a ``fit`` call that stops between two: that
one reports the unfinished interval without closing it, and a continuation of the run
removes it and records the whole interval at its end. So the records of a run split
at any step are the records of the straight run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from otloss.train.checkpoint import atomic_write

__all__ = ["CRITIC_PREFIX", "LossTracker", "Progress", "truncate_metrics"]

CRITIC_PREFIX = "critic/"  # critic terms are logged as "critic/<name>"


class LossTracker:
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

    def means(self, *, reset: bool = True) -> dict[str, float]:
        """Mean of every term since the interval began; ``reset`` starts a new interval."""
        out = {}
        for prefix, names in self.names.items():
            if self.counts[prefix]:
                values = (self.sums[prefix] / self.counts[prefix]).tolist()
                out.update(zip(names, values, strict=True))
            if reset:
                self.sums[prefix].zero_()
                self.counts[prefix] = 0
        return out

    @property
    def pending(self) -> bool:
        """Whether the current interval has steps not yet closed by a record."""
        return any(self.counts.values())

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


def truncate_metrics(path: Path, step: int, *, keep_last: bool) -> None:
    """Keep the records before ``step``, and the one at ``step`` only if ``keep_last``.

    Records after the checkpoint were written after it and are redone on resume; a record
    at the checkpoint's step that did not close its interval (see the module docstring)
    is replaced by the one that will. Lines cut short by a kill are dropped.
    """
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):  # a line cut short by a kill
            continue
        if record_step < step or (record_step == step and keep_last):
            kept.append(line + "\n")
    text = "".join(kept).encode("utf-8")
    atomic_write(path, lambda f: f.write(text))


class Progress:
    """What a person watching a run sees.

    ``mode=True``: a tqdm bar when tqdm is installed and standard error is a terminal;
    otherwise (no tqdm, or output redirected to a file, where a bar's carriage returns
    would flood it) one line per record. ``mode="lines"``: the lines always.
    ``mode=False``: nothing. A line reads ``step 200/1000: loss=0.84 gw=0.31 (12.5 steps/s)``.
    """

    def __init__(self, mode: bool | str, start: int, total: int) -> None:
        self.total, self.bar, self.lines = total, None, False
        self._last = (start, time.perf_counter())
        if mode is False:
            return
        if mode is True and sys.stderr is not None and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=start, desc="train", unit="step",
                                dynamic_ncols=True)
        self.lines = self.bar is None

    def update(self) -> None:
        """One more step done."""
        if self.bar is not None:
            self.bar.update(1)

    def record(self, step: int, text: str) -> None:
        """Show a record's terms (``text``) and the speed since the previous record."""
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
        elif self.lines:
            last_step, last_time = self._last
            now = time.perf_counter()
            rate = (step - last_step) / max(now - last_time, 1e-9)
            print(f"step {step}/{self.total}: {text} ({rate:.3g} steps/s)", file=sys.stderr,
                  flush=True)
        self._last = (step, time.perf_counter())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

"""The reproduction's budget: how long each model trains and how large each evaluation is.

Every training step count is :meth:`Budget.steps` of a base value sized for
:data:`REFERENCE_MINUTES` on two idle cores, and every evaluation size its
:meth:`Budget.size`: a smaller budget scales both down (to floors that still exercise
every row), it never skips a row; a larger one trains longer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

#: Minutes the base step counts and sizes take on two idle cores. The first value, 12, was
#: measured on two cores shared with other jobs; on idle cores the same steps took about
#: 2.6 times less (section 2: 329 s at 4.7 times the base steps, 302 s at 1.7 times on the
#: shared cores), so the base is sized for 4.8 minutes.
REFERENCE_MINUTES = 4.8
#: The default budget: ``make reproduce`` in about 20 minutes on two cores.
DEFAULT_BUDGET_MINUTES = 20.0


@dataclasses.dataclass(frozen=True)
class Budget:
    """Scales step counts linearly with the time budget, evaluation sizes down only.

    Attributes:
        minutes: the budget; :data:`REFERENCE_MINUTES` gives the base values.
        batch_cap: largest training batch (``None``: the batch sizes below), for smoke tests.
    """

    minutes: float
    batch_cap: int | None = None

    @property
    def scale(self) -> float:
        return self.minutes / REFERENCE_MINUTES

    def steps(self, base: int, minimum: int = 2) -> int:
        """Training steps: ``base`` at the reference budget, at least ``minimum``."""
        return max(minimum, round(base * self.scale))

    def size(self, base: int, minimum: int) -> int:
        """An evaluation size: ``base`` at the reference budget, at least ``minimum``."""
        return max(minimum, round(base * min(1.0, self.scale)))

    def batch(self, base: int) -> int:
        """A training batch size: ``base``, capped by :attr:`batch_cap`."""
        return base if self.batch_cap is None else min(base, self.batch_cap)


@dataclasses.dataclass
class Context:
    """What every experiment shares: budget, data, output folders and the random seed."""

    budget: Budget
    data_root: Path
    figures: Path  # PNGs, linked from the report by their path relative to it
    work: Path  # Trainer run folders (checkpoints, metrics.jsonl)
    seed: int
    threads: int

"""The report's structure: rows and sections, the verdict functions, and the writers.

An experiment returns a :class:`Section` of data: summary :class:`Row`s (quantity, the
paper's value, ours, a verdict), a settings paragraph, discussion paragraphs, figures and
its key numbers. Every verdict is one of the small functions below, comparing a measured
value with a target; the prose only fills its templates with numbers and with the phrase
a verdict function chose, so no branch that decides a verdict is hidden in a sentence.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from benchmarks.harness import machine, table
from benchmarks.reproduce.budget import REFERENCE_MINUTES

COMMAND = "python -m benchmarks.reproduce"

#: The keys of results.json, each a float, in the order they are written.
RESULT_KEYS = (
    "budget_minutes",
    "gmwae.cluster_accuracy_greedy",
    "gmwae.lambda",
    "kmeans.cluster_accuracy_greedy",
    "swae.knn5",
    "wae_mnist.knn5",
    "tcwae_mws.mig",
    "wae_sprites.mig",
    "gwae.ood_auroc",
)


@dataclasses.dataclass
class Row:
    """One line of the summary table: what is measured, the paper's value, ours."""

    experiment: str
    quantity: str
    paper: str
    ours: str
    verdict: str


@dataclasses.dataclass
class Section:
    """One experiment's part of the report, and its key numbers for results.json."""

    title: str
    rows: list[Row]
    settings: str  # exact steps, sizes and deviations from the paper
    discussion: list[str]  # where ours matches or falls short, and why
    figures: list[tuple[str, Path]]  # (caption, PNG)
    numbers: dict[str, float] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


# -------------------------------------------------------------------------------- verdicts


def at_least(measured: float, target: float) -> str:
    """A quantity the paper reaches, higher is better: ``target`` is its lower edge."""
    return "matches" if measured >= target else "below the paper"


def at_most(measured: float, target: float) -> str:
    """A loss the paper reaches, lower is better: ``target`` is its upper edge."""
    return "matches" if measured <= target else "above the paper (worse)"


def compared(measured: float, baseline: float, name: str) -> str:
    """``"above <name>"`` or ``"below <name>"``."""
    return f"above {name}" if measured > baseline else f"below {name}"


def auroc_against(measured: float, baseline: float, name: str) -> str:
    """An ROC-AUC against a baseline's, flagging rankings worse than chance."""
    order = compared(measured, baseline, name)
    return order if measured >= 0.5 else f"{order}, below chance"


def trend(first: float, last: float) -> str:
    """Whether a curve that should fall did."""
    return "falls" if last < first else "does not fall"


def shortfall(what: str, measured: float, target: float, why: str) -> str:
    """A sentence: in the paper's range, or short of it and why."""
    if measured >= target:
        return f"{what} ({fmt(measured)}) is in the paper's range."
    return f"{what} ({fmt(measured)}) falls short of the paper: {why}."


def slope(steps: list[int], values: list[float]) -> float:
    """Least-squares slope of the last half of a learning curve (at least two points), per
    step."""
    half = max(2, (len(steps) + 1) // 2)
    xs, ys = steps[-half:], values[-half:]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def learning(what: str, steps: list[int], values: list[float], seconds: float,
             target: float | None = None) -> str:
    """What a learning curve measured: start, middle and end, the slope of its last half,
    and, short of a ``target`` it still rises towards, the steps and minutes that slope
    would need (a linear extrapolation of the measured slope: a lower bound, since learning
    curves flatten). ``seconds``: the training time of the ``steps[-1]`` steps."""
    if len(steps) < 2:
        return f"{what}: {fmt(values[-1])} (no learning curve at this budget)."
    mid = len(steps) // 2
    rate = slope(steps, values)
    text = (f"{what}'s learning curve: {fmt(values[0])} at step {steps[0]}, {fmt(values[mid])} "
            f"at step {steps[mid]}, {fmt(values[-1])} at step {steps[-1]}; over its last half "
            f"it changed by {1000 * rate:+.3f} per 1000 steps")
    if target is None or values[-1] >= target:
        return text + "."
    if rate <= 0:
        return (text + ": it no longer rises, so more steps of this setting would not reach "
                f"{fmt(target)}.")
    more = (target - values[-1]) / rate
    minutes = more * seconds / max(steps[-1], 1) / 60
    return (text + f": at that rate {fmt(target)} needs at least {more:,.0f} more steps (about "
            f"{minutes:.0f} more minutes of this run's pace on these cores).")


def choose(phrases: dict[bool, str], condition: bool) -> str:
    """The phrase for ``condition``: the prose's only branch, spelled as data."""
    return phrases[bool(condition)]


# --------------------------------------------------------------------------------- writers


def write_report(path: Path, sections: list[Section], *, budget_minutes: float, jobs: int,
                 threads: int, seed: int, seconds: float, default_budget: bool) -> Path:
    """The Markdown report: summary table, then each experiment with settings and figures."""
    rel = path.parent
    summary = table(
        ["experiment", "quantity", "paper", "ours", "verdict"],
        [[cell.replace("|", "\\|") for cell in (r.experiment, r.quantity, r.paper, r.ours,
                                                 r.verdict)]
         for s in sections for r in s.rows],
    )
    command = COMMAND + ("" if default_budget else f" --budget-minutes {budget_minutes:g}")
    where = machine().split(", ")
    lines = [
        "# Reproduction report",
        "",
        "The papers' evaluation claims, reproduced at CPU scale on the real datasets "
        "(MNIST, Omniglot) and the procedural sprites. Every number and figure on this page "
        "was produced by one run of",
        "",
        f"```\n{command}\n```",
        "",
        ("(`make reproduce`), which" if default_budget else "which")
        + f" took **{seconds / 60:.1f} minutes** of wall time in {jobs} worker process(es) "
        f"of {threads} torch thread(s) each ({where[0]}, {os.cpu_count()} cores; "
        f"{', '.join(where[2:])}). Budget: {budget_minutes:g} minutes (scale "
        f"{budget_minutes / REFERENCE_MINUTES:.3g} of the step counts and sizes sized for "
        f"{REFERENCE_MINUTES:g} minutes on two cores); seed {seed}. The key numbers are "
        "also in `results.json` beside this page. The papers train for hours on GPUs; "
        "here every model gets minutes, so where a number falls short of the paper the "
        "section says so and why. A larger `--budget-minutes` scales every step count up.",
        "",
        "## Summary",
        "",
        summary,
        "",
    ]
    for s in sections:
        lines += [f"## {s.title}", "", f"_Settings ({s.seconds:.0f} s)._ {s.settings}", ""]
        for paragraph in s.discussion:
            lines += [paragraph, ""]
        for caption, figure in s.figures:
            lines += [f"![{caption}]({figure.relative_to(rel).as_posix()})", "",
                      f"_{caption}._", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def write_results(path: Path, sections: list[Section], budget_minutes: float) -> Path:
    """``results.json``: :data:`RESULT_KEYS`, each a float (``null`` if not finite), from the
    sections' numbers."""
    numbers = {"budget_minutes": float(budget_minutes)}
    for s in sections:
        numbers.update(s.numbers)
    missing = [key for key in RESULT_KEYS if key not in numbers]
    if missing:
        raise ValueError(f"no experiment measured {missing}")
    # JSON has no NaN: a diverged run's number is written as null, not as a finite value
    results = {key: float(numbers[key]) if math.isfinite(numbers[key]) else None
               for key in RESULT_KEYS}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return path

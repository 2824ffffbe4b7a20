"""Timing and reporting shared by the benchmark scripts."""

from __future__ import annotations

import gc
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def time_call(fn: Callable[[], object], *, repeats: int = 7, warmup: int = 1,
              max_seconds: float = 60.0) -> dict[str, float]:
    """Median, min and max wall time of ``fn()`` in seconds over ``repeats`` runs.

    Stops early (keeping at least 3 runs) once ``max_seconds`` is spent.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 3 and time.perf_counter() - start > max_seconds:
            break
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "runs": float(len(times))}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the architecture."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line describing where the numbers were measured."""
    return (f"{cpu_model()} ({platform.machine()}), {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.strip()}\n\n_Measured on {machine()}, " \
            f"{time.strftime('%Y-%m-%d')}._\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + block + "\n"
    REPORT.write_text(text)
    print(markdown)

"""Timing and reporting shared by the benchmark scripts."""

from __future__ import annotations

import gc
import math
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def synchronizer(device: torch.device | str | None = None) -> Callable[[], None]:
    """A function that waits until ``device`` has finished its queued work: CUDA runs
    kernels asynchronously, so a wall-clock time means nothing without it (no-op on the
    CPU and for ``None``)."""
    if device is not None and torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_call(fn: Callable[[], object], *, repeats: int = 7, warmup: int = 1,
              max_seconds: float = 60.0,
              device: torch.device | str | None = None) -> dict[str, float]:
    """Median, min and max wall time of ``fn()`` in seconds over ``repeats`` runs.

    Stops early (keeping at least 3 runs) once ``max_seconds`` is spent. On a CUDA
    ``device`` each run is timed from an idle device until its work has finished.
    """
    sync = synchronizer(device)
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        gc.collect()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= 3 and time.perf_counter() - start > max_seconds:
            break
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "runs": float(len(times))}


def phases(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
           y: torch.Tensor, *, repeats: int = 3, warmup: int = 0,
           max_seconds: float = math.inf,
           device: torch.device | str | None = None) -> dict[str, float]:
    """Median forward, backward and total seconds of ``fn(x, y).sum().backward()``
    (into fresh leaf copies of both clouds), the backward/forward ratio ``"ratio"`` and
    the number of timed ``"runs"``.

    Stops early (keeping at least one timed run) once ``max_seconds`` is spent. On a CUDA
    ``device`` each phase is timed until its kernels have finished.
    """
    sync = synchronizer(device)
    fwd: list[float] = []
    bwd: list[float] = []
    start = time.perf_counter()
    for i in range(warmup + repeats):
        if fwd and time.perf_counter() - start > max_seconds:
            break
        xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        sync()
        t0 = time.perf_counter()
        value = fn(xr, yr)
        sync()
        t1 = time.perf_counter()
        value.sum().backward()
        sync()
        t2 = time.perf_counter()
        if i >= warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    f, b = statistics.median(fwd), statistics.median(bwd)
    return {"fwd": f, "bwd": b, "total": f + b, "ratio": b / f, "runs": float(len(fwd))}


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


def write_section(name: str, markdown: str, *, report: Path = REPORT,
                  measured_on: str | None = None) -> None:
    """Replace (or append) the section ``name`` of ``report`` (docs/benchmarks.md), with a
    footer naming the machine (``measured_on``, default `machine`) and the date."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.strip()}\n\n_Measured on {measured_on or machine()}, " \
            f"{time.strftime('%Y-%m-%d')}._\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + block + "\n"
    report.write_text(text)
    print(markdown)

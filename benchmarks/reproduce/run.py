"""The command line: parse the budget, run the experiment groups in workers, write the report.

The experiments run in ``--jobs`` worker processes of ``--threads`` torch threads each (two
single-threaded processes use two cores far better than one process with two threads
when the CPU is shared). Every number in the report comes from this run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from benchmarks.reproduce.budget import DEFAULT_BUDGET_MINUTES, REFERENCE_MINUTES, Budget, Context
from benchmarks.reproduce.data import load_mnist
from benchmarks.reproduce.gmwae import gmwae_experiment
from benchmarks.reproduce.gwae import gwae_experiment
from benchmarks.reproduce.ood import ood_experiment
from benchmarks.reproduce.report import COMMAND, Section, write_report, write_results
from benchmarks.reproduce.swae import swae_experiment
from benchmarks.reproduce.tcwae import tcwae_experiment
from benchmarks.reproduce.training import log
from otloss.data import DATA_ENV_VAR

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REPORT = ROOT / "docs" / "results.md"
#: The real datasets beside the project (../shared/data/README.md).
SHARED_DATA = ROOT.parent / "shared" / "data"
#: Independent groups of experiments, longest first, so that two workers finish together
#: (GM-WAE alone takes about as long as TCWAE and SWAE + OoD; section 4 reuses section 2's
#: WAE).
GROUPS = ("gmwae", "tcwae", "swae_ood", "gwae")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Reproduce the papers' evaluation claims on real data.")
    parser.add_argument("--budget-minutes", type=float, default=DEFAULT_BUDGET_MINUTES,
                        help="scales every step count (and, below "
                        f"{REFERENCE_MINUTES:g}, every evaluation size); default "
                        f"{DEFAULT_BUDGET_MINUTES:g}, about that many minutes on 2 cores")
    parser.add_argument("--out", type=Path, default=DEFAULT_REPORT,
                        help="the Markdown report; results.json beside it, figures in "
                        "<its folder>/results/")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "reproduce",
                        help="Trainer run folders (checkpoints, metrics.jsonl)")
    parser.add_argument("--data-root", type=Path,
                        default=Path(os.environ.get(DATA_ENV_VAR, SHARED_DATA)),
                        help=f"folder with mnist/ and omniglot/ (default: ${DATA_ENV_VAR}, "
                        "else ../shared/data beside the project)")
    parser.add_argument("--batch-cap", type=int, default=None,
                        help="cap every training batch size (smoke tests on tiny budgets)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2,
                        help="worker processes running experiment groups side by side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    args = parser.parse_args(argv)
    if not args.budget_minutes > 0:
        parser.error("--budget-minutes must be positive")
    for name in ("jobs", "threads", "batch_cap"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return args


def experiment_group(name: str, ctx: Context) -> list[Section]:
    """Run one group of experiments (in a worker process); sections timed one by one."""
    torch.set_num_threads(ctx.threads)
    mnist = load_mnist(ctx.data_root) if name != "tcwae" else ()
    sections: list[Section] = []

    def timed(fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        section = out[0] if isinstance(out, tuple) else out
        section.seconds = time.perf_counter() - t0
        sections.append(section)
        log(f"== {section.title}: done in {section.seconds:.0f} s")
        return out

    if name == "gmwae":
        timed(lambda: gmwae_experiment(ctx, mnist))
    elif name == "swae_ood":
        _, wae = timed(lambda: swae_experiment(ctx, mnist))
        timed(lambda: ood_experiment(ctx, mnist, wae))
    elif name == "gwae":
        timed(lambda: gwae_experiment(ctx, mnist))
    else:
        timed(lambda: tcwae_experiment(ctx))
    return sections


def main(argv: list[str] | None = None) -> Path:
    """Run every experiment, write the report and results.json; returns the report's path."""
    args = parse_args(argv)
    started = time.perf_counter()
    figures = args.out.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)
    ctx = Context(Budget(args.budget_minutes, args.batch_cap), args.data_root, figures,
                  args.work_dir, args.seed, args.threads)
    if args.jobs == 1:
        results = [experiment_group(name, ctx) for name in GROUPS]
    else:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
            futures = [pool.submit(experiment_group, name, ctx) for name in GROUPS]
            results = [f.result() for f in futures]
    sections = sorted((s for group in results for s in group), key=lambda s: s.title)
    path = write_report(args.out, sections, budget_minutes=args.budget_minutes, jobs=args.jobs,
                        threads=args.threads, seed=args.seed,
                        seconds=time.perf_counter() - started,
                        default_budget=args.budget_minutes == DEFAULT_BUDGET_MINUTES)
    write_results(args.out.parent / "results.json", sections, args.budget_minutes)
    log(f"report: {path} ({(time.perf_counter() - started) / 60:.1f} min)")
    return path

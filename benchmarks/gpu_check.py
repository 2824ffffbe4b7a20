"""The GPU check: CUDA tests, a host-synchronisation check and CUDA timings, in one run.

Run ``python -m benchmarks.gpu_check`` (or ``make gpu-check``) on a machine with a CUDA
build of torch. It takes under 8 minutes: ``--budget`` defaults to 440 s, each stage
has its own share of it, and every case checks the time left before it starts. The
stages, in order:

1. The CUDA-marked tests (``pytest -m cuda``).
2. Host synchronisation: forward + backward of every case of `sync_cases` under
   ``torch.cuda.set_sync_debug_mode("error")``. The same check is the CUDA-marked test
   ``tests/test_gpu_check.py::test_forward_and_backward_make_no_host_sync``.
3. Timings on CUDA, medians over repeats after a warm-up, each timed phase between two
   ``torch.cuda.synchronize``:
   - Sinkhorn at 16384² and 65536² points, tensorized and blocked backends, with
     GeomLoss's fixed schedule, forward and backward (and the backward/forward ratio);
   - MMD at 16384 points;
   - one GWAE training step (``n_critic`` critic steps and a generator step of
     `otloss.train.Trainer`) at batch 64 and 256, eager and under ``torch.compile``,
     in float32 and under bf16 autocast.
4. The whole test suite with CUDA as the default device (``OTLOSS_TEST_DEVICE=cuda``,
   see ``tests/conftest.py``), in the time that is left. When time runs out, the suite
   is interrupted and the tests it finished are counted.

Finally it writes the ``cuda`` section of ``docs/benchmarks.md`` with
`benchmarks.harness.write_section`, naming the GPU in the footer.

Without CUDA it prints what it skipped, writes nothing and exits 0. With CUDA it exits 1
when a test failed, a divergence synchronised or a timed case raised. Running out of
memory does not count as a failure: it is recorded in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmarks.bench_sinkhorn import BLUR, FIXED, _clouds
from benchmarks.harness import REPORT, machine, phases, table, time_call, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "cuda"
#: Upper bound of the distances in `sync_cases`' clouds (so Sinkhorn reads no diameter).
SYNC_DIAMETER = 20.0


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    """Sizes and time budgets (seconds) of one run.

    Attributes:
        budget: the whole run.
        cuda_tests_budget, sync_budget, timing_budget: at most this much for each stage;
            the suite gets what is left.
        run_tests: run stages 1 and 4 (pytest).
        sinkhorn_sizes: N = M of the Sinkhorn cases; ``sinkhorn_dim`` their dimension.
        mmd_size, mmd_dim: N = M and D of the MMD case.
        gwae_batches, gwae_shape: batch sizes and image shape of the GWAE step.
        compile_modes, bf16_modes: which GWAE variants to time.
        repeats: timed runs per case (after one warm-up run); ``case_seconds`` stops a
            case's repeats early.
        workers: pytest-xdist workers for the suite.
    """

    budget: float = 440.0
    cuda_tests_budget: float = 60.0
    sync_budget: float = 30.0
    timing_budget: float = 200.0
    run_tests: bool = True
    sinkhorn_sizes: tuple[int, ...] = (16384, 65536)
    sinkhorn_dim: int = 3
    mmd_size: int = 16384
    mmd_dim: int = 64
    gwae_batches: tuple[int, ...] = (64, 256)
    gwae_shape: tuple[int, ...] = (3, 64, 64)
    compile_modes: tuple[bool, ...] = (False, True)
    bf16_modes: tuple[bool, ...] = (False, True)
    repeats: int = 5
    case_seconds: float = 20.0
    workers: int = min(12, os.cpu_count() or 1)


#: A smoke run on a GPU (seconds instead of minutes). Its numbers are not benchmarks, so
#: it writes no report unless ``--report`` is given.
QUICK = CheckConfig(
    budget=150.0, run_tests=False, sinkhorn_sizes=(512,), mmd_size=512, gwae_batches=(8,),
    gwae_shape=(1, 16, 16), repeats=2, case_seconds=5.0,
)

#: A pytest stage with less time left is not started.
MIN_PYTEST_SECONDS = 30.0
#: Seconds an interrupted pytest gets to write its report before it is killed.
SHUTDOWN_SECONDS = 15.0
#: Seconds a case is expected to take at most; it is skipped when less is left.
NEEDS = {"sync": 5.0, "sinkhorn": 30.0, "mmd": 10.0, "gwae": 15.0, "gwae compiled": 60.0}


# -- time and failures ---------------------------------------------------------------------


class Deadline:
    """A point in time (`time.monotonic`) and the seconds left until it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def within(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now, or this one if it comes first."""
        return self if self.left() <= seconds else Deadline(seconds)


@dataclasses.dataclass
class Outcome:
    """What happened to one case: ``status`` is ``"ok"`` (then ``value`` holds the
    measurement), ``"skipped"``, ``"out of memory"`` or ``"failed"``; ``detail`` says why."""

    status: str
    value: Any = None
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def cell(self, fmt: Callable[[Any], str]) -> str:
        """``fmt(value)``, or the status and why."""
        if self.status == "ok":
            return fmt(self.value)
        text = f"{self.status}: {self.detail}" if self.detail else self.status
        return text.replace("|", "\\|")  # a Markdown table cell


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else "")[:200]


def attempt(deadline: Deadline, needs: float, fn: Callable[[], Any]) -> Outcome:
    """Run ``fn()`` when at least ``needs`` seconds are left before ``deadline``;
    out-of-memory and other errors are recorded, not raised (a check goes on to report
    everything it finds)."""
    left = deadline.left()
    if left < needs:
        return Outcome("skipped", detail=f"time budget ({left:.0f} s left, needs {needs:.0f})")
    try:
        return Outcome("ok", fn())
    except torch.cuda.OutOfMemoryError as err:
        return Outcome("out of memory", detail=_first_line(err))
    except Exception as err:  # recorded in the report
        return Outcome("failed", detail=f"{type(err).__name__}: {_first_line(err)}")
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _peak_memory(device: torch.device, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    """``fn()``'s result with ``"peak_gib"``, the most CUDA memory it held (CPU: NaN)."""
    if device.type != "cuda":
        return {**fn(), "peak_gib": float("nan")}
    torch.cuda.reset_peak_memory_stats(device)
    result = fn()
    return {**result, "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30}


# -- stage 1 and 4: the tests ---------------------------------------------------------------


@dataclasses.dataclass
class PytestRun:
    """Counts of one pytest run (from its JUnit XML), the ids of the failed tests and
    ``note``, what stopped it early."""

    label: str
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    note: str = ""
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0 and not self.note

    def summary(self) -> str:
        text = (f"{self.passed} passed, {self.failed} failed, {self.errors} errors, "
                f"{self.skipped} skipped in {self.seconds:.0f} s")
        return text + (f" ({self.note})" if self.note else "")


def read_junit(path: Path, label: str) -> PytestRun:
    """The counts and failed test ids of a pytest ``--junitxml`` file."""
    run = PytestRun(label)
    for suite in ET.parse(path).getroot().iter("testsuite"):
        tests = int(suite.get("tests", 0))
        failed, errors = int(suite.get("failures", 0)), int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        run.failed, run.errors, run.skipped = run.failed + failed, run.errors + errors, \
            run.skipped + skipped
        run.passed += tests - failed - errors - skipped
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                # A module that failed to import has no class name.
                run.failures.append("::".join(filter(None, (case.get("classname"),
                                                            case.get("name")))))
    return run


def run_pytest(label: str, args: Sequence[str], *, seconds: float, cwd: Path = ROOT,
               env: dict[str, str] | None = None) -> PytestRun:
    """``python -m pytest args`` in ``cwd``, its output going to ours. After ``seconds``
    it is interrupted like Ctrl-C: pytest then still reports the tests it finished."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        # A module that cannot be imported (a test extra missing) fails alone.
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "--continue-on-collection-errors", f"--junitxml={junit}", *args]
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=cwd, env=env)
        interrupted = False
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            interrupted = True
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=SHUTDOWN_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if junit.exists():
            run = read_junit(junit, label)
        else:  # killed before pytest wrote anything
            run = PytestRun(label, note=f"pytest exited {proc.returncode} without a report")
    run.seconds = time.monotonic() - started
    if interrupted:
        run.note = "interrupted at the time budget"
    return run


def _test_env(device: str | None) -> dict[str, str]:
    """This environment with the repository importable and ``OTLOSS_TEST_DEVICE=device``
    (unset for ``None``)."""
    env = {k: v for k, v in os.environ.items() if k != "OTLOSS_TEST_DEVICE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if device is not None:
        env["OTLOSS_TEST_DEVICE"] = device
    return env


def cuda_tests(seconds: float) -> PytestRun:
    """Stage 1: the tests marked ``cuda``."""
    return run_pytest("CUDA-marked tests (`pytest -m cuda`)", ["-m", "cuda", "tests"],
                      seconds=seconds, env=_test_env(None))


def suite_on_cuda(seconds: float, workers: int) -> PytestRun:
    """Stage 4: the whole suite with CUDA as the default device (not started with less
    than `MIN_PYTEST_SECONDS` left)."""
    label = "whole suite, `OTLOSS_TEST_DEVICE=cuda`"
    if seconds < MIN_PYTEST_SECONDS:
        return PytestRun(label, note=f"not run: {max(seconds, 0):.0f} s left of the time budget")
    parallel = ["-n", str(workers), "--dist", "loadfile"] if (
        workers > 1 and importlib.util.find_spec("xdist") is not None) else []
    return run_pytest(label, [*parallel, "tests"], seconds=seconds, env=_test_env("cuda"))


def runs_markdown(runs: Sequence[PytestRun], shown: int = 30) -> str:
    """Each run's counts and its first ``shown`` failed test ids."""
    lines = ["### Tests on CUDA", ""]
    for run in runs:
        lines.append(f"- {run.label}: {run.summary()}")
        lines += [f"  - `{name}`" for name in run.failures[:shown]]
        if len(run.failures) > shown:
            lines.append(f"  - and {len(run.failures) - shown} more")
    return "\n".join(lines)


# -- stage 2: host synchronisation ----------------------------------------------------------


def sync_cases(device: torch.device | str) -> dict[str, Callable[[], Tensor]]:
    """Small forward passes of every divergence on ``device``: each case returns a scalar
    loss whose backward reaches its inputs and the module's parameters. Sinkhorn runs the
    fixed schedule with its ``diameter`` given, the configuration that promises no host
    synchronisation."""
    from otloss import (
        MMD,
        GWEstimator,
        KantorovichCritic,
        SinkhornDivergence,
        SlicedWasserstein,
        TotalCorrelation,
    )
    from otloss.models.base import reparameterize
    from otloss.nn import MLP

    device = torch.device(device)
    gen = torch.Generator(device).manual_seed(0)

    def leaf(*shape: int, shift: float = 0.0) -> Tensor:
        return (torch.randn(*shape, generator=gen, device=device) + shift).requires_grad_()

    x, y = leaf(96, 8), leaf(96, 8, shift=0.5)
    images, codes = leaf(64, 1, 8, 8), leaf(64, 4)
    mu, logvar = leaf(64, 4), leaf(64, 4, shift=-1.0)
    gw = GWEstimator().to(device)
    mmd, sliced = MMD(), SlicedWasserstein()
    sinkhorn = {
        backend: SinkhornDivergence(diameter=SYNC_DIAMETER, backend=backend, **FIXED)
        for backend in ("tensorized", "blocked")
    }
    tc = {name: TotalCorrelation(name, dataset_size=1000) for name in ("mws", "mss")}
    critic = KantorovichCritic(MLP(8, 1, hidden=(32, 32))).to(device)
    cases: dict[str, Callable[[], Tensor]] = {
        "GWEstimator": lambda: gw(images, codes),
        "MMD": lambda: mmd(x, y),
        "SlicedWasserstein": lambda: sliced(x, y),
        "KantorovichCritic.critic_loss": lambda: critic.critic_loss(x, y),
    }
    for backend, module in sinkhorn.items():
        cases[f"SinkhornDivergence ({backend}, fixed schedule, diameter given)"] = (
            functools.partial(module, x, y))
    for name, module in tc.items():
        cases[f"TotalCorrelation ({name})"] = functools.partial(
            lambda m: m(reparameterize(mu, logvar), mu, logvar), module)
    return cases


@contextlib.contextmanager
def no_host_sync() -> Iterator[None]:
    """Make every CUDA call that waits for the device raise a RuntimeError inside."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def forward_backward(case: Callable[[], Tensor]) -> None:
    case().backward()


def check_no_host_sync(case: Callable[[], Tensor]) -> None:
    """Forward + backward of ``case`` once to warm up (lazy initialisation may
    synchronise), then again under `no_host_sync`, which raises at the first sync."""
    forward_backward(case)
    torch.cuda.synchronize()
    with no_host_sync():
        forward_backward(case)
    torch.cuda.synchronize()


def sync_markdown(outcomes: dict[str, Outcome]) -> str:
    rows = [[name, out.cell(lambda _: "no host sync")] for name, out in outcomes.items()]
    return ("### Host synchronisation\n\nForward + backward of each divergence under "
            '`torch.cuda.set_sync_debug_mode("error")` after one warm-up call:\n\n'
            + table(["divergence", "result"], rows))


# -- stage 3: timings -----------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def time_divergence(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor,
                    config: CheckConfig) -> dict[str, float]:
    """`benchmarks.harness.phases` of ``fn`` on ``x``'s device after one warm-up run,
    with the peak memory."""
    return _peak_memory(x.device, lambda: phases(
        fn, x, y, repeats=config.repeats, warmup=1, max_seconds=config.case_seconds,
        device=x.device))


PHASE_HEADER = ["fwd", "bwd", "bwd/fwd", "peak GiB"]
#: A timing stage's result: its Markdown and the outcome of each case by name.
Part = tuple[str, dict[str, Outcome]]


def _phase_cells(out: Outcome) -> list[str]:
    if out.status != "ok":
        return [out.cell(str), "", "", ""]
    ph = out.value
    return [_ms(ph["fwd"]), _ms(ph["bwd"]), f"{ph['ratio']:.2f}", f"{ph['peak_gib']:.1f}"]


def sinkhorn_markdown(config: CheckConfig, device: torch.device, deadline: Deadline) -> Part:
    """Sinkhorn's forward and backward at every size and backend (fixed schedule)."""
    from otloss import sinkhorn_divergence

    rows, outcomes = [], {}
    for n in config.sinkhorn_sizes:
        x, y = _clouds(n, n, config.sinkhorn_dim, 2, device=device)
        for backend in ("tensorized", "blocked"):
            def fn(u: Tensor, v: Tensor, backend: str = backend) -> Tensor:
                return sinkhorn_divergence(u, v, blur=BLUR, backend=backend, **FIXED)

            out = attempt(deadline, NEEDS["sinkhorn"],
                          functools.partial(time_divergence, fn, x, y, config))
            outcomes[f"Sinkhorn {n}x{n} {backend}"] = out
            rows.append([f"{n}x{n}", backend, *_phase_cells(out)])
    text = (f"### Sinkhorn divergence\n\nD = {config.sinkhorn_dim}, p = 2, blur = {BLUR}, "
            "GeomLoss's fixed schedule (`tol=None, rtol=None`), diameter read from the data, "
            "forward + backward into both clouds:\n\n"
            + table(["N x M", "backend", *PHASE_HEADER], rows))
    return text, outcomes


def mmd_markdown(config: CheckConfig, device: torch.device, deadline: Deadline) -> Part:
    """MMD's forward and backward (7-scale IMQ, unbiased)."""
    from otloss import MMD

    n, d = config.mmd_size, config.mmd_dim
    x, y = _clouds(n, n, d, 0, device=device)
    out = attempt(deadline, NEEDS["mmd"], functools.partial(time_divergence, MMD(), x, y, config))
    text = ("### MMD\n\n`MMD()` (7-scale IMQ, unbiased), forward + backward into both "
            "clouds:\n\n" + table(["N = M, D", *PHASE_HEADER], [[f"{n}, {d}", *_phase_cells(out)]]))
    return text, {f"MMD {n}": out}


def gwae_step(batch: int, config: CheckConfig, device: torch.device, *, compiled: bool,
              bf16: bool) -> Callable[[], None]:
    """One GWAE training step as `otloss.train.Trainer.fit` takes it (``n_critic``
    critic steps, then a generator step, with GWAE's `training_defaults`) on a fixed
    random batch. ``compiled`` compiles the model's ``losses`` and ``critic_losses``
    (before the trainer binds them); ``bf16`` is the trainer's ``precision="bf16"``."""
    from otloss.models import GWAE
    from otloss.train import Trainer

    torch.manual_seed(0)
    model = GWAE(config.gwae_shape)
    if compiled:
        for name in ("losses", "critic_losses"):
            setattr(model, name, torch.compile(getattr(model, name)))
    trainer = Trainer(model, device=device, progress=False,
                      precision="bf16" if bf16 else "fp32", **GWAE.training_defaults)
    gen = torch.Generator(device).manual_seed(0)
    x = torch.rand(batch, *config.gwae_shape, generator=gen, device=device)

    def step() -> None:
        for _ in range(trainer.config.n_critic):
            trainer.critic_step(x)
        trainer.generator_step(x)

    return step


def time_gwae_step(batch: int, config: CheckConfig, device: torch.device, *, compiled: bool,
                   bf16: bool) -> dict[str, float]:
    """Seconds of the first `gwae_step` (compilation included) and the median of the
    next ones."""
    if compiled:
        torch.compiler.reset()  # each variant compiles afresh, within the recompile limit
    step = gwae_step(batch, config, device, compiled=compiled, bf16=bf16)
    started = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - started
    stats = time_call(step, repeats=config.repeats, warmup=1, max_seconds=config.case_seconds,
                      device=device)
    return {"first": first, **stats}


def _variant(compiled: bool, bf16: bool) -> str:
    return f"{'compiled' if compiled else 'eager'}, {'bf16 autocast' if bf16 else 'float32'}"


def gwae_markdown(config: CheckConfig, device: torch.device, deadline: Deadline) -> Part:
    """The GWAE step for every batch and variant; eager variants first (they are cheap),
    then the compiled ones, each skipped when its expected time is no longer left."""
    from otloss.models import GWAE

    variants = [(c, b) for c in sorted(config.compile_modes) for b in sorted(config.bf16_modes)]
    results: dict[tuple[int, bool, bool], Outcome] = {}
    for compiled, bf16 in variants:
        for batch in config.gwae_batches:
            results[batch, compiled, bf16] = attempt(
                deadline, NEEDS["gwae compiled" if compiled else "gwae"],
                functools.partial(time_gwae_step, batch, config, device, compiled=compiled,
                                  bf16=bf16))

    def fmt(r: dict[str, float]) -> str:
        return f"{_ms(r['median'])} (first step {r['first']:.1f} s)"

    rows = [[batch, *(results[batch, c, b].cell(fmt) for c, b in variants)]
            for batch in config.gwae_batches]
    n_critic = GWAE.training_defaults["n_critic"]
    text = (f"### GWAE training step\n\nOne `Trainer` step of `GWAE({config.gwae_shape})`: "
            f"{n_critic} critic steps and a generator step (RMSprop); median over repeats, "
            "the first step (compilation included) in parentheses:\n\n"
            + table(["batch", *(_variant(c, b) for c, b in variants)], rows))
    return text, {f"GWAE batch {batch}, {_variant(c, b)}": out
                  for (batch, c, b), out in results.items()}


# -- the run --------------------------------------------------------------------------------


def device_model(device: torch.device) -> str:
    """The GPU, its memory and CUDA's version, then `benchmarks.harness.machine` (alone
    for the CPU)."""
    if device.type != "cuda":
        return machine()
    props = torch.cuda.get_device_properties(device)
    return (f"{props.name} ({props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}) "
            f"with {machine()}")


def run(config: CheckConfig, report: Path | None = REPORT, *,
        device: torch.device | str = "cuda") -> int:
    """The check (module docstring) on ``device``; returns the exit status. (Another
    device than CUDA runs the timings and the report alone, to test them.)"""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"CUDA is not available to torch {torch.__version__}: skipped the CUDA tests, "
              "the host-synchronisation check and the CUDA timings; "
              f"{report or 'no report'} left unchanged.")
        return 0
    deadline = Deadline(config.budget)
    runs: list[PytestRun] = []
    if config.run_tests:
        print(f"== CUDA-marked tests ({deadline.left():.0f} s left)", flush=True)
        runs.append(cuda_tests(min(config.cuda_tests_budget,
                                   deadline.left() - SHUTDOWN_SECONDS)))
        print(f"== {runs[-1].label}: {runs[-1].summary()}", flush=True)

    print(f"== host synchronisation ({deadline.left():.0f} s left)", flush=True)
    sync_deadline = deadline.within(config.sync_budget)
    sync = {name: attempt(sync_deadline, NEEDS["sync"], functools.partial(check_no_host_sync, case))
            if device.type == "cuda" else Outcome("skipped", detail="a CUDA check")
            for name, case in sync_cases(device).items()}
    sections = [sync_markdown(sync)]
    print(sections[-1], flush=True)

    print(f"== timings ({deadline.left():.0f} s left)", flush=True)
    timing_deadline = deadline.within(config.timing_budget)
    timed: dict[str, Outcome] = {}
    for part in (sinkhorn_markdown, mmd_markdown, gwae_markdown):
        text, outcomes = part(config, device, timing_deadline)
        sections.append(text)
        timed |= outcomes
        print(text, flush=True)

    if config.run_tests:
        print(f"== whole suite on CUDA ({deadline.left():.0f} s left)", flush=True)
        runs.append(suite_on_cuda(deadline.left() - SHUTDOWN_SECONDS, config.workers))
        print(f"== {runs[-1].label}: {runs[-1].summary()}", flush=True)
        sections.insert(0, runs_markdown(runs))

    if report is not None:
        write_section(SECTION, "## CUDA\n\n`python -m benchmarks.gpu_check` (float32 unless "
                      "a column says otherwise).\n\n" + "\n\n".join(sections),
                      report=report, measured_on=device_model(device))
    problems = [f"{r.label}: {r.summary()}" for r in runs if not r.ok]
    problems += [f"{name}: {out.detail}" for name, out in (sync | timed).items() if out.failed]
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, help="seconds for the whole run")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and no pytest stages: a smoke run")
    parser.add_argument("--skip-tests", action="store_true", help="no pytest stages")
    parser.add_argument("--report", type=Path,
                        help="Markdown file for the section (default docs/benchmarks.md; none "
                             "with --quick)")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else CheckConfig()
    if args.budget is not None:
        config = dataclasses.replace(config, budget=args.budget)
    if args.skip_tests:
        config = dataclasses.replace(config, run_tests=False)
    report = args.report if args.report is not None else (None if args.quick else REPORT)
    return run(config, report)


if __name__ == "__main__":
    sys.exit(main())

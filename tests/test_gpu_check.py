"""The GPU check (benchmarks/gpu_check.py): its CPU behaviour, its pieces on the test
device, and the CUDA-marked host-synchronisation test it also runs."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import (
    CheckConfig,
    Deadline,
    Outcome,
    PytestRun,
    attempt,
    check_no_host_sync,
    device_model,
    gwae_markdown,
    mmd_markdown,
    read_junit,
    run_pytest,
    runs_markdown,
    sinkhorn_markdown,
    suite_on_cuda,
    sync_cases,
)
from benchmarks.harness import REPORT, phases, time_call, write_section
from otloss.models import GWAE
from tests.conftest import cuda

ROOT = Path(__file__).resolve().parents[1]

#: Sizes that run in seconds on the CPU.
TINY = dataclasses.replace(
    gpu_check.QUICK, sinkhorn_sizes=(48,), mmd_size=40, mmd_dim=4, gwae_batches=(4,),
    gwae_shape=(8,), compile_modes=(False,), bf16_modes=(False,), repeats=1, case_seconds=1.0,
)

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the behaviour without CUDA")


@no_cuda
def test_without_cuda_the_check_exits_0_says_what_it_skipped_and_writes_nothing(
    tmp_path, capsys
):
    before = REPORT.read_bytes()
    report = tmp_path / "benchmarks.md"
    assert gpu_check.main(["--quick", "--report", str(report)]) == 0
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert "CUDA is not available" in out and "skipped" in out
    assert not report.exists()
    assert REPORT.read_bytes() == before


@no_cuda
@pytest.mark.slow
def test_asking_for_cuda_tests_without_cuda_is_a_usage_error():
    env = {**os.environ, "OTLOSS_TEST_DEVICE": "cuda"}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_gpu_check.py"], cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == pytest.ExitCode.USAGE_ERROR
    assert "OTLOSS_TEST_DEVICE=cuda but CUDA is not available" in res.stderr


def test_tensors_and_the_generator_fixture_land_on_the_test_device(device, generator):
    assert torch.empty(0).device.type == device.type
    assert torch.randn(2, generator=generator).device.type == device.type


@cuda
def test_cuda_marked_tests_run_only_where_cuda_is():
    assert torch.cuda.is_available()


def test_write_section_replaces_its_block_and_names_the_machine(tmp_path):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nIntro.\n")
    write_section("cuda", "## CUDA\n\nfirst", report=report, measured_on="Some GPU 80GB")
    write_section("cuda", "## CUDA\n\nsecond", report=report, measured_on="Some GPU 80GB")
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nIntro.\n")
    assert text.count("<!-- begin cuda -->") == 1 and "first" not in text
    assert "second\n\n_Measured on Some GPU 80GB, " in text


def test_phases_times_forward_and_backward_apart_and_stops_at_its_budget(device):
    calls = []

    def fn(x, y):
        calls.append(x.requires_grad and y.requires_grad)
        return (x * y).sum()

    x, y = torch.ones(3, device=device), torch.ones(3, device=device)
    ph = phases(fn, x, y, repeats=3, warmup=1, device=device)
    assert calls == [True] * 4 and ph["runs"] == 3
    assert ph["total"] == pytest.approx(ph["fwd"] + ph["bwd"])
    assert ph["ratio"] == pytest.approx(ph["bwd"] / ph["fwd"])
    calls.clear()
    assert phases(fn, x, y, repeats=5, max_seconds=0.0, device=device)["runs"] == 1
    assert len(calls) == 1


def test_time_call_counts_warm_up_apart(device):
    calls = []
    stats = time_call(lambda: calls.append(torch.ones(2, device=device).sum()), repeats=3,
                      warmup=2, device=device)
    assert len(calls) == 5 and stats["runs"] == 3 and stats["min"] <= stats["median"]


def test_attempt_records_skips_memory_and_errors_and_goes_on():
    assert attempt(Deadline(60), 1, lambda: 7) == Outcome("ok", 7)
    skipped = attempt(Deadline(0), 1, lambda: pytest.fail("ran past its budget"))
    assert skipped.status == "skipped" and "time budget" in skipped.detail

    def oom():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 16 GiB")

    memory = attempt(Deadline(60), 1, oom)
    assert memory.status == "out of memory" and not memory.failed
    assert memory.cell(str) == "out of memory: CUDA out of memory. Tried to allocate 16 GiB"
    failed = attempt(Deadline(60), 1, lambda: 1 / 0)
    assert failed.failed and failed.detail == "ZeroDivisionError: division by zero"

    def piped():
        raise ValueError("shapes (2, 3) | (4, 3)\nsecond line")

    assert attempt(Deadline(60), 1, piped).cell(str) == (
        "failed: ValueError: shapes (2, 3) \\| (4, 3)")  # one line, a valid table cell


def test_a_stage_deadline_never_outlasts_the_run():
    run = Deadline(10)
    assert run.within(100) is run
    assert 0 < run.within(1).left() <= 1


def test_timing_tables_have_a_row_per_case_on_tiny_sizes(device):
    deadline = Deadline(600)
    text, outcomes = sinkhorn_markdown(TINY, device, deadline)
    assert {k: o.status for k, o in outcomes.items()} == {
        "Sinkhorn 48x48 tensorized": "ok", "Sinkhorn 48x48 blocked": "ok"}
    assert "| 48x48 | tensorized |" in text and "| 48x48 | blocked |" in text
    text, outcomes = mmd_markdown(TINY, device, deadline)
    assert outcomes["MMD 40"].status == "ok" and "| 40, 4 |" in text


def test_gwae_steps_are_timed_and_variants_that_do_not_fit_the_budget_skipped(device):
    config = dataclasses.replace(TINY, compile_modes=(False, True), bf16_modes=(False, True))
    text, outcomes = gwae_markdown(config, device, Deadline(gpu_check.NEEDS["gwae compiled"] - 1))
    for precision in ("float32", "bf16 autocast"):
        eager = outcomes[f"GWAE batch 4, eager, {precision}"]
        assert eager.status == "ok" and eager.value["runs"] == 1 and eager.value["first"] > 0
        assert outcomes[f"GWAE batch 4, compiled, {precision}"].status == "skipped"
    assert ("| batch | eager, float32 | eager, bf16 autocast | compiled, float32 | "
            "compiled, bf16 autocast |") in text
    assert "| 4 | " in text and "(first step " in text and "skipped: time budget" in text


def test_the_compiled_gwae_step_trains_through_the_compiled_losses(device, monkeypatch):
    calls = []

    def fake_compile(fn):  # records which compiled function the trainer calls
        def compiled(x):
            calls.append(fn.__name__)
            return fn(x)

        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    gpu_check.gwae_step(4, TINY, device, compiled=True, bf16=False)()
    n_critic = GWAE.training_defaults["n_critic"]
    assert calls == ["critic_losses"] * n_critic + ["losses"]


def test_every_divergence_has_a_sync_case_that_runs_forward_and_backward(device):
    cases = sync_cases(device)
    for required in ("GWEstimator", "MMD", "SlicedWasserstein", "SinkhornDivergence",
                     "TotalCorrelation", "critic_loss"):
        assert any(required in name for name in cases), required
    for name, case in cases.items():
        loss = case()
        assert loss.shape == () and torch.isfinite(loss), name
        loss.backward()


@cuda
def test_forward_and_backward_make_no_host_sync():
    synced = {}
    for name, case in sync_cases("cuda").items():
        try:
            check_no_host_sync(case)
        except RuntimeError as err:
            synced[name] = str(err).splitlines()[0]
    assert not synced


@cuda
def test_the_footer_names_the_gpu():
    assert torch.cuda.get_device_name() in device_model(torch.device("cuda"))


def test_a_run_writes_every_part_into_its_report_and_fails_on_a_failed_test(
    tmp_path, device, monkeypatch
):
    """The whole run on the test device, with the pytest stages replaced by their results."""
    monkeypatch.setattr(gpu_check, "cuda_tests", lambda seconds: PytestRun("cuda", passed=3))
    suite = PytestRun("suite", passed=7, failed=1, failures=["tests/test_x.py::test_y"])
    monkeypatch.setattr(gpu_check, "suite_on_cuda", lambda seconds, workers: suite)
    report = tmp_path / "benchmarks.md"
    config = dataclasses.replace(TINY, budget=600.0, run_tests=True)
    assert gpu_check.run(config, report, device=device) == 1
    text = report.read_text()
    for title in ("## CUDA", "### Tests on CUDA", "### Host synchronisation",
                  "### Sinkhorn divergence", "### MMD", "### GWAE training step"):
        assert text.count(title) == 1, title
    assert "- suite: 7 passed, 1 failed" in text and "`tests/test_x.py::test_y`" in text
    assert text.index("### Tests on CUDA") < text.index("### Host synchronisation")
    assert f"_Measured on {device_model(device)}, " in text
    suite.failed, suite.failures = 0, []
    assert gpu_check.run(config, report, device=device) == 0
    assert report.read_text().count("<!-- begin cuda -->") == 1


def _junit(path, body, tests, failures, errors, skipped):
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        f'errors="{errors}" failures="{failures}" skipped="{skipped}" tests="{tests}">'
        f"{body}</testsuite></testsuites>"
    )


def test_junit_counts_and_failed_ids_are_read(tmp_path):
    body = ('<testcase classname="tests.test_a" name="test_ok" />'
            '<testcase classname="tests.test_a" name="test_bad"><failure message="x"/></testcase>'
            '<testcase classname="tests.test_b" name="test_err"><error message="y"/></testcase>'
            '<testcase classname="tests.test_b" name="test_skip"><skipped/></testcase>')
    _junit(tmp_path / "j.xml", body, tests=4, failures=1, errors=1, skipped=1)
    run = read_junit(tmp_path / "j.xml", "label")
    assert (run.passed, run.failed, run.errors, run.skipped) == (1, 1, 1, 1)
    assert run.failures == ["tests.test_a::test_bad", "tests.test_b::test_err"]
    assert not run.ok


def test_the_tests_section_lists_failures_up_to_a_limit():
    runs = [PytestRun("suite", passed=5, failed=3, failures=["a::x", "a::y", "b::z"]),
            PytestRun("cuda", passed=2)]
    text = runs_markdown(runs, shown=2)
    assert "- suite: 5 passed, 3 failed, 0 errors, 0 skipped" in text
    assert "`a::x`" in text and "`a::y`" in text and "`b::z`" not in text
    assert "and 1 more" in text and "- cuda: 2 passed" in text


def test_the_suite_is_not_started_without_time_left():
    run = suite_on_cuda(gpu_check.MIN_PYTEST_SECONDS - 1, workers=1)
    assert not run.ok and run.note.startswith("not run")


@pytest.mark.slow
def test_pytest_is_interrupted_at_its_budget_and_counts_what_finished(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import time, pytest\n"
        "def test_pass(): pass\n"
        "def test_fail(): assert False\n"
        "def test_skip(): pytest.skip('no')\n"
        "def test_zzz_sleep(): time.sleep(120)\n"
    )
    (tmp_path / "test_broken.py").write_text("import a_module_that_is_not_installed\n")
    run = run_pytest("sample", ["test_sample.py", "test_broken.py"], seconds=20, cwd=tmp_path)
    assert (run.passed, run.failed, run.skipped, run.errors) == (1, 1, 1, 1)
    assert run.failures == ["test_broken", "test_sample::test_fail"]
    assert run.note == "interrupted at the time budget" and 20 <= run.seconds < 60


def test_default_config_fits_the_eight_minute_budget():
    config = CheckConfig()
    assert config.budget < 8 * 60
    stages = config.cuda_tests_budget + config.sync_budget + config.timing_budget
    suite = gpu_check.MIN_PYTEST_SECONDS + 2 * gpu_check.SHUTDOWN_SECONDS
    assert stages + suite <= config.budget

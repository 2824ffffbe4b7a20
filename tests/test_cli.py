"""The examples' command line: errors are `error:` lines with exit status 2, a resumed run
takes its model and settings from the run folder, progress lines without a bar."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from otloss.models import load_model
from otloss.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--image-size", "16", "--batch-size", "8", "--max-steps", "2", "--log-every", "1",
        "--checkpoint-every", "1", "--no-progress", "--seed", "0"]


def _main(script: str):
    spec = importlib.util.spec_from_file_location(script, ROOT / "examples" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _fails(capsys, script: str, argv: list[str]) -> str:
    """Run the example, expect exit status 2, return what it wrote to standard error."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        _main(script)(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------ errors


@pytest.mark.slow
def test_a_misspelt_dataset_is_an_error_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "wae_mnist.py"), "--dataset", "mnistt",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: argument --dataset:")
    assert "did you mean --dataset mnist?" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_batch_larger_than_the_data_says_how_large_it_may_be(tmp_path, capsys):
    err = _fails(capsys, "wae_mnist", ["--dataset", "digits", "--batch-size", "5000",
                                       "--out", str(tmp_path / "run")])
    assert err.startswith("error: argument --batch-size: 5000 is more than the 1438")
    assert "use --batch-size 1438 or fewer" in err
    assert not (tmp_path / "run").exists()


def test_settings_and_model_flags_out_of_range_are_error_lines(tmp_path, capsys):
    argv = ["--dataset", "digits", "--out", str(tmp_path / "run")]
    err = _fails(capsys, "wae_mnist", [*argv, "--log-every", "0"])
    assert err.startswith("error: log_every must be a positive int, got 0")
    err = _fails(capsys, "swae_mnist", [*argv, "--beta", "1.5"])
    assert err.startswith("error: beta must be in [0, 1]")
    err = _fails(capsys, "wae_mnist", [*argv, "--max-steps", "-1"])
    assert "error: argument --max-steps: must be 0 or more" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_an_argparse_error(tmp_path, capsys):
    err = _fails(capsys, "wae_mnist", ["--dataset", "digits", "--device", "cuda",
                                       "--out", str(tmp_path / "run")])
    assert "error: argument --device:" in err and "use --device cpu" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_dsprites_fallback_names_the_run_after_the_sprites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _main("tcwae_dsprites")([*TINY, "--data-root", str(tmp_path / "empty"), "--max-steps", "1"])
    out = capsys.readouterr().out
    assert "note: dsprites is not on disk; using sprites instead" in out
    assert (tmp_path / "runs" / "tcwae-sprites" / "checkpoint.pt").exists()
    assert not (tmp_path / "runs" / "tcwae-dsprites").exists()


# ------------------------------------------------------------------------------ resume


@pytest.mark.slow
def test_resume_reads_the_model_flags_from_the_run(tmp_path):
    out = tmp_path / "run"
    argv = [*TINY, "--dataset", "digits", "--out", str(out)]
    _main("wae_mnist")([*argv, "--latent-dim", "3", "--regularizer", "gan"])
    # no model flags: the run's, not the script's defaults (a size mismatch otherwise)
    model = _main("wae_mnist")([*argv, "--max-steps", "3", "--resume"])
    assert model.latent_dim == 3 and model.has_critic
    assert load_checkpoint(out)["step"] == 3
    assert load_model(out).latent_dim == 3
    from_file = load_model(out / "checkpoint.pt", device="cpu")  # a checkpoint file works too
    assert from_file.has_critic and next(from_file.parameters()).device.type == "cpu"
    # the same value given again is no contradiction
    _main("wae_mnist")([*argv, "--max-steps", "4", "--resume", "--latent-dim", "3"])


def test_a_flag_contradicting_the_run_is_an_error_naming_both_values(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY, "--dataset", "digits", "--out", str(out)]
    _main("wae_mnist")([*argv, "--latent-dim", "3"])
    err = _fails(capsys, "wae_mnist", [*argv, "--max-steps", "3", "--resume",
                                       "--latent-dim", "5"])
    assert err.startswith("error: --latent-dim 5 contradicts the run")
    assert "trained with 3" in err and "size mismatch" not in err
    err = _fails(capsys, "wae_mnist", [*argv, "--max-steps", "3", "--resume",
                                       "--batch-size", "4"])
    assert "--batch-size 4 contradicts the run" in err and "trained with 8" in err
    err = _fails(capsys, "wae_mnist", [*argv, "--max-steps", "3", "--resume",
                                       "--image-size", "20"])
    assert "data_shape=(1, 20, 20)" in err and "[1, 16, 16]" in err
    assert load_checkpoint(out)["step"] == 2


@pytest.mark.slow
def test_settings_given_on_resume_take_effect_and_the_rest_come_from_the_run(tmp_path):
    out = tmp_path / "run"
    argv = [*TINY, "--dataset", "digits", "--out", str(out)]
    _main("gwae_celeba")([*argv, "--n-critic", "2", "--lr", "1e-3", "--prior", "normal"])
    _main("gwae_celeba")([*argv, "--max-steps", "4", "--resume", "--lr", "2e-4",
                          "--log-every", "2"])
    config = load_checkpoint(out)["config"]
    assert config["lr"] == 2e-4 and config["log_every"] == 2 and config["n_critic"] == 2
    records = _records(out)
    assert [r["step"] for r in records] == [1, 2, 4]
    assert [r["lr"] for r in records] == [1e-3, 1e-3, 2e-4]


def test_no_progress_prints_a_line_per_record(tmp_path, capsys):
    _main("wae_mnist")([*TINY, "--dataset", "digits", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert len(lines) == 2 and lines[0].startswith("step 1/2: loss=")
    assert lines[1].endswith("steps/s)") and "\r" not in err


def test_precision_flag_reaches_the_trainer_and_a_bad_one_is_an_argparse_error(tmp_path,
                                                                               capsys):
    out = tmp_path / "run"
    _main("swae_mnist")([*TINY, "--dataset", "digits", "--out", str(out),
                         "--precision", "bf16"])
    assert load_checkpoint(out)["config"]["precision"] == "bf16"
    err = _fails(capsys, "swae_mnist", [*TINY, "--dataset", "digits", "--out", str(out),
                                        "--max-steps", "3", "--resume", "--precision", "fp16"])
    assert "--precision fp16 contradicts the run" in err
    err = _fails(capsys, "wae_mnist", ["--dataset", "digits", "--precision", "fp8"])
    assert "argument --precision: invalid choice: 'fp8'" in err


def test_under_a_launcher_the_batch_check_counts_every_process(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    err = _fails(capsys, "wae_mnist", ["--dataset", "digits", "--batch-size", "400",
                                       "--out", str(tmp_path / "run")])
    assert err.startswith("error: argument --batch-size: 400 x 4 processes is more than the 1438")
    assert "use --batch-size 359 or fewer" in err

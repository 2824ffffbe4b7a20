"""The example scripts run end to end on tiny data, refuse missing data clearly, and resume
after a SIGKILL; the "Training your own OT autoencoder" page's code runs as written."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from otloss.models import load_model
from otloss.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Tiny runs: 16-pixel images (the smallest the 4-convolution networks take), small batches.
TINY = ["--image-size", "16", "--batch-size", "8", "--max-steps", "2", "--log-every", "1",
        "--checkpoint-every", "1", "--no-progress", "--seed", "0"]


def _main(script: str):
    spec = importlib.util.spec_from_file_location(script, EXAMPLES / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("script", "extra", "figures"),
    [
        pytest.param("gwae_celeba", ["--dataset", "digits", "--n-critic", "1"], ["isometry.png"],
                     marks=pytest.mark.slow),
        ("wae_mnist", ["--dataset", "digits"], []),
        ("wae_mnist", ["--dataset", "digits", "--regularizer", "gan"], []),
        pytest.param("tcwae_dsprites", ["--dataset", "sprites"], ["traversals.png"],
                     marks=pytest.mark.slow),
        ("swae_mnist", ["--dataset", "digits"], []),
        ("gmwae_mnist", ["--dataset", "digits", "--pretrain-steps", "2"], ["clusters.png"]),
    ],
)
def test_example_runs_and_writes_its_outputs(script, extra, figures, tmp_path, capsys):
    out = tmp_path / "run"
    trained = _main(script)([*TINY, *extra, "--out", str(out)])
    for name in ["checkpoint.pt", "model.json", "metrics.jsonl", "reconstructions.png",
                 "samples.png", "losses.png", *figures]:
        assert (out / name).stat().st_size > 0, name
    records = _records(out)
    assert [r["step"] for r in records] == [1, 2]
    assert all(v == v for r in records for v in r.values())  # no NaN logged
    assert load_checkpoint(out)["step"] == 2
    assert f"run folder: {out}" in capsys.readouterr().out
    # the run folder alone gives back the trained model: its class, weights and outputs
    loaded = load_model(out)
    assert type(loaded) is type(trained) and not loaded.training
    x = fixed_batch(trained)
    assert torch.equal(loaded.reconstruct(x), trained.reconstruct(x))
    torch.manual_seed(1)
    expected = trained.sample(4)
    torch.manual_seed(1)
    assert torch.equal(loaded.sample(4), expected)


def fixed_batch(model) -> torch.Tensor:
    """Four images in the model's data shape, the same at every call."""
    return torch.rand(4, *model.data_shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.slow
def test_tcwae_falls_back_to_procedural_sprites_without_dsprites(tmp_path, capsys):
    out = tmp_path / "run"
    _main("tcwae_dsprites")([*TINY, "--data-root", str(tmp_path), "--out", str(out),
                             "--max-steps", "1"])
    assert "using sprites instead" in capsys.readouterr().out
    assert (out / "traversals.png").exists()


def test_gwae_celeba_without_celeba_explains_where_to_put_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _main("gwae_celeba")(["--data-root", str(tmp_path), "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith("error: ") and "--data-root" in message
    assert "img_align_celeba" in message and str(tmp_path / "celeba") in message
    assert "--dataset digits" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_existing_run_is_not_overwritten_without_a_flag(tmp_path, capsys):
    out = tmp_path / "run"
    main = _main("wae_mnist")
    argv = [*TINY, "--dataset", "digits", "--out", str(out), "--max-steps", "1"]
    main(argv)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "--resume" in capsys.readouterr().err
    main([*argv, "--overwrite"])
    assert load_checkpoint(out)["step"] == 1


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    argv = [*TINY, "--dataset", "digits", "--out", str(out), "--max-steps", "100000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "wae_mnist.py"), *argv],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.monotonic() + 40
        while not (out / "checkpoint.prev.pt").exists():  # at least two checkpoints
            if proc.poll() is not None:
                pytest.fail(f"the run exited early: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 40 s")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(out)["step"]
    assert killed_at >= 1
    _main("wae_mnist")([*argv[:-1], str(killed_at + 2), "--resume"])
    assert load_checkpoint(out)["step"] == killed_at + 2
    steps = [r["step"] for r in _records(out)]
    assert steps == list(range(1, killed_at + 3))  # records after the checkpoint were redone


@pytest.mark.slow
def test_training_your_own_page_runs_as_written(tmp_path, monkeypatch):
    page = (ROOT / "docs" / "training-your-own.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert blocks, "no python block on the page"
    code = blocks[0]
    assert len(code.strip().splitlines()) < 40
    assert "max_steps=5_000" in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("max_steps=5_000", "max_steps=2"), "page", "exec"), namespace)
    model = namespace["model"]
    with torch.no_grad():
        assert torch.isfinite(model.decoder(model.prior.rsample(4))).all()
    records = _records(tmp_path / "runs" / "my-gwae")
    assert records[-1]["step"] == 2
    assert {"gw", "w", "d", "critic/loss"} <= records[-1].keys()

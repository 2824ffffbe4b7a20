"""The Trainer in two gloo processes: sharded batches, synchronised gradients, rank-0 files,
exact resume; an example script under torchrun; the ``precision`` option."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from otloss.train import InfiniteBatches, NonFiniteLossError, Trainer, load_checkpoint
from otloss.train.checkpoint import save_checkpoint
from tests.test_train import (
    QUIET,
    assert_same_parameters,
    make_data,
    make_model,
    metrics,
    train,
    without_time,
)

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str, per_rank_dirs: bool, max_steps: int,
            resume: bool, results: str) -> None:
    """One torchrun-like process: the launcher's environment, then an ordinary Trainer."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    run = Path(out) / f"rank{rank}" if per_rank_dirs else Path(out)
    trainer = train(run, "adversarial", max_steps, device="cpu", resume=resume)
    torch.save({"state": trainer.model.state_dict(), "step": trainer.step,
                "world": trainer.world_size},
               Path(results) / f"rank{rank}.pt")
    # Free the DDP wrappers (they hold the process group) while both ranks are alive, then
    # destroy the group together: a gloo group destructed after its peer has exited can
    # block forever joining its worker thread.
    del trainer
    gc.collect()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def spawn(out: Path, results: Path, max_steps: int, *, per_rank_dirs=False, resume=False):
    results.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(free_port(), str(out), per_rank_dirs, max_steps, resume,
                            str(results)), nprocs=2)
    return [torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_sharded_batches_are_disjoint_blocks_of_the_global_batch():
    data = torch.arange(40.0)
    whole = InfiniteBatches(data, 16, seed=3)
    shards = [InfiniteBatches(data, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(7):  # several epochs
        assert torch.equal(torch.cat([next(s) for s in shards]), next(whole))
    state = shards[1].state_dict()
    resumed = InfiniteBatches(data, 8, seed=0, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert torch.equal(next(resumed), next(shards[1]))
    with pytest.raises(ValueError, match="on 2 process"):
        InfiniteBatches(data, 8, rank=0, world_size=1).load_state_dict(state)
    with pytest.raises(ValueError, match="world_size=3"):
        InfiniteBatches(data, 16, rank=0, world_size=3)


@pytest.mark.slow
def test_two_process_run_synchronises_writes_on_rank_0_and_resumes_exactly(tmp_path):
    # Straight run of 6 steps; each rank gets its own folder to show who writes.
    straight = spawn(tmp_path / "straight", tmp_path / "r1", 6, per_rank_dirs=True)
    assert [r["world"] for r in straight] == [2, 2]
    for name, p in straight[0]["state"].items():  # the ranks saw different data
        assert torch.equal(p, straight[1]["state"][name]), f"{name} differs between ranks"
    assert not (tmp_path / "straight" / "rank1").exists()
    lead = tmp_path / "straight" / "rank0"
    assert {"checkpoint.pt", "metrics.jsonl"} <= set(os.listdir(lead))
    state = load_checkpoint(lead)
    assert len(state["ranks"]) == 2
    assert not torch.equal(state["ranks"][0]["rng"]["torch"], state["ranks"][1]["rng"]["torch"])

    # The same run split at step 3 (checkpoint_every=3) and resumed in two new processes.
    spawn(tmp_path / "split", tmp_path / "r2", 3)
    resumed = spawn(tmp_path / "split", tmp_path / "r3", 6, resume=True)
    assert [r["step"] for r in resumed] == [6, 6]
    for name, p in straight[0]["state"].items():
        assert torch.equal(p, resumed[0]["state"][name]), f"{name} differs after resume"
        assert torch.equal(p, resumed[1]["state"][name]), f"{name} differs on rank 1"
    assert without_time(metrics(tmp_path / "split")) == without_time(metrics(lead))

    # A single process cannot continue a two-process run.
    with pytest.raises(ValueError, match="2 process"):
        train(tmp_path / "split", "adversarial", 9, resume=True)


@pytest.mark.slow
def test_example_runs_and_resumes_under_torchrun(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(ROOT / "examples" / "wae_mnist.py"),
               "--dataset", "digits", "--image-size", "16", "--batch-size", "8",
               "--log-every", "1", "--checkpoint-every", "1", "--no-progress",
               "--device", "cpu", "--precision", "bf16", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([*command, "--max-steps", "2"], capture_output=True, text=True,
                           env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("training WAE") == 1, first.stdout  # rank 0 speaks
    assert "2 processes" in first.stdout
    second = subprocess.run([*command, "--max-steps", "3", "--resume"], capture_output=True,
                            text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    state = load_checkpoint(out)
    assert state["step"] == 3 and len(state["ranks"]) == 2
    assert state["config"]["precision"] == "bf16"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert (out / "reconstructions.png").stat().st_size > 0


# ------------------------------------------------------------------------- precision


class AutocastProbe(torch.nn.Module):
    """Records the dtype a linear layer computes in during ``losses``."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model("plain")
        self.seen: list[torch.dtype] = []

    def losses(self, x):
        self.seen.append(self.inner.decoder(torch.zeros(1, 2)).dtype)
        return self.inner.losses(x)


@pytest.mark.parametrize(("precision", "dtype"),
                         [("fp32", torch.float32), ("bf16", torch.bfloat16),
                          ("fp16", torch.float16)])
def test_precision_autocasts_the_losses_and_stays_finite(tmp_path, precision, dtype):
    model = AutocastProbe()
    trainer = Trainer(model, out_dir=tmp_path, lr=1e-2, device="cpu", precision=precision,
                      log_every=1, **QUIET)
    summary = trainer.fit(make_data(), max_steps=4)
    assert set(model.seen) == {dtype}
    assert all(torch.isfinite(torch.tensor(v)) for v in summary.metrics.values())
    assert all(p.isfinite().all() for p in model.parameters())
    assert load_checkpoint(tmp_path)["config"]["precision"] == precision


def test_bad_precision_raises_naming_the_option(tmp_path):
    with pytest.raises(ValueError, match="precision 'fp8'"):
        Trainer(make_model("plain"), out_dir=tmp_path, precision="fp8")


def test_fp16_scaler_state_is_checkpointed_and_restored(tmp_path):
    train(tmp_path, "adversarial", 3, precision="fp16")
    state = load_checkpoint(tmp_path)
    assert set(state["scalers"]) == {"generator", "critic"}
    state["scalers"]["critic"]["scale"] = 1024.0  # a scale the run could have reached
    save_checkpoint({k: v for k, v in state.items() if k != "sha256"}, tmp_path / "checkpoint.pt")
    resumed = train(tmp_path, "adversarial", 3, resume=True)  # precision from the run
    assert resumed.config.precision == "fp16"
    assert resumed.scalers["critic"].get_scale() == 1024.0
    assert resumed.scalers["generator"].get_scale() == state["scalers"]["generator"]["scale"]


def test_fp16_split_run_resumes_bitwise(tmp_path):
    straight = train(tmp_path / "a", "adversarial", 6, precision="fp16")
    train(tmp_path / "b", "adversarial", 3, precision="fp16")
    resumed = train(tmp_path / "b", "adversarial", 6, precision="fp16", resume=True)
    assert_same_parameters(straight.model, resumed.model)


def test_fp16_overflowing_gradients_skip_the_step_without_error(tmp_path):
    model = make_model("plain")
    trainer = Trainer(model, out_dir=tmp_path, device="cpu", precision="fp16", **QUIET)
    trainer.scalers["generator"] = torch.amp.GradScaler("cpu", init_scale=2.0**120)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.generator_step(make_data()[:8])  # scaled gradients overflow: step skipped
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert trainer.scalers["generator"].get_scale() < 2.0**120


def test_fp16_nonfinite_loss_still_stops_the_run(tmp_path):
    model = make_model("plain")
    model.nan_at_call = 3
    trainer = Trainer(model, out_dir=tmp_path, device="cpu", precision="fp16", **QUIET)
    with pytest.raises(NonFiniteLossError, match="'reconstruction'"):
        trainer.fit(make_data(), max_steps=4)

"""Tests of otloss.train: exact resume, SIGKILL recovery, corrupt checkpoints, NaN stops."""

import hashlib
import json
import logging
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from otloss.models import load_model
from otloss.train import (
    InfiniteBatches,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from tests.conftest import cuda

DIM, LATENT, N_SAMPLES = 6, 2, 40
QUIET = {"progress": False, "tensorboard": False, "batch_size": 8}


class TinyAE(nn.Module):
    """A Gaussian-encoder autoencoder drawing from torch, numpy and Python's random."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(DIM, 2 * LATENT)
        self.decoder = nn.Linear(LATENT, DIM)
        self.nan_at_call: int | None = None  # make "reconstruction" NaN at this call
        self.calls = 0

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

    def losses(self, x):
        self.calls += 1
        z = self.encode(x)
        reconstruction = ((self.decoder(z) - x) ** 2).sum(1).mean()
        reconstruction = reconstruction * float(np.random.uniform(0.5, 1.5))  # noqa: NPY002
        if self.calls == self.nan_at_call:
            reconstruction = reconstruction * float("nan")
        regulariser = (z**2).mean() * random.uniform(0.5, 1.5)
        return {
            "loss": reconstruction + regulariser,
            "reconstruction": reconstruction,
            "regulariser": regulariser,
        }


class TinyAdversarialAE(TinyAE):
    """WAE-GAN-like: a latent critic whose loss also depends on the encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(LATENT, 8), nn.Tanh(), nn.Linear(8, 1))

    def losses(self, x):
        terms = super().losses(x)
        adversarial = -self.critic(self.encode(x)).mean()
        terms["adversarial"] = adversarial
        terms["loss"] = terms["loss"] + 0.1 * adversarial
        return terms

    def critic_losses(self, x):
        # No detach: the encoder receives gradients that the trainer must not apply.
        fake = self.critic(self.encode(x)).mean()
        real = self.critic(torch.randn(x.shape[0], LATENT)).mean()
        return {"loss": fake - real, "gap": real - fake}

    def critic_parameters(self):
        return self.critic.parameters()


def make_data() -> torch.Tensor:
    return torch.randn(N_SAMPLES, DIM, generator=torch.Generator().manual_seed(1))


def make_model(kind: str) -> TinyAE:
    seed_everything(123)
    return TinyAdversarialAE() if kind == "adversarial" else TinyAE()


def train(out: Path, kind: str, max_steps: int, **config) -> Trainer:
    options = {**QUIET, "out_dir": out, "log_every": 2, "checkpoint_every": 3, **config}
    if kind == "adversarial":
        options = {"n_critic": 2, "critic_optimizer": "rmsprop", "critic_lr": 1e-2, **options}
    trainer = Trainer(make_model(kind), **{"lr": 1e-2, **options})
    trainer.fit(make_data(), max_steps=max_steps)
    return trainer


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), f"{name} differs"


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def without_time(records: list[dict]) -> list[dict]:
    """Records without their wall-clock field, the one that differs between runs."""
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in records]


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("kind", ["plain", "adversarial"])
def test_split_run_with_resume_is_bitwise_identical_to_straight_run(tmp_path, kind):
    straight = train(tmp_path / "straight", kind, max_steps=10)
    train(tmp_path / "split", kind, max_steps=5)  # checkpoints at 3 and 5
    resumed = train(tmp_path / "split", kind, max_steps=10, resume=True)
    assert resumed.step == 10
    assert_same_parameters(straight.model, resumed.model)
    for name, opt in straight.optimizers.items():
        for s, r in zip(opt.state.values(), resumed.optimizers[name].state.values(), strict=True):
            assert all(torch.equal(s[k], r[k]) for k in s)
    # the logs agree too: same records (up to the wall-clock time), none repeated after the
    # resume, and the record that ended the first call at step 5 replaced by the interval's
    assert without_time(metrics(tmp_path / "straight")) == without_time(metrics(tmp_path / "split"))
    assert [m["step"] for m in metrics(tmp_path / "split")] == [2, 4, 6, 8, 10]


def test_resume_restores_every_random_generator_and_the_data_order(tmp_path):
    train(tmp_path, "plain", max_steps=4)
    state = load_checkpoint(tmp_path)
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert state["data"]["epoch"] == 0 and state["data"]["position"] == 4
    seed_everything(999)  # scramble the global generators; resume must restore them
    resumed = Trainer(make_model("plain"), resume=True, out_dir=tmp_path, **QUIET)
    resumed.load_state_dict(load_checkpoint(tmp_path))
    assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])
    assert random.getstate() == state["rng"]["python"]


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    trainer = train(tmp_path, "plain", max_steps=2, resume=True)
    assert trainer.step == 2 and (tmp_path / "checkpoint.pt").exists()


def test_fresh_run_refuses_to_replace_a_checkpoint_unless_overwrite(tmp_path):
    train(tmp_path, "plain", max_steps=2)
    with pytest.raises(FileExistsError, match="resume=True"):
        train(tmp_path, "plain", max_steps=2)
    trainer = train(tmp_path, "plain", max_steps=3, overwrite=True)
    assert load_checkpoint(tmp_path)["step"] == 3 and trainer.step == 3
    assert [m["step"] for m in metrics(tmp_path)] == [2, 3]


def test_second_fit_on_same_trainer_continues(tmp_path):
    straight = train(tmp_path / "a", "plain", max_steps=6)
    trainer = Trainer(make_model("plain"), lr=1e-2, out_dir=tmp_path / "b", **QUIET)
    data = make_data()
    trainer.fit(data, max_steps=3)
    summary = trainer.fit(data, max_steps=6)
    assert summary.start_step == 3 and summary.step == 6
    assert_same_parameters(straight.model, trainer.model)


# ------------------------------------------------------------------ kill and corruption

KILL_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from tests.test_train import train
train(__import__("pathlib").Path(sys.argv[1]), "adversarial", 10**9, checkpoint_every=2,
      log_every=50)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL on this platform")
def test_sigkill_mid_run_resumes_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], cwd=root)
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.prev.pt").exists():
            assert proc.poll() is None, "the training subprocess died on its own"
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.05)
        time.sleep(0.3)  # let it train and checkpoint a little more
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(out)["step"]
    print("killed at", killed_at)
    assert killed_at >= 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = train(out, "adversarial", killed_at + 3, resume=True, checkpoint_every=2)
        straight = train(tmp_path / "straight", "adversarial", killed_at + 3, checkpoint_every=2)
    finally:
        torch.set_num_threads(threads)
    assert resumed.step == killed_at + 3
    assert_same_parameters(straight.model, resumed.model)


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    train(tmp_path, "plain", max_steps=6)  # checkpoints at 3 and 6
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.warns(RuntimeWarning, match="falling back to the previous checkpoint"):
        assert load_checkpoint(tmp_path)["step"] == 3
    with pytest.warns(RuntimeWarning, match="checkpoint.prev.pt"):
        resumed = train(tmp_path, "plain", max_steps=8, resume=True)
    assert (tmp_path / "checkpoint.corrupt.pt").exists()  # kept out of the rotation
    assert load_checkpoint(tmp_path)["step"] == 8
    assert load_checkpoint(tmp_path / "checkpoint.prev.pt")["step"] == 6
    assert_same_parameters(train(tmp_path / "straight", "plain", max_steps=8).model, resumed.model)


def test_garbage_in_both_checkpoints_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    save_checkpoint({"model": {}}, tmp_path / "checkpoint.prev.pt")  # readable, wrong content
    with pytest.raises(
        FileNotFoundError, match=r"no readable checkpoint.*not an otloss checkpoint"
    ):
        load_checkpoint(tmp_path)


def test_save_checkpoint_rotates_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1}, path)
    save_checkpoint({"step": 2}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]
    assert torch.load(tmp_path / "checkpoint.prev.pt")["step"] == 1


# ------------------------------------------------------------------------- non-finite


def test_nonfinite_loss_stops_naming_term_and_step_and_keeps_checkpoint(tmp_path, caplog):
    model = make_model("plain")
    model.nan_at_call = 8
    trainer = Trainer(model, out_dir=tmp_path, log_every=5, checkpoint_every=5, **QUIET)
    with caplog.at_level(logging.ERROR, logger="otloss.train"):
        with pytest.raises(
            NonFiniteLossError, match=r"'reconstruction', 'loss'.* at step 8"
        ) as err:
            trainer.fit(make_data(), max_steps=20)
    assert err.value.term == "reconstruction" and err.value.step == 8
    assert "step 8" in caplog.text and "untouched" in caplog.text
    assert load_checkpoint(tmp_path)["step"] == 5
    assert not (tmp_path / "checkpoint.prev.pt").exists()
    assert [m["step"] for m in metrics(tmp_path)] == [5]  # nothing logged from the bad interval


def test_nonfinite_critic_term_is_prefixed_and_stops_before_any_checkpoint(tmp_path):
    model = make_model("adversarial")
    with torch.no_grad():
        model.critic[2].bias.fill_(float("inf"))
    trainer = Trainer(model, out_dir=tmp_path, log_every=50, checkpoint_every=50, **QUIET)
    with pytest.raises(NonFiniteLossError, match=r"step 1.*no checkpoint had been written") as err:
        trainer.fit(make_data(), max_steps=3)
    assert err.value.terms[0].startswith("critic/")
    assert not (tmp_path / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------- logging


def test_metrics_jsonl_has_every_term_at_each_interval(tmp_path):
    logged = []
    saved = []
    trainer = Trainer(
        make_model("adversarial"),
        out_dir=tmp_path,
        log_every=2,
        checkpoint_every=4,
        on_log=lambda step, m: logged.append((step, m)),
        on_checkpoint=lambda step, path: saved.append((step, path)),
        **QUIET,
    )
    summary = trainer.fit(make_data(), max_steps=5)
    records = metrics(tmp_path)
    terms = {"loss", "reconstruction", "regulariser", "adversarial", "critic/loss", "critic/gap"}
    assert [r["step"] for r in records] == [2, 4, 5]
    for record in records:
        assert set(record) == {"step", "lr", "critic/lr", "elapsed"} | terms
        assert all(isinstance(record[t], float) and np.isfinite(record[t]) for t in terms)
    assert [s for s, _ in logged] == [2, 4, 5] and logged[-1][1] == summary.metrics
    assert saved == [(4, tmp_path / "checkpoint.pt"), (5, tmp_path / "checkpoint.pt")]
    assert summary.step == 5 and not summary.resumed


def test_logged_values_are_interval_means(tmp_path):
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))
            self.n = 0

        def losses(self, x):
            self.n += 1
            return {"loss": self.w * x.sum(), "count": torch.tensor(float(self.n))}

    Trainer(Counter(), out_dir=tmp_path, log_every=3, **QUIET).fit(make_data(), max_steps=6)
    assert [r["count"] for r in metrics(tmp_path)] == [2.0, 5.0]


def test_progress_falls_back_to_logging_without_tqdm(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes "from tqdm import tqdm" fail
    trainer = Trainer(make_model("plain"), out_dir=tmp_path, log_every=2, **QUIET)
    trainer.config.progress = True
    with caplog.at_level(logging.INFO, logger="otloss.train"):
        trainer.fit(make_data(), max_steps=2)
    assert "step 2: loss=" in caplog.text


def test_tensorboard_receives_every_term_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    trainer = Trainer(make_model("plain"), out_dir=tmp_path, log_every=1, batch_size=8)
    trainer.config.progress = False
    trainer.fit(make_data(), max_steps=2)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


# ---------------------------------------------------------------- optimisation details


def snapshot(params):
    return [p.detach().clone() for p in params]


def test_critic_steps_never_move_the_generator_and_vice_versa(tmp_path):
    trainer = Trainer(make_model("adversarial"), out_dir=tmp_path, lr=0.1, **QUIET)
    x = make_data()[:8]
    generator, critic = snapshot(trainer.generator_params), snapshot(trainer.critic_params)
    trainer.critic_step(x)
    assert all(torch.equal(a, b) for a, b in zip(generator, trainer.generator_params, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(critic, trainer.critic_params, strict=True))
    assert all(p.grad is None for p in trainer.generator_params)  # no stale gradients left

    critic = snapshot(trainer.critic_params)
    seed_everything(5)
    expected = torch.autograd.grad(trainer.model.losses(x)["loss"], trainer.generator_params)
    seed_everything(5)
    trainer.generator_step(x)
    assert all(torch.equal(a, b) for a, b in zip(critic, trainer.critic_params, strict=True))
    for p, g in zip(trainer.generator_params, expected, strict=True):
        assert torch.equal(p.grad, g)  # exactly the generator loss' gradient


def test_generator_parameters_are_all_non_critic_parameters(tmp_path):
    trainer = Trainer(make_model("adversarial"), out_dir=tmp_path, **QUIET)
    model = trainer.model
    assert {id(p) for p in trainer.critic_params} == {id(p) for p in model.critic.parameters()}
    others = [*model.encoder.parameters(), *model.decoder.parameters()]
    assert {id(p) for p in trainer.generator_params} == {id(p) for p in others}
    assert isinstance(trainer.optimizers["generator"], torch.optim.Adam)


@pytest.mark.parametrize("step", ["generator_step", "critic_step"])
def test_grad_clip_bounds_the_gradient_norm(tmp_path, step):
    x = 5 * make_data()[:8]
    params = "generator_params" if step == "generator_step" else "critic_params"

    def norm_after(grad_clip):
        trainer = Trainer(make_model("adversarial"), out_dir=tmp_path, grad_clip=grad_clip, **QUIET)
        getattr(trainer, step)(x)
        return torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in getattr(trainer, params)])
        )

    unclipped = float(norm_after(None))
    max_norm = unclipped / 4
    assert max_norm > 0
    assert norm_after(max_norm) == pytest.approx(max_norm, rel=1e-5)


def test_optimizer_choices_follow_the_config(tmp_path):
    trainer = Trainer(
        make_model("adversarial"),
        out_dir=tmp_path,
        optimizer="rmsprop",
        lr=1e-4,
        critic_lr=5e-5,
        **QUIET,
    )
    gen, critic = trainer.optimizers["generator"], trainer.optimizers["critic"]
    assert isinstance(gen, torch.optim.RMSprop) and isinstance(critic, torch.optim.RMSprop)
    assert gen.param_groups[0]["lr"] == 1e-4 and critic.param_groups[0]["lr"] == 5e-5
    assert "critic" not in Trainer(make_model("plain"), out_dir=tmp_path, **QUIET).optimizers


def test_n_critic_steps_use_their_own_batches(tmp_path):
    model = make_model("adversarial")
    seen = []
    critic_losses = model.critic_losses
    model.critic_losses = lambda x: (seen.append(("critic", x[0, 0].item())), critic_losses(x))[1]
    losses = model.losses
    model.losses = lambda x: (seen.append(("generator", x[0, 0].item())), losses(x))[1]
    trainer = Trainer(model, out_dir=tmp_path, n_critic=3, **QUIET)
    trainer.fit(make_data(), max_steps=1)
    assert [kind for kind, _ in seen] == ["critic"] * 3 + ["generator"]
    assert len({value for _, value in seen}) == 4  # four different batches


# ------------------------------------------------------------------ data and protocol


def test_infinite_batches_visit_every_sample_once_per_epoch_and_resume_exactly():
    data = torch.arange(10.0)
    batches = InfiniteBatches(data, 5, seed=3)
    first = torch.cat([next(batches), next(batches)])
    second = torch.cat([next(batches), next(batches)])
    assert sorted(first.tolist()) == sorted(second.tolist()) == data.tolist()
    assert not torch.equal(first, second)
    state = batches.state_dict()
    ahead = [next(batches) for _ in range(3)]
    again = InfiniteBatches(data, 5, seed=0)
    again.load_state_dict(state)
    assert all(
        torch.equal(a, b) for a, b in zip(ahead, [next(again) for _ in range(3)], strict=True)
    )


def test_infinite_batches_collate_dataset_items_and_drop_incomplete_batches():
    dataset = torch.utils.data.TensorDataset(torch.arange(7.0), torch.arange(7))
    items = [(torch.tensor([float(i)]), i) for i in range(7)]
    for data in (dataset, items):
        batches = InfiniteBatches(data, 3, seed=0)
        epoch = [next(batches) for _ in range(2)]  # 7 // 3 batches per epoch
        assert all(len(b) == 2 and b[0].shape[0] == 3 for b in epoch)
        assert batches.state_dict()["position"] == 2
        next(batches)
        assert batches.state_dict()["epoch"] == 1


class Squares(torch.utils.data.Dataset):
    def __len__(self):
        return 9

    def __getitem__(self, i):
        return torch.tensor([float(i * i)]), i


def test_worker_processes_keep_the_exact_batch_order():
    serial = InfiniteBatches(Squares(), 4, seed=1)
    workers = InfiniteBatches(Squares(), 4, seed=1, num_workers=1)
    for _ in range(5):  # across two epoch boundaries
        a, b = next(serial), next(workers)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    resumed = InfiniteBatches(Squares(), 4, seed=0, num_workers=1)
    resumed.load_state_dict(serial.state_dict())
    assert torch.equal(next(serial)[1], next(resumed)[1])


def test_infinite_batches_reject_small_datasets_and_foreign_state():
    with pytest.raises(ValueError, match="4 samples, fewer than batch_size=8"):
        InfiniteBatches(torch.zeros(4, 2), 8)
    state = InfiniteBatches(torch.zeros(10, 2), 5).state_dict()
    with pytest.raises(ValueError, match="cannot resume the data order"):
        InfiniteBatches(torch.zeros(12, 2), 5).load_state_dict(state)


def test_fit_accepts_iterables_of_labelled_batches(tmp_path):
    data = make_data()
    loader = [(data[i : i + 8], torch.zeros(8)) for i in range(0, 32, 8)]
    summary = Trainer(make_model("plain"), out_dir=tmp_path, **QUIET).fit(loader, max_steps=6)
    assert summary.step == 6
    with pytest.raises(ValueError, match="max_steps must be a non-negative int"):
        Trainer(make_model("plain"), out_dir=tmp_path / "m", **QUIET).fit(loader, max_steps=2.5)
    with pytest.raises(ValueError, match="yielded no batches"):
        Trainer(make_model("plain"), out_dir=tmp_path / "e", **QUIET).fit([], max_steps=1)


def test_protocol_violations_are_clear_errors(tmp_path):
    class NoTotal(TinyAE):
        def losses(self, x):
            return {"reconstruction": super().losses(x)["loss"]}

    class NotScalar(TinyAE):
        def losses(self, x):
            return {"loss": self.decoder(self.encode(x))}

    class HalfAdversarial(TinyAE):
        def critic_losses(self, x):
            return {}

    x = make_data()[:8]
    with pytest.raises(TypeError, match="total under 'loss', got \\['reconstruction'\\]"):
        Trainer(NoTotal(), out_dir=tmp_path, **QUIET).generator_step(x)
    with pytest.raises(ValueError, match="\\['loss'\\] must be a scalar tensor, got \\(8, 6\\)"):
        Trainer(NotScalar(), out_dir=tmp_path, **QUIET).generator_step(x)
    with pytest.raises(TypeError, match="both critic_losses\\(x\\) and critic_parameters"):
        Trainer(HalfAdversarial(), out_dir=tmp_path, **QUIET)
    with pytest.raises(TypeError, match="losses\\(x\\)"):
        Trainer(nn.Linear(2, 2), out_dir=tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("optimizer", "sgd", "unknown optimizer 'sgd'"),
        ("n_critic", 0, "n_critic must be a positive int"),
        ("lr", -1.0, "lr must be positive"),
        ("grad_clip", 0.0, "grad_clip must be positive"),
        ("device", "nope" if torch.cuda.is_available() else "cuda:0", "nope|CUDA is not available"),
    ],
)
def test_bad_config_values_raise(tmp_path, field, value, error):
    with pytest.raises((ValueError, RuntimeError), match=error):
        Trainer(make_model("plain"), TrainConfig(out_dir=tmp_path), **{field: value})


def test_default_device_is_cuda_when_available(tmp_path):
    trainer = Trainer(make_model("plain"), out_dir=tmp_path, **QUIET)
    assert trainer.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert next(trainer.model.parameters()).device.type == trainer.device.type


@cuda
def test_cuda_run_checkpoints_cuda_random_state_and_resumes(tmp_path):
    train(tmp_path, "adversarial", max_steps=4, device="cuda")
    state = load_checkpoint(tmp_path)
    assert "cuda" in state["rng"]
    resumed = train(tmp_path, "adversarial", max_steps=6, device="cuda", resume=True)
    assert resumed.step == 6 and next(resumed.model.parameters()).is_cuda


def test_checkpoint_loads_with_weights_only_and_holds_the_config(tmp_path):
    train(tmp_path, "adversarial", max_steps=3)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3 and set(state["optimizers"]) == {"generator", "critic"}
    assert state["config"]["n_critic"] == 2 and state["config"]["critic_optimizer"] == "rmsprop"
    digest = hashlib.sha256((tmp_path / "checkpoint.pt").read_bytes()).hexdigest()
    train(tmp_path, "adversarial", max_steps=3, resume=True)  # nothing to do: untouched
    assert hashlib.sha256((tmp_path / "checkpoint.pt").read_bytes()).hexdigest() == digest
    assert os.listdir(tmp_path).count("checkpoint.pt.tmp") == 0


# --------------------------------------------------------- integrity and safe files


def flip_a_bit_in_the_largest_tensor_record(path: Path) -> None:
    """Flip one bit in the middle of the biggest tensor payload of a torch zip checkpoint."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_in_a_tensor_is_detected_and_the_previous_checkpoint_used(tmp_path):
    train(tmp_path, "plain", max_steps=6)  # checkpoints at 3 and 6
    ckpt = tmp_path / "checkpoint.pt"
    flip_a_bit_in_the_largest_tensor_record(ckpt)
    torch.load(ckpt, weights_only=True)  # still a loadable file: only the checksum tells
    with pytest.warns(RuntimeWarning, match="does not match its SHA-256 checksum"):
        assert load_checkpoint(tmp_path)["step"] == 3
    with pytest.warns(RuntimeWarning, match="falling back to the previous checkpoint"):
        resumed = train(tmp_path, "plain", max_steps=8, resume=True)
    assert (tmp_path / "checkpoint.corrupt.pt").exists()  # the bad file kept aside
    assert_same_parameters(train(tmp_path / "straight", "plain", max_steps=8).model, resumed.model)


def test_a_planted_temporary_symlink_is_never_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("checkpoint.pt.tmp", "metrics.jsonl.tmp", "model.json.tmp"):
        (run / name).symlink_to(outside)
    model = make_model("plain")
    trainer = Trainer(model, out_dir=run, log_every=2, checkpoint_every=2, **QUIET)
    trainer.fit(make_data(), max_steps=3)
    train(run, "plain", max_steps=5, resume=True)  # rewrites metrics.jsonl on resume
    assert outside.read_text() == "precious"
    assert all((run / n).is_symlink() for n in ("checkpoint.pt.tmp", "metrics.jsonl.tmp"))
    assert load_checkpoint(run)["step"] == 5
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_a_temporary_file_left_by_a_kill_is_removed_on_resume(tmp_path):
    train(tmp_path, "plain", max_steps=2)
    stale = tmp_path / ".checkpoint.pt.k1ll3d.tmp"  # as atomic_write names them
    stale.write_bytes(b"half a checkpoint")
    train(tmp_path, "plain", max_steps=3, resume=True)
    assert not stale.exists()


# ----------------------------------------------------------------- logs after a split


def test_logs_are_identical_when_the_split_is_not_a_multiple_of_log_every(tmp_path):
    options = {"log_every": 3, "checkpoint_every": 4}
    train(tmp_path / "straight", "adversarial", max_steps=9, **options)
    train(tmp_path / "split", "adversarial", max_steps=7, **options)  # ends mid-interval
    assert [r["step"] for r in metrics(tmp_path / "split")] == [3, 6, 7]
    train(tmp_path / "split", "adversarial", max_steps=9, resume=True, **options)
    straight, split = metrics(tmp_path / "straight"), metrics(tmp_path / "split")
    assert [r["step"] for r in split] == [3, 6, 9]
    assert without_time(straight) == without_time(split)


def test_a_second_fit_on_the_same_trainer_keeps_the_logs_of_a_straight_run(tmp_path):
    train(tmp_path / "straight", "plain", max_steps=6, log_every=4)
    trainer = Trainer(make_model("plain"), lr=1e-2, out_dir=tmp_path / "b", log_every=4,
                      checkpoint_every=3, **QUIET)
    data = make_data()
    trainer.fit(data, max_steps=5)
    trainer.fit(data, max_steps=6)
    assert without_time(metrics(tmp_path / "b")) == without_time(metrics(tmp_path / "straight"))


def test_records_hold_the_learning_rates_and_the_elapsed_time_of_the_run(tmp_path):
    train(tmp_path, "adversarial", max_steps=4)
    train(tmp_path, "adversarial", max_steps=6, resume=True)
    records = metrics(tmp_path)
    assert all(r["lr"] == 1e-2 and r["critic/lr"] == 1e-2 for r in records)
    elapsed = [r["elapsed"] for r in records]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0  # summed over both sessions


# ------------------------------------------------------------- settings on resume


def test_settings_given_on_resume_take_effect_and_are_recorded(tmp_path, caplog):
    train(tmp_path, "adversarial", max_steps=4)  # lr 1e-2, n_critic 2, log_every 2
    with caplog.at_level(logging.WARNING, logger="otloss.train"):
        resumed = train(tmp_path, "adversarial", max_steps=8, resume=True, lr=1e-3,
                        critic_lr=5e-4, grad_clip=1.0, log_every=4, checkpoint_every=8,
                        n_critic=5, batch_size=4)
    assert resumed.optimizers["generator"].param_groups[0]["lr"] == 1e-3
    assert resumed.optimizers["critic"].param_groups[0]["lr"] == 5e-4
    config = load_checkpoint(tmp_path)["config"]
    assert (config["lr"], config["critic_lr"], config["grad_clip"]) == (1e-3, 5e-4, 1.0)
    assert (config["log_every"], config["checkpoint_every"]) == (4, 8)
    # the rest comes from the run, with a warning naming what was ignored
    assert (config["n_critic"], config["batch_size"]) == (2, 8)
    assert "n_critic=5 (the run's: 2)" in caplog.text and "lr 0.01 -> 0.001" in caplog.text
    records = metrics(tmp_path)
    assert [(r["step"], r["lr"]) for r in records] == [(2, 1e-2), (4, 1e-2), (8, 1e-3)]


# ------------------------------------------------------------------------- display


def test_without_a_bar_a_line_per_record_goes_to_stderr(tmp_path, capsys):
    trainer = Trainer(make_model("plain"), out_dir=tmp_path, log_every=2,
                      **{**QUIET, "progress": "lines"})
    trainer.fit(make_data(), max_steps=4)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["step 2/4", "step 4/4"]
    assert "loss=" in lines[0] and lines[0].endswith("steps/s)")


def test_a_bar_is_not_drawn_into_a_file(tmp_path, capsys):
    pytest.importorskip("tqdm")
    trainer = Trainer(make_model("plain"), out_dir=tmp_path, log_every=2,
                      **{**QUIET, "progress": True})
    trainer.fit(make_data(), max_steps=4)  # capsys' stderr is not a terminal
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 2


def test_progress_false_prints_nothing(tmp_path, capsys):
    Trainer(make_model("plain"), out_dir=tmp_path, **QUIET).fit(make_data(), max_steps=2)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------- package shape


@pytest.mark.slow
def test_import_otloss_loads_no_training_model_or_cli_code():
    code = (
        "import sys, otloss\n"
        "names = ('otloss.train', 'otloss.models', 'otloss.cli')\n"
        "loaded = [m for m in names if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert otloss.Trainer is __import__('otloss.train').train.Trainer\n"
        "from otloss._version import __version__\n"
        "assert otloss.__version__ == __version__\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_old_protocol_names_still_work_with_a_deprecation_warning():
    import otloss.train as package

    with pytest.warns(DeprecationWarning, match="TrainableModel"):
        assert package.OTAutoencoder is package.TrainableModel
    with pytest.warns(DeprecationWarning, match="AdversarialModel"):
        assert package.AdversarialOTAutoencoder is package.AdversarialModel


def test_a_model_without_plain_arguments_trains_but_cannot_be_reloaded(tmp_path):
    train(tmp_path, "plain", max_steps=2)
    assert not (tmp_path / "model.json").exists()
    with pytest.raises(ValueError, match="does not record the model's constructor arguments"):
        load_model(tmp_path)


def test_has_critic_and_the_trainers_test_agree_on_every_reference_model(tmp_path):
    from otloss.models import GMWAE, GWAE, SWAE, TCWAE, WAE
    from otloss.train import is_adversarial

    models = {
        "gwae": GWAE((1, 16, 16), 4, prior="normal"),
        "wae-mmd": WAE((6,), 2),
        "wae-gan": WAE((6,), 2, regularizer="gan"),
        "tcwae-mws": TCWAE((6,), 2, dataset_size=40),
        "tcwae-gan": TCWAE((6,), 2, estimator="gan"),
        "swae": SWAE((6,), 2, n_pseudo=4),
        "gmwae": GMWAE((6,), 2, 3),
    }
    adversarial = {name: m.has_critic for name, m in models.items()}
    assert adversarial == {"gwae": True, "wae-mmd": False, "wae-gan": True, "tcwae-mws": False,
                           "tcwae-gan": True, "swae": False, "gmwae": False}
    for name, model in models.items():
        assert is_adversarial(model) == model.has_critic, name
        trainer = Trainer(model, out_dir=tmp_path / name, **QUIET)
        assert ("critic" in trainer.optimizers) == model.has_critic, name
        if model.has_critic:
            critic = getattr(model, model.critic_attribute)
            assert {id(p) for p in trainer.critic_params} == {id(p) for p in critic.parameters()}


def test_model_config_round_trips_through_from_config():
    from otloss.models import GMVAE, GWAE, TCWAE

    for model in (GWAE((1, 16, 16), 4, prior="normal", lambda_w=3.0),
                  TCWAE((6,), 2, estimator="gan", beta=2.0),
                  GMVAE((6,), 2, 3, beta=2.0, head_hidden=(8,))):  # a subclass's **kwargs
        config = model.config()
        assert json.loads(json.dumps(config)) == config
        rebuilt = type(model).from_config(config)
        assert rebuilt.config() == config
        assert rebuilt.state_dict().keys() == model.state_dict().keys()
    assert GMVAE((6,), 2, 3, head_hidden=(8,)).config()["arguments"]["head_hidden"] == [8]
    with pytest.raises(TypeError, match=r"GWAE\(encoder=\.\.\.\) is a Linear"):
        GWAE((6,), 2, prior="normal", encoder=nn.Linear(6, 4)).config()

"""The training loop: alternating optimisers, logs, checkpoints, exact resume.

Each generator step is preceded by ``n_critic`` critic steps, each on its own batch
(models with a critic, see `otloss.train.protocol`). Everything that decides the
future of a run is checkpointed: the model, both optimisers, the step, every random
generator (torch CPU and CUDA, numpy, Python's ``random``), the position of the data
iterator and the unfinished log interval. So N steps straight and N/2 steps, a restart
with ``resume=True``, and N/2 more give bitwise identical parameters on the CPU and the
same records in ``metrics.jsonl`` (up to the wall-clock ``elapsed``), in one process or
in several (see `otloss.train.parallel`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from otloss._version import __version__
from otloss.train import parallel
from otloss.train.batches import InfiniteBatches, Repeat
from otloss.train.checkpoint import (
    CHECKPOINT,
    METRICS,
    MODEL_CONFIG,
    atomic_write,
    has_checkpoint,
    load_with_fallback,
    remove_stale_temporary_files,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    write_json,
)
from otloss.train.config import (
    RESUMABLE_FIELDS,
    RUNTIME_FIELDS,
    TrainConfig,
    make_optimizer,
    resolve_device,
)
from otloss.train.logs import CRITIC_PREFIX, LossTracker, Progress, truncate_metrics
from otloss.train.precision import autocast, make_scaler
from otloss.train.protocol import check_terms, is_adversarial

__all__ = ["NonFiniteLossError", "TrainSummary", "Trainer"]

logger = logging.getLogger("otloss.train")


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the run stopped and its checkpoint was kept.

    Attributes:
        terms: names of the terms that were non-finite first (critic terms are prefixed
            ``"critic/"``); ``term`` is the first of them.
        step: the 1-based step at which they became non-finite.
        checkpoint: the untouched last good checkpoint, or ``None`` if none was written.
    """

    def __init__(self, terms: list[str], step: int, checkpoint: Path | None) -> None:
        self.terms, self.term, self.step, self.checkpoint = terms, terms[0], step, checkpoint
        names = ", ".join(repr(t) for t in terms)
        kept = (
            f"the last good checkpoint {checkpoint} was left untouched"
            if checkpoint is not None
            else "no checkpoint had been written yet"
        )
        super().__init__(
            f"non-finite loss: term {names} became NaN or infinite at step {step}; "
            f"training stopped and {kept}. Lower the learning rate, clip gradients "
            "(grad_clip) or check the data, then resume."
        )


@dataclasses.dataclass
class TrainSummary:
    """What `Trainer.fit` returns.

    Attributes:
        step: steps done in total (including those before a resume).
        start_step: the step this call started from (0, or the checkpoint's step).
        resumed: whether the call resumed from a checkpoint.
        metrics: the loss terms of the last record written to ``metrics.jsonl``.
        checkpoint: path of the final checkpoint.
        out_dir: the run folder.
        seconds: wall-clock time of this call.
    """

    step: int
    start_step: int
    resumed: bool
    metrics: dict[str, float]
    checkpoint: Path
    out_dir: Path
    seconds: float


def model_config(model: nn.Module) -> dict[str, Any] | None:
    """The model's constructor arguments (``model.config()``, see
    `otloss.models.base.OTAutoencoder.config`), or ``None`` when it has none or
    they are not plain values (then `otloss.models.load_model` cannot rebuild it)."""
    method = getattr(model, "config", None)
    if not callable(method):
        return None
    try:
        config = method()
        json.dumps(config)
    except (TypeError, ValueError) as err:
        logger.warning("the model's constructor arguments are not recorded: %s", err)
        return None
    return config


class Trainer:
    r"""Train a model (optionally adversarial) with exact resume.

    One step: for adversarial models ``n_critic`` critic steps, each on a fresh batch
    (minimise ``critic_losses(x)["loss"]`` over the critic's parameters), then one
    generator step on a fresh batch (minimise ``losses(x)["loss"]`` over all other
    parameters). Gradients reach only the parameters being stepped
    (``backward(inputs=...)``), so critic losses that depend on the encoder leave no
    stale gradients in it.

    Every ``log_every`` steps the mean of every term over the interval is appended to
    ``out_dir/metrics.jsonl`` as ``{"step": s, "loss": ..., "critic/loss": ..., "lr":
    ..., "critic/lr": ..., "elapsed": ...}`` (also to TensorBoard when installed, and to
    the progress display), ``on_log(step, metrics)`` is called, and the run stops with
    `NonFiniteLossError` if any term was NaN or infinite, naming it and the step,
    without writing a checkpoint. Every ``checkpoint_every`` steps and at the end,
    ``out_dir/checkpoint.pt`` is written atomically (see
    `save_checkpoint`) and ``on_checkpoint(step, path)`` is called. A
    run that is killed loses at most the steps since its last checkpoint. A fresh run
    also writes ``out_dir/model.json``, the model's constructor arguments, when it has
    them (`otloss.models.load_model` rebuilds the model from the run folder).

    On resume, this trainer's ``lr``, ``critic_lr``, ``grad_clip``, ``log_every`` and
    ``checkpoint_every`` take effect (the learning rates replace the optimisers' restored
    ones) and are recorded in the next checkpoint; every other setting comes from the run
    (``precision`` included).

    ``precision="bf16"`` or ``"fp16"`` computes the losses under ``torch.autocast`` on
    the run's device; fp16 also scales the losses with a ``torch.amp.GradScaler`` per
    optimiser, whose state is checkpointed (see `otloss.train.precision`).

    Distributed data parallel: under ``torchrun`` (``WORLD_SIZE`` > 1) or in an
    initialised process group, the trainer joins the group (initialising it from the
    launcher's environment if needed: NCCL on ``cuda:LOCAL_RANK``, gloo on the CPU) and
    averages the gradients of every step over the processes with
    ``DistributedDataParallel`` (see `otloss.train.parallel`). ``batch_size`` is the
    batch of each process: a run of K processes trains on global batches of
    ``K * batch_size`` samples, rank ``r`` taking the ``r``-th block of each (see
    `InfiniteBatches`; an iterable of batches given to ``fit`` must shard itself). Each
    rank draws its own random numbers (rank 0 from ``seed``). Rank 0 alone writes the run
    folder (``metrics.jsonl``, checkpoints, ``model.json``, TensorBoard), shows progress
    and calls ``on_log`` / ``on_checkpoint``; the logged terms are means over the
    ranks. A checkpoint holds every rank's random and log state, and every rank resumes
    from the same file (on several machines the run folder must be shared), so a split
    run of K processes equals the straight one bitwise on the CPU. A run resumes with as
    many processes as it was started with.

    Args:
        model: an ``nn.Module`` following the protocol; moved to the chosen device.
        config: a `TrainConfig` (default: ``TrainConfig()``).
        on_log: called as ``on_log(step, metrics)`` after each record.
        on_checkpoint: called as ``on_checkpoint(step, path)`` after each checkpoint.
        **overrides: `TrainConfig` fields replacing those of ``config``.

    Examples:
        >>> trainer = Trainer(model, out_dir="runs/gwae", optimizer="rmsprop", lr=1e-4,
        ...                   critic_lr=5e-5, n_critic=5, resume=True)
        >>> summary = trainer.fit(dataset, max_steps=10_000)
        >>> summary.metrics["loss"]
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig | None = None,
        *,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
        on_checkpoint: Callable[[int, Path], None] | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(model, nn.Module) or not callable(getattr(model, "losses", None)):
            raise TypeError("model must be an nn.Module with a losses(x) -> dict method")
        self.adversarial = is_adversarial(model)
        self.config = dataclasses.replace(config or TrainConfig(), **overrides)
        self.device = parallel.run_device(resolve_device(self.config.device))
        if parallel.launched():
            parallel.init_from_environment(self.device)
        self.world_size, self.rank = parallel.world_size(), parallel.rank()
        self.model = model.to(self.device)
        self.on_log, self.on_checkpoint = on_log, on_checkpoint

        critic = list(model.critic_parameters()) if self.adversarial else []
        critic_ids = {id(p) for p in critic}
        self.critic_params = [p for p in critic if p.requires_grad]
        self.generator_params = [
            p for p in model.parameters() if p.requires_grad and id(p) not in critic_ids
        ]
        self.optimizers = self._make_optimizers()
        self.scalers = self._make_scalers()
        self._losses = self._loss_functions(critic)
        self.model_config = model_config(model)
        self.step = 0
        self.out_dir = Path(self.config.out_dir)
        self._tracker = LossTracker(self.device)
        self._elapsed = 0.0  # training seconds of the run before this fit() call
        self._session_start: float | None = None  # when this fit() call started
        self._data: tuple[Any, Any] | None = None  # (what fit got, its batch iterator)

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        common = {"eps": cfg.eps, "wd": cfg.weight_decay}
        optimizers = {
            "generator": make_optimizer(
                cfg.optimizer, self.generator_params, lr=cfg.lr, betas=cfg.betas, **common
            )
        }
        if self.adversarial:
            critic = cfg.critic_settings
            optimizers["critic"] = make_optimizer(
                critic["name"], self.critic_params, lr=critic["lr"], betas=critic["betas"],
                **common,
            )
        return optimizers

    def _make_scalers(self) -> dict[str, torch.amp.GradScaler]:
        return {name: make_scaler(self.config.precision, self.device) for name in self.optimizers}

    def _loss_functions(self, critic: list[nn.Parameter]) -> dict[str, Callable[..., Any]]:
        """``losses`` and ``critic_losses``, through DDP in a multi-process run."""
        model = self.model
        if self.world_size == 1:
            return {"generator": model.losses, "critic": getattr(model, "critic_losses", None)}
        return {
            "generator": parallel.wrap_losses(model, "losses", critic, self.device),
            "critic": parallel.wrap_losses(model, "critic_losses", self.generator_params,
                                           self.device) if self.adversarial else None,
        }

    def _learning_rates(self) -> dict[str, float]:
        rates = {"generator": self.config.lr}
        if self.adversarial:
            rates["critic"] = self.config.critic_settings["lr"]
        return rates

    # -- one update each -------------------------------------------------------------

    def generator_step(self, x: Tensor) -> dict[str, Tensor]:
        """Minimise ``model.losses(x)["loss"]`` over the generator's parameters once."""
        with autocast(self.config.precision, self.device):
            terms = check_terms(self._losses["generator"](x), "losses")
        self._update(terms["loss"], self.generator_params, "generator")
        return terms

    def critic_step(self, x: Tensor) -> dict[str, Tensor]:
        """Minimise ``model.critic_losses(x)["loss"]`` over the critic's parameters once."""
        with autocast(self.config.precision, self.device):
            terms = check_terms(self._losses["critic"](x), "critic_losses")
        self._update(terms["loss"], self.critic_params, "critic")
        return terms

    def _update(self, loss: Tensor, params: list[nn.Parameter], name: str) -> None:
        """One step of optimiser ``name``; under fp16 its scaler skips a step whose
        gradients overflowed (and lowers its scale)."""
        opt, scaler = self.optimizers[name], self.scalers[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward(inputs=params)
        if self.config.grad_clip is not None:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        scaler.step(opt)
        scaler.update()

    # -- the loop ----------------------------------------------------------------------

    def fit(self, data: Any, *, max_steps: int) -> TrainSummary:
        """Train until ``max_steps`` steps in total, resuming first if configured.

        Args:
            data: a ``torch.utils.data.Dataset`` or a tensor of samples (batched by
                `InfiniteBatches`, exactly resumable), an
                `InfiniteBatches`, or any other iterable of batches,
                such as a ``DataLoader`` or a list (cycled; its order is restored on
                resume only if it has ``state_dict``/``load_state_dict``). A batch that
                is a tuple or list ``(x, labels, ...)`` passes only ``x`` to the model.
            max_steps: total number of generator steps of the run.

        Returns:
            A `TrainSummary`.

        Raises:
            NonFiniteLossError: a loss term became non-finite.
            FileExistsError: a fresh run (``resume=False``) found a checkpoint in
                ``out_dir`` and ``overwrite`` is False.
        """
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 0:
            raise ValueError(f"max_steps must be a non-negative int, got {max_steps!r}")
        started = time.perf_counter()
        lead = self.rank == 0  # the one process that writes files and shows progress
        if lead:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        resumed = self._start(data)
        parallel.barrier()
        batches = self._data[1]
        cfg, start_step, metrics = self.config, self.step, {}
        self.model.train()
        progress = Progress(cfg.progress if lead else False, start_step, max_steps)
        writer = _tensorboard_writer(cfg.tensorboard and lead, self.out_dir)
        self._session_start = started
        try:
            log = open(self.out_dir / METRICS, "a", encoding="utf-8") if lead else None
            with log or contextlib.nullcontext() as log_file:
                while self.step < max_steps:
                    if self.adversarial:
                        for _ in range(cfg.n_critic):
                            terms = self.critic_step(self._next_input(batches))
                            self._tracker.add(CRITIC_PREFIX, terms, self.step + 1)
                    terms = self.generator_step(self._next_input(batches))
                    self._tracker.add("", terms, self.step + 1)
                    self.step += 1
                    progress.update()
                    closes = self.step % cfg.log_every == 0
                    if closes or self.step == max_steps:
                        metrics = self._log(log_file, progress, writer, close=closes)
                    if self.step % cfg.checkpoint_every == 0 or self.step == max_steps:
                        self._raise_if_nonfinite()
                        self._save(batches)
        finally:
            progress.close()
            if writer is not None:
                writer.close()
            self._elapsed += time.perf_counter() - started
            self._session_start = None
        parallel.barrier()  # every rank returns once the final checkpoint is written
        if start_step >= max_steps:
            logger.info("step %d already reached max_steps=%d", start_step, max_steps)
        return TrainSummary(
            step=self.step,
            start_step=start_step,
            resumed=resumed,
            metrics=metrics,
            checkpoint=self.out_dir / CHECKPOINT,
            out_dir=self.out_dir,
            seconds=time.perf_counter() - started,
        )

    def _batches(self, data: Any) -> Any:
        if self._data is not None and self._data[0] is data:
            return self._data[1]  # a second fit() on the same data continues its order
        if isinstance(data, InfiniteBatches):
            if data.world_size != self.world_size:
                raise ValueError(
                    f"the InfiniteBatches given to fit() have world_size={data.world_size} "
                    f"but the run has {self.world_size} processes; pass rank= and "
                    "world_size= to InfiniteBatches, or give fit() the dataset"
                )
            batches = data
        elif isinstance(data, (Tensor, torch.utils.data.Dataset)):
            batches = InfiniteBatches(
                data,
                self.config.batch_size,
                seed=self.config.seed,
                num_workers=self.config.num_workers,
                rank=self.rank,
                world_size=self.world_size,
            )
        elif isinstance(data, Iterable):
            batches = Repeat(data)
        else:
            raise TypeError(f"fit() needs a Dataset, a Tensor or batches, got {type(data)}")
        self._data = (data, batches)
        return batches

    def _next_input(self, batches: Any) -> Tensor:
        batch = next(batches)
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(x, Tensor):
            raise TypeError(f"a batch must be a Tensor or (Tensor, ...), got {type(x).__name__}")
        return x.to(self.device, non_blocking=True)

    def _start(self, data: Any) -> bool:
        """Resume from the run folder, continue in memory, or start fresh; True when
        resumed. Leaves the batch iterator in ``self._data``."""
        metrics_path, lead = self.out_dir / METRICS, self.rank == 0
        if self.step > 0:  # fit() called again on this trainer: continue in memory
            self._batches(data)
            if lead:
                truncate_metrics(metrics_path, self.step, keep_last=not self._tracker.pending)
            return False
        found = has_checkpoint(self.out_dir)
        if found and self.config.resume:
            path = self.out_dir / CHECKPOINT
            state, used = load_with_fallback(path)  # every rank reads the same file
            self._adopt_run_config(state["config"])
            self.load_state_dict(state, self._batches(data))
            parallel.barrier()  # read everywhere before rank 0 moves files
            if lead:
                if used != path and path.exists():  # keep the corrupt file out of rotation
                    os.replace(path, path.with_name(f"{path.stem}.corrupt{path.suffix}"))
                self._remove_stale_files()
                truncate_metrics(metrics_path, self.step, keep_last=not self._tracker.pending)
                if self.model_config is not None and not (self.out_dir / MODEL_CONFIG).exists():
                    write_json(self.out_dir / MODEL_CONFIG, self.model_config)
                logger.info("resumed from %s at step %d", used, self.step)
            return True
        if found and not self.config.overwrite:
            raise FileExistsError(
                f"{self.out_dir} already holds a checkpoint; pass resume=True (--resume) to "
                "continue it, overwrite=True to start again over it, or another out_dir"
            )
        self._batches(data)
        seed_everything(parallel.rank_seed(self.config.seed, self.rank))
        if lead:
            self._remove_stale_files()
            atomic_write(metrics_path, lambda f: None)  # empty; a link there is replaced
            if self.model_config is not None:
                write_json(self.out_dir / MODEL_CONFIG, self.model_config)
        return False

    def _remove_stale_files(self) -> None:
        for path in remove_stale_temporary_files(self.out_dir):
            logger.info("removed %s, left by a run killed while writing", path)

    def _adopt_run_config(self, stored: dict[str, Any]) -> None:
        """Take the run's settings, except the resumable and runtime ones of this trainer."""
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        keep = set(RESUMABLE_FIELDS) | set(RUNTIME_FIELDS)
        run = {k: v for k, v in stored.items() if k in fields and k not in keep}
        ignored = {k: (v, getattr(self.config, k)) for k, v in run.items()
                   if _differs(getattr(self.config, k), v)}
        if ignored:
            text = ", ".join(f"{k}={now!r} (the run's: {was!r})"
                             for k, (was, now) in ignored.items())
            logger.warning(
                "resuming: %s ignored; only %s can change on resume", text,
                ", ".join(RESUMABLE_FIELDS),
            )
        changed = {k: (stored[k], getattr(self.config, k)) for k in RESUMABLE_FIELDS
                   if k in stored and _differs(getattr(self.config, k), stored[k])}
        if changed:
            text = ", ".join(f"{k} {was!r} -> {now!r}" for k, (was, now) in changed.items())
            logger.warning("resuming with changed settings: %s", text)
        self.config = dataclasses.replace(self.config, **run)
        self.optimizers = self._make_optimizers()
        self.scalers = self._make_scalers()

    def _log(
        self, log_file: Any, progress: Progress, writer: Any, *, close: bool
    ) -> dict[str, float]:
        # The one host sync of the interval; the terms are averaged over the ranks.
        metrics = parallel.mean_over_ranks(self._tracker.means(reset=close), self.device)
        self._raise_if_nonfinite()
        if log_file is None:  # not rank 0
            return metrics
        rates = {
            ("lr" if name == "generator" else f"{CRITIC_PREFIX}lr"): opt.param_groups[0]["lr"]
            for name, opt in self.optimizers.items()
        }
        elapsed = self._elapsed + time.perf_counter() - (self._session_start or 0.0)
        record = {"step": self.step, **metrics, **rates, "elapsed": round(elapsed, 3)}
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        logger.info("step %d: %s", self.step, text)
        progress.record(self.step, text)
        if writer is not None:
            for name, value in {**metrics, **rates}.items():
                writer.add_scalar(name, value, self.step)
        if self.on_log is not None:
            self.on_log(self.step, metrics)
        return metrics

    def _raise_if_nonfinite(self) -> None:
        found = self._tracker.first_nonfinite()
        if self.world_size > 1:  # every rank stops, at the earliest step of any rank
            found = _earliest([f for f in parallel.all_gather_objects(found) if f is not None])
        if found is None:
            return
        terms, step = found
        path = self.out_dir / CHECKPOINT
        error = NonFiniteLossError(terms, step, path if path.exists() else None)
        logger.error("%s", error)
        raise error

    def _save(self, batches: Any) -> None:
        state = self.state_dict(batches)  # on every rank: it gathers the ranks' states
        if self.rank != 0:
            return
        path = save_checkpoint(state, self.out_dir / CHECKPOINT)
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.step, path)

    # -- state ---------------------------------------------------------------------------

    def state_dict(self, batches: Any = None) -> dict[str, Any]:
        """Everything a checkpoint holds (``batches``: the data iterator to record).

        In a run of several processes, ``"ranks"`` lists every rank's random and log
        state (``"rng"`` and ``"metrics"`` are rank 0's); every rank must call this
        together, since it gathers them.
        """
        data = batches.state_dict() if hasattr(batches, "state_dict") else None
        session = self._session_start
        elapsed = self._elapsed + (time.perf_counter() - session if session is not None else 0.0)
        own = {"rng": rng_state(self.device), "metrics": self._tracker.state_dict()}
        state = {
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
            "step": self.step,
            **own,
            "data": data,
            "config": dataclasses.asdict(self.config),
            "model_config": self.model_config,
            "elapsed": elapsed,
            "otloss_version": __version__,
        }
        if self.world_size > 1:
            state["ranks"] = parallel.all_gather_objects(own)
        return state

    def load_state_dict(self, state: dict[str, Any], batches: Any = None) -> None:
        """Restore a checkpoint's model, optimisers, step, metrics and random states.

        The optimisers' learning rates are then set to this trainer's ``lr`` and
        ``critic_lr``: a run resumed with a lower rate trains at the lower rate.
        """
        ranks = state.get("ranks") or [state]
        if len(ranks) != self.world_size:
            raise ValueError(
                f"the checkpoint was written by a run of {len(ranks)} process(es) and this "
                f"run has {self.world_size}; resume it with {len(ranks)} (torchrun "
                f"--nproc_per_node)"
            )
        own = ranks[self.rank]
        self.model.load_state_dict(state["model"])
        if state["optimizers"].keys() != self.optimizers.keys():
            raise ValueError(
                f"the checkpoint has optimisers {sorted(state['optimizers'])}, this model "
                f"needs {sorted(self.optimizers)}"
            )
        rates = self._learning_rates()
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
            for group in opt.param_groups:
                group["lr"] = rates[name]
        for name, scaler in self.scalers.items():
            if name in state.get("scalers", {}):
                scaler.load_state_dict(state["scalers"][name])
        self.step = state["step"]
        self._elapsed = float(state.get("elapsed", 0.0))
        self._tracker.load_state_dict(own["metrics"])
        if batches is not None:
            if state.get("data") is not None and hasattr(batches, "load_state_dict"):
                batches.load_state_dict(state["data"])
            else:
                logger.warning("the data iterator has no state: the batch order is not resumed")
        set_rng_state(own["rng"], self.device)


def _earliest(found: list[tuple[list[str], int]]) -> tuple[list[str], int] | None:
    """The earliest of the ranks' first non-finite steps, with the terms of any rank then."""
    if not found:
        return None
    step = min(s for _, s in found)
    return list(dict.fromkeys(t for terms, s in found if s == step for t in terms)), step


def _differs(a: Any, b: Any) -> bool:
    """Whether two config values differ (a tuple equals the list it may be stored as)."""
    return (list(a) if isinstance(a, tuple) else a) != (list(b) if isinstance(b, tuple) else b)


def _tensorboard_writer(enabled: bool, out_dir: Path) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.debug("tensorboard is not installed; logging to metrics.jsonl only")
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))

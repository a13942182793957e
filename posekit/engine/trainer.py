"""Training loop of any method family: data, optimisation, validation, checkpoints, resumption.

The family's recipe is a task (``posekit.tasks``): what a training item is, its targets, the loss
and its named parts, the validation predictor. The trainer builds the model and its codec from the
config (``model.name``, ``model.options``, ``codec:``), takes the task of their family, and runs
what every family shares: sampling, mixed precision, the learning-rate schedule, the bad-step
guard, DistributedDataParallel, validation by COCO OKS AP, checkpoints and resumption.

A run directory holds ``config.yaml`` (the resolved config), ``last.pt`` (every
``train.checkpoint_every`` iterations and each epoch), ``best.pt`` (best validation AP),
``metrics.jsonl`` (one line per epoch) and ``tb/`` (TensorBoard, when installed). Without a
training file the run generates synthetic data of the schema into ``synth/`` first. A bottom-up
run on a schema without skeleton learns one from the training data
(``CocoKeypointDataset.with_learned_skeleton``) and writes the schema to ``schema.yaml``.

Resumption is exact on CPU: the sample order is a seeded permutation per epoch that can start
mid-epoch, augmentation draws from ``(seed, epoch, index)``, and the learning rate is a function of
the position, so ``--resume auto`` after a kill continues the very same trajectory.

With ``train.ema`` the trainer keeps an exponential moving average of the weights
(``engine.ema.ModelEma``): validation, ``best.pt`` and the shipped ``"model"`` weights are the
average; the raw weights ride along as ``"train_model"`` so a resume continues both.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from posekit.codecs.base import Codec
from posekit.config import Config, config_to_dict, save_config
from posekit.data.coco import CocoKeypointDataset
from posekit.devices import amp_dtype, keep_freed_memory
from posekit.engine.checkpoint import rng_state, save_checkpoint, set_rng_state
from posekit.engine.data import EpochSampler
from posekit.engine.distributed import init_distributed
from posekit.engine.ema import ModelEma
from posekit.engine.eta import RunClock
from posekit.engine.schedule import LrSchedule, build_optimizer
from posekit.engine.validation import Validator
from posekit.errors import CheckpointError, ConfigError, TrainingError
from posekit.models import zoo
from posekit.models.losses import LossParts
from posekit.models.record import FORMAT, ModelRecord, load_checkpoint
from posekit.schema import KeypointSchema
from posekit.tasks import build_task, collate
from posekit.tasks.base import Batch, Task

logger = logging.getLogger(__name__)

SMALL_EPOCH = 4
"""Epochs of fewer steps than this times ``data.workers`` read their images in the main process:
a tiny dataset (a few labelled images) would spend most of each epoch starting the workers
(~0.5 s per epoch measured with 2 workers; a 3-crop step takes 0.02 s)."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    epochs: int
    iterations: int
    best_ap: float
    history: tuple[dict[str, float], ...]


@dataclass(frozen=True)
class _Split:
    """A COCO file and its image folder."""

    ann: Path
    images: Path


class Trainer:
    """Train a model as ``config`` says.

    Args:
        config: the resolved run configuration.
        task: the family's training recipe; default ``tasks.build_task`` of the config's codec.
        resume: ``None`` (start fresh; refuses a run directory that has a ``last.pt``),
            ``"auto"`` (continue from ``<out>/last.pt`` when it exists) or a checkpoint path.
        progress: show tqdm progress bars (rank 0 only).
    """

    def __init__(
        self,
        config: Config,
        *,
        task: Task | None = None,
        resume: str | None = None,
        progress: bool = True,
    ):
        self.config = config
        self.ctx, self.device = init_distributed(config.train.device)
        self.run_dir = Path(config.out)
        self.progress = progress and self.ctx.is_main
        torch.manual_seed(config.train.seed)
        train, self.val = self._splits()
        schema_spec = config.data.schema
        if config.data.train_ann is None:  # synthetic files are written from a built-in schema
            schema_spec = schema_spec or "coco_person"
        self.train_set = CocoKeypointDataset(
            train.ann,
            train.images,
            schema=schema_spec,
            category_id=config.data.category_id,
            strict=False,
            seed=config.train.seed,
        )
        self.schema: KeypointSchema = self.train_set.schema
        if not self.schema.skeleton and _family(config.model.name) == "bottomup":
            self.schema = self.train_set.schema = self.train_set.with_learned_skeleton()
            if self.ctx.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                path = self.run_dir / "schema.yaml"
                self.schema.to_yaml(path)
                logger.info("learned skeleton -> %s (edit it and pass --schema to change it)", path)
        if self.train_set.problems:
            logger.warning(
                "training data: %d bad record(s) skipped; run `posekit check-data`",
                len(self.train_set.problems),
            )
        self.codec = _codec(config, self.schema)
        self.task: Task = task if task is not None else build_task(self.codec, config)
        if self.task.codec != self.codec:
            raise ConfigError("the task given was made for another codec than the config's")
        self.model = zoo.build_model(config.model.name, codec=self.codec, **config.model.options)
        # the resolved config (config.yaml, checkpoints) names the codec and options in full
        model_config = dataclasses.replace(config.model, options=self.model.options)
        self.config = config = dataclasses.replace(
            config, model=model_config, codec=self.codec.to_dict()
        )
        if config.model.pretrained and resume is None:
            result = zoo.load_weights(self.model, config.model.pretrained, strict=False)
            logger.info("fine-tuning from %s: %s", config.model.pretrained, result)
        self.model.to(self.device)
        self.channels_last = config.train.channels_last and self.device.type == "cpu"
        if self.device.type == "cpu":
            keep_freed_memory()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net = DistributedDataParallel(self.model) if self.ctx.enabled else self.model
        self.optimizer = build_optimizer(self.model, config.optim)
        self.ema = ModelEma(self.model, config.train.ema) if config.train.ema else None
        self.items = self.task.train_dataset(self.train_set)
        self.sampler = EpochSampler(
            len(self.items),
            seed=config.train.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )
        self.iters_per_epoch = math.ceil(self.sampler.per_rank / config.train.batch_size)
        self.workers = config.data.workers
        if 0 < self.iters_per_epoch < SMALL_EPOCH * self.workers:
            # starting the worker processes each epoch would cost more than they load
            logger.info("%d step(s) per epoch: images are read in the main process, not in "
                        "%d workers", self.iters_per_epoch, self.workers)  # fmt: skip
            self.workers = 0
        self.schedule = LrSchedule(
            config.schedule, config.optim.lr, config.train.epochs, self.iters_per_epoch
        )
        self.amp_dtype = amp_dtype(self.device) if config.train.amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if self.amp_dtype is not None and self.ctx.is_main:
            logger.info("mixed precision: %s autocast", str(self.amp_dtype).replace("torch.", ""))
        self.epoch = 0
        self.step_in_epoch = 0
        self.iteration = 0
        self.best_ap = -1.0
        self.skipped_samples = 0
        self.val_skipped = 0
        self.validator = (
            Validator(
                self.val.ann,
                self.val.images,
                self.schema,
                category_id=config.data.category_id,
                flip=config.train.val_flip,
                log_images=config.train.log_images,
                progress=self.progress,
            )
            if self.val is not None and self.ctx.is_main
            else None
        )
        self.history: list[dict[str, float]] = []
        if self.ctx.is_main:
            logger.info(
                "model %s %s (%.2fM parameters), %s, schema %s (%d keypoints, %d limbs), %d "
                "training items (%s), batch %d, %d iterations/epoch, %d epochs, device %s",
                config.model.name,
                self.model.options,
                sum(p.numel() for p in self.model.parameters()) / 1e6,
                self.codec.to_dict(),
                self.schema.name,
                self.schema.num_keypoints,
                self.schema.num_limbs,
                len(self.items),
                self.task.describe(),
                config.train.batch_size,
                self.iters_per_epoch,
                config.train.epochs,
                self.device,
            )
        self._resume(resume)
        vals = self.val is not None and self.ctx.is_main
        self.clock = RunClock(
            total_iters=config.train.epochs * self.iters_per_epoch,
            total_vals=config.train.epochs // config.train.val_every if vals else 0,
            done_iters=self.iteration,
            done_vals=self.epoch // config.train.val_every if vals else 0,
        )
        self.writer = _tensorboard(self.run_dir / "tb") if self.ctx.is_main else None
        if self.ctx.is_main:
            save_config(config, self.run_dir / "config.yaml")

    # ------------------------------------------------------------------ setup
    def _splits(self) -> tuple[_Split, _Split | None]:
        data = self.config.data
        if data.train_ann is not None:
            train = _Split(Path(data.train_ann), Path(data.train_images))
            val = _Split(Path(data.val_ann), Path(data.val_images)) if data.val_ann else None
            return train, val
        from posekit.data.synth import write_dataset

        schema = KeypointSchema.load(data.schema or "coco_person")
        root = self.run_dir / "synth"
        if self.ctx.is_main and not (root / "annotations/val.json").is_file():
            logger.info(
                "no training data given: generating synthetic '%s' data in %s", schema.name, root
            )
            val = dataclasses.replace(data.synth, num_images=data.synth_val_images)
            for split, synth in (("train", data.synth), ("val", val)):
                write_dataset(root, schema, synth, split=split, progress=self.progress)
            schema.to_yaml(root / "schema.yaml")
        self.ctx.barrier()
        return (
            _Split(root / "annotations/train.json", root / "images/train"),
            _Split(root / "annotations/val.json", root / "images/val"),
        )

    def _resume(self, resume: str | None) -> None:
        last = self.run_dir / "last.pt"
        if resume is None:
            if last.exists():
                raise ConfigError(
                    f"{self.run_dir} already holds a run (last.pt): continue it with --resume "
                    f"auto, or choose another --out"
                )
            return
        path = last if resume == "auto" else Path(resume)
        if resume == "auto" and not last.exists():
            logger.info("no checkpoint in %s: starting a new run", self.run_dir)
            return
        state = load_checkpoint(path)
        if state.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a posekit training checkpoint")
        record = ModelRecord.from_checkpoint(state, str(path))
        if record.schema != self.schema:
            raise CheckpointError(
                f"{path} was trained with schema '{record.schema.name}', the config gives "
                f"'{self.schema.name}'"
            )
        if record.codec != self.codec:
            raise CheckpointError(
                f"{path} was trained with codec {record.codec.to_dict()}, the config gives "
                f"{self.codec.to_dict()}"
            )
        if "train_model" in state:  # written with an EMA: "model" holds the average
            self.model.load_state_dict(state["train_model"])
            if self.ema is not None:
                self.ema.load_state_dict(state["model"], state["ema_updates"])
        else:
            self.model.load_state_dict(state["model"])
            if self.ema is not None:  # the average starts here
                self.ema.load_state_dict(self.model.state_dict(), 0)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.iteration = int(state["iteration"])
        self.best_ap = float(state["best_ap"])
        self.history = list(state["history"])
        set_rng_state(state["rng"])
        logger.info(
            "resumed %s at epoch %d, step %d (iteration %d)",
            path,
            self.epoch,
            self.step_in_epoch,
            self.iteration,
        )

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to describe the model and to resume this run."""
        return {
            **ModelRecord(
                self.codec.family,
                self.config.model.name,
                self.schema,
                self.codec,
                self.task.input_spec,
                self.model.options,
            ).to_dict(),
            "config": config_to_dict(self.config),
            "model": self.model.state_dict() if self.ema is None else self.ema.state_dict(),
            **(
                {}
                if self.ema is None
                else {"train_model": self.model.state_dict(), "ema_updates": self.ema.updates}
            ),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "iteration": self.iteration,
            "best_ap": self.best_ap,
            "history": self.history,
            "rng": rng_state(),
        }

    def _save(self, name: str = "last.pt") -> None:
        if self.ctx.is_main:
            save_checkpoint(self.checkpoint_state(), self.run_dir / name)

    # ------------------------------------------------------------------ loop
    def fit(self) -> TrainResult:
        """Train to ``train.epochs``; Ctrl-C writes ``last.pt`` before stopping."""
        cfg = self.config.train
        elapsed = float(self.history[-1].get("elapsed_s", 0.0)) if self.history else 0.0
        try:
            while self.epoch < cfg.epochs:
                start = time.perf_counter()
                losses, samples = self._train_epoch()
                train_s = time.perf_counter() - start
                self.epoch += 1
                self.step_in_epoch = 0
                metrics = {
                    "epoch": self.epoch,
                    "iteration": self.iteration,
                    **losses,
                    "train_s": round(train_s, 2),
                    "images_per_s": round(samples * self.ctx.world_size / max(train_s, 1e-9), 2),
                }
                if self.val is not None and self.epoch % cfg.val_every == 0:
                    val_start = time.perf_counter()
                    ap = self.ctx.broadcast_float(self.validate() if self.ctx.is_main else 0.0)
                    metrics["val_AP"] = ap
                    metrics["val_s"] = round(time.perf_counter() - val_start, 2)
                    self.clock.validation_done(metrics["val_s"])
                    if self.val_skipped:
                        metrics["val_skipped_images"] = self.val_skipped
                    self.schedule.step_metric(ap)
                    if ap > self.best_ap:
                        self.best_ap = ap
                        self._save("best.pt")
                elapsed += time.perf_counter() - start
                metrics["elapsed_s"] = round(elapsed, 2)
                self.history.append(metrics)
                self._log_epoch(metrics)
                self._save()
        except KeyboardInterrupt:
            logger.warning("interrupted: writing %s", self.run_dir / "last.pt")
            self._save()
            raise
        finally:
            if self.writer is not None:
                self.writer.close()
        if self.val is None:  # nothing to choose by: the final model is the best one known
            self._save("best.pt")
        return TrainResult(
            self.run_dir, self.epoch, self.iteration, self.best_ap, tuple(self.history)
        )

    def _train_epoch(self) -> tuple[dict[str, float], int]:
        """One epoch (from ``step_in_epoch``): mean losses of its steps and the samples trained."""
        cfg = self.config.train
        self.train_set.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, start=self.step_in_epoch * cfg.batch_size)
        loader = DataLoader(
            self.items,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=self.workers,
            collate_fn=collate,
            persistent_workers=False,
        )
        self.net.train()
        frozen = self.epoch < cfg.frozen_backbone_epochs
        if frozen:
            self.model.backbone.eval()  # keep its BatchNorm statistics too
        bar = tqdm(
            loader,
            total=self.iters_per_epoch,
            initial=self.step_in_epoch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        sums = dict.fromkeys(["loss", *(f"loss_{n}" for n in self.task.loss_names)], 0.0)
        steps = samples = 0
        self.clock.start_epoch()
        bad = 0
        for batch in bar:
            lr = self.schedule.lr(self.iteration, self.epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if batch is not None and batch.skipped:
                self.skipped_samples += batch.skipped
            if batch is None or len(batch) == 0:
                self._advance()
                continue
            step = self._step(batch.to(self.device), frozen)
            if step is None:
                bad += 1
                logger.warning(
                    "non-finite loss at iteration %d: step skipped (%d in a row)",
                    self.iteration,
                    bad,
                )
                if bad >= cfg.max_bad_steps:
                    raise TrainingError(
                        f"the loss was non-finite {bad} steps in a row (iteration "
                        f"{self.iteration}); lower optim.lr or set train.grad_clip"
                    )
            else:
                bad = 0
                steps += 1
                samples += len(batch)
                total = float(step.total.detach())
                sums["loss"] += total
                for name in self.task.loss_names:
                    sums[f"loss_{name}"] += sum(step.parts[name])
                bar.set_postfix(
                    {"loss": f"{total:.4g}", "lr": f"{lr:.3g}", "run ETA": self.clock.text()}
                )
                if self.writer is not None:
                    self.writer.add_scalar("train/loss", total, self.iteration)
                    self.writer.add_scalar("train/lr", lr, self.iteration)
                    for name in self.task.loss_names:
                        for i, value in enumerate(step.parts[name]):
                            self.writer.add_scalar(f"train/stage{i}_{name}", value, self.iteration)
            self._advance()
        bar.close()
        if self.skipped_samples:
            logger.warning(
                "%d training sample(s) skipped so far (unreadable images)", self.skipped_samples
            )
        return {k: v / max(steps, 1) for k, v in sums.items()}, samples

    def _advance(self) -> None:
        self.clock.iteration_done()
        self.iteration += 1
        self.step_in_epoch += 1
        if self.iteration % self.config.train.checkpoint_every == 0:
            self._save()

    def _step(self, batch: Batch, frozen: bool) -> LossParts | None:
        """One optimizer step: the loss and its named parts, or None when the loss is not finite
        (nothing is updated)."""
        cfg = self.config.train
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            images = batch.images
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            outputs = self.net(images)
        loss = self.task.loss(outputs, batch)
        if not torch.isfinite(loss.total):
            return None
        self.scaler.scale(loss.total).backward()
        if frozen:
            for p in self.model.backbone.parameters():
                p.grad = None
        if cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss

    # ------------------------------------------------------------------ validation
    def validate(self) -> float:
        """COCO OKS AP of the current model (its weight average with ``train.ema``) on the
        validation split (rank 0); unreadable images are skipped and counted
        (``val_skipped_images`` in the epoch's metrics)."""
        if self.validator is None:
            raise TrainingError("validate() needs a validation split (data.val_ann)")
        result = self.validator(
            self.task,
            self.model if self.ema is None else self.ema.module,
            device=self.device,
            channels_last=self.channels_last,  # the predictor runs a copy of the model
            writer=self.writer,
            step=self.iteration,
        )
        self.val_skipped = result.skipped
        self.model.train()
        return result.ap

    def _log_epoch(self, metrics: dict[str, float]) -> None:
        if not self.ctx.is_main:
            return
        with (self.run_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(metrics) + "\n")
        text = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
        )
        if self.epoch < self.config.train.epochs:
            text += f"; rest of the run ~{self.clock.text()}"
        logger.info("%s", text)


# ---------------------------------------------------------------------- helpers
def _family(model_name: str) -> str | None:
    """The family of a zoo model (None for an unknown name: ``_codec`` says what is wrong)."""
    entry = zoo.MODELS.get(model_name)
    return entry.family if entry is not None else None


def _codec(config: Config, schema: KeypointSchema) -> Codec:
    """The config's ``codec:`` (name + parameters) over the model's default codec, for ``schema``."""
    if config.model.name not in zoo.MODELS:
        raise ConfigError(
            f"model.name: unknown model {config.model.name!r}; available: {sorted(zoo.MODELS)}"
        )
    try:
        return zoo.default_codec(config.model.name, schema, config.codec)
    except ConfigError as exc:
        raise ConfigError(f"codec: {exc}") from None


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.info("tensorboard is not installed: scalars go to metrics.jsonl only")
        return None
    return SummaryWriter(str(path))

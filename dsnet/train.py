# Generated from book/training.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/training.md, line 101
"""Training DSResNet: one config with named profiles, a fast GPU path, checkpoints that resume
exactly, and DDP under torchrun. :func:`train` is the composition of the parts the Training
chapter builds one at a time: :func:`start_run`, :func:`train_step`, :func:`train_epoch`,
:func:`evaluate`, :func:`save_run` and :func:`final_test`."""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dsnet._version import __version__
from dsnet.data import SyntheticMuseum, jpeg_round_trip, model_inputs, photometric
from dsnet.device import amp_dtype, pick_device, precision_name
from dsnet.files import atomic_write, atomic_write_text
from dsnet.io import load_checkpoint, load_pretrained, load_weights, save_checkpoint
from dsnet.losses import build_loss
from dsnet.metrics import SegDepthMetrics
from dsnet.model import DSResNet
from dsnet.progress import progress
from dsnet.scene import Realism
from dsnet.shapes import size_problem


# book/training.md, line 148
def option(default: Any, help: str) -> Any:
    """A config field with its command-line help text."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    ``stages`` lists ``(image size, epochs)``. ``data`` is ``"synthetic"`` (scenes rendered on
    the training device) or the path of a folder in the MODEST Museum layout.
    """

    profile: str = option("quick", "the named settings this config started from")
    stages: tuple[tuple[int, int], ...] = option(((64, 5),), "progressive resizing as SIZE:EPOCHS pairs, "
                                                              "e.g. 96:3,160:3,224:2")
    data: str = option("synthetic", "'synthetic' (scenes rendered on the training device) or a folder in "
                                    "the MODEST layout")
    train_samples: int = option(1536, "synthetic data: fresh scenes per epoch")
    val_samples: int = option(256, "synthetic data: validation scenes")
    test_samples: int = option(512, "synthetic data: test scenes")
    batch_size: int = option(16, "images per optimizer step (over all processes)")
    accumulate: int = option(1, "micro-batches per optimizer step (gradient accumulation): batch_size/accumulate "
                                "images go through the model at once, for batches that do not fit in memory")
    optimizer: str = option("adamw", "adamw, or sgd (momentum 0.9, as the seed)")
    lr: float = option(2e-3, "peak learning rate")
    weight_decay: float = option(1e-4, "weight decay of the optimizer")
    scheduler: str = option("onecycle", "onecycle (per step), plateau (per epoch, on the validation loss) or "
                                        "step (learning rate divided by 10 every step_every epochs)")
    step_every: int = option(3, "scheduler step: epochs between two divisions of the learning rate by 10")
    loss: str = option("seed", "loss spec, e.g. 'seed' or '2*rmse:depth + bce:mask + 2*dice:mask'")
    augment: bool = option(False, "photometric augmentation, identical for BG and BG-FG")
    jpeg: bool = option(False, "JPEG round trip of every image at a random quality in 60-95, as in real photos")
    realism: str = option("none", "synthetic data: the renderer's imitations of photographs, 'all', 'none' or "
                                   "some of textures,soft_edges,fg_textures,camera (see dsnet.Realism)")
    realism_share: float = option(1.0, "synthetic data with realism: the share of training scenes rendered with it, "
                                       "the rest plain (validation and test use realism throughout)")
    init: str = option("", "start from these weights instead of a random initialization: 'pretrained' (the "
                           "shipped ones), a checkpoint, its run folder or a .safetensors file")
    seed: int = option(0, "seed of data order, augmentation and initialization")
    device: str = option("auto", "auto (CUDA when available), cpu, cuda, cuda:1, ...")
    amp: bool = option(True, "mixed precision on CUDA: bf16 where the GPU has it natively, else fp16 "
                             "with a grad scaler")
    channels_last: bool = option(True, "channels-last memory layout for model and batches")
    compile: bool = option(False, "torch.compile the model")
    fused: bool = option(True, "fused optimizer kernels on CUDA")
    workers: int = option(2, "DataLoader worker processes for MODEST folders")
    predictions_every: int = option(0, "save a validation prediction grid every N epochs (0: never)")
    out_dir: str = option("runs/quick", "folder for checkpoints (last.pt, best.pt), history.json and test.json")
    log_every: int = option(10, "steps between progress updates and non-finite checks")

    @property
    def epochs(self) -> int:
        return sum(epochs for _, epochs in self.stages)

    def size_at(self, epoch: int) -> int:
        """The image size of ``epoch`` (0-based) under progressive resizing."""
        for size, epochs in self.stages:
            if epoch < epochs:
                return size
            epoch -= epochs
        return self.stages[-1][0]

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (what checkpoints, histories and manifests store)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> TrainConfig:
        """The config that :meth:`to_dict` stored (lists back to tuples); unknown keys are an error."""
        unknown = sorted(set(stored) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        config = cls(**stored)
        config.stages = tuple((int(size), int(epochs)) for size, epochs in config.stages)
        return config


# book/training.md, line 267
PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(stages=((64, 5), (96, 1)), train_samples=1536, batch_size=16, lr=2e-3,
                  loss="2*rmse:depth + bce:mask", out_dir="runs/quick"),
    "medium": dict(stages=((64, 6), (96, 4), (128, 2)), train_samples=2048, batch_size=16, lr=2e-3,
                   augment=True, jpeg=True, out_dir="runs/medium"),
    # the shipped weights: as long as a 2-core CPU allows in about 90 minutes, with the Experiments
    # chapter's loss (no Dice: same masks, better depth) and a quarter of the scenes photo-like
    "cpu-long": dict(stages=((64, 3), (96, 3), (128, 4), (160, 5)), train_samples=5120, batch_size=16, lr=2e-3,
                     loss="2*rmse:depth + bce:mask", augment=True, jpeg=True, realism="all", realism_share=0.25,
                     out_dir="runs/cpu-long"),
    "full": dict(stages=((96, 4), (160, 4), (224, 4)), train_samples=24_576, val_samples=1024,
                 test_samples=2048, batch_size=64, lr=3e-3, augment=True, compile=True, out_dir="runs/full"),
    # the seed project's best run, as its record gives it; epochs as long as its training split
    "seed": dict(stages=((96, 3), (160, 3)), train_samples=280_000, val_samples=1024, test_samples=2048,
                 batch_size=256, optimizer="sgd", lr=0.1, weight_decay=0.0, scheduler="step", step_every=3,
                 augment=False, jpeg=False, out_dir="runs/seed"),
    # a one-epoch check that the whole pipeline runs (used by the Colab test), not a model
    "smoke": dict(stages=((64, 1),), train_samples=128, val_samples=16, test_samples=16, batch_size=16,
                  out_dir="runs/smoke"),
}
OPTIMIZERS, SCHEDULERS = ("adamw", "sgd"), ("onecycle", "plateau", "step")


def default_profile() -> str:
    """``$DSNET_PROFILE`` if set, else ``full`` with CUDA and ``quick`` without."""
    return os.environ.get("DSNET_PROFILE") or ("full" if torch.cuda.is_available() else "quick")


def make_config(profile: str | None = None, **overrides: Any) -> TrainConfig:
    """The config of ``profile`` (default: :func:`default_profile`) with ``overrides``, checked."""
    profile = profile or default_profile()
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    config = TrainConfig.from_dict({**PROFILES[profile], **overrides, "profile": profile})
    problem = config_problem(config)
    if problem:
        raise ValueError(problem)
    return config


def _realism_problem(config: TrainConfig) -> str | None:
    try:
        realism = Realism.parse(config.realism)
    except ValueError as error:
        return str(error)
    if config.data != "synthetic" and realism != Realism():
        return (f"realism {config.realism!r} applies to synthetic data only; a MODEST folder has its own "
                "(make one with: dsnet data generate --realism)")
    if not 0 <= config.realism_share <= 1:
        return f"realism_share must be between 0 and 1, got {config.realism_share}"
    if config.init not in ("", "pretrained") and not Path(config.init).exists():
        return (f"init {config.init!r} does not exist; pass 'pretrained', a checkpoint, a run folder or a "
                ".safetensors file")
    return None


def config_problem(config: TrainConfig) -> str | None:
    """The first thing wrong with ``config``, as a sentence; None if it can train."""
    sizes = [size_problem("size", size) for size, _ in config.stages]
    counts = {"batch_size": 1, "accumulate": 1, "step_every": 1, "val_samples": 1, "test_samples": 1,
              "log_every": 1, "workers": 0, "predictions_every": 0, "seed": 0}
    low = next((f"{name} must be at least {least}, got {getattr(config, name)}" for name, least in counts.items()
                if getattr(config, name) < least), None)
    steps = config.train_samples // config.batch_size * config.epochs if config.batch_size > 0 else 0
    checks = [
        (any(sizes), f"stages: {next((p for p in sizes if p), '')}"),
        (not config.stages or config.epochs < 1, "stages need at least one epoch"),
        (low is not None, low),
        (config.optimizer not in OPTIMIZERS, f"unknown optimizer {config.optimizer!r}; choose adamw or sgd"),
        (config.scheduler not in SCHEDULERS,
         f"unknown scheduler {config.scheduler!r}; choose onecycle, plateau or step"),
        (config.batch_size % config.accumulate != 0,
         f"batch_size {config.batch_size} does not split into accumulate={config.accumulate} equal micro-batches"),
        (not math.isfinite(config.lr) or config.lr <= 0,
         f"lr must be a positive number, got {config.lr} (at 0 nothing is learnt)"),
        (not math.isfinite(config.weight_decay) or config.weight_decay < 0,
         f"weight_decay must be 0 or more, got {config.weight_decay}"),
        (_realism_problem(config) is not None, _realism_problem(config)),
        (config.data == "synthetic" and config.train_samples < config.batch_size,
         f"train_samples {config.train_samples} is less than one batch of {config.batch_size}"),
        (config.data == "synthetic" and config.scheduler == "onecycle" and steps < 8,
         f"the one-cycle schedule needs at least 8 optimizer steps; this config makes {steps}"),
    ]
    return next((message for failed, message in checks if failed), None) or _outside_problem(config)


def _outside_problem(config: TrainConfig) -> str | None:
    """What the loss spec, the device or the data folder says against ``config``."""
    try:
        build_loss(config.loss)
    except ValueError as error:  # name the spec unless the message already does
        return str(error) if str(error).startswith("loss spec") else f"loss {config.loss!r}: {error}"
    try:
        pick_device(config.device)
    except ValueError as error:
        return str(error)
    if config.data != "synthetic" and not (Path(config.data) / "file_map.txt").is_file():
        return (f"data folder {config.data} has no file_map.txt; pass --data synthetic or a folder in the "
                "MODEST layout (make one with `dsnet data generate`)")
    return _folder_problem(config) if config.data != "synthetic" else None


def _folder_problem(config: TrainConfig) -> str | None:
    """A MODEST folder, checked before the first step rather than in the middle of an epoch: every
    file decoded once (labels checked for plausibility too), both splits non-empty and at least one
    batch of training samples. Decoding costs about as much as
    one pass over the data, without the network (a few milliseconds a sample at 224 px)."""
    from dsnet.modest import ModestError, ModestMuseum

    try:
        ModestMuseum(config.data, split="all", check="full")
        train = len(_modest(config, "train", config.stages[0][0]))
        _modest(config, "val", config.stages[0][0])
    except ModestError as error:
        return str(error)
    if train < config.batch_size:
        return (f"data folder {config.data} has {train} training sample(s), fewer than one batch of "
                f"{config.batch_size}; lower --batch-size or add samples")
    return None


# book/training.md, line 438
@dataclass(frozen=True)
class Ranks:
    """This process's place under torchrun (rank 0 of 1 otherwise)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                   int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0


def steps_per_epoch(config: TrainConfig) -> int:
    if config.data == "synthetic":
        return config.train_samples // config.batch_size
    return len(_modest(config, "train", config.stages[0][0])) // config.batch_size


def _modest(config: TrainConfig, split: str, size: int):
    return _modest_folder(config.data, split, config.seed, size)


@functools.lru_cache(maxsize=8)
def _modest_folder(root: str, split: str, seed: int, size: int):
    # Opening a MODEST folder checks every file's header: do it once per split and size, not
    # once per epoch and again for the step count.
    from dsnet.modest import ModestMuseum

    return ModestMuseum(root, split=split, seed=seed, resize=size)


def _epoch_order(n: int, config: TrainConfig, epoch: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 7919 + epoch))


def train_batches(config: TrainConfig, epoch: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
    """This rank's share of every training batch of ``epoch``, on ``device``."""
    size, step = config.size_at(epoch), config.batch_size
    if config.data == "synthetic":
        length = (epoch + 1) * config.train_samples
        real, plain = (SyntheticMuseum(size, length=length, seed=config.seed, device=device, realism=realism)
                       for realism in (config.realism, "none"))
        order = epoch * config.train_samples + _epoch_order(config.train_samples, config, epoch)
        draws = torch.Generator().manual_seed(config.seed * 7919 + epoch + 104_729)
        with_realism = torch.rand(config.train_samples, generator=draws) < config.realism_share
        for start in range(0, steps_per_epoch(config) * step, step):
            chosen = order[start:start + step][ranks.rank::ranks.world]
            yield _mixed_batch(real, plain, chosen, with_realism[start:start + step][ranks.rank::ranks.world])
        return
    data = _modest(config, "train", size)
    order = _epoch_order(len(data), config, epoch)
    shares = [order[s:s + step][ranks.rank::ranks.world].tolist() for s in range(0, len(order) - step + 1, step)]
    loader = torch.utils.data.DataLoader(data, batch_sampler=shares, num_workers=config.workers)
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _mixed_batch(real: SyntheticMuseum, plain: SyntheticMuseum, indices: Tensor, flags: Tensor) -> dict:
    """Scenes ``indices``, those where ``flags`` is true rendered by ``real``, the others by ``plain``."""
    if flags.all():
        return real.batch(indices.tolist())
    if not flags.any():
        return plain.batch(indices.tolist())
    parts = real.batch(indices[flags].tolist()), plain.batch(indices[~flags].tolist())
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def eval_batches(config: TrainConfig, split: str, size: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
    """This rank's share of the ``val`` or ``test`` split at ``size``. A MODEST folder has no
    test split of its own: its validation split serves as both."""
    if config.data == "synthetic":
        count = config.val_samples if split == "val" else config.test_samples
        data = SyntheticMuseum(size, length=count, seed=config.seed, split=split, device=device,
                               realism=config.realism)
        for start in range(0, count, config.batch_size):
            chunk = list(range(start, min(start + config.batch_size, count)))[ranks.rank::ranks.world]
            if chunk:
                yield data.batch(chunk)
        return
    data = _modest(config, "val", size)
    indices = list(range(len(data)))[ranks.rank::ranks.world]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(data, indices), batch_size=config.batch_size,
                                         num_workers=config.workers)
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# book/training.md, line 539
def predict_batch(model: nn.Module, batch: dict[str, Tensor], config: TrainConfig,
                  dtype: torch.dtype | None):
    """The model's float32 logits for ``batch`` (mixed precision inside when ``dtype`` is set)."""
    device = batch["bg"].device
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        prediction = model(*model_inputs(batch, config.channels_last))
    return type(prediction)(*(p.float() for p in prediction))


@torch.no_grad()
def evaluate(model: nn.Module, batches, loss_fn: nn.Module, config: TrainConfig,
             dtype: torch.dtype | None = None, ranks: Ranks | None = None) -> dict[str, float]:
    """Mean loss and every metric of ``dsnet.metrics`` over ``batches`` (all ranks together)."""
    model.eval()
    metrics, totals = SegDepthMetrics(), None
    for batch in batches:
        prediction = predict_batch(model, batch, config, dtype)
        n = len(batch["bg"])
        pair = torch.stack([loss_fn(prediction, batch).total.double() * n,
                            torch.tensor(float(n), dtype=torch.float64, device=batch["bg"].device)])
        totals = pair if totals is None else totals + pair
        metrics.update(prediction, batch)
    if ranks is not None and ranks.world > 1:
        dist.all_reduce(totals)
        metrics.sync()
    return {"loss": (totals[0] / totals[1]).item(), **metrics.compute()}


# book/training.md, line 577
class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: training stops instead of ruining the weights."""


@dataclass
class Run:
    """A training run in progress: what it trains, how, and how far it has come."""

    config: TrainConfig
    ranks: Ranks
    device: torch.device
    dtype: torch.dtype | None             # autocast dtype, None for float32
    model: nn.Module                      # the weights that are saved
    net: nn.Module                        # what trains: the model, maybe wrapped in DDP and compiled
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    loss_fn: nn.Module
    augment_rng: torch.Generator
    jpeg_rng: torch.Generator
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0                        # the next epoch to train (0-based)
    step: int = 0
    best_loss: float = math.inf
    bad_step: Tensor | None = None        # the first step whose loss was not finite, -1 while none was

    @property
    def out(self) -> Path:
        return Path(self.config.out_dir)


# book/training.md, line 613
def build_optimizer(config: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    fused = config.fused and device.type == "cuda"
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay,
                           fused=fused)


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer):
    if config.scheduler == "onecycle":
        total = config.epochs * steps_per_epoch(config)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.25)
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_every, gamma=0.1)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=2, min_lr=1e-6)


def initial_model(config: TrainConfig, architecture: Callable[[], nn.Module] = DSResNet) -> nn.Module:
    """A DSResNet (or what ``architecture`` builds) with the seeded random initialization, or
    holding the weights ``config.init`` names (fine-tuning: the rest of the run, schedule
    included, starts afresh)."""
    model = architecture()
    if config.init:
        start = load_pretrained() if config.init == "pretrained" else load_weights(config.init)[0]
        model.load_state_dict(start.state_dict())
    return model


def build_run(config: TrainConfig, ranks: Ranks | None = None, device: torch.device | None = None,
              architecture: Callable[[], nn.Module] = DSResNet) -> Run:
    """A fresh run of ``config``: seeded model, optimizer, schedule, scaler and generators.
    ``architecture`` builds the network (a variant of DSResNet, for the experiments)."""
    ranks, device = ranks or Ranks(), device or pick_device(config.device)
    dtype = amp_dtype(device, config.amp)
    torch.manual_seed(config.seed)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = initial_model(config, architecture).to(device, memory_format=layout)
    optimizer = build_optimizer(config, model, device)
    net = nn.parallel.DistributedDataParallel(model) if ranks.world > 1 else model
    return Run(config, ranks, device, dtype, model, torch.compile(net) if config.compile else net, optimizer,
               build_scheduler(config, optimizer),
               torch.amp.GradScaler(device.type, enabled=dtype == torch.float16), build_loss(config.loss),
               torch.Generator(device=device).manual_seed(config.seed + 1),
               torch.Generator().manual_seed(config.seed + 2),  # JPEG coding runs on the CPU
               bad_step=torch.full((), -1, dtype=torch.long, device=device))


# book/training.md, line 673
def train_step(run: Run, batch: dict[str, Tensor]) -> Tensor:
    """One optimizer step on ``batch``, in ``config.accumulate`` micro-batches; returns the
    (detached) mean loss."""
    config = run.config
    if config.augment:
        batch = photometric(batch, generator=run.augment_rng)
    if config.jpeg:
        batch = jpeg_round_trip(batch, generator=run.jpeg_rng)
    run.optimizer.zero_grad(set_to_none=True)
    parts = [{k: v.chunk(config.accumulate)[i] for k, v in batch.items()} for i in range(config.accumulate)]
    loss = torch.zeros((), device=run.device)
    for part in parts:
        part_loss = run.loss_fn(predict_batch(run.net, part, config, run.dtype), part).total / len(parts)
        run.scaler.scale(part_loss).backward()
        loss = loss + part_loss.detach()
    run.bad_step = torch.where((run.bad_step < 0) & ~torch.isfinite(loss), run.step, run.bad_step)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if config.scheduler == "onecycle":
        run.scheduler.step()
    run.step += 1
    return loss.detach()


def stop_if_non_finite(run: Run) -> None:
    """Raise :class:`NonFiniteLoss` naming the first bad step and the last good checkpoint."""
    if run.bad_step.item() >= 0:
        last = run.out / "last.pt"
        where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise NonFiniteLoss(f"the loss became NaN or infinite at step {run.bad_step.item() + 1}; "
                            f"training stopped; {where}")


# book/training.md, line 721
def train_epoch(run: Run, on_step: Callable[[Tensor], None] | None = None) -> dict[str, Any]:
    """Train one epoch and validate; returns the epoch's record (also appended to the history).
    ``on_step`` sees every step's (detached) loss, for a record finer than the epoch's mean."""
    config, epoch = run.config, run.epoch
    size, steps = config.size_at(epoch), steps_per_epoch(config)
    run.net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    started = time.perf_counter()
    bar = progress(train_batches(config, epoch, run.device, run.ranks), total=steps, leave=False,
                   desc=f"epoch {epoch + 1}/{config.epochs} @{size}px", disable=not run.ranks.main)
    for batch in bar:
        loss = train_step(run, batch)
        loss_sum += loss
        if on_step is not None:
            on_step(loss)
        if run.step % config.log_every == 0:
            stop_if_non_finite(run)
            bar.set_postfix(loss=f"{loss.item():.4f}")
    stop_if_non_finite(run)
    seconds = time.perf_counter() - started
    val = evaluate(run.net, eval_batches(config, "val", size, run.device, run.ranks), run.loss_fn, config,
                   run.dtype, run.ranks)
    if config.scheduler == "plateau":
        run.scheduler.step(val["loss"])
    elif config.scheduler == "step":
        run.scheduler.step()
    record = {"epoch": epoch + 1, "step": run.step, "size": size, "lr": run.optimizer.param_groups[0]["lr"],
              "train_loss": loss_sum.item() / steps, "seconds": seconds,
              "images_per_s": steps * config.batch_size / seconds, "precision": precision_name(run.dtype),
              **{f"val_{k}": v for k, v in val.items()}}
    run.history.append(record)
    run.epoch += 1
    return record


def epoch_line(run: Run, record: dict[str, Any]) -> str:
    return (f"epoch {record['epoch']}/{run.config.epochs} @{record['size']}px: train loss "
            f"{record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, mask IoU {record['val_mask_iou']:.3f}, "
            f"depth RMSE {record['val_depth_rmse']:.4f}, {record['images_per_s']:.0f} images/s")


# book/training.md, line 771
def run_state(run: Run) -> dict[str, Any]:
    """Everything :func:`restore_run` needs to continue ``run`` exactly."""
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
            "augment_rng": run.augment_rng.get_state(), "jpeg_rng": run.jpeg_rng.get_state(),
            "epoch": run.epoch - 1, "step": run.step, "best_loss": run.best_loss, "history": run.history,
            "config": run.config.to_dict(), "dsnet_version": __version__}


def save_run(run: Run, val_loss: float) -> None:
    """Write ``last.pt`` (and ``best.pt`` when ``val_loss`` is the best so far) and ``history.json``."""
    improved = val_loss < run.best_loss
    run.best_loss = min(run.best_loss, val_loss)
    if not run.ranks.main:
        return
    state = run_state(run)
    save_checkpoint(state, run.out / "last.pt")
    if improved:
        save_checkpoint(state, run.out / "best.pt")
    atomic_write_text(run.out / "history.json", json.dumps(run.history, indent=1))


def restore_run(run: Run, path: Path) -> None:
    """Continue ``run`` from the checkpoint at ``path`` (written by :func:`save_run`)."""
    state = load_checkpoint(path, map_location=run.device)
    mine = run.config.to_dict()
    # a run folder may move (to Google Drive, say): out_dir is the one field allowed to differ
    changed = sorted(k for k in mine.keys() | state["config"].keys()
                     if k != "out_dir" and mine.get(k) != state["config"].get(k))
    if changed:
        raise ValueError(f"{path} was written with another config (differs in {', '.join(changed)}); "
                         "resume with the same settings, or start a new run in another --out-dir")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.augment_rng.set_state(state["augment_rng"].cpu())
    run.jpeg_rng.set_state(state["jpeg_rng"].cpu())
    run.epoch, run.step, run.best_loss, run.history = (state["epoch"] + 1, state["step"], state["best_loss"],
                                                       state["history"])


# book/training.md, line 820
def prepare_out_dir(config: TrainConfig, resume: bool, overwrite: bool) -> bool:
    """Check that ``out_dir`` can take this run; True when there is a checkpoint to resume."""
    out = Path(config.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / ".write-test", "")
        (out / ".write-test").unlink()
    except OSError as error:
        raise ValueError(f"cannot write to out_dir {out} ({error.strerror or type(error).__name__}); "
                         "choose another --out-dir") from None
    for stale in out.glob(".*.pt.*.tmp"):
        stale.unlink(missing_ok=True)
    existing = [name for name in ("last.pt", "best.pt") if (out / name).exists()]
    if existing and not (resume or overwrite):
        raise ValueError(f"{out} already holds a run ({', '.join(existing)}); pass resume to continue it, "
                         "overwrite to start again, or choose another out_dir")
    if overwrite and not resume:
        for name in ("last.pt", "best.pt", "history.json", "test.json"):
            (out / name).unlink(missing_ok=True)
    return resume and (out / "last.pt").exists()


# book/training.md, line 847
def final_test(run: Run) -> dict[str, float]:
    """The metrics of the run's best checkpoint on the test split; written to ``test.json``."""
    if run.ranks.world > 1:
        dist.barrier()
    run.model.load_state_dict(load_checkpoint(run.out / "best.pt", map_location=run.device)["model"])
    size = run.config.stages[-1][0]
    test = evaluate(run.model, eval_batches(run.config, "test", size, run.device, run.ranks), run.loss_fn,
                    run.config, run.dtype, run.ranks)
    if run.ranks.main:
        atomic_write_text(run.out / "test.json", json.dumps(test, indent=1))
    return test


# book/training.md, line 869
@dataclass
class TrainResult:
    config: TrainConfig
    history: list[dict[str, Any]]
    test: dict[str, float]
    best_checkpoint: Path
    model: nn.Module = field(repr=False)


def join_processes(config: TrainConfig) -> tuple[Ranks, torch.device]:
    """This process's ranks and device; under torchrun, also joins the process group."""
    ranks, device = Ranks.from_env(), pick_device(config.device)
    if ranks.world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def start_run(config: TrainConfig, resume: bool = False, overwrite: bool = False,
              log: Callable[[str], None] = print) -> Run:
    """Check the folder, build the run, and restore it from ``last.pt`` when resuming."""
    can_resume = prepare_out_dir(config, resume, overwrite)
    run = build_run(config, *join_processes(config))
    if can_resume:
        restore_run(run, run.out / "last.pt")
        log(f"resumed from {run.out / 'last.pt'} after epoch {run.epoch} of {config.epochs}")
    elif resume:
        log(f"nothing to resume in {run.out} (no last.pt): starting from scratch")
    log(f"training {config.epochs - run.epoch} epoch(s) on {run.device} in {precision_name(run.dtype)}")
    return run


def finish_run(run: Run, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``run``'s remaining epochs, saving after each, then evaluate on the test split."""
    config = run.config
    while run.epoch < config.epochs:
        record = train_epoch(run)
        log(epoch_line(run, record))
        save_run(run, record["val_loss"])
        if config.predictions_every and run.epoch % config.predictions_every == 0 and run.ranks.main:
            save_prediction_grid(run, record["size"], run.out / f"predictions_epoch{run.epoch}.png")
    test = final_test(run)
    return TrainResult(config, run.history, test, run.out / "best.pt", run.model)


def train(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print,
          overwrite: bool = False) -> TrainResult:
    """Train DSResNet as ``config`` says, writing checkpoints and history to ``config.out_dir``.

    With ``resume``, continue from ``out_dir/last.pt`` exactly where it stopped; ``overwrite``
    replaces a run already in ``out_dir`` (without either, such a folder is refused). Returns the
    history, the best model and its metrics on the test split."""
    return finish_run(start_run(config, resume, overwrite, log), log)


# book/training.md, line 930
class _CallableModule(types.ModuleType):
    """This module, callable as :func:`train`. ``dsnet.train`` is exported as the function, but once
    the module of the same name is imported Python binds ``dsnet.train`` to the module; calling it
    then still trains."""

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


if __name__ == "dsnet.train":                     # the package's module, not a notebook running the chapter
    sys.modules[__name__].__class__ = _CallableModule


# book/training.md, line 952
@torch.no_grad()
def save_prediction_grid(run: Run, size: int, path: Path) -> None:
    """A validation batch at ``size``: BG-FG, true and predicted mask and depth, as a PNG."""
    import matplotlib.pyplot as plt

    from dsnet.plots import plot_predictions

    batch = next(eval_batches(run.config, "val", size, run.device, run.ranks))
    run.model.eval()
    fig = plot_predictions(batch, predict_batch(run.model, batch, run.config, run.dtype))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


# book/training.md, line 984
DRIVE_RUNS = Path("/content/drive/MyDrive/dsnet")  # where the Training chapter keeps runs in Colab, if asked


def find_runs(roots: tuple[Path, ...] = (Path("."), DRIVE_RUNS)) -> list[Path]:
    """Run folders with a ``history.json`` under ``roots``, most thorough profile first."""
    order = ["full", "seed", "cpu-long", "medium", "quick", "smoke"]
    found = [run.parent for root in roots for run in Path(root).glob("runs/*/history.json")]
    return sorted(found, key=lambda run: (order.index(run.name) if run.name in order else len(order), str(run)))

# Generated from book/training.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/training.md, line 107
"""Training DSResNet: one config with named profiles, the one-cycle schedule, mixed precision on
GPUs, evaluation and the targets a run is judged by. :func:`train` is the composition of the parts
the Training chapter builds one at a time: :func:`start_run`, :func:`train_step`,
:func:`train_epoch`, :func:`evaluate` and :func:`final_test`. What keeps a run alive (batches
shared among processes, config checks, checkpoints that resume exactly, the run's folder) comes
from :mod:`dsnet.runs`."""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dsnet.data import jpeg_round_trip, model_inputs, photometric
from dsnet.device import amp_dtype, pick_device, precision_name
from dsnet.files import atomic_write, atomic_write_text
from dsnet.io import load_checkpoint, load_pretrained, load_weights
from dsnet.losses import build_loss
from dsnet.lr_finder import make_optimizer
from dsnet.metrics import SegDepthMetrics
from dsnet.model import DSResNet
from dsnet.progress import progress
from dsnet.runs import (DataSource, Ranks, config_problem, data_source, join_processes, prepare_out_dir, restore_run,
                        save_run)
from dsnet.runs import find_runs as find_runs  # re-exported: the Results chapter imports it from here


# book/training.md, line 157
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


# book/training.md, line 293
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


# book/training.md, line 408
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


# book/training.md, line 446
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
    schedule: Schedule                    # how the learning rate moves, and when
    scaler: torch.amp.GradScaler
    loss_fn: nn.Module
    augment_rng: torch.Generator
    jpeg_rng: torch.Generator
    data: DataSource                      # where the batches come from
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0                        # the next epoch to train (0-based)
    step: int = 0
    best_loss: float = math.inf
    bad_step: Tensor | None = None        # the first step whose loss was not finite, -1 while none was

    @property
    def out(self) -> Path:
        return Path(self.config.out_dir)


# book/training.md, line 485
def build_optimizer(config: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    return make_optimizer(config.optimizer, model, config.lr, config.weight_decay,
                          fused=config.fused and device.type == "cuda")


@dataclass
class Schedule:
    """How the learning rate moves: a PyTorch scheduler and when it steps. ``per_step`` schedules
    (one-cycle) move after every optimizer step, the others after each epoch's validation (the
    plateau rule reads the validation loss). Its state is the scheduler's, for checkpoints."""

    scheduler: Any
    per_step: bool

    @classmethod
    def build(cls, config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Schedule:
        sched = torch.optim.lr_scheduler
        if config.scheduler == "onecycle":
            total = config.epochs * steps_per_epoch
            return cls(sched.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.25), True)
        if config.scheduler == "step":
            return cls(sched.StepLR(optimizer, step_size=config.step_every, gamma=0.1), False)
        return cls(sched.ReduceLROnPlateau(optimizer, factor=0.1, patience=2, min_lr=1e-6), False)

    def after_step(self) -> None:
        if self.per_step:
            self.scheduler.step()

    def after_epoch(self, val_loss: float) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss)
        elif not self.per_step:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def initial_model(config: TrainConfig, architecture: Callable[[], nn.Module] = DSResNet) -> nn.Module:
    """A DSResNet (or what ``architecture`` builds) with the seeded random initialization, or
    holding the weights ``config.init`` names (fine-tuning: the rest of the run, schedule
    included, starts afresh)."""
    model = architecture()
    if config.init:
        start = load_pretrained("cpu") if config.init == "pretrained" else load_weights(config.init)[0]
        model.load_state_dict(start.state_dict())
    return model


def build_run(config: TrainConfig, ranks: Ranks | None = None, device: torch.device | None = None,
              architecture: Callable[[], nn.Module] = DSResNet, data: DataSource | None = None) -> Run:
    """A fresh run of ``config``: seeded model, optimizer, schedule, scaler and generators, and its
    data source (``data``, or the one ``config.data`` names). ``architecture`` builds the network (a
    variant of DSResNet, for the experiments)."""
    ranks, device, data = ranks or Ranks(), device or pick_device(config.device), data or data_source(config)
    dtype = amp_dtype(device, config.amp)
    torch.manual_seed(config.seed)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = initial_model(config, architecture).to(device, memory_format=layout)
    optimizer = build_optimizer(config, model, device)
    net = nn.parallel.DistributedDataParallel(model) if ranks.world > 1 else model
    return Run(config, ranks, device, dtype, model, torch.compile(net) if config.compile else net, optimizer,
               Schedule.build(config, optimizer, data.steps_per_epoch()),
               torch.amp.GradScaler(device.type, enabled=dtype == torch.float16), build_loss(config.loss),
               torch.Generator(device=device).manual_seed(config.seed + 1),
               torch.Generator().manual_seed(config.seed + 2),  # JPEG coding runs on the CPU
               data, bad_step=torch.full((), -1, dtype=torch.long, device=device))


# book/training.md, line 599
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
    for i, part in enumerate(parts):
        with gradient_sync(run, last=i == len(parts) - 1):
            part_loss = run.loss_fn(predict_batch(run.net, part, config, run.dtype), part).total / len(parts)
            run.scaler.scale(part_loss).backward()
        loss = loss + part_loss.detach()
    run.bad_step = torch.where((run.bad_step < 0) & ~torch.isfinite(loss), run.step, run.bad_step)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.schedule.after_step()
    run.step += 1
    return loss.detach()


def gradient_sync(run: Run, last: bool):
    """Under DDP, gradients are all-reduced once per step, on its ``last`` micro-batch: the others
    run in ``no_sync()`` and only add up locally. Elsewhere a context that does nothing."""
    ddp = getattr(run.net, "_orig_mod", run.net)          # under the torch.compile wrapper, if any
    if last or not isinstance(ddp, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return ddp.no_sync()


def stop_if_non_finite(run: Run) -> None:
    """Raise :class:`NonFiniteLoss` naming the first bad step and the last good checkpoint."""
    if run.bad_step.item() >= 0:
        last = run.out / "last.pt"
        where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise NonFiniteLoss(f"the loss became NaN or infinite at step {run.bad_step.item() + 1}; "
                            f"training stopped; {where}")


# book/training.md, line 656
def train_epoch(run: Run, on_step: Callable[[Tensor], None] | None = None) -> dict[str, Any]:
    """Train one epoch and validate; returns the epoch's record (also appended to the history).
    ``on_step`` sees every step's (detached) loss, for a record finer than the epoch's mean."""
    config, epoch = run.config, run.epoch
    size, steps = config.size_at(epoch), run.data.steps_per_epoch()
    run.net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    started = time.perf_counter()
    bar = progress(run.data.train_batches(epoch, run.device, run.ranks), total=steps, leave=False,
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
    val = evaluate(run.net, run.data.eval_batches("val", size, run.device, run.ranks), run.loss_fn, config,
                   run.dtype, run.ranks)
    run.schedule.after_epoch(val["loss"])
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


# book/training.md, line 705
def final_test(run: Run) -> dict[str, float]:
    """The metrics of the run's best checkpoint on the test split; written to ``test.json``."""
    if run.ranks.world > 1:
        dist.barrier()
    run.model.load_state_dict(load_checkpoint(run.out / "best.pt", map_location=run.device)["model"])
    size = run.config.stages[-1][0]
    test = evaluate(run.model, run.data.eval_batches("test", size, run.device, run.ranks), run.loss_fn,
                    run.config, run.dtype, run.ranks)
    if run.ranks.main:
        atomic_write_text(run.out / "test.json", json.dumps(test, indent=1))
    return test


# book/training.md, line 727
@dataclass
class TrainResult:
    config: TrainConfig
    history: list[dict[str, Any]]
    test: dict[str, float]
    best_checkpoint: Path
    model: nn.Module = field(repr=False)


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


# book/training.md, line 777
class _CallableModule(types.ModuleType):
    """This module, callable as :func:`train`. ``dsnet.train`` is exported as the function, but once
    the module of the same name is imported Python binds ``dsnet.train`` to the module; calling it
    then still trains."""

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


if __name__ == "dsnet.train":                     # the package's module, not a notebook running the chapter
    sys.modules[__name__].__class__ = _CallableModule


# book/training.md, line 799
@torch.no_grad()
def save_prediction_grid(run: Run, size: int, path: Path) -> None:
    """A validation batch at ``size``: BG-FG, true and predicted mask and depth, as a PNG."""
    import matplotlib.pyplot as plt

    from dsnet.plots import plot_batch

    batch = next(run.data.eval_batches("val", size, run.device, run.ranks))
    run.model.eval()
    fig = plot_batch(batch, predict_batch(run.model, batch, run.config, run.dtype))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


# book/training.md, line 963
TARGETS: dict[str, dict[str, float]] = {
    "quick": {"mask_iou": 0.90, "depth_rmse": 0.06},
    "full": {"mask_iou": 0.98, "mask_soft_iou": 0.95, "depth_rmse": 0.02},
}
"""The goals of a profile's run, set in advance, as ``{profile: {metric: bound}}``, on the test
split: a depth RMSE (``depth_*``) of at most its bound, a mask IoU of at least its bound."""


def meets_target(name: str, value: float, bound: float) -> bool:
    """Whether the metric ``name`` at ``value`` meets ``bound``: at most the bound for a depth
    error (a name starting with ``depth``), at least it for everything else (IoUs)."""
    return value <= bound if name.startswith("depth") else value >= bound

# Generated from book/training.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
"""Training DSResNet: one config with named profiles, a fast GPU path, checkpoints that resume
exactly, and DDP under torchrun."""
from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dsnet.data import SyntheticMuseum, jpeg_round_trip, normalize, photometric
from dsnet.io import load_checkpoint, save_checkpoint
from dsnet.losses import build_loss
from dsnet.metrics import SegDepthMetrics
from dsnet.model import DSResNet
from dsnet.progress import progress
from dsnet.shapes import size_problem


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    ``stages`` lists ``(image size, epochs)``. ``data`` is ``"synthetic"`` (scenes rendered on
    the training device) or the path of a folder in the MODEST Museum layout.
    """

    profile: str = "quick"
    stages: tuple[tuple[int, int], ...] = ((64, 5),)
    data: str = "synthetic"
    train_samples: int = 1536          # synthetic: fresh scenes per epoch
    val_samples: int = 256
    test_samples: int = 512
    batch_size: int = 16
    optimizer: str = "adamw"           # "adamw", or "sgd" (momentum 0.9, as the seed)
    lr: float = 2e-3                   # peak learning rate
    weight_decay: float = 1e-4
    scheduler: str = "onecycle"        # "onecycle" (per step) or "plateau" (per epoch)
    loss: str = "seed"                 # a dsnet.losses spec
    augment: bool = False              # photometric augmentation, the same for BG and BG-FG
    jpeg: bool = False                 # JPEG round trip (quality 60-95) of every image, like real photos
    seed: int = 0
    device: str = "auto"               # "auto": CUDA when available
    amp: bool = True                   # CUDA: bf16 autocast, or fp16 with a grad scaler
    channels_last: bool = True
    compile: bool = False              # torch.compile the model
    fused: bool = True                 # fused optimizer kernels on CUDA
    workers: int = 2                   # DataLoader workers for MODEST folders
    predictions_every: int = 0         # save a validation prediction grid every N epochs
    out_dir: str = "runs/quick"
    log_every: int = 10

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


PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(stages=((64, 5),), train_samples=1536, batch_size=16, lr=2e-3, out_dir="runs/quick"),
    "medium": dict(stages=((64, 6), (96, 4), (128, 2)), train_samples=2048, batch_size=16, lr=2e-3,
                   augment=True, jpeg=True, out_dir="runs/medium"),
    "full": dict(stages=((96, 4), (160, 4), (224, 4)), train_samples=24_576, val_samples=1024,
                 test_samples=2048, batch_size=64, lr=3e-3, augment=True, compile=True, out_dir="runs/full"),
}


def default_profile() -> str:
    """``$DSNET_PROFILE`` if set, else ``full`` with CUDA and ``quick`` without."""
    return os.environ.get("DSNET_PROFILE") or ("full" if torch.cuda.is_available() else "quick")


def make_config(profile: str | None = None, **overrides: Any) -> TrainConfig:
    """The config of ``profile`` (default: :func:`default_profile`) with ``overrides``."""
    profile = profile or default_profile()
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
    config = TrainConfig(profile=profile, **{**PROFILES[profile], **overrides})
    config.stages = tuple((int(size), int(epochs)) for size, epochs in config.stages)
    problems = [size_problem("size", size) for size, _ in config.stages]
    if any(problems):
        raise ValueError(f"stages: {next(p for p in problems if p)}")
    if config.batch_size < 1 or config.epochs < 1:
        raise ValueError("batch_size and the number of epochs must be at least 1")
    if config.data == "synthetic" and config.train_samples < config.batch_size:
        raise ValueError(f"train_samples {config.train_samples} is less than one batch of {config.batch_size}")
    steps = config.train_samples // config.batch_size * config.epochs
    if config.data == "synthetic" and config.scheduler == "onecycle" and steps < 8:
        raise ValueError(f"the one-cycle schedule needs at least 8 optimizer steps; this config makes {steps}")
    return config


def pick_device(name: str = "auto") -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16; None (float32) on CPU or with ``amp`` off."""
    if not config.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def model_inputs(batch: dict[str, Tensor], channels_last: bool) -> tuple[Tensor, Tensor]:
    """Normalized BG and BG-FG, in the memory layout the model runs in."""
    batch = normalize(batch)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return batch["bg"].contiguous(memory_format=layout), batch["bg_fg"].contiguous(memory_format=layout)


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
        data = SyntheticMuseum(size, length=(epoch + 1) * config.train_samples, seed=config.seed, device=device)
        order = epoch * config.train_samples + _epoch_order(config.train_samples, config, epoch)
        for start in range(0, steps_per_epoch(config) * step, step):
            yield data.batch(order[start:start + step][ranks.rank::ranks.world].tolist())
        return
    data = _modest(config, "train", size)
    order = _epoch_order(len(data), config, epoch)
    shares = [order[s:s + step][ranks.rank::ranks.world].tolist() for s in range(0, len(order) - step + 1, step)]
    loader = torch.utils.data.DataLoader(data, batch_sampler=shares, num_workers=config.workers)
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def eval_batches(config: TrainConfig, split: str, size: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
    """This rank's share of the ``val`` or ``test`` split at ``size``. A MODEST folder has no
    test split of its own: its validation split serves as both."""
    if config.data == "synthetic":
        count = config.val_samples if split == "val" else config.test_samples
        data = SyntheticMuseum(size, length=count, seed=config.seed, split=split, device=device)
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


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: training stops instead of ruining the weights."""


@dataclass
class TrainResult:
    config: TrainConfig
    history: list[dict[str, Any]]
    test: dict[str, float]
    best_checkpoint: Path
    model: nn.Module = field(repr=False)


def build_optimizer(config: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    fused = config.fused and device.type == "cuda"
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay,
                               fused=fused)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose adamw or sgd")


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer):
    if config.scheduler == "onecycle":
        total = config.epochs * steps_per_epoch(config)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.25)
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=2, min_lr=1e-6)
    raise ValueError(f"unknown scheduler {config.scheduler!r}; choose onecycle or plateau")


def _stop_if_non_finite(bad_step: Tensor, last: Path) -> None:
    if bad_step.item() >= 0:
        where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise NonFiniteLoss(f"the loss became NaN or infinite at step {bad_step.item() + 1}; "
                            f"training stopped; {where}")


def _plain(config: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def train(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> TrainResult:
    """Train DSResNet as ``config`` says, writing checkpoints and history to ``config.out_dir``.

    With ``resume``, continue from ``out_dir/last.pt`` exactly where it stopped. Returns the
    history, the best model and its metrics on the test split.
    """
    ranks, device = Ranks.from_env(), pick_device(config.device)
    if ranks.world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(config.out_dir)
    last, best = out / "last.pt", out / "best.pt"
    dtype = amp_dtype(config, device)

    torch.manual_seed(config.seed)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = DSResNet().to(device, memory_format=layout)
    optimizer = build_optimizer(config, model, device)
    scheduler = build_scheduler(config, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    augment_rng = torch.Generator(device=device).manual_seed(config.seed + 1)
    jpeg_rng = torch.Generator().manual_seed(config.seed + 2)  # JPEG coding runs on the CPU
    loss_fn = build_loss(config.loss)
    history: list[dict[str, Any]] = []
    first_epoch, step, best_loss = 0, 0, math.inf

    if resume and last.exists():
        state = load_checkpoint(last, map_location=device)
        if state["config"] != _plain(config):
            raise ValueError(f"{last} was written with another config; resume with the same settings")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        augment_rng.set_state(state["augment_rng"].cpu())
        jpeg_rng.set_state(state["jpeg_rng"].cpu())
        first_epoch, step, best_loss, history = state["epoch"] + 1, state["step"], state["best_loss"], state["history"]
        log(f"resumed from {last} after epoch {first_epoch} of {config.epochs}")

    net = nn.parallel.DistributedDataParallel(model) if ranks.world > 1 else model
    net = torch.compile(net) if config.compile else net
    bad_step = torch.full((), -1, dtype=torch.long, device=device)
    steps = steps_per_epoch(config)

    for epoch in range(first_epoch, config.epochs):
        size = config.size_at(epoch)
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        started = time.perf_counter()
        bar = progress(train_batches(config, epoch, device, ranks), total=steps, leave=False,
                       desc=f"epoch {epoch + 1}/{config.epochs} @{size}px", disable=not ranks.main)
        for batch in bar:
            if config.augment:
                batch = photometric(batch, generator=augment_rng)
            if config.jpeg:
                batch = jpeg_round_trip(batch, generator=jpeg_rng)
            loss = loss_fn(predict_batch(net, batch, config, dtype), batch).total
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), step, bad_step)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if config.scheduler == "onecycle":
                scheduler.step()
            loss_sum += loss.detach()
            step += 1
            if step % config.log_every == 0:
                _stop_if_non_finite(bad_step, last)
                bar.set_postfix(loss=f"{loss.item():.4f}")
        _stop_if_non_finite(bad_step, last)
        seconds = time.perf_counter() - started
        val = evaluate(net, eval_batches(config, "val", size, device, ranks), loss_fn, config, dtype, ranks)
        if config.scheduler == "plateau":
            scheduler.step(val["loss"])
        history.append({"epoch": epoch + 1, "step": step, "size": size, "lr": optimizer.param_groups[0]["lr"],
                        "train_loss": loss_sum.item() / steps, "seconds": seconds,
                        "images_per_s": steps * config.batch_size / seconds,
                        **{f"val_{k}": v for k, v in val.items()}})
        log(f"epoch {epoch + 1}/{config.epochs} @{size}px: train loss {history[-1]['train_loss']:.4f}, "
            f"val loss {val['loss']:.4f}, mask IoU {val['mask_iou']:.3f}, depth RMSE {val['depth_rmse']:.4f}, "
            f"{history[-1]['images_per_s']:.0f} images/s")
        improved = val["loss"] < best_loss
        best_loss = min(best_loss, val["loss"])
        if ranks.main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                     "augment_rng": augment_rng.get_state(), "jpeg_rng": jpeg_rng.get_state(),
                     "epoch": epoch, "step": step,
                     "best_loss": best_loss, "history": history, "config": _plain(config),
                     "dsnet_version": _version()}
            save_checkpoint(state, last)
            if improved:
                save_checkpoint(state, best)
            (out / "history.json").write_text(json.dumps(history, indent=1))
            if config.predictions_every and (epoch + 1) % config.predictions_every == 0:
                _save_prediction_grid(model, config, size, device, dtype, out / f"predictions_epoch{epoch + 1}.png")

    if ranks.world > 1:
        dist.barrier()
    model.load_state_dict(load_checkpoint(best, map_location=device)["model"])
    test = evaluate(model, eval_batches(config, "test", config.stages[-1][0], device, ranks), loss_fn, config,
                    dtype, ranks)
    if ranks.main:
        (out / "test.json").write_text(json.dumps(test, indent=1))
    return TrainResult(config, history, test, best, model)


def _version() -> str:
    from dsnet import __version__

    return __version__


def plot_history(history: list[dict[str, Any]], label: str = "", axes=None):
    """Loss, mask IoU and depth RMSE per epoch; draws into ``axes`` (three Axes) if given."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    epochs = [h["epoch"] for h in history]
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o--", label=f"{label} train".strip())
    axes[0].plot(epochs, [h["val_loss"] for h in history], "o-", label=f"{label} val".strip())
    axes[1].plot(epochs, [h["val_mask_iou"] for h in history], "o-", label=f"{label} IoU".strip())
    axes[1].plot(epochs, [h["val_mask_soft_iou"] for h in history], "x:", label=f"{label} soft IoU".strip())
    axes[2].plot(epochs, [h["val_depth_rmse"] for h in history], "o-", label=label or "val")
    for ax, title in zip(axes, ("loss", "mask IoU (validation)", "depth RMSE (validation)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return axes


def plot_predictions(batch: dict[str, Tensor], prediction, count: int = 4):
    """BG-FG, true and predicted mask, true and predicted depth for ``count`` samples."""
    import matplotlib.pyplot as plt

    count = min(count, len(batch["bg"]))
    mask, depth = (torch.sigmoid(p.float()).detach().cpu() for p in (prediction.mask, prediction.depth))
    columns = [("BG-FG", batch["bg_fg"].cpu().permute(0, 2, 3, 1), None),
               ("mask", batch["mask"].cpu()[:, 0], "gray"), ("predicted mask", mask[:, 0], "gray"),
               ("depth", batch["depth"].cpu()[:, 0], "magma"), ("predicted depth", depth[:, 0], "magma")]
    fig, axes = plt.subplots(count, len(columns), figsize=(2.2 * len(columns), 2.2 * count), squeeze=False)
    for row in range(count):
        for ax, (title, images, cmap) in zip(axes[row], columns):
            ax.imshow(images[row].clamp(0, 1), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


@torch.no_grad()
def _save_prediction_grid(model, config: TrainConfig, size: int, device, dtype, path: Path) -> None:
    import matplotlib.pyplot as plt

    batch = next(eval_batches(config, "val", size, device, Ranks.from_env()))
    model.eval()
    fig = plot_predictions(batch, predict_batch(model, batch, config, dtype))
    fig.savefig(path, dpi=80)
    plt.close(fig)

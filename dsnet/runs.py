# Generated from book/training_runs.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/training_runs.md, line 39
"""What keeps a training run alive: batches shared among processes under torchrun, the checks that
refuse a config before any work starts, checkpoints that resume exactly, written whole or not at
all into a guarded run folder, and run folders kept on Google Drive in Colab. :mod:`dsnet.train`
composes these pieces into :func:`dsnet.train.train`. This module does not import it at run time:
the config and the run appear here only in annotations, which type checkers read from
:mod:`dsnet.train`."""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.distributed as dist
from torch import Tensor

from dsnet._version import __version__
from dsnet.data import SyntheticMuseum
from dsnet.device import pick_device
from dsnet.files import atomic_write_text
from dsnet.io import load_checkpoint, save_checkpoint
from dsnet.losses import build_loss
from dsnet.scene import Realism
from dsnet.shapes import size_problem

if TYPE_CHECKING:  # for annotations only: dsnet.train imports this module, never the reverse
    from dsnet.train import Run, TrainConfig


# book/training_runs.md, line 80
@dataclass(frozen=True)
class Ranks:
    """This process's place under torchrun (rank 0 of 1 otherwise)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        """The place torchrun gives in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``."""
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                   int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes files and logs."""
        return self.rank == 0


# book/training_runs.md, line 109
def steps_per_epoch(config: TrainConfig) -> int:
    """Optimizer steps in one epoch of ``config``: whole batches only, the rest of the scenes unused."""
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
    """This rank's share of every training batch of ``epoch``, on ``device``: dicts with ``bg`` and
    ``bg_fg`` of shape (B, 3, S, S) and ``mask`` and ``depth`` of shape (B, 1, S, S), where S is the
    epoch's image size and B this rank's share of ``batch_size`` (all of it on one process)."""
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
    """This rank's share of the ``val`` or ``test`` split at ``size``, in batches shaped as those of
    :func:`train_batches` (the last one may be smaller). A MODEST folder has no test split of its
    own: its validation split serves as both."""
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


# book/training_runs.md, line 212
def join_processes(config: TrainConfig) -> tuple[Ranks, torch.device]:
    """This process's ranks and device; under torchrun, also joins the process group."""
    ranks, device = Ranks.from_env(), pick_device(config.device)
    if ranks.world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


# book/training_runs.md, line 236
OPTIMIZERS, SCHEDULERS = ("adamw", "sgd"), ("onecycle", "plateau", "step")


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


# book/training_runs.md, line 344
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


# book/training_runs.md, line 482
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


# book/training_runs.md, line 531
DRIVE_RUNS = Path("/content/drive/MyDrive/dsnet")  # where the Training chapter keeps runs in Colab, if asked


def find_runs(roots: tuple[Path, ...] = (Path("."), DRIVE_RUNS)) -> list[Path]:
    """Run folders with a ``history.json`` under ``roots``, most thorough profile first."""
    order = ["full", "seed", "cpu-long", "medium", "quick", "smoke"]
    found = [run.parent for root in roots for run in Path(root).glob("runs/*/history.json")]
    return sorted(found, key=lambda run: (order.index(run.name) if run.name in order else len(order), str(run)))

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

import abc
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
from dsnet.files import atomic_write_text, probe_writable
from dsnet.io import load_checkpoint, save_checkpoint
from dsnet.losses import build_loss
from dsnet.modest import ModestError, ModestMuseum
from dsnet.scene import Realism
from dsnet.shapes import size_problem

if TYPE_CHECKING:  # for annotations only: dsnet.train imports this module, never the reverse
    from dsnet.train import Run, TrainConfig


# book/training_runs.md, line 81
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


# book/training_runs.md, line 114
class DataSource(abc.ABC):
    """Where a run's batches come from. The run holds one (:func:`data_source` picks it from
    ``config.data``), and the trainer asks it only these questions: how many optimizer steps an
    epoch has, this rank's training batches of an epoch, the validation or test batches at a size,
    and what stands against training on it. Batches are dicts with ``bg`` and ``bg_fg`` of shape
    (B, 3, S, S) and ``mask`` and ``depth`` of shape (B, 1, S, S)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def train_count(self) -> int:
        """How many training scenes one epoch draws from."""

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch: whole batches only, the rest of the scenes unused."""
        return self.train_count() // self.config.batch_size

    @abc.abstractmethod
    def train_batches(self, epoch: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
        """This rank's share of every training batch of ``epoch``, on ``device``, at the epoch's
        image size S; B is this rank's share of ``batch_size`` (all of it on one process)."""

    @abc.abstractmethod
    def eval_batches(self, split: str, size: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
        """This rank's share of the ``val`` or ``test`` split at ``size`` (the last batch may be smaller)."""

    @abc.abstractmethod
    def problem(self) -> str | None:
        """The first thing that stands against training on this data, as a sentence; None if nothing."""

    def epoch_order(self, n: int, epoch: int) -> Tensor:
        """The order of ``n`` scenes in ``epoch``: drawn from the seed and the epoch, the same on every rank."""
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.config.seed * 7919 + epoch))


class SyntheticSource(DataSource):
    """Scenes rendered on the training device: ``train_samples`` fresh ones every epoch, and fixed
    validation and test scenes from splits of their own."""

    def train_count(self) -> int:
        return self.config.train_samples

    def train_batches(self, epoch: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
        config = self.config
        size, step = config.size_at(epoch), config.batch_size
        real, plain = (SyntheticMuseum(size, length=(epoch + 1) * config.train_samples, seed=config.seed,
                                       device=device, realism=realism) for realism in (config.realism, "none"))
        order = epoch * config.train_samples + self.epoch_order(config.train_samples, epoch)
        draws = torch.Generator().manual_seed(config.seed * 7919 + epoch + 104_729)
        with_realism = torch.rand(config.train_samples, generator=draws) < config.realism_share
        for start in range(0, self.steps_per_epoch() * step, step):
            chosen = order[start:start + step][ranks.rank::ranks.world]
            yield _mixed_batch(real, plain, chosen, with_realism[start:start + step][ranks.rank::ranks.world])

    def eval_batches(self, split: str, size: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
        config = self.config
        count = config.val_samples if split == "val" else config.test_samples
        data = SyntheticMuseum(size, length=count, seed=config.seed, split=split, device=device,
                               realism=config.realism)
        for start in range(0, count, config.batch_size):
            chunk = list(range(start, min(start + config.batch_size, count)))[ranks.rank::ranks.world]
            if chunk:
                yield data.batch(chunk)

    def problem(self) -> str | None:
        config = self.config
        if config.train_samples < config.batch_size:
            return f"train_samples {config.train_samples} is less than one batch of {config.batch_size}"
        return None


def _mixed_batch(real: SyntheticMuseum, plain: SyntheticMuseum, indices: Tensor, flags: Tensor) -> dict:
    """Scenes ``indices``, those where ``flags`` is true rendered by ``real``, the others by ``plain``."""
    if flags.all():
        return real.batch(indices.tolist())
    if not flags.any():
        return plain.batch(indices.tolist())
    parts = real.batch(indices[flags].tolist()), plain.batch(indices[~flags].tolist())
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


# book/training_runs.md, line 203
class ModestSource(DataSource):
    """A folder in the MODEST layout (``config.data``), read through a ``DataLoader`` whose batch
    sampler hands each rank its share. It has no test split of its own: its validation split
    serves as both. Each split is opened once per image size and kept by the source."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self._opened: dict[tuple[str, int], ModestMuseum] = {}

    def split(self, split: str, size: int) -> ModestMuseum:
        """The folder's ``split`` at ``size``; opening checks every file's header, so it happens once."""
        if (split, size) not in self._opened:
            self._opened[split, size] = ModestMuseum(self.config.data, split=split, seed=self.config.seed,
                                                     resize=size)
        return self._opened[split, size]

    def train_count(self) -> int:
        return len(self.split("train", self.config.stages[0][0]))

    def train_batches(self, epoch: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
        data, step = self.split("train", self.config.size_at(epoch)), self.config.batch_size
        order = self.epoch_order(len(data), epoch)
        shares = [order[s:s + step][ranks.rank::ranks.world].tolist() for s in range(0, len(order) - step + 1, step)]
        yield from self._load(torch.utils.data.DataLoader(data, batch_sampler=shares,
                                                          num_workers=self.config.workers), device)

    def eval_batches(self, split: str, size: int, device: torch.device, ranks: Ranks) -> Iterator[dict]:
        data = self.split("val", size)
        mine = torch.utils.data.Subset(data, list(range(len(data)))[ranks.rank::ranks.world])
        yield from self._load(torch.utils.data.DataLoader(mine, batch_size=self.config.batch_size,
                                                          num_workers=self.config.workers), device)

    @staticmethod
    def _load(loader: torch.utils.data.DataLoader, device: torch.device) -> Iterator[dict]:
        for batch in loader:
            yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def problem(self) -> str | None:
        """Checked before the first step rather than in the middle of an epoch: every file decoded
        once (labels checked for plausibility too), both splits non-empty and at least one batch of
        training samples. Decoding costs about as much as one pass over the data, without the
        network (a few milliseconds a sample at 224 px)."""
        config = self.config
        if Realism.parse(config.realism) != Realism():
            return (f"realism {config.realism!r} applies to synthetic data only; a MODEST folder has its own "
                    "(make one with: dsnet data generate --realism)")
        if not (Path(config.data) / "file_map.txt").is_file():
            return (f"data folder {config.data} has no file_map.txt; pass --data synthetic or a folder in the "
                    "MODEST layout (make one with `dsnet data generate`)")
        try:
            ModestMuseum(config.data, split="all", check="full")
            train = self.train_count()
            self.split("val", config.stages[0][0])
        except ModestError as error:
            return str(error)
        if train < config.batch_size:
            return (f"data folder {config.data} has {train} training sample(s), fewer than one batch of "
                    f"{config.batch_size}; lower --batch-size or add samples")
        return None


def data_source(config: TrainConfig) -> DataSource:
    """The source ``config.data`` names: ``"synthetic"`` or a folder in the MODEST layout. This is
    the one place the trainer reads that field."""
    return SyntheticSource(config) if config.data == "synthetic" else ModestSource(config)


# book/training_runs.md, line 296
def join_processes(config: TrainConfig) -> tuple[Ranks, torch.device]:
    """This process's ranks and device; under torchrun, also joins the process group."""
    ranks, device = Ranks.from_env(), pick_device(config.device)
    if ranks.world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


# book/training_runs.md, line 320
OPTIMIZERS, SCHEDULERS = ("adamw", "sgd"), ("onecycle", "plateau", "step")


def _realism_problem(config: TrainConfig) -> str | None:
    try:
        Realism.parse(config.realism)
    except ValueError as error:
        return str(error)
    if not 0 <= config.realism_share <= 1:
        return f"realism_share must be between 0 and 1, got {config.realism_share}"
    if config.init not in ("", "pretrained") and not Path(config.init).exists():
        return (f"init {config.init!r} does not exist; pass 'pretrained', a checkpoint, a run folder or a "
                ".safetensors file")
    return None


def config_problem(config: TrainConfig, source: DataSource | None = None) -> str | None:
    """The first thing wrong with ``config``, as a sentence; None if it can train. ``source`` is the
    run's data source, if it exists already (the checks open its folder, and it keeps it open)."""
    sizes = [size_problem("size", size) for size, _ in config.stages]
    counts = {"batch_size": 1, "accumulate": 1, "step_every": 1, "val_samples": 1, "test_samples": 1,
              "log_every": 1, "workers": 0, "predictions_every": 0, "seed": 0}
    low = next((f"{name} must be at least {least}, got {getattr(config, name)}" for name, least in counts.items()
                if getattr(config, name) < least), None)
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
    ]
    return next((message for failed, message in checks if failed), None) or _outside_problem(config, source)


def _outside_problem(config: TrainConfig, source: DataSource | None) -> str | None:
    """What the loss spec, the device or the data says against ``config``."""
    try:
        build_loss(config.loss)
    except ValueError as error:  # name the spec unless the message already does
        return str(error) if str(error).startswith("loss spec") else f"loss {config.loss!r}: {error}"
    try:
        pick_device(config.device)
    except ValueError as error:
        return str(error)
    source = source or data_source(config)
    problem = source.problem()
    steps = source.steps_per_epoch() * config.epochs if problem is None else 0
    if problem is None and config.scheduler == "onecycle" and steps < 8:
        return (f"the one-cycle schedule needs at least 8 optimizer steps; this config makes {steps} (train more "
                "epochs, take smaller batches, or choose --scheduler step or plateau)")
    return problem


# book/training_runs.md, line 405
def run_state(run: Run) -> dict[str, Any]:
    """Everything :func:`restore_run` needs to continue ``run`` exactly."""
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.schedule.state_dict(), "scaler": run.scaler.state_dict(),
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
    run.schedule.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.augment_rng.set_state(state["augment_rng"].cpu())
    run.jpeg_rng.set_state(state["jpeg_rng"].cpu())
    run.epoch, run.step, run.best_loss, run.history = (state["epoch"] + 1, state["step"], state["best_loss"],
                                                       state["history"])


# book/training_runs.md, line 543
def prepare_out_dir(config: TrainConfig, resume: bool, overwrite: bool) -> bool:
    """Check that ``out_dir`` can take this run; True when there is a checkpoint to resume."""
    out = Path(config.out_dir)
    try:
        probe_writable(out)
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


# book/training_runs.md, line 590
DRIVE_RUNS = Path("/content/drive/MyDrive/dsnet")  # where the Training chapter keeps runs in Colab, if asked


def find_runs(roots: tuple[Path, ...] = (Path("."), DRIVE_RUNS)) -> list[Path]:
    """Run folders with a ``history.json`` under ``roots``, most thorough profile first."""
    order = ["full", "seed", "cpu-long", "medium", "quick", "smoke"]
    found = [run.parent for root in roots for run in Path(root).glob("runs/*/history.json")]
    return sorted(found, key=lambda run: (order.index(run.name) if run.name in order else len(order), str(run)))

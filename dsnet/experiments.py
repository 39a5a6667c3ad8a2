# Generated from book/experiments.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/experiments.md, line 49
"""Controlled experiments on DSResNet's design: the variants of the network, the arms that train
them on one budget, the stored runs (one JSON file per arm and seed) and their replay."""
from __future__ import annotations

import importlib.resources
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dsnet.blocks import DoubleConvBlock, ResEncoderBlock, count_parameters
from dsnet.device import cpu_model
from dsnet.files import atomic_write_text
from dsnet.losses import build_loss
from dsnet.lr_finder import lr_range_test
from dsnet.model import DSResNet, Prediction, check_inputs
from dsnet.shapes import PREP_CHANNELS
from dsnet.train import (NonFiniteLoss, Ranks, TrainConfig, build_run, data_source, evaluate, make_config,
                         train_epoch, train_step)


# book/experiments.md, line 97
FUSIONS = ("separate", "siamese", "early")
NORMS = ("after", "before")


def norm_before_relu(block: DoubleConvBlock) -> None:
    """Reorder ``block`` in place from conv, ReLU, BN (the spec) to conv, BN, ReLU; same parameters."""
    conv1, relu1, norm1, conv2, relu2, norm2 = list(block)
    for index, module in enumerate((conv1, norm1, relu1, conv2, norm2, relu2)):
        block._modules[str(index)] = module


class VariantDSResNet(DSResNet):
    """DSResNet with one design choice changed; the defaults give the specified network.

    ``fusion``: ``"separate"`` (two preparation branches, the spec), ``"siamese"`` (one branch
    whose weights BG and BG-FG share) or ``"early"`` (BG and BG-FG stacked as 6 channels into one
    branch, no merge convolution). ``p_skips=False`` gives the last two decoder blocks zeros in
    place of the preparation branches' features: the same parameters, none of that information.
    ``norm="before"`` puts every batch norm between its convolution and its ReLU.
    ``model(bg, bg_fg)`` with ``(B, 3, H, W)`` inputs returns ``Prediction(depth, mask)``, each
    ``(B, 1, H, W)`` logits, as DSResNet does.
    """

    def __init__(self, fusion: str = "separate", p_skips: bool = True, norm: str = "after") -> None:
        if fusion not in FUSIONS or norm not in NORMS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)} and norm one of {', '.join(NORMS)}; "
                             f"got fusion={fusion!r}, norm={norm!r}")
        super().__init__()
        self.fusion, self.p_skips, self.norm = fusion, p_skips, norm
        if fusion == "siamese":
            self.bg_fg_prep = self.bg_prep
        elif fusion == "early":
            del self.bg_fg_prep
            self.bg_prep.block1 = ResEncoderBlock(6, PREP_CHANNELS[0])
            self.merge = nn.Identity()
        if norm == "before":
            for block in self.modules():
                if isinstance(block, DoubleConvBlock):
                    norm_before_relu(block)

    def forward(self, bg: Tensor, bg_fg: Tensor) -> Prediction:
        check_inputs(bg, bg_fg)
        if self.fusion == "early":
            x, bg_skips = self.bg_prep(torch.cat([bg, bg_fg], dim=1))
            bg_fg_skips = bg_skips
        else:
            bg, bg_skips = self.bg_prep(bg)
            bg_fg, bg_fg_skips = self.bg_fg_prep(bg_fg)
            x = torch.cat([bg, bg_fg], dim=1)
        bottom, encoder_skips = self.encoder(self.merge(x))
        if not self.p_skips:
            bg_skips = bg_fg_skips = [torch.zeros_like(skip) for skip in bg_skips]
        return Prediction(depth=self.depth_head(bottom, encoder_skips, bg_skips, bg_fg_skips),
                          mask=self.mask_head(bottom, encoder_skips, bg_skips, bg_fg_skips))


# book/experiments.md, line 185
@dataclass(frozen=True)
class Arm:
    """One setting of one experiment: how it differs from the baseline."""

    name: str
    experiment: str
    label: str
    model: dict[str, Any] = field(default_factory=dict)    # VariantDSResNet's arguments
    config: dict[str, Any] = field(default_factory=dict)   # TrainConfig fields over the budget's
    lr_factor: float = 1.0                                  # times the range test's pick


BASELINE = "spec"
ARMS: dict[str, Arm] = {arm.name: arm for arm in (
    Arm("spec", "baseline", "the spec: two branches, P-skips, seed loss, BN after ReLU"),
    Arm("siamese", "fusion", "one preparation branch, shared by BG and BG-FG", model=dict(fusion="siamese")),
    Arm("early", "fusion", "early fusion: BG and BG-FG as 6 channels", model=dict(fusion="early")),
    Arm("no_p_skips", "skips", "no P-skips (zeros into the last two decoder blocks)", model=dict(p_skips=False)),
    Arm("mask_bce", "loss", "mask by BCE only: 2·RMSE + BCE", config=dict(loss="2*rmse:depth + bce:mask")),
    Arm("mask_dice", "loss", "mask by Dice only: 2·RMSE + 2·Dice", config=dict(loss="2*rmse:depth + 2*dice:mask")),
    Arm("depth_ssim", "loss", "seed loss + SSIM on the depth",
        config=dict(loss="2*rmse:depth + ssim:depth + bce:mask + 2*dice:mask")),
    Arm("norm_before", "norm", "batch norm before the ReLU", model=dict(norm="before")),
    Arm("lr_x10", "lr", "ten times the range test's pick", lr_factor=10.0),
    Arm("lr_div10", "lr", "a tenth of the range test's pick", lr_factor=0.1),
    Arm("fixed_96", "resizing", "96 px throughout", config=dict(stages=((96, 5),), train_samples=512)),
    Arm("progressive", "resizing", "64 px, then 96 px for the last epoch",
        config=dict(stages=((64, 9), (96, 1)), train_samples=512)),
)}
EXPERIMENTS: dict[str, list[str]] = {
    "fusion": ["spec", "siamese", "early"],
    "skips": ["spec", "no_p_skips"],
    "loss": ["spec", "mask_bce", "mask_dice", "depth_ssim"],
    "norm": ["spec", "norm_before"],
    "lr": ["lr_div10", "spec", "lr_x10"],
    "resizing": ["fixed_96", "progressive"],
}
"""Each experiment's arms in the order its table shows them; ``spec`` serves every experiment
but resizing (whose two arms train at 96 px in the end, so they are compared with each other)."""
SEEDS = (0, 1, 2)
BUDGETS: dict[str, dict[str, Any]] = {
    "cpu": dict(stages=((64, 4),), train_samples=1024, val_samples=64, test_samples=256, batch_size=16, loss="seed"),
    "tiny": dict(stages=((64, 1),), train_samples=32, val_samples=8, test_samples=8, batch_size=4, loss="seed"),
}
"""The training each run gets. ``cpu``: 4,096 scenes at 64 px (about 90 s on a 2-core CPU);
``tiny``: eight steps, for tests. Both use the spec's loss, whatever the quick profile's. An arm's
own ``config`` (its loss, the resizing arms' stages) replaces these fields."""


# book/experiments.md, line 240
def arm_config(arm: Arm, seed: int, lr: float, budget: str = "cpu", device: str = "cpu") -> TrainConfig:
    """The TrainConfig of ``arm`` at ``seed``: the quick profile, the budget, the arm's changes.
    The book's runs train on the CPU; ``device="auto"`` takes a GPU where there is one."""
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    overrides = {**BUDGETS[budget], **(arm.config if budget == "cpu" else _scaled_down(arm, budget))}
    return make_config("quick", **overrides, lr=lr * arm.lr_factor, seed=seed, device=device,
                       augment=False, jpeg=False, out_dir=f"runs/experiments/{arm.name}-seed{seed}")


def _scaled_down(arm: Arm, budget: str) -> dict[str, Any]:
    """An arm's own fields at a smaller budget: its losses as they are, its stages one epoch each."""
    config = {k: v for k, v in arm.config.items() if k not in ("stages", "train_samples")}
    if "stages" in arm.config:
        config["stages"] = tuple((size, 1) for size, _ in arm.config["stages"])
    return config


def architecture(arm: Arm) -> Callable[[], nn.Module]:
    """What builds ``arm``'s network: DSResNet itself for the spec, else the variant."""
    return (lambda: VariantDSResNet(**arm.model)) if arm.model else DSResNet


def machine() -> str:
    """This machine in words: the GPU, or the CPU's model and torch's thread count, for the records."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


# book/experiments.md, line 272
def train_arm(arm: Arm, seed: int, lr: float, budget: str = "cpu", device: str = "cpu",
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``arm`` once at ``seed`` and return its record: config, every step's loss, the
    per-epoch history (validation at the epoch's size), the test metrics at the last size."""
    config = arm_config(arm, seed, lr, budget, device)
    run = build_run(config, architecture=architecture(arm))
    steps: list[float] = []
    started, diverged = time.perf_counter(), None
    try:
        while run.epoch < config.epochs:
            record = train_epoch(run, on_step=lambda loss: steps.append(loss.item()))
            log(f"{arm.name} seed {seed}: epoch {record['epoch']}/{config.epochs}, train loss "
                f"{record['train_loss']:.4f}, val mask IoU {record['val_mask_iou']:.3f}")
    except NonFiniteLoss as error:
        diverged = str(error)
    test = None if diverged else evaluate(run.model, run.data.eval_batches("test", config.stages[-1][0], run.device,
                                                                           Ranks()), run.loss_fn, config, run.dtype)
    return {"experiment": arm.experiment, "arm": arm.name, "label": arm.label, "seed": seed,
            "model": arm.model, "parameters": count_parameters(run.model), "config": config.to_dict(),
            "budget": budget, "history": run.history, "step_losses": [_finite_or_none(x) for x in steps],
            "test": test, "diverged": diverged, "wall_seconds": time.perf_counter() - started,
            "train_pixels": sum(size * size * epochs * config.train_samples for size, epochs in config.stages),
            "machine": machine(), "torch": torch.__version__,
            "command": f"dsnet experiments --arms {arm.name} --seeds {seed} --budget {budget}"
                       + (f" --device {device}" if device != "cpu" else "")}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# book/experiments.md, line 314
RANGE_TEST_STEPS = {"cpu": 100, "tiny": 8}


def range_test(budget: str = "cpu") -> dict[str, Any]:
    """The learning-rate range test (AdamW) on the spec at the budget's batch size and image
    size, on its training scenes. Its ``pick``, the baseline's learning rate, is the cautious
    reading of the curve: the minimum's learning rate divided by ten."""
    config, steps = arm_config(ARMS[BASELINE], 0, 1e-3, budget), RANGE_TEST_STEPS[budget]
    torch.manual_seed(config.seed)
    model = DSResNet().to(memory_format=torch.channels_last)
    source = data_source(config)
    scenes = itertools.chain.from_iterable(source.train_batches(epoch, torch.device("cpu"), Ranks())
                                           for epoch in itertools.count())
    batches = list(itertools.islice(scenes, steps))
    result = lr_range_test(model, batches, build_loss(config.loss), start_lr=1e-6, end_lr=1.0,
                           steps=steps, optimizer="adamw", weight_decay=config.weight_decay)
    return {"experiment": "lr_range", "pick": result.min_lr / 10, "suggestion": result.suggestion,
            "min_lr": result.min_lr,
            "lrs": result.lrs, "losses": [_finite_or_none(x) for x in result.losses],
            "diverged": result.diverged, "config": config.to_dict(), "budget": budget, "machine": machine(),
            "torch": torch.__version__, "command": f"dsnet experiments --budget {budget} (the first run into a folder without lr_range.json)"}


# book/experiments.md, line 344
def stored_runs() -> Path:
    """The folder of the runs this book's figures come from; it ships inside the package, so the
    chapter reads them in Colab as well."""
    return Path(str(importlib.resources.files("dsnet") / "experiment_runs"))


def run_path(folder: Path, arm: str, seed: int) -> Path:
    return Path(folder) / f"{arm}-seed{seed}.json"


def load_runs(folder: Path) -> list[dict[str, Any]]:
    """Every stored run in ``folder`` (``ARM-seedN.json``), in file-name order."""
    return [json.loads(path.read_text()) for path in sorted(Path(folder).glob("*-seed*.json"))]


def stored_lr(folder: Path, budget: str = "cpu", log: Callable[[str], None] = print) -> float:
    """The range test's pick (``min_lr / 10``) stored in ``folder/lr_range.json``; the test runs
    first when missing."""
    path = Path(folder) / "lr_range.json"
    if not path.exists():
        log("learning-rate range test ...")
        atomic_write_text(path, json.dumps(range_test(budget), indent=1))
    return json.loads(path.read_text())["pick"]


def run_experiments(arms: Iterable[str], seeds: Sequence[int], folder: Path, budget: str = "cpu",
                    overwrite: bool = False, device: str = "cpu", log: Callable[[str], None] = print) -> list[Path]:
    """Train every arm at every seed at the stored range test's learning rate, and store each
    run as ``folder/ARM-seedN.json``. A stored run is kept unless ``overwrite``. Returns the
    files written."""
    arms = list(arms)
    unknown = [name for name in arms if name not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    arm_config(ARMS[BASELINE], 0, 1e-3, budget, device)  # the budget and device are checked before any work
    Path(folder).mkdir(parents=True, exist_ok=True)
    lr, written = stored_lr(folder, budget, log), []
    for seed in seeds:
        for name in arms:
            path = run_path(folder, name, seed)
            if path.exists() and not overwrite:
                log(f"kept {path} (pass overwrite to train it again)")
                continue
            atomic_write_text(path, json.dumps(train_arm(ARMS[name], seed, lr, budget, device, log), indent=1))
            written.append(path)
    return written


# book/experiments.md, line 408
REPLAY_RTOL = 1e-3


def replay_steps(record: dict[str, Any], steps: int = 6) -> list[float]:
    """Train the first ``steps`` optimizer steps of a stored run again, from its stored config,
    seed and arm; returns their losses."""
    arm = ARMS[record["arm"]]
    config = TrainConfig.from_dict(record["config"])
    run = build_run(config, device=torch.device("cpu"), architecture=architecture(arm))
    run.net.train()
    losses = []
    for batch, _ in zip(run.data.train_batches(0, run.device, Ranks()), range(steps)):
        losses.append(train_step(run, batch).item())
    return losses


def replay_problems(record: dict[str, Any], steps: int = 6, rtol: float = REPLAY_RTOL) -> list[str]:
    """Why ``record`` is not what its config trains: replayed step losses more than ``rtol``
    (relative) from the stored ones, or epoch means that are not the means of the stored steps."""
    problems = []
    for i, (stored, fresh) in enumerate(zip(record["step_losses"], replay_steps(record, steps))):
        if stored is None or abs(fresh - stored) > rtol * abs(stored):
            problems.append(f"step {i + 1}: stored loss {stored}, replayed {fresh:.6f}")
    per_epoch = data_source(TrainConfig.from_dict(record["config"])).steps_per_epoch()
    for epoch in record["history"]:
        chunk = record["step_losses"][(epoch["epoch"] - 1) * per_epoch:epoch["epoch"] * per_epoch]
        if None in chunk or len(chunk) != per_epoch or abs(sum(chunk) / per_epoch - epoch["train_loss"]) > 1e-6:
            problems.append(f"epoch {epoch['epoch']}: train_loss {epoch['train_loss']} is not the mean of its steps")
    return problems


# book/experiments.md, line 477
METRICS: dict[str, tuple[str, bool]] = {
    "mask_iou": ("mask IoU", True),
    "depth_rmse": ("depth RMSE", False),
    "depth_rmse_scaled": ("scale-aligned RMSE", False),
    "wall_seconds": ("wall time, s", False),
}
"""The figures every experiment reports on the test scenes: label, and whether higher is better."""


@dataclass(frozen=True)
class Spread:
    """One arm's figure over its seeds: the mean, the lowest and the highest seed, and how many
    runs diverged (they count as the worst possible value, and are left out of the mean)."""

    mean: float
    low: float
    high: float
    diverged: int = 0

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "diverged"
        digits = 0 if self.mean >= 10 else 3 if self.mean >= 0.1 else 4
        text = f"{self.mean:.{digits}f} ± {(self.high - self.low) / 2:.{digits}f}"
        return text + (f" ({self.diverged} diverged)" if self.diverged else "")


def metric_values(runs: Iterable[dict[str, Any]], arm: str, metric: str) -> list[float]:
    """``metric`` of every stored run of ``arm`` (NaN for a run that diverged)."""
    values = [run["wall_seconds"] if metric == "wall_seconds" else (run["test"] or {}).get(metric, math.nan)
              for run in runs if run["arm"] == arm]
    if not values:
        raise ValueError(f"no stored run of arm {arm!r}")
    return [v if v is not None else math.nan for v in values]


def arm_spread(runs: Iterable[dict[str, Any]], arm: str, metric: str) -> Spread:
    values = metric_values(runs, arm, metric)
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Spread(math.nan, math.nan, math.nan, len(values))
    return Spread(sum(finite) / len(finite), min(finite), max(finite), len(values) - len(finite))


def better_arm(runs: Sequence[dict[str, Any]], a: str, b: str, metric: str) -> str | None:
    """The arm of ``a`` and ``b`` whose worst seed beats the other's best seed on ``metric``, or
    None: their seeds overlap, so at this budget the gap is not larger than the spread."""
    higher = METRICS[metric][1]
    worst = -math.inf if higher else math.inf

    def ordered(arm: str) -> list[float]:
        values = [v if math.isfinite(v) else worst for v in metric_values(runs, arm, metric)]
        return sorted(values, reverse=not higher)          # worst first

    (worst_a, *_, best_a), (worst_b, *_, best_b) = ordered(a), ordered(b)
    beats = (lambda x, y: x > y) if higher else (lambda x, y: x < y)
    return a if beats(worst_a, best_b) else b if beats(worst_b, best_a) else None


# book/experiments.md, line 538
def experiment_table(runs: Sequence[dict[str, Any]], experiment: str) -> str:
    """One row per arm of ``experiment``: parameters and every figure of :data:`METRICS` as
    mean ± half the range over the seeds."""
    arms = EXPERIMENTS[experiment]
    lines = [f"{'arm':<13} {'parameters':>11} " + " ".join(f"{label:>20}" for label, _ in METRICS.values())]
    for arm in arms:
        parameters = next(run["parameters"] for run in runs if run["arm"] == arm)
        lines.append(f"{arm:<13} {parameters:>11,} "
                     + " ".join(f"{str(arm_spread(runs, arm, metric)):>20}" for metric in METRICS))
    return "\n".join(lines)


def reference_arm(experiment: str) -> str:
    """The arm ``experiment`` compares the others with: the baseline where it is one of them, else
    the experiment's first arm."""
    arms = EXPERIMENTS[experiment]
    return BASELINE if BASELINE in arms else arms[0]


def verdicts(runs: Sequence[dict[str, Any]], experiment: str, reference: str | None = None) -> dict[tuple[str, str], str | None]:
    """For each arm against ``reference`` (default: :func:`reference_arm`), and each figure but
    wall time: :func:`better_arm`."""
    arms, reference = EXPERIMENTS[experiment], reference or reference_arm(experiment)
    return {(arm, metric): better_arm(runs, reference, arm, metric)
            for arm in arms if arm != reference for metric in METRICS if metric != "wall_seconds"}


def verdict_lines(runs: Sequence[dict[str, Any]], experiment: str, reference: str | None = None) -> list[str]:
    """:func:`verdicts` as sentences, one per arm and figure."""
    reference = reference or reference_arm(experiment)
    return [f"{METRICS[metric][0]:<19} {arm} vs {reference}: "
            + (f"{winner} is better on every seed" if winner else "cannot tell apart at this budget")
            for (arm, metric), winner in verdicts(runs, experiment, reference).items()]


def plot_arms(runs: Sequence[dict[str, Any]], arms: Sequence[str], keys=("val_mask_iou", "val_depth_rmse"),
              axes=None):
    """Each arm's validation curves: the mean over its seeds as a line, the lowest to highest
    seed as a band. Validation runs at each epoch's image size."""
    import matplotlib.pyplot as plt
    import numpy as np

    if axes is None:
        _, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.2), squeeze=False)
        axes = axes[0]
    for arm in arms:
        histories = [run["history"] for run in runs if run["arm"] == arm]
        epochs = max(len(h) for h in histories)
        for ax, key in zip(axes, keys):
            values = np.full((len(histories), epochs), np.nan)
            for i, history in enumerate(histories):
                values[i, :len(history)] = [h[key] for h in history]
            x = np.arange(1, epochs + 1)
            line, = ax.plot(x, np.nanmean(values, axis=0), "o-", label=arm)
            ax.fill_between(x, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=line.get_color(), alpha=0.2)
    for ax, key in zip(axes, keys):
        ax.set_title(key.removeprefix("val_").replace("_", " ") + " (validation)")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return axes

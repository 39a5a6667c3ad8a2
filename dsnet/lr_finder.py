# Generated from book/lr_range.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/lr_range.md, line 45
"""Leslie Smith's learning-rate range test: train briefly while the learning rate grows
exponentially, smooth the loss, stop when it diverges, and suggest a learning rate. The model
and optimizer are restored afterwards, exactly as they were."""
from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from dsnet.data import model_inputs


# book/lr_range.md, line 112
@dataclass
class LRRangeResult:
    """What :func:`lr_range_test` saw: the learning rate of each step, its raw loss, the smoothed
    loss, and the suggested learning rate (steepest descent of the smoothed loss)."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    diverged: bool = False

    @property
    def min_lr(self) -> float:
        """The learning rate where the smoothed loss was lowest (often already too high)."""
        return self.lrs[int(np.argmin(self.smoothed))]


def lr_schedule(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """``steps`` learning rates growing geometrically from ``start_lr`` to ``end_lr``."""
    if not 0 < start_lr < end_lr or steps < 2:
        raise ValueError("need 0 < start_lr < end_lr and at least 2 steps")
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / (steps - 1)) for i in range(steps)]


def smooth_losses(losses: Sequence[float], smooth: float = 0.05) -> list[float]:
    """The bias-corrected exponential moving average of ``losses`` (weight ``smooth`` on the newest)."""
    out, average = [], 0.0
    for i, loss in enumerate(losses):
        average = (1 - smooth) * average + smooth * loss
        out.append(average / (1 - (1 - smooth) ** (i + 1)))
    return out


# book/lr_range.md, line 183
def suggest_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """The learning rate of steepest descent of ``smoothed`` against ``log10(lrs)``, looked for
    before the minimum of ``smoothed``; ``lrs[0]`` if there is no descent to measure."""
    loss = np.asarray(smoothed, dtype=np.float64)
    end = int(np.argmin(loss)) + 1
    if end < 2:
        return float(lrs[0])
    slope = np.gradient(loss[:end], np.log10(np.asarray(lrs[:end], dtype=np.float64)))
    # the minimum itself only has the last drop into it, a one-sided slope where the curve turns
    candidates = slope[:-1] if end > 2 else slope
    return float(lrs[int(np.argmin(candidates))])


# book/lr_range.md, line 208
def make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float,
                   fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer ``name`` over every parameter of ``model``: ``"adamw"`` (decoupled weight
    decay) or ``"sgd"`` (momentum 0.9), the two that the range test and the trainer use."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adamw, or pass a torch optimizer")


def _optimizer(name: str | torch.optim.Optimizer, model: nn.Module, weight_decay: float) -> torch.optim.Optimizer:
    return name if isinstance(name, torch.optim.Optimizer) else make_optimizer(name, model, 1.0, weight_decay)


def _batches(batches: Iterable[dict[str, Tensor]], steps: int):
    if isinstance(batches, Sequence):
        if not batches:
            raise ValueError("batches is empty")
        return (batches[i % len(batches)] for i in range(steps))
    return iter(batches)


def lr_range_test(model: nn.Module, batches: Iterable[dict[str, Tensor]], loss_fn, *,
                  start_lr: float = 1e-6, end_lr: float = 1.0, steps: int = 100,
                  optimizer: str | torch.optim.Optimizer = "sgd", smooth: float = 0.05, diverge: float = 4.0,
                  weight_decay: float = 1e-4, device: torch.device | str | None = None) -> LRRangeResult:
    """Train ``model`` for up to ``steps`` steps with learning rates growing geometrically from
    ``start_lr`` to ``end_lr``; stop early when the smoothed loss exceeds ``diverge`` times its
    minimum (or a loss is not finite). The model (weights, buffers, gradients, train/eval mode,
    device) and a given optimizer are restored afterwards. ``device``: where to run (default: the model's)."""
    if not 0 < smooth <= 1 or diverge <= 1:
        raise ValueError("need 0 < smooth <= 1 and diverge > 1")
    lrs = lr_schedule(start_lr, end_lr, steps)
    home = next(model.parameters()).device
    device = torch.device(device) if device is not None else home
    saved_model = copy.deepcopy(model.state_dict())
    was_training = model.training
    channels_last = any(p.dim() == 4 and p.shape[1] > 1 and not p.is_contiguous()
                        and p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters())
    opt = _optimizer(optimizer, model, weight_decay)
    saved_opt = copy.deepcopy(opt.state_dict())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    seen, losses, smoothed, diverged = [], [], [], False
    try:
        model.to(device).train()
        for lr, batch in zip(lrs, _batches(batches, steps)):
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            for group in opt.param_groups:
                group["lr"] = lr
            out = loss_fn(model(*model_inputs(batch, channels_last)), batch)
            loss = out.total if hasattr(out, "total") else out
            value = float(loss.detach())
            seen.append(lr)
            losses.append(value)
            smoothed = smooth_losses(losses, smooth)
            if not math.isfinite(value) or smoothed[-1] > diverge * min(smoothed):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        model.load_state_dict(saved_model)
        model.to(home).train(was_training)
        opt.load_state_dict(saved_opt)
        for p, grad in zip(model.parameters(), saved_grads):
            p.grad = grad
    finite = [s if math.isfinite(s) else math.inf for s in smoothed]
    suggestion = suggest_lr(seen, finite) if seen else start_lr
    return LRRangeResult(seen, losses, smoothed, suggestion, diverged)


# book/lr_range.md, line 286
def plot_lr_range(result: LRRangeResult, ax=None, label: str = ""):
    """The loss against the learning rate (log scale), with the suggestion marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    line, = ax.plot(result.lrs, result.smoothed, "-", lw=2, label=f"{label} smoothed".strip())
    ax.plot(result.lrs, result.losses, ".", color=line.get_color(), alpha=0.35, ms=4)
    i = result.lrs.index(result.suggestion)
    ax.plot(result.suggestion, result.smoothed[i], "o", ms=9, mfc="none", mew=2, color=line.get_color(),
            label=f"steepest: {result.suggestion:.1e}")
    ax.axvline(result.min_lr / 10, color=line.get_color(), ls="--", lw=1, label=f"min/10: {result.min_lr / 10:.1e}")
    ax.set_xscale("log")
    finite = [s for s in result.smoothed if math.isfinite(s)]
    low = min(finite)
    start = max(finite[:max(1, result.smoothed.index(low))])
    ax.set_ylim(low - 0.15 * (start - low) - 1e-3, start + 0.6 * (start - low) + 1e-3)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    return ax

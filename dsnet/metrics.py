# Generated from book/losses_metrics.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/losses_metrics.md, line 743
"""Streaming metrics for DSResNet's mask and depth heads: the seed's soft IoU and depth
RMSE, hard IoU and Dice at a threshold, the depth metrics AbsRel and delta < 1.25**k, and two
that ignore each image's scale: the scale-aligned RMSE and the scale-invariant log error (SILog).

:class:`SegDepthMetrics` accumulates float64 sums over batches of any size (per-image means for
the mask and SILog, per-pixel means for the other depth metrics), so the result does not depend
on the batching.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor

from dsnet.losses import check_same_shape

METRICS: dict[str, bool] = {
    "mask_soft_iou": True,
    "mask_iou": True,
    "mask_dice": True,
    "depth_rmse": False,
    "depth_rmse_scaled": False,
    "depth_silog": False,
    "depth_abs_rel": False,
    "depth_delta1": True,
    "depth_delta2": True,
    "depth_delta3": True,
}
"""The keys of :meth:`SegDepthMetrics.compute`, each mapped to whether higher is better."""


def _ratio_or_one(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, and 1 where the denominator is 0 (both maps empty)."""
    empty = denominator == 0
    return torch.where(empty, torch.ones_like(numerator), numerator / denominator.masked_fill(empty, 1))


# book/losses_metrics.md, line 784
def soft_iou(probs: Tensor, target: Tensor) -> Tensor:
    """The seed's IoU of one mask per image, on probabilities without thresholding:
    ``sum(p*t) / (sum(p) + sum(t) - sum(p*t))``, shape ``(B,)``; 1 where the union is 0."""
    check_same_shape("soft_iou", probs, target, batched=True)
    p, t = probs.flatten(1).double(), target.flatten(1).double()
    intersection = (p * t).sum(1)
    return _ratio_or_one(intersection, p.sum(1) + t.sum(1) - intersection)


def _hard_counts(probs: Tensor, target: Tensor, threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    p, t = probs.flatten(1) > threshold, target.flatten(1) > threshold
    return (p & t).sum(1).double(), p.sum(1).double(), t.sum(1).double()


def hard_iou(probs: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    """IoU per image of the masks ``probs > threshold`` and ``target > threshold``, shape
    ``(B,)``; 1 where both are empty."""
    check_same_shape("hard_iou", probs, target, batched=True)
    both, predicted, actual = _hard_counts(probs, target, threshold)
    return _ratio_or_one(both, predicted + actual - both)


def dice_score(probs: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    """Dice (F1) per image of the masks ``probs > threshold`` and ``target > threshold``,
    shape ``(B,)``; 1 where both are empty."""
    check_same_shape("dice_score", probs, target, batched=True)
    both, predicted, actual = _hard_counts(probs, target, threshold)
    return _ratio_or_one(2 * both, predicted + actual)


# book/losses_metrics.md, line 819
def best_scale(depth: Tensor, target: Tensor, min_depth: float = 1e-4) -> Tensor:
    """Per image, the least-squares factor ``s = sum(p*t) / sum(p*p)`` that makes ``s * depth``
    fit ``target`` best over the pixels whose target is greater than ``min_depth``; shape ``(B,)``,
    float64, and 1 where that sum is 0 (no such pixel, or a zero prediction on all of them)."""
    check_same_shape("best_scale", depth, target, batched=True)
    valid = target > min_depth
    p = torch.where(valid, depth.double(), 0.0).flatten(1)
    t = torch.where(valid, target.double(), 0.0).flatten(1)
    return _ratio_or_one((p * t).sum(1), (p * p).sum(1))


def silog(depth: Tensor, target: Tensor, min_depth: float = 1e-4) -> Tensor:
    """Scale-invariant log error per image (Eigen et al. 2014 with lambda = 1, not times 100):
    with ``g = log(max(depth, min_depth)) - log(target)`` over the pixels whose target is greater
    than ``min_depth``, ``sqrt(mean(g**2) - mean(g)**2)``, the standard deviation of ``g``.
    Shape ``(B,)``, float64; nan for an image without such pixels."""
    check_same_shape("silog", depth, target, batched=True)
    target = target.double()
    valid = target > min_depth
    log_ratio = torch.log(depth.double().clamp_min(min_depth)) - torch.log(torch.where(valid, target, 1.0))
    log_ratio = torch.where(valid, log_ratio, 0.0).flatten(1)
    count = valid.flatten(1).sum(1)
    mean = log_ratio.sum(1) / count.clamp_min(1)
    # two passes (mean first, then the spread around it): mean(g**2) - mean(g)**2 would cancel badly
    spread = torch.where(valid.flatten(1), log_ratio - mean[:, None], 0.0)
    variance = (spread * spread).sum(1) / count.clamp_min(1)
    return torch.where(count > 0, variance.sqrt(), math.nan)


# book/losses_metrics.md, line 850
_STATE = ("images", "soft_iou", "iou", "dice",
          "depth_pixels", "depth_sq_err", "depth_sq_err_scaled", "depth_abs_rel",
          "depth_delta1", "depth_delta2", "depth_delta3", "depth_images", "depth_silog")


def _depth_sums(d: Tensor, target: Tensor, min_depth: float) -> Tensor:
    """The depth sums of one batch, in the order of ``_STATE[4:]``: predicted depth ``d`` and
    ``target``, both float64 ``(B, ...)``. Masking with ``torch.where``, not boolean indexing,
    keeps it free of host synchronisations."""
    valid = target > min_depth
    d_star = torch.where(valid, target, torch.ones_like(target))  # no division by 0 below
    error = torch.where(valid, d - d_star, torch.zeros_like(d))
    scale = best_scale(d, target, min_depth).view(-1, *[1] * (d.dim() - 1))
    scaled_error = torch.where(valid, scale * d - d_star, torch.zeros_like(d))
    ratio = torch.maximum(d / d_star, d_star / d)  # inf where d == 0: outside every delta
    per_image = silog(d, target, min_depth)
    has_depth = ~per_image.isnan()
    return torch.stack([
        valid.sum().double(),
        (error * error).sum(),
        (scaled_error * scaled_error).sum(),
        (error.abs() / d_star).sum(),
        *[(valid & (ratio < 1.25**k)).sum().double() for k in (1, 2, 3)],
        has_depth.sum().double(),
        torch.where(has_depth, per_image, torch.zeros_like(per_image)).sum(),
    ])


class SegDepthMetrics:
    """Streaming mask and depth metrics over batches of any size.

    ``update(prediction, batch)`` takes the model's ``Prediction(depth, mask)`` of **logits**
    (any pair ``(depth, mask)``) and a batch with ``"depth"`` and ``"mask"`` tensors of the same
    shapes, values in [0, 1]. ``compute()`` returns the keys of :data:`METRICS`:

    - ``mask_soft_iou``: the seed's IoU of ``sigmoid(mask)`` without thresholding, per image;
    - ``mask_iou``, ``mask_dice``: IoU and Dice (F1) of the masks thresholded at
      ``mask_threshold``, per image;
    - ``depth_rmse``, ``depth_abs_rel``, ``depth_delta1..3``: over all pixels whose target is
      greater than ``min_depth`` (nan if there is none);
    - ``depth_rmse_scaled``: the same RMSE after each image's prediction is multiplied by its
      :func:`best_scale`;
    - ``depth_silog``: :func:`silog` per image, averaged over the images with such pixels.

    Per-image metrics are averaged over images, per-pixel ones over pixels, so the result does not
    depend on the batching. The sums live in :attr:`state`, a float64 tensor on the device of the
    last update; :meth:`sync` adds them up over the processes of a distributed run.
    """

    def __init__(self, *, mask_threshold: float = 0.5, min_depth: float = 1e-4,
                 device: torch.device | str | None = None) -> None:
        self.mask_threshold = mask_threshold
        self.min_depth = min_depth
        self.state = torch.zeros(len(_STATE), dtype=torch.float64, device=device)
        self._synced = False

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.state = torch.zeros_like(self.state)
        self._synced = False

    @torch.no_grad()
    def update(self, prediction: Sequence[Tensor], batch: Mapping[str, Tensor]) -> None:
        if self._synced:
            raise RuntimeError("SegDepthMetrics.update() after sync(): call reset() to start over")
        depth_logits, mask_logits = prediction
        check_same_shape("depth", depth_logits, batch["depth"], batched=True)
        check_same_shape("mask", mask_logits, batch["mask"], batched=True)
        if self.state.device != mask_logits.device:
            self.state = self.state.to(mask_logits.device)

        probs = torch.sigmoid(mask_logits.double())
        mask = batch["mask"].double()
        mask_sums = torch.stack([
            torch.full((), mask.shape[0], dtype=torch.float64, device=mask.device),
            soft_iou(probs, mask).sum(),
            hard_iou(probs, mask, self.mask_threshold).sum(),
            dice_score(probs, mask, self.mask_threshold).sum(),
        ])

        depth_sums = _depth_sums(torch.sigmoid(depth_logits.double()), batch["depth"].double(), self.min_depth)
        self.state += torch.cat([mask_sums, depth_sums]).to(self.state.device)

    def compute(self) -> dict[str, float]:
        """The metrics of everything seen since the last :meth:`reset`, as Python floats."""
        s = dict(zip(_STATE, self.state.tolist()))
        if s["images"] == 0:
            raise RuntimeError("SegDepthMetrics.compute(): no images seen since the last reset()")
        n, pixels = s["images"], s["depth_pixels"]

        def per_pixel(total: float) -> float:
            return total / pixels if pixels else math.nan

        return {
            "mask_soft_iou": s["soft_iou"] / n,
            "mask_iou": s["iou"] / n,
            "mask_dice": s["dice"] / n,
            "depth_rmse": math.sqrt(per_pixel(s["depth_sq_err"])),
            "depth_rmse_scaled": math.sqrt(per_pixel(s["depth_sq_err_scaled"])),
            "depth_silog": s["depth_silog"] / s["depth_images"] if s["depth_images"] else math.nan,
            "depth_abs_rel": per_pixel(s["depth_abs_rel"]),
            "depth_delta1": per_pixel(s["depth_delta1"]),
            "depth_delta2": per_pixel(s["depth_delta2"]),
            "depth_delta3": per_pixel(s["depth_delta3"]),
        }

    def sync(self, process_group=None) -> SegDepthMetrics:
        """Sum the state over all processes of ``process_group`` (default: the whole world) so
        that :meth:`compute` gives the metrics of the whole split on every rank. Every rank must
        call it, once per epoch; a no-op outside ``torch.distributed``. Returns ``self``."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        if self._synced:
            raise RuntimeError("SegDepthMetrics.sync() called twice; call reset() to start over")
        dist.all_reduce(self.state, op=dist.ReduceOp.SUM, group=process_group)
        self._synced = True
        return self

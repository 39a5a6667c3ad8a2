# Generated from book/losses_metrics.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/losses_metrics.md, line 54
"""Losses for DSResNet's two heads: BCE-with-logits, Dice, SSIM and RMSE, and
:class:`CombinedLoss`, their weighted sum, configured by a spec such as
``"2*rmse:depth + bce:mask + 2*dice:mask"``.

Every loss is computed in float32 (also under autocast) and returns a scalar tensor.
``bce_loss`` takes logits; ``dice_loss``, ``ssim_loss`` and ``rmse_loss`` take values in
[0, 1] (the sigmoid of the logits). :class:`CombinedLoss` takes the model's logits and applies
the sigmoid itself where a loss needs it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_same_shape(name: str, prediction: Tensor, target: Tensor, *, batched: bool = False) -> None:
    """Raise ``ValueError`` unless ``prediction`` and ``target`` have equal shapes (broadcastable
    is not enough) and, with ``batched``, at least two dimensions ``(B, ...)``. ``name``, the loss
    or metric, starts the message."""
    if prediction.shape != target.shape:
        raise ValueError(f"{name}: prediction shape {tuple(prediction.shape)} does not match "
                         f"target shape {tuple(target.shape)}; give both the same shape, "
                         f"(B, 1, H, W) for DSResNet's heads")
    if batched and prediction.dim() < 2:
        raise ValueError(f"{name}: expected a batch of images (B, ...), got shape "
                         f"{tuple(prediction.shape)}; add the batch dimension, e.g. with unsqueeze(0)")


# book/losses_metrics.md, line 119
def bce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy of ``target`` under ``sigmoid(logits)``, averaged over all
    elements. Takes **logits** (numerically stable form)."""
    check_same_shape("bce", logits, target)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


# book/losses_metrics.md, line 172
def dice_loss(probs: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """The seed's Dice loss ``1 - (2*sum(p*t) + smooth) / (sum(p) + sum(t) + smooth)``, the sums
    running over every element of the batch. Takes **probabilities** in [0, 1]."""
    check_same_shape("dice", probs, target)
    p, t = probs.float(), target.float()
    return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


# book/losses_metrics.md, line 238
def rmse_loss(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """``sqrt(mean((pred - target)**2) + eps)`` over every element of the batch. Takes values
    in the target's range (for DSResNet: ``sigmoid`` of the depth logits); ``eps`` keeps the
    gradient finite at zero error."""
    check_same_shape("rmse", pred, target)
    return torch.sqrt(F.mse_loss(pred.float(), target.float()) + eps)


# book/losses_metrics.md, line 287
def gaussian_window(size: int = 11, sigma: float = 1.5, *, device=None) -> Tensor:
    """The ``size x size`` Gaussian window of SSIM, float32, summing to 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).to(device=device, dtype=torch.float32)


def ssim_map(x: Tensor, y: Tensor, *, window_size: int = 11, sigma: float = 1.5,
             data_range: float = 1.0) -> Tensor:
    """Local SSIM of two ``(B, C, H, W)`` images for every window that lies inside them:
    ``(B, C, H - window_size + 1, W - window_size + 1)``, computed in float32."""
    check_same_shape("ssim", x, y)
    if x.dim() != 4:
        raise ValueError(f"ssim: expected (B, C, H, W) images, got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if min(height, width) < window_size:
        raise ValueError(f"ssim: images of {height}x{width} are smaller than the "
                         f"{window_size}x{window_size} window")
    with torch.autocast(x.device.type, enabled=False):  # variances cancel badly in half precision
        x, y = x.float(), y.float()
        channels = x.shape[1]
        window = gaussian_window(window_size, sigma, device=x.device)
        window = window.expand(channels, 1, window_size, window_size)

        def local_mean(z: Tensor) -> Tensor:
            return F.conv2d(z, window, groups=channels)

        # Variances are differences of nearly equal numbers on smooth images. Shifting each image
        # by its mean changes no variance but shrinks those numbers, and the rounding with them.
        shift_x = x.mean(dim=(-2, -1), keepdim=True).detach()
        shift_y = y.mean(dim=(-2, -1), keepdim=True).detach()
        x, y = x - shift_x, y - shift_y
        mean_x, mean_y = local_mean(x), local_mean(y)
        var_x = local_mean(x * x) - mean_x**2
        var_y = local_mean(y * y) - mean_y**2
        cov_xy = local_mean(x * y) - mean_x * mean_y
        mu_x, mu_y = mean_x + shift_x, mean_y + shift_y
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        return ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
                / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)))


def ssim(x: Tensor, y: Tensor, **kwargs) -> Tensor:
    """Mean SSIM over all windows, channels and images (window 11, sigma 1.5, data range 1)."""
    return ssim_map(x, y, **kwargs).mean()


def ssim_loss(probs: Tensor, target: Tensor) -> Tensor:
    """``1 - SSIM(probs, target)``: 0 for identical images, at most 2. Takes values in [0, 1]
    (for DSResNet: ``sigmoid`` of the logits); images must be at least 11x11."""
    return 1 - ssim(probs, target)


# book/losses_metrics.md, line 406
class _Loss(NamedTuple):
    fn: Callable[[Tensor, Tensor], Tensor]
    takes_logits: bool


LOSSES: dict[str, _Loss] = {
    "bce": _Loss(bce_loss, takes_logits=True),
    "dice": _Loss(dice_loss, takes_logits=False),
    "ssim": _Loss(ssim_loss, takes_logits=False),
    "rmse": _Loss(rmse_loss, takes_logits=False),
}
"""The losses a spec can name, and whether each takes logits (else sigmoid probabilities)."""

TARGETS = ("depth", "mask")

PRESETS: dict[str, str] = {
    "seed": "2*rmse:depth + bce:mask + 2*dice:mask",
    "seed_ssim": "2*ssim:depth + dice:mask",
}
"""Named specs: the seed project's best combination, and our variant with SSIM on the depth."""


@dataclass(frozen=True)
class LossTerm:
    """One weighted term of a :class:`CombinedLoss`: loss ``name`` on head ``target``."""

    name: str
    target: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r}; known losses: {', '.join(sorted(LOSSES))}")
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r} for loss {self.name!r}; "
                             f"targets: {', '.join(TARGETS)}")
        object.__setattr__(self, "weight", float(self.weight))

    @property
    def key(self) -> str:
        """``"name:target"``, the term's key in :attr:`LossOutput.terms`."""
        return f"{self.name}:{self.target}"

    def __str__(self) -> str:
        return self.key if self.weight == 1 else f"{self.weight:g}*{self.key}"


_TERM_RE = re.compile(r"^(?:(?P<weight>\d+(?:\.\d*)?|\.\d+)(?:[eE]-?\d+)?\s*\*\s*)?"
                      r"(?P<name>[A-Za-z_]\w*)\s*:\s*(?P<target>[A-Za-z_]\w*)$")


def parse_loss_spec(spec: str) -> list[LossTerm]:
    """``"2*rmse:depth + bce:mask + 2*dice:mask"`` (or a name in :data:`PRESETS`) as terms."""
    text = PRESETS.get(spec.strip(), spec)
    terms: list[LossTerm] = []
    for part in text.split("+"):
        part = part.strip()
        match = _TERM_RE.match(part)
        if not match:
            raise ValueError(f"loss spec {spec!r}: cannot read {part!r}; write terms as "
                             f"WEIGHT*NAME:TARGET joined by '+', e.g. '2*dice:mask + bce:mask', "
                             f"or a preset: {', '.join(PRESETS)}")
        weight = float(part.split("*")[0]) if match["weight"] else 1.0
        terms.append(LossTerm(match["name"].lower(), match["target"].lower(), weight))
    return terms


class LossOutput(NamedTuple):
    """What :class:`CombinedLoss` returns: the weighted ``total`` (differentiable) and each
    term's unweighted, detached value by ``"name:target"``."""

    total: Tensor
    terms: dict[str, Tensor]


class CombinedLoss(nn.Module):
    """Weighted sum of losses on DSResNet's two heads.

    ``terms`` is a spec (``"2*rmse:depth + bce:mask + 2*dice:mask"``), a preset name
    (``"seed"``, ``"seed_ssim"``) or a sequence of :class:`LossTerm` or
    ``(name, target, weight)`` tuples. ``forward(prediction, batch)`` takes the model's
    ``Prediction(depth, mask)`` of **logits** and a batch with float ``"depth"`` and ``"mask"``
    tensors of the same shapes, and returns a :class:`LossOutput`.
    """

    def __init__(self, terms: str | Sequence[LossTerm | tuple] = "seed") -> None:
        super().__init__()
        if isinstance(terms, str):
            parsed = parse_loss_spec(terms)
        else:
            parsed = [t if isinstance(t, LossTerm) else LossTerm(*t) for t in terms]
        if not parsed:
            raise ValueError("a CombinedLoss needs at least one term")
        keys = [t.key for t in parsed]
        for key in keys:
            if keys.count(key) > 1:
                raise ValueError(f"loss term {key!r} appears twice; give it one weight")
        self.terms: tuple[LossTerm, ...] = tuple(parsed)

    @property
    def spec(self) -> str:
        return " + ".join(str(t) for t in self.terms)

    def extra_repr(self) -> str:
        return repr(self.spec)

    def forward(self, prediction: Sequence[Tensor], batch: Mapping[str, Tensor]) -> LossOutput:
        depth, mask = prediction
        logits = {"depth": depth, "mask": mask}
        probs: dict[str, Tensor] = {}
        total: Tensor | None = None
        values: dict[str, Tensor] = {}
        for term in self.terms:
            if term.target not in batch:
                raise KeyError(f"loss {term.key} needs batch[{term.target!r}]; the batch has "
                               f"{', '.join(map(repr, batch))}")
            loss = LOSSES[term.name]
            x = logits[term.target].float()
            if not loss.takes_logits:
                if term.target not in probs:
                    probs[term.target] = torch.sigmoid(x)
                x = probs[term.target]
            value = loss.fn(x, batch[term.target])
            total = term.weight * value if total is None else total + term.weight * value
            values[term.key] = value.detach()
        return LossOutput(total, values)


def build_loss(spec: str | Sequence[LossTerm | tuple] = "seed") -> CombinedLoss:
    """The :class:`CombinedLoss` of a spec, preset name or list of terms."""
    return CombinedLoss(spec)

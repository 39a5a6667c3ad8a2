# Generated from book/data.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/data.md, line 175
"""On-the-fly datasets over the synthetic museum, normalization statistics, and
augmentation that treats BG and BG-FG alike."""
from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dsnet.scene import Realism, museum_batch, render_problem

KEYS = ("bg", "bg_fg", "mask", "depth")
IMAGES = ("bg", "bg_fg")
# Per-channel (mean, std) of the seed project's MODEST Museum, as it published them.
MODEST_STATS = {
    "bg": ((0.40086, 0.46599, 0.53281), (0.25451, 0.24249, 0.23615)),
    "bg_fg": ((0.41221, 0.47368, 0.53431), (0.25699, 0.24577, 0.24217)),
    "mask": ((0.05207,), (0.21686,)),
    "depth": ((0.2981,), (0.11561,)),
}


# book/data.md, line 206
class SyntheticMuseum(Dataset):
    """``length`` samples of the synthetic museum at ``size`` x ``size``, rendered on demand.

    Each split draws its scenes from its own random stream, so train, val and test never share
    a room, a camera or a foreground. Items are dicts of float tensors: ``bg`` and ``bg_fg``
    ``(3, H, W)`` in [0, 1], ``mask`` and ``depth`` ``(1, H, W)`` in [0, 1]. ``realism`` (a
    ``dsnet.scene.Realism``, ``True`` for all of it, or switch names; default none) makes the
    pictures more like photographs; mask and depth stay exact."""

    def __init__(self, size: int = 96, length: int = 10_000, seed: int = 0, split: str = "train",
                 fg_per_bg: int = 1, device: torch.device | str = "cpu",
                 realism: Realism | bool | str | None = None) -> None:
        self.realism = Realism.of(realism)
        problem = render_problem(size, split, fg_per_bg) or (f"length must be 0 or more, not {length}"
                                                             if length < 0 else None)
        if problem is not None:
            raise ValueError(problem)
        self.size, self.length, self.seed, self.split = size, length, seed, split
        self.fg_per_bg, self.device = fg_per_bg, torch.device(device)

    def __len__(self) -> int:
        return self.length

    def _check(self, indices: list[int]) -> list[int]:
        for i in indices:
            if not 0 <= i < self.length:
                raise IndexError(f"index {i} out of range for {self.length} samples")
        return indices

    def batch(self, indices: Iterable[int]) -> dict[str, Tensor]:
        """The samples ``indices`` as one batch dict, rendered in one go on the device."""
        indices = self._check([int(i) for i in indices])
        return museum_batch(indices, self.size, self.seed, self.split, self.fg_per_bg, self.device, self.realism)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {k: v[0] for k, v in self.batch([index]).items()}

    def __getitems__(self, indices: list[int]) -> list[dict[str, Tensor]]:
        # a DataLoader with batching asks for a whole batch at once: render it in one go
        batch = self.batch(indices)
        return [{k: v[i] for k, v in batch.items()} for i in range(len(indices))]

    def batches(self, batch_size: int, shuffle: bool = False, epoch: int = 0,
                drop_last: bool = False) -> Iterator[dict[str, Tensor]]:
        """Batches straight from the renderer on the dataset's device: no disk, no workers."""
        if shuffle:
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        else:
            order = torch.arange(self.length)
        for start in range(0, self.length, batch_size):
            chunk = order[start:start + batch_size]
            if drop_last and len(chunk) < batch_size:
                return
            yield self.batch(chunk.tolist())


# book/data.md, line 305
def channel_stats(batches: Iterable[dict[str, Tensor]], keys: Iterable[str] = KEYS) -> dict[str, tuple]:
    """Per-channel ``(means, stds)`` of each key over all pixels of ``batches`` (float64 sums)."""
    sums: dict[str, list[Tensor]] = {}
    for batch in batches:
        for k in keys:
            x = batch[k].double().transpose(0, 1).reshape(batch[k].shape[1], -1)
            s = sums.setdefault(k, [torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)] * 2 + [0])
            s[0], s[1], s[2] = s[0] + x.sum(1), s[1] + (x * x).sum(1), s[2] + x.shape[1]
    out = {}
    for k, (s1, s2, n) in sums.items():
        mean = s1 / n
        std = (s2 / n - mean * mean).clamp(min=0).sqrt()
        out[k] = (tuple(round(v, 5) for v in mean.tolist()), tuple(round(v, 5) for v in std.tolist()))
    return out


def normalize(batch: dict[str, Tensor], stats: dict[str, tuple] = MODEST_STATS,
              keys: Iterable[str] = IMAGES) -> dict[str, Tensor]:
    """``batch`` with the images of ``keys`` standardized by ``stats``; targets untouched."""
    out = dict(batch)
    for k in keys:
        out[k] = standardize(batch[k], *stats[k])
    return out


def standardize(x: Tensor, mean: Tensor | Iterable[float], std: Tensor | Iterable[float]) -> Tensor:
    """``(x - mean) / std`` per channel for ``x`` ``(C, H, W)`` or ``(N, C, H, W)``, in ``x``'s dtype
    on its device, ``mean`` and ``std`` being ``C`` numbers (or a tensor of them, e.g. a module's
    buffer): the one place dsnet standardizes a tensor."""
    mean, std = (torch.as_tensor(v if isinstance(v, Tensor) else tuple(v), dtype=x.dtype, device=x.device)
                 .view(-1, 1, 1) for v in (mean, std))
    return (x - mean) / std


# book/data.md, line 370
Stats = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class InputStats:
    """How a model's two images are standardized: per-channel ``(mean, std)`` of BG and of
    BG-FG, three numbers each. ValueError for any other shape, a non-finite value or a std <= 0."""

    bg: Stats
    bg_fg: Stats

    def __post_init__(self) -> None:
        for key in ("bg", "bg_fg"):
            value = getattr(self, key)
            try:
                mean, std = (tuple(float(v) for v in part) for part in value)
                ok = len(mean) == len(std) == 3 and all(map(math.isfinite, mean + std)) and min(std) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"input statistics of {key} must be a mean and a std of 3 finite numbers each, "
                                 f"the std above 0, not {value!r}; pass them as InputStats.to_dict writes them")
            object.__setattr__(self, key, (mean, std))

    def apply(self, bg: Tensor, bg_fg: Tensor) -> tuple[Tensor, Tensor]:
        """``bg`` and ``bg_fg`` ``(3, H, W)`` or ``(N, 3, H, W)`` standardized: the same shapes."""
        return standardize(bg, *self.bg), standardize(bg_fg, *self.bg_fg)

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        """``{"bg": {"mean": [...], "std": [...]}, "bg_fg": {...}}``, as files and contracts store it."""
        return {key: {"mean": list(mean), "std": list(std)} for key, (mean, std) in
                (("bg", self.bg), ("bg_fg", self.bg_fg))}

    @classmethod
    def from_dict(cls, value: dict[str, Any] | str) -> InputStats:
        """The statistics :meth:`to_dict` wrote, as a dict or its JSON text."""
        try:
            value = json.loads(value) if isinstance(value, str) else value
            parts = [(value[key]["mean"], value[key]["std"]) for key in ("bg", "bg_fg")]
        except (ValueError, TypeError, KeyError):
            raise ValueError("input statistics must read {'bg': {'mean': [3 numbers], 'std': [3 numbers]}, "
                             f"'bg_fg': {{...}}}}, not {str(value)[:80]!r}; pass what InputStats.to_dict "
                             "writes") from None
        return cls(*parts)

    @classmethod
    def of(cls, model: object) -> InputStats:
        """The statistics ``model`` carries as ``input_stats``; :data:`MODEST_INPUTS` if none."""
        stats = getattr(model, "input_stats", None)
        return stats if isinstance(stats, InputStats) else MODEST_INPUTS


# what every dsnet training run standardizes with, and what a file without statistics holds
MODEST_INPUTS = InputStats(MODEST_STATS["bg"], MODEST_STATS["bg_fg"])


# book/data.md, line 434
def model_inputs(batch: dict[str, Tensor], channels_last: bool,
                 stats: InputStats = MODEST_INPUTS) -> tuple[Tensor, Tensor]:
    """The model's inputs from a batch: BG and BG-FG standardized by ``stats`` (training's,
    :data:`MODEST_INPUTS`), ``(B, 3, H, W)`` each, in channels-last memory layout if
    ``channels_last``, else contiguous."""
    bg, bg_fg = stats.apply(batch["bg"], batch["bg_fg"])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return bg.contiguous(memory_format=layout), bg_fg.contiguous(memory_format=layout)


# book/data.md, line 464
def _factors(n: int, spread: float, generator: torch.Generator | None) -> Tensor:
    return 1 + spread * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)


def photometric(batch: dict[str, Tensor], generator: torch.Generator | None = None, brightness: float = 0.25,
                contrast: float = 0.25, saturation: float = 0.3, hue: float = 0.05) -> dict[str, Tensor]:
    """Random brightness, contrast, saturation and hue per sample, the *same* for its BG and
    BG-FG (a change between the two must mean an object, never the augmentation)."""
    B = batch["bg"].shape[0]
    ref = batch["bg"]
    b, c, s = (_factors(B, v, generator).to(ref.device, ref.dtype).view(-1, 1, 1, 1)
               for v in (brightness, contrast, saturation))
    angle = (hue * 2 * np.pi * (2 * torch.rand(B, generator=generator, dtype=torch.float64) - 1))
    # a hue shift is a rotation about the grey axis of the YIQ colour space
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(B, 3, 3, dtype=torch.float64)
    rot[:, 0, 0], rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = 1, cos, -sin, sin, cos
    hue_m = (torch.linalg.inv(yiq) @ rot @ yiq).to(ref.device, ref.dtype)
    grey = torch.tensor([0.299, 0.587, 0.114], dtype=ref.dtype, device=ref.device).view(1, 3, 1, 1)
    mean = (batch["bg"] * grey).sum(1, keepdim=True).mean((2, 3), keepdim=True)   # from BG, used for both
    out = dict(batch)
    for k in IMAGES:
        x = batch[k] * b
        x = (x - mean * b) * c + mean * b
        lum = (x * grey).sum(1, keepdim=True)
        x = lum + (x - lum) * s
        x = torch.einsum("bij,bjhw->bihw", hue_m, x)
        out[k] = x.clamp(0, 1)
    return out


def jpeg_round_trip(batch: dict[str, Tensor], quality: tuple[int, int] = (60, 95),
                    generator: torch.Generator | None = None, keys: Iterable[str] = IMAGES) -> dict[str, Tensor]:
    """Each image of ``keys`` compressed to JPEG on its own at a random quality in ``quality``
    (inclusive) and decoded again, as photos of real datasets were."""
    from PIL import Image

    out = dict(batch)
    for k in keys:
        x = batch[k]
        q = torch.randint(quality[0], quality[1] + 1, (x.shape[0],), generator=generator).tolist()
        pixels = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        decoded = []
        for image, qi in zip(pixels, q):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=int(qi))
            decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
        out[k] = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255
    return out


# book/data.md, line 697
if __name__ == "__main__" and __spec__ is not None:     # run as `python -m dsnet.data`, not in a notebook
    import sys

    print("python -m dsnet.data: a library module, not a command; "
          "run `dsnet data generate --out DIR --count N`", file=sys.stderr)
    sys.exit(2)

"""Real photographs, a proxy: BG / BG-FG pairs cut from the photographs that ship with scikit-image,
with person-shaped foregrounds pasted in with soft edges and exact masks, and two ways to score
a method on them: a plain per-pixel difference at its best fixed threshold, and ``dsnet.predict``
called as a user calls it.

Hand-written infrastructure for the Results chapter's section ``book/proxy.md``: it imports the
renderer's figures (:mod:`dsnet.scene`), the JPEG round trip (:mod:`dsnet.data`), the metrics
and prediction (:mod:`dsnet.inference`), and no chapter module imports it.

A pair: a 224 x 224 crop of a photograph is the scene; one to three figures (the renderer's
human-like figures, seen from the front) are textured with patches of other pictures or of the
same one, and pasted with an anti-aliased edge: ``BG-FG = alpha * FG + (1 - alpha) * BG``, and
the mask is exactly ``alpha > 0.5``. The figures cover 1.5-5 % of the frame. Each photo of the
pair is then a separate shot: its own exposure, white balance and sensor noise, 8-bit pixels,
and, on request, a JPEG round trip.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsnet.data import jpeg_round_trip
from dsnet.metrics import _ratio_or_one, hard_iou
from dsnet.scene import Draws, figure_capsules, scene_uniforms

if TYPE_CHECKING:
    from dsnet.inference import SizeSpec

COVERAGE = (0.015, 0.05)
"""The share of the frame the figures of one pair cover, at least and at most."""
BACKGROUNDS = {"astronaut": 0.2, "coffee": 0.2, "chelsea": 0.2, "rocket": 0.2, "camera": 0.2}
"""The photographs the scenes are cut from (scikit-image's), with the share of pairs cut from each."""
CLOTHES = ("brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry")
"""More of scikit-image's pictures that only the figures' clothes are cut from (so are the scenes')."""
THRESHOLDS = tuple(round(0.01 * k, 2) for k in range(1, 51))
"""The fixed thresholds the pixel-difference baseline chooses from (0.01 to 0.50)."""
CAMOUFLAGE = 0.2
"""The chance that a part of a figure (head, upper body, legs) wears the pair's own scene."""
_FIGURE_DRAWS = 30     # uniforms that dsnet.scene.figure_capsules takes for one figure
_PARTS = np.array([0, 1, 2, 2, 1, 1, 2, 2, 1, 1])   # capsule -> head, upper body and arms, legs


@functools.cache
def source_images() -> dict[str, np.ndarray]:
    """The pictures the proxy is cut from, float32 ``(H, W, 3)`` in [0, 1], by name: the
    photographs of :data:`BACKGROUNDS` and the pictures of :data:`CLOTHES`, all from
    scikit-image's ``data`` module (grey ones repeated over three channels). None of them is a
    picture the renderer uses (those come from matplotlib), so a model trained with
    :class:`dsnet.Realism` has never seen them. Loaded once; treat them as read-only."""
    try:
        from skimage import data
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the proxy is cut from scikit-image's sample photographs, and scikit-image is "
                                  "not installed: pip install scikit-image (or dsnet[proxy])") from None

    def rgb(image: np.ndarray) -> np.ndarray:
        image = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, -1)
        return np.ascontiguousarray(image, dtype=np.float32) / 255.0

    return {name: rgb(getattr(data, name)()) for name in (*BACKGROUNDS, *CLOTHES)}


def _crop(image: np.ndarray, rng: np.random.Generator, size: int, smallest: float) -> np.ndarray:
    """A random square crop of ``image`` (side ``smallest`` to 1 times its shorter side), maybe
    mirrored, resized to ``size`` x ``size`` with an antialiasing filter."""
    from PIL import Image

    height, width = image.shape[:2]
    side = int(rng.uniform(smallest, 1.0) * min(height, width))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    patch = image[top:top + side, left:left + side]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    pixels = Image.fromarray((patch * 255).round().astype(np.uint8))
    return np.asarray(pixels.resize((size, size), Image.LANCZOS), dtype=np.float32) / 255.0


def _segment_distance(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance ``(P, H, W)`` from the pixel centres ``px``, ``py`` ``(H, W)`` to the segments
    ``a``-``b`` ``(P, 2)`` (x, y in pixels)."""
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    bx, by = (b - a)[:, 0, None, None], (b - a)[:, 1, None, None]
    length2 = np.maximum(bx * bx + by * by, 1e-12)
    s = np.clip(((px - ax) * bx + (py - ay) * by) / length2, 0.0, 1.0)
    return np.hypot(px - ax - s * bx, py - ay - s * by)


_NEAR = 3.0   # pixels beyond a capsule's rim still measured: the soft edge reaches at most 1 pixel out


def _near(a: np.ndarray, b: np.ndarray, radius: np.ndarray, size: int) -> list[tuple[slice, slice]]:
    """For each capsule ``a``-``b`` ``(P, 2)`` of ``radius`` ``(P,)`` pixels, the rows and columns of
    the ``size`` x ``size`` frame within :data:`_NEAR` pixels of it (a box, maybe empty)."""
    reach = radius + _NEAR
    low, high = np.minimum(a, b) - reach[:, None], np.maximum(a, b) + reach[:, None]
    low = np.clip(np.floor(low), 0, size).astype(int)
    high = np.clip(np.ceil(high) + 1, 0, size).astype(int)
    return [(slice(y0, y1), slice(x0, x1)) for (x0, y0), (x1, y1) in zip(low, high)]


@dataclass
class _Figures:
    """Figures of one pair in metres: capsule ends ``a``, ``b`` ``(F, 10, 2)`` (x right, y up,
    feet at y = 0), radii ``r`` ``(F, 10)``; where each stands (``at``, ``(F, 2)``, column and
    row of the feet as shares of the frame) and how far (``scale`` ``(F,)``, 1 nearest)."""

    a: np.ndarray
    b: np.ndarray
    r: np.ndarray
    at: np.ndarray
    scale: np.ndarray

    def distances(self, size: int, pixels_per_metre: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signed distance ``(H, W)`` in pixels to the figures' outline (negative inside; ``inf``
        farther than :data:`_NEAR` pixels from every capsule, where nothing is drawn), the
        index ``(H, W)`` of the nearest capsule (figure * 10 + capsule) and that capsule's radius
        in pixels ``(H, W)``, with ``pixels_per_metre`` for the nearest figure."""
        py, px = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        s = (pixels_per_metre * self.scale)[:, None, None]
        feet = (self.at * size)[:, None, :]
        flip = np.array([1.0, -1.0])                         # y up in metres, rows down in pixels
        a, b = (feet + self.a * s * flip).reshape(-1, 2), (feet + self.b * s * flip).reshape(-1, 2)
        radius = (self.r * s[..., 0]).reshape(-1)
        d = np.full((len(radius), size, size), np.inf)
        for k, (rows, cols) in enumerate(_near(a, b, radius, size)):   # elsewhere alpha is 0 whatever d is
            d[k, rows, cols] = _segment_distance(px[rows, cols], py[rows, cols], a[k:k + 1], b[k:k + 1])[0] - radius[k]
        nearest = d.argmin(0)
        return np.take_along_axis(d, nearest[None], 0)[0], nearest, radius[nearest]


def _draw_figures(rng: np.random.Generator, key: tuple[int, ...]) -> _Figures:
    """One to three of the renderer's figures (:func:`dsnet.scene.figure_capsules`), seen from
    the front, standing in the lower part of the frame."""
    count = int(rng.integers(1, 4))
    keys = [(*key, k) for k in range(count)]
    capsules = figure_capsules(Draws(scene_uniforms(keys, _FIGURE_DRAWS)), torch.zeros(count, 3, dtype=torch.float64))
    at = np.stack([rng.uniform(0.12, 0.88, count), rng.uniform(0.6, 0.97, count)], -1)
    return _Figures(capsules["a"][..., :2].numpy(), capsules["b"][..., :2].numpy(), capsules["r"].numpy(),
                    at, rng.uniform(0.6, 1.0, count))


def _fit_coverage(figures: _Figures, size: int, target: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`_Figures.distances` at the scale whose mask covers ``target`` of the frame (to
    3 % of it)."""
    scale = 0.35 * size                      # pixels per metre: a 1.7 m figure about 60 % of the frame
    for _ in range(12):
        d, nearest, radius = figures.distances(size, scale)
        covered = max(float((d < 0).mean()), 1.0 / size**2)
        if abs(covered / target - 1) < 0.03:
            break
        scale *= (target / covered) ** 0.5
    return d, nearest, radius


def _textures(rng: np.random.Generator, scene: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` textures ``(count, H, W, 3)``, one per part of each figure (head, upper body,
    legs): a tinted patch of a picture or, with chance :data:`CAMOUFLAGE`, the scene itself
    shifted (the background's colours in another layout); and which parts wear the scene,
    bool ``(count,)``."""
    names = sorted(source_images())
    size = scene.shape[0]
    parts, camouflaged = [], np.zeros(count, bool)
    for k in range(count):
        if rng.random() < CAMOUFLAGE:
            shift = rng.integers(size // 6, size // 2, 2) * rng.choice([-1, 1], 2)
            parts.append(np.roll(scene, tuple(shift), axis=(0, 1)))
            camouflaged[k] = True
        else:
            texture = _crop(source_images()[names[rng.integers(len(names))]], rng, size, 0.15)
            parts.append(texture * rng.uniform(0.6, 1.2, 3).astype(np.float32))
    return np.clip(np.stack(parts), 0, 1), camouflaged


def _composite(rng: np.random.Generator, key: tuple[int, ...], size: int) -> dict[str, np.ndarray]:
    """One scene and the same scene with figures, float32 ``(H, W, 3)``, their ``alpha``
    ``(H, W)``, the share of the mask whose part wears the scene (``camouflage``) and the
    scene's picture (``background``, its place in :data:`BACKGROUNDS`)."""
    names = list(BACKGROUNDS)
    background = rng.choice(len(names), p=list(BACKGROUNDS.values()))
    scene = _crop(source_images()[names[background]], rng, size, 0.3)
    figures = _draw_figures(rng, key)
    d, nearest, radius = _fit_coverage(figures, size, rng.uniform(0.018, 0.047))
    textures, camouflaged = _textures(rng, scene, 3 * len(figures.r))
    part = 3 * (nearest // len(_PARTS)) + _PARTS[nearest % len(_PARTS)]
    color = np.take_along_axis(textures, part[None, :, :, None], 0)[0]
    # rounded bodies: darker towards each capsule's rim; one light level per pair
    rim = np.clip(1 + d / np.maximum(radius, 1.0), 0, 1)
    color = np.clip(color * (1 - 0.35 * rim**2)[..., None] * rng.uniform(0.75, 1.1), 0, 1)
    edge = rng.uniform(0.7, 2.0)             # pixels of the soft rim: focus and motion blur differ
    alpha = np.clip(0.5 - d / edge, 0.0, 1.0).astype(np.float32)
    with_figures = alpha[..., None] * color + (1 - alpha[..., None]) * scene
    return {"bg": scene, "bg_fg": with_figures.astype(np.float32), "alpha": alpha, "background": background,
            "camouflage": np.float32(camouflaged[part][alpha > 0.5].mean() if (alpha > 0.5).any() else 0.0)}


def _shot(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` as one photo records it: its own exposure and white balance, sensor noise,
    8-bit pixels; uint8 ``(H, W, 3)``."""
    gain = np.exp(rng.normal(0.0, 0.03)) * np.exp(rng.normal(0.0, 0.015, 3))
    noisy = image * gain + rng.normal(0.0, rng.uniform(0.003, 0.01), image.shape)
    return (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)


def _check_options(count: int, size: int, seed: int, jpeg_quality: int | None) -> None:
    for name, value, low in (("count", count, 1), ("size", size, 64), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
    if jpeg_quality is not None and (not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 95):
        raise ValueError(f"jpeg_quality must be None (lossless) or an integer from 1 to 95, got {jpeg_quality!r}")


def proxy_pairs(count: int = 64, size: int = 224, seed: int = 0, jpeg_quality: int | None = None,
                shots: bool = True) -> dict[str, Tensor]:
    """``count`` proxy pairs at ``size`` x ``size`` pixels.

    Returns ``bg`` and ``bg_fg``, float32 ``(N, 3, H, W)`` in [0, 1] (8-bit values); ``mask``
    and ``alpha``, float32 ``(N, 1, H, W)``, with ``mask == (alpha > 0.5)``; ``camouflage``,
    float32 ``(N,)``, the share of the mask whose part of a figure wears the pair's own scene;
    ``background``, int64 ``(N,)``, the picture the scene is cut from (its place in
    :data:`BACKGROUNDS`). Pair i depends only on ``(seed, i)``, so a longer set starts with the
    shorter one. ``jpeg_quality``: None (lossless) or both photos JPEG-compressed at that
    quality; ``shots=False`` gives both photos the same exposure and no noise, so that they
    differ only where alpha > 0."""
    _check_options(count, size, seed, jpeg_quality)
    columns: dict[str, list] = {"bg": [], "bg_fg": [], "alpha": [], "camouflage": [], "background": []}
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        pair = _composite(rng, (seed, i), size)
        for name in ("bg", "bg_fg"):
            pair[name] = _shot(pair[name], rng) if shots else (pair[name] * 255).round().astype(np.uint8)
        for name, column in columns.items():
            column.append(pair[name])
    images = {name: torch.from_numpy(np.stack(columns[name])).permute(0, 3, 1, 2).float() / 255
              for name in ("bg", "bg_fg")}
    if jpeg_quality is not None:   # each photo on its own, with PIL's 4:2:0 chroma subsampling
        images = jpeg_round_trip(images, quality=(jpeg_quality, jpeg_quality),
                                 generator=torch.Generator().manual_seed(0))   # leaves torch's own untouched
    alpha = torch.from_numpy(np.stack(columns["alpha"]))[:, None]
    return {**images, "mask": (alpha > 0.5).float(), "alpha": alpha,
            "camouflage": torch.from_numpy(np.stack(columns["camouflage"])),
            "background": torch.tensor(columns["background"], dtype=torch.int64)}


def difference_map(bg: Tensor, bg_fg: Tensor) -> Tensor:
    """The largest absolute difference over the colour channels, ``(N, 1, H, W)``, of ``bg``
    and ``bg_fg`` ``(N, 3, H, W)``."""
    if bg.shape != bg_fg.shape or bg.dim() != 4:
        raise ValueError(f"bg and bg_fg must be (N, 3, H, W) tensors of one shape, got "
                         f"{tuple(bg.shape)} and {tuple(bg_fg.shape)}")
    return (bg_fg.float() - bg.float()).abs().amax(1, keepdim=True)


def _spread(masks: Tensor, size: int, reach_out: bool) -> Tensor:
    """Bool ``masks`` ``(..., H, W)`` dilated (``reach_out``: any pixel of the ``size`` x ``size``
    square set) or eroded (every pixel of it set), the square cut off at the image's edge: the
    max filter of 0/1 masks, or its mirror image, in booleans."""
    r, op = size // 2, torch.logical_or if reach_out else torch.logical_and
    x = F.pad(masks, (r, r, r, r), value=not reach_out)    # outside the image: never decides
    height, width = x.shape[-2] - 2 * r, x.shape[-1] - 2 * r
    rows = functools.reduce(op, (x[..., k:k + height, :] for k in range(size)))
    return functools.reduce(op, (rows[..., k:k + width] for k in range(size)))


def _clean_up(masks: Tensor, size: int) -> Tensor:
    """:func:`clean_up` of bool ``masks``, as bool."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd number of pixels, at least 1, not {size}")
    pad = 4 * (size // 2)   # four steps, each reaching size // 2 pixels further: the canvas's own edge never matters
    x = F.pad(masks, (pad, pad, pad, pad), value=False)
    for reach_out in (True, False, False, True):            # a closing, then an opening
        x = _spread(x, size, reach_out)
    return x[..., pad:masks.shape[-2] + pad, pad:masks.shape[-1] + pad]


def clean_up(masks: Tensor, size: int = 3) -> Tensor:
    """Morphological clean-up of 0/1 ``masks`` ``(N, 1, H, W)``, float 0/1 like them: a closing
    (fills pinholes and gaps) then an opening (removes specks), both with a ``size`` x ``size``
    square (odd), as if the image went on as background beyond its edges."""
    return _clean_up(masks.bool(), size).float()


@dataclass(frozen=True)
class Score:
    """How a method did on a set of pairs: ``iou``, the mean over pairs of each pair's IoU (masks
    hard at 0.5, 1 when both are empty); ``per_pair`` ``(N,)``; ``masks``, its masks, bool
    ``(N, H, W)``; ``threshold``, the difference threshold it used (None for a model)."""

    iou: float
    per_pair: np.ndarray
    masks: np.ndarray
    threshold: float | None = None

    @property
    def worst(self) -> int:
        """The index of the pair with the lowest IoU (the first of them on a tie)."""
        return int(np.argmin(self.per_pair))


def pair_ious(masks: Tensor | np.ndarray, truth: Tensor) -> np.ndarray:
    """IoU per pair of 0/1 ``masks`` and ``truth``, ``(N, 1, H, W)`` or ``(N, H, W)``, float64 ``(N,)``."""
    masks = (masks if isinstance(masks, Tensor) else torch.from_numpy(np.asarray(masks))).float()
    return hard_iou(masks.reshape(truth.shape[0], -1), truth.reshape(truth.shape[0], -1).float()).numpy()


def difference_baseline(bg: Tensor, bg_fg: Tensor, mask: Tensor, thresholds: Sequence[float] = THRESHOLDS,
                        clean: bool = False) -> Score:
    """The plain per-pixel difference at the one fixed threshold, of ``thresholds``, that gives
    the best mean IoU against ``mask`` over the whole set (the first on a tie), optionally with
    :func:`clean_up`. The threshold is tuned on the very pairs it is scored on: an optimistic
    baseline."""
    thresholds = [float(t) for t in thresholds]
    if not thresholds:
        raise ValueError("thresholds is empty: give at least one threshold to try")
    difference, best = difference_map(bg, bg_fg), None
    truth = mask.reshape(len(mask), -1) > 0.5
    actual = truth.sum(1).double()
    for threshold in thresholds:
        masks = difference > threshold
        masks = _clean_up(masks, 3) if clean else masks
        flat = masks.reshape(len(masks), -1)
        both = (flat & truth).sum(1).double()                  # hard_iou's counts, from booleans
        per_pair = _ratio_or_one(both, flat.sum(1).double() + actual - both).numpy()
        if best is None or per_pair.mean() > best.iou:
            best = Score(float(per_pair.mean()), per_pair, masks[:, 0].numpy(), threshold)
    return best


Method = Union[None, str, os.PathLike, nn.Module, Callable]


def evaluate_proxy(model: Method = None, pairs: dict[str, Tensor] | None = None, *, count: int = 64,
                   size: int = 224, seed: int = 0, jpeg_quality: int | None = None,
                   device: str | torch.device | None = None, batch_size: int = 16,
                   predict_size: SizeSpec = None, align: bool = True) -> Score:
    """Mask IoU of a method on the proxy: ``pairs`` (made with :func:`proxy_pairs` from
    ``count``, ``size``, ``seed`` and ``jpeg_quality`` when not given).

    ``model``: anything :func:`dsnet.predict` takes (None for the shipped weights, a checkpoint,
    a ``DSResNet``, a ``Predictor``), called as a user calls it, on uint8 ``(N, H, W, 3)``
    arrays, with ``device``, ``batch_size``, ``size=predict_size`` and ``align``; or any other function
    ``fn(bg, bg_fg)`` of two such arrays that returns masks ``(N, H, W)`` or a result with a
    ``.mask``."""
    from dsnet.inference import Predictor, load_predictor, plan_sizes, predict
    from dsnet.io import pretrained_manifest

    pairs = proxy_pairs(count, size, seed, jpeg_quality) if pairs is None else pairs
    missing = {"bg", "bg_fg", "mask"} - set(pairs)
    if missing:
        raise ValueError(f"pairs lacks {sorted(missing)}: pass what proxy_pairs returns")
    bg, bg_fg = ((pairs[k].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy() for k in ("bg", "bg_fg"))
    if model is None or isinstance(model, (str, os.PathLike, nn.Module, Predictor)):
        size = predict_size
        if size is None:   # only the mask is scored: the one pass that predict's default plans for the mask
            model = load_predictor(model, device) if isinstance(model, (str, os.PathLike)) else model
            train_size = pretrained_manifest()["image_size"] if model is None else getattr(model, "train_size", None)
            size = plan_sizes(bg.shape[1], bg.shape[2], None, train_size)[0]
        result = predict(bg, bg_fg, model, size=size, device=device, batch_size=batch_size, align=align)
    elif callable(model):
        result = model(bg, bg_fg)
    else:
        raise TypeError(f"model must be a checkpoint, a DSResNet, a Predictor, None or a function, "
                        f"not {type(model).__name__}")
    masks = np.asarray(getattr(result, "mask", result)).astype(bool).reshape(len(bg), *bg.shape[1:3])
    per_pair = pair_ious(masks, pairs["mask"])
    return Score(float(per_pair.mean()), per_pair, masks)

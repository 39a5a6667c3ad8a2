# Generated from book/using.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/using.md, line 47
"""Predictions on your own images: file paths, PIL images, numpy arrays or tensors of any size
in; the foreground's mask and the scene's depth out, at the input's own size."""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor, nn

from dsnet.data import InputStats
from dsnet.device import amp_dtype, pick_device
from dsnet.images import ImageInput, Images, open_images, resize
from dsnet.files import atomic_write_group, shown
from dsnet.io import device_of, load_model, pretrained_files, ready_model, target_device
from dsnet.plots import plot_result
from dsnet.shapes import DIVISOR, MIN_SIZE, check_input_size


# book/using.md, line 197
SizeSpec = Union[None, str, int, tuple]


def _round_size(n: float) -> int:
    return max(MIN_SIZE, round(n / DIVISOR) * DIVISOR)


def model_size(height: int, width: int, size: SizeSpec = None, train_size: int | None = None) -> tuple[int, int]:
    """The ``(H, W)`` the network sees for a ``height x width`` input.

    ``size``: None (``"trained"`` when ``train_size`` is known, else ``"native"``); ``"native"``
    (the nearest multiple of 32, at least 64, per side); ``"trained"`` (scaled to the area of a
    ``train_size`` square, aspect ratio kept, each side rounded to a multiple of 32); an int (a
    square) or an ``(H, W)`` pair, which must be valid sizes. No side is ever more than
    ``MAX_SIDE``: the two policies scale down to it, and a larger explicit size is refused."""
    if size is None:
        size = "trained" if train_size else "native"
    if size == "native":
        return _capped(height, width)
    if size == "trained":
        if not train_size:
            raise ValueError("size='trained' needs a model whose training size is known "
                             "(a checkpoint or the shipped weights); pass size='native' or a size")
        scale = train_size / math.sqrt(height * width)
        return _capped(height * scale, width * scale)
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size)):
        raise ValueError(f"size must be None, 'native', 'trained', an int or an (H, W) pair, not {size!r}")
    check_input_size(*size)
    if max(size) > MAX_SIDE:
        raise ValueError(f"size {size[0]}x{size[1]} has a side above {MAX_SIDE} pixels, the most the network "
                         f"is run at; pass a smaller size, or None to let dsnet choose")
    return int(size[0]), int(size[1])


def plan_sizes(height: int, width: int, size: SizeSpec = None,
               train_size: int | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(mask size, depth size)``: the ``(H, W)`` the network sees for each output.

    The default (``size=None``) with a known training size predicts the depth at the training
    scale and the mask at the native size (at most ``MAX_SIDE`` pixels on the longer side), or at
    the training scale when the input is smaller than that: each output from the scale that
    measured best for it, in one pass or two. Any other ``size`` is one pass for both, as
    :func:`model_size` says. ValueError for an input more than ``MAX_ASPECT`` times longer than
    wide (or wide than high): no planned size keeps its shape."""
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise ValueError(f"the images are {height}x{width} pixels, more than {MAX_ASPECT} times longer one way "
                         f"than the other; dsnet takes shapes up to {MAX_ASPECT}:1 ({MIN_SIZE}x{MAX_SIDE} at the "
                         "network): crop them first")
    if size is None:
        native = _capped(height, width)
        if not train_size:
            return native, native
        trained = model_size(height, width, "trained", train_size)
        # more pixels help the mask, so a small input is scaled up to the training scale
        mask = native if native[0] * native[1] >= trained[0] * trained[1] else trained
        return mask, trained
    one = model_size(height, width, size, train_size)
    return one, one


MAX_SIDE = 1024  # the network's passes: longer side at most this (memory and time grow with the area)
MAX_ASPECT = MAX_SIDE // MIN_SIZE  # 16:1, the longest shape whose short side stays at least MIN_SIZE


def _capped(height: float, width: float) -> tuple[int, int]:
    scale = min(1.0, MAX_SIDE / max(height, width))
    return _round_size(height * scale), _round_size(width * scale)


# book/using.md, line 297
ModelSource = Union[None, str, os.PathLike, nn.Module, "Predictor"]


def load_predictor(model: ModelSource = None, device: str | torch.device | None = None) -> Predictor:
    """A :class:`Predictor` from a checkpoint path (or its folder), a ``.safetensors`` file, a
    model (its ``train_size`` and ``input_stats`` attributes, if any, say how it was trained), a
    Predictor, or None (or ``"pretrained"``) for a fresh copy of the shipped weights, loaded by
    :func:`dsnet.io.load_model`. ``device``: None keeps a model or Predictor you pass where it is
    and puts a file's on CUDA when available (:func:`dsnet.io.target_device`); ValueError for a
    device this machine lacks. A model you pass is never changed."""
    if isinstance(model, Predictor):
        if device is None or pick_device(device) == model.device:
            return model
        net = load_model(model.model, device)
        return replace(model, model=net, device=device_of(net))
    net = load_model(model, device)
    source = ("pretrained" if model is None or model == "pretrained"
              else "module" if isinstance(model, nn.Module) else str(model))
    return Predictor(net, device_of(net), getattr(net, "train_size", None), source, InputStats.of(net))


@functools.lru_cache(maxsize=None)
def _shipped(device: torch.device, weights: str) -> Predictor:
    """The shipped weights on ``device``, loaded once per process (``weights``, their file, is part
    of the key so that another file is another entry)."""
    return load_predictor(None, device)


# book/using.md, line 347
@dataclass(frozen=True)
class PredictionResult:
    """Numpy arrays at the input's size, ``H x W`` for one pair and ``N x H x W`` for a batch:
    ``mask`` (bool), ``mask_prob`` and ``depth`` (float32 in [0, 1]). ``mask_size`` and
    ``depth_size`` are the ``(H, W)`` the network saw for each."""

    mask: np.ndarray
    mask_prob: np.ndarray
    depth: np.ndarray
    mask_size: tuple[int, int]
    depth_size: tuple[int, int]


@dataclass(frozen=True)
class PredictOptions:
    """How a prediction runs, chosen once and passed along: ``size`` (what the network sees, see
    :func:`plan_sizes`), ``batch_size`` (pairs per pass), ``threshold`` (of the mask probability),
    ``align`` (line BG up with BG-FG first, :func:`align_to`) and ``device`` (where :func:`predict`
    loads the model; None: :func:`dsnet.io.target_device`'s rule). ValueError for a threshold
    outside (0, 1) or a batch size below 1."""

    size: SizeSpec = None
    batch_size: int = 16
    threshold: float = 0.5
    align: bool = True
    device: str | torch.device | None = None

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class Predictor:
    """A model ready to predict: in eval mode on ``device``, with the size it was trained at and
    the statistics its inputs are standardized with (None: those the model carries,
    :meth:`dsnet.data.InputStats.of`)."""

    model: nn.Module
    device: torch.device
    train_size: int | None = None
    source: str = "module"
    input_stats: InputStats | None = None

    def __post_init__(self) -> None:
        if self.input_stats is None:
            self.input_stats = InputStats.of(self.model)

    def __call__(self, bg: ImageInput, bg_fg: ImageInput, options: PredictOptions | None = None,
                 **changes: Any) -> PredictionResult:
        """The mask and depth of ``bg`` and ``bg_fg`` (as :func:`predict` takes them), with
        ``options`` and ``changes`` to them by name (``size=224``, ``align=False``, ...); a
        Predictor runs on its own device, whatever ``options.device`` says."""
        options = replace(options or PredictOptions(), **changes)
        bgs, fgs = open_images(bg, "bg"), open_images(bg_fg, "bg_fg")
        if len(bgs) != len(fgs):
            raise ValueError(f"bg has {len(bgs)} images but bg_fg has {len(fgs)}; they come in pairs")
        if (bgs.height, bgs.width) != (fgs.height, fgs.width):
            raise ValueError(f"bg is {bgs.height}x{bgs.width} pixels but bg_fg is {fgs.height}x{fgs.width}: "
                             "BG and BG-FG must show the same view at the same size")
        mask_size, depth_size = plan_sizes(bgs.height, bgs.width, options.size, self.train_size)
        depth, mask_prob = self._outputs(bgs, fgs, mask_size, depth_size, options)
        if not (bgs.batched or fgs.batched):
            depth, mask_prob = depth[0], mask_prob[0]
        return PredictionResult(mask=mask_prob > options.threshold, mask_prob=mask_prob, depth=depth,
                                mask_size=mask_size, depth_size=depth_size)

    def _outputs(self, bgs: Images, fgs: Images, mask_size: tuple[int, int], depth_size: tuple[int, int],
                 options: PredictOptions) -> tuple[np.ndarray, np.ndarray]:
        """The depth and the mask probability, float32 ``(N, H, W)`` at the input's size, with BG
        aligned to BG-FG first if ``options.align`` (:func:`align_to`, at each size the network
        sees). Memory holds a batch at the network's sizes and one full-size output map besides
        the result."""
        model, device = ready_model(self.model), self.device        # a Predictor made by hand may hold any
        dtype = next(model.parameters()).dtype
        layout = torch.channels_last if device.type == "cpu" else torch.preserve_format
        precision = amp_dtype(device, enabled=dtype == torch.float32)  # a half-precision model runs as it is
        sizes = list(dict.fromkeys((mask_size, depth_size)))          # one pass, or two
        shape, step = (len(bgs), bgs.height, bgs.width), options.batch_size
        depth, mask_prob = np.empty(shape, np.float32), np.empty(shape, np.float32)
        with torch.inference_mode(), torch.autocast(device.type, dtype=precision or torch.float32,
                                                    enabled=precision is not None):
            for start in range(0, len(bgs), step):
                stop = min(start + step, len(bgs))
                outputs = {}
                for net_size, b, f in zip(sizes, bgs.batch(start, stop, sizes), fgs.batch(start, stop, sizes)):
                    b = align_to(b, f) if options.align else b
                    x = [v.to(device, dtype, memory_format=layout) for v in self.input_stats.apply(b, f)]
                    outputs[net_size] = model(*x)
                for i in range(stop - start):
                    for out, logits in ((depth, outputs[depth_size].depth), (mask_prob, outputs[mask_size].mask)):
                        out[start + i] = torch.sigmoid(resize(logits[i:i + 1].float(), shape[1:]))[0, 0].cpu().numpy()
        return depth, mask_prob


def predict(bg: ImageInput, bg_fg: ImageInput, model: ModelSource = None, *,
            size: SizeSpec = PredictOptions.size, device: str | torch.device | None = PredictOptions.device,
            batch_size: int = PredictOptions.batch_size, threshold: float = PredictOptions.threshold,
            align: bool = PredictOptions.align) -> PredictionResult:
    """The foreground's mask and the scene's depth for BG ``bg`` and BG-FG ``bg_fg``.

    Inputs: file paths, PIL images, numpy arrays (``H x W x C`` or ``N x H x W x C``), tensors
    (``C x H x W`` or ``N x C x H x W``) or lists of them, at most ``dsnet.images.MAX_PIXELS``
    each, values in [0, 1] (floats) or 0-255 (uint8). ``model``: a checkpoint, a ``.safetensors``
    file, a ``DSResNet``, a :class:`Predictor`, or None for the shipped weights (loaded once per
    device and kept). The other arguments are those of :class:`PredictOptions`; ``size``: see
    :func:`plan_sizes`; ``align``: first move and re-expose BG to match BG-FG (:func:`align_to`; a
    pair that lines up is left as it is), as two shots from a hand-held camera need. Returns a
    :class:`PredictionResult` at the input's size."""
    options = PredictOptions(size=size, batch_size=batch_size, threshold=threshold, align=align, device=device)
    if model is None:
        predictor = _shipped(target_device(None, options.device), str(pretrained_files()["weights"]))
    else:
        predictor = load_predictor(model, options.device)
    return predictor(bg, bg_fg, options)


# book/using.md, line 511
def prediction_paths(out_dir: str | os.PathLike, name: str, figure: bool = True) -> dict[str, Path]:
    """The files :func:`save_prediction` writes for the pair ``name``: ``NAME_mask.png``,
    ``NAME_depth.png`` and, with ``figure``, ``NAME_figure.png``, in ``out_dir``."""
    kinds = ("mask", "depth", "figure") if figure else ("mask", "depth")
    return {kind: Path(out_dir) / f"{name}_{kind}.png" for kind in kinds}


def save_prediction(result: PredictionResult, out_dir: str | os.PathLike, name: str,
                    bg_fg: ImageInput | None = None, index: int | None = None) -> dict[str, Path]:
    """Write ``NAME_mask.png`` (8-bit, 0 or 255), ``NAME_depth.png`` (16-bit gray, 0 near, 65535 at
    20 m) and, given ``bg_fg``, ``NAME_figure.png`` (side by side, :func:`dsnet.plots.plot_result`)
    into ``out_dir``. The files appear together, whole, or not at all (each written to a temporary
    name, then all renamed: :func:`dsnet.files.atomic_write_group`); existing files of those names
    are replaced."""
    from matplotlib.figure import Figure
    from PIL import Image

    pick = (lambda a: a) if index is None else (lambda a: a[index])
    paths = prediction_paths(out_dir, name, figure=bg_fg is not None)
    mask = Image.fromarray(pick(result.mask).astype(np.uint8) * 255)
    depth = Image.fromarray((pick(result.depth) * 65535).round().astype(np.uint16))
    writes = {
        # zlib level 1: files a few percent larger than PIL's default level 6, written much faster
        paths["mask"]: lambda tmp: mask.save(tmp, format="PNG", compress_level=1),
        paths["depth"]: lambda tmp: depth.save(tmp, format="PNG", compress_level=1),
    }
    if bg_fg is not None:
        fig = Figure(figsize=(9, 3.2))
        plot_result(bg_fg, result, index or 0, axes=fig.subplots(1, 3))
        fig.tight_layout()
        writes[paths["figure"]] = lambda tmp: fig.savefig(tmp, format="png", dpi=100)
    atomic_write_group(writes)
    return paths


def predict_files(predictor: Predictor, pairs: list[tuple[Path, Path]], out: str | os.PathLike,
                  options: PredictOptions | None = None, *, figures: bool = True, skip_existing: bool = False,
                  show_progress: bool = False) -> tuple[PredictionResult | None, int]:
    """Predict each ``(BG, BG-FG)`` file pair in turn with ``options`` (None: the defaults of
    :class:`PredictOptions`) and save its outputs into ``out`` with :func:`save_prediction`, named
    after BG-FG's stem. ``skip_existing``: leave out the pairs whose
    outputs are all there already (a folder can be continued after an interruption). Returns the
    last :class:`PredictionResult` (None if every pair was skipped) and the number of pairs
    written; a failure is a ValueError that says how many pairs were written."""
    from dsnet.progress import progress

    result, written = None, 0
    todo = [(bg, bg_fg) for bg, bg_fg in pairs if not (skip_existing and all(
        path.exists() for path in prediction_paths(out, bg_fg.stem, figures).values()))]
    for bg, bg_fg in progress(todo, desc="predict", unit="pair", disable=not show_progress):
        try:
            result = predictor(bg, bg_fg, options)
            save_prediction(result, out, bg_fg.stem, bg_fg=bg_fg if figures else None)
        except (ValueError, TypeError, OSError) as error:
            raise ValueError(f"{shown(bg_fg.name)}: {str(error).splitlines()[0]} ({written} of {len(todo)} "
                             f"pair(s) written to {shown(out)})") from None
        written += 1
    return result, written


# book/using.md, line 659
def shift_image(images: Tensor, dy: int, dx: int) -> Tensor:
    """``images`` ``(N, C, H, W)`` moved ``dy`` pixels down and ``dx`` right, the uncovered strip
    repeating the edge; the same shape."""
    height, width = images.shape[-2:]
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return images
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    return padded[..., pad - dy:pad - dy + height, pad - dx:pad - dx + width]


def estimate_shift(image: Tensor, reference: Tensor) -> tuple[int, int]:
    """The whole-pixel ``(dy, dx)`` by which ``image`` ``(C, H, W)`` must move to line up with
    ``reference`` (same shape), by phase correlation."""
    height, width = image.shape[-2:]
    hann = functools.partial(torch.hann_window, periodic=False, dtype=torch.float32)  # whatever the default dtype
    window = hann(height)[:, None] * hann(width)
    a, b = ((x.float().mean(0) - x.float().mean()) * window for x in (image, reference))
    cross = torch.fft.rfft2(b) * torch.fft.rfft2(a).conj()
    peak = int(torch.fft.irfft2(cross / cross.abs().clamp(min=1e-12), s=(height, width)).argmax())
    dy, dx = divmod(peak, width)
    return (dy - height if dy > height // 2 else dy), (dx - width if dx > width // 2 else dx)


def exposure_gain(image: Tensor, reference: Tensor, step: float = 0.005) -> Tensor:
    """One gain per channel ``(C,)`` that brings ``image`` ``(C, H, W)`` to the exposure of
    ``reference``: the most common ratio of their pixels (the peak of a histogram of log ratios in
    bins of ``step``, one bin centred on 1), over the pixels neither dark nor clipped in both.
    The background, whose pixels share the ratio, makes the peak wherever the foreground's
    scattered ratios fall; 1 exactly where the two photos agree."""
    usable = (image > 0.02) & (reference > 0.02) & (image < 0.98) & (reference < 0.98)
    logs = torch.log(reference.clamp(min=0.02) / image.clamp(min=0.02))
    bins = round(1.0 / step)                      # log ratios within +-1: gains from 0.37 to 2.7
    tent = torch.tensor([[[1.0, 2.0, 3.0, 2.0, 1.0]]], dtype=logs.dtype)   # symmetric: one peak stays put
    gains = torch.ones(image.shape[0], dtype=image.dtype)
    for c in range(image.shape[0]):
        values = logs[c][usable[c]]
        if values.numel() >= 64:
            counts = torch.histc(values, bins=2 * bins + 1, min=-(bins + 0.5) * step, max=(bins + 0.5) * step)
            smooth = torch.nn.functional.conv1d(counts[None, None], tent, padding=2)[0, 0]
            gains[c] = math.exp((int(smooth.argmax()) - bins) * step)
    return gains


def _shifted_if_closer(image: Tensor, reference: Tensor, dy: int, dx: int, max_shift: float) -> Tensor:
    height, width = image.shape[-2:]
    if (dy, dx) == (0, 0) or abs(dy) > max_shift * height or abs(dx) > max_shift * width:
        return image
    moved, m = shift_image(image[None], dy, dx)[0], max(abs(dy), abs(dx))
    inner = (slice(None), slice(m, height - m), slice(m, width - m))
    closer = (moved[inner] - reference[inner]).abs().mean() < (image[inner] - reference[inner]).abs().mean()
    return moved if closer else image


def align_to(bg: Tensor, bg_fg: Tensor, max_shift: float = 0.1) -> Tensor:
    """``bg`` ``(N, 3, H, W)`` in [0, 1] lined up with ``bg_fg`` (same shape): moved by the shift
    :func:`estimate_shift` finds, then scaled by :func:`exposure_gain`. A shift is kept only if it
    is at most ``max_shift`` of each side (a small camera movement) and brings the two photos
    closer, away from the border strip it uncovers: phase correlation on flat, untextured
    pictures can peak elsewhere. A pair that already lines up comes back unchanged."""
    aligned = []
    for image, reference in zip(bg, bg_fg):
        moved = _shifted_if_closer(image, reference, *estimate_shift(image, reference), max_shift)
        gain = exposure_gain(moved, reference)
        aligned.append(moved if bool((gain == 1).all()) else (moved * gain[:, None, None]).clamp(0, 1))
    return torch.stack(aligned)

# Generated from book/using.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
"""Predictions on your own images: file paths, PIL images, numpy arrays or tensors of any size
in; the foreground's mask and the scene's depth out, at the input's own size."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsnet.data import normalize
from dsnet.io import (CheckpointError, atomic_write, load_checkpoint, load_pretrained, load_state_into,
                      pretrained_files, read_weights)
from dsnet.shapes import DIVISOR, MIN_SIZE, check_input_size


ImageInput = Union[str, os.PathLike, "PIL.Image.Image", np.ndarray, Tensor, list, tuple]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image file at ``path``, upright (EXIF orientation applied), as float32 ``H x W x 3`` in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        with Image.open(path) as image:
            return pil_to_array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path} is not an image that PIL can read ({type(error).__name__})") from None


def oriented_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file as displayed (after EXIF rotation), from its header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            rotated = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # orientation tags that swap the axes
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path} is not an image that PIL can read ({type(error).__name__})") from None
    return (width, height) if rotated else (height, width)


def pil_to_array(image) -> np.ndarray:
    """A PIL image of any mode, upright, as float32 ``H x W x 3`` in [0, 1]."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16L", "I;16B", "I"):       # 16-bit grayscale (PNG, TIFF)
        gray = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0, 1)[..., None], 3, axis=2)
    if image.mode == "F":
        return _checked_float(np.repeat(np.asarray(image, dtype=np.float32)[..., None], 3, axis=2), "image")
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _checked_float(x, name: str):
    """Float pixels must already be in [0, 1]: 0-255 floats are the most common silent mistake."""
    low, high = float(x.min()), float(x.max())
    if not (math.isfinite(low) and math.isfinite(high)) or low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"{name}: float pixels must be in [0, 1], got values from {low:.4g} to {high:.4g}"
                         + (" (divide 0-255 images by 255, or pass uint8)" if high > 1.5 else ""))
    return x.clip(0, 1)


def _to_unit(t: Tensor, name: str) -> Tensor:
    """Pixel values of any supported dtype as float32 in [0, 1]."""
    if t.dtype == torch.bool:
        return t.float()
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    if t.is_floating_point():
        return _checked_float(t.float(), name)
    if t.is_complex():
        raise TypeError(f"{name}: complex pixels are not an image")
    low, high = int(t.min()), int(t.max())
    if low < 0 or high > 255:
        raise ValueError(f"{name}: integer pixels must be 0-255 (or uint16 0-65535), got {low} to {high}")
    return t.float() / 255.0


def _to_rgb(t: Tensor, name: str) -> Tensor:
    """``(N, C, H, W)`` with 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels -> RGB."""
    channels = t.shape[1]
    if channels in (1, 2):
        return t[:, :1].expand(-1, 3, -1, -1)
    if channels in (3, 4):
        return t[:, :3]
    raise ValueError(f"{name}: expected 1 to 4 channels (gray, gray + alpha, RGB, RGBA), got {channels} in shape "
                     f"{tuple(t.shape)}")


def _from_numpy(x: np.ndarray, name: str) -> tuple[Tensor, bool]:
    if x.dtype == np.uint16:
        x = x.astype(np.float32) / 65535.0
    elif x.dtype.kind not in "biuf":
        raise TypeError(f"{name}: numpy dtype {x.dtype} is not an image type (use uint8, uint16 or float)")
    if x.ndim == 2:
        x, batched = x[None, :, :, None], False
    elif x.ndim == 3:
        if x.shape[2] > 4:
            raise ValueError(f"{name}: numpy images are H x W x C (channels last), got shape {x.shape}"
                             + ("; for C x H x W use x.transpose(1, 2, 0)" if x.shape[0] in (1, 3, 4) else ""))
        x, batched = x[None], False
    elif x.ndim == 4:
        if x.shape[3] > 4:
            raise ValueError(f"{name}: numpy batches are N x H x W x C (channels last), got shape {x.shape}")
        batched = True
    else:
        raise ValueError(f"{name}: expected a 2-, 3- or 4-D numpy array, got shape {x.shape}")
    x = np.ascontiguousarray(x) if x.flags.writeable else np.array(x)  # torch wants writable memory
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    return _to_rgb(_to_unit(t, name), name), batched


def _from_tensor(t: Tensor, name: str) -> tuple[Tensor, bool]:
    if t.dim() == 2:
        t, batched = t[None, None], False
    elif t.dim() == 3:
        if t.shape[0] > 4:
            raise ValueError(f"{name}: tensor images are C x H x W (channels first), got shape {tuple(t.shape)}"
                             + ("; for H x W x C use t.permute(2, 0, 1)" if t.shape[2] in (1, 3, 4) else ""))
        t, batched = t[None], False
    elif t.dim() == 4:
        batched = True
    else:
        raise ValueError(f"{name}: expected a 2-, 3- or 4-D tensor, got shape {tuple(t.shape)}")
    return _to_rgb(_to_unit(t.detach(), name), name), batched


def as_images(x: ImageInput, name: str = "image") -> tuple[Tensor, bool]:
    """``x`` as a float32 ``(N, 3, H, W)`` tensor in [0, 1], and whether it was a batch.

    Raises ``TypeError`` for an unsupported type, ``ValueError`` for an unsupported shape or
    range, ``FileNotFoundError`` for a missing file."""
    from PIL import Image

    if isinstance(x, (str, os.PathLike)):
        return torch.from_numpy(read_image(x)).permute(2, 0, 1)[None], False
    if isinstance(x, Image.Image):
        return torch.from_numpy(pil_to_array(x)).permute(2, 0, 1)[None], False
    if isinstance(x, np.ndarray):
        return _from_numpy(x, name)
    if isinstance(x, Tensor):
        return _from_tensor(x, name)
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is an empty {type(x).__name__}")
        items = []
        for i, item in enumerate(x):
            images, batched = as_images(item, f"{name}[{i}]")
            if batched:
                raise ValueError(f"{name}[{i}] is a batch; a list holds single images")
            items.append(images)
        sizes = sorted({tuple(t.shape[2:]) for t in items})
        if len(sizes) > 1:
            raise ValueError(f"{name}: the images of a list must have one size, got "
                             + ", ".join(f"{h}x{w}" for h, w in sizes) + "; predict them one at a time")
        return torch.cat([t.to(items[0].device) for t in items]), True
    raise TypeError(f"{name} must be a file path, PIL image, numpy array or torch tensor (or a list of them), "
                    f"not {type(x).__name__}")


SizeSpec = Union[None, str, int, tuple]


def _round_size(n: float) -> int:
    return max(MIN_SIZE, round(n / DIVISOR) * DIVISOR)


def model_size(height: int, width: int, size: SizeSpec = None, train_size: int | None = None) -> tuple[int, int]:
    """The ``(H, W)`` the network sees for a ``height x width`` input.

    ``size``: None (``"trained"`` when ``train_size`` is known, else ``"native"``); ``"native"``
    (the nearest multiple of 32, at least 64, per side); ``"trained"`` (scaled to the area of a
    ``train_size`` square, aspect ratio kept, each side rounded to a multiple of 32); an int (a
    square) or an ``(H, W)`` pair, which must be valid sizes."""
    if size is None:
        size = "trained" if train_size else "native"
    if size == "native":
        return _round_size(height), _round_size(width)
    if size == "trained":
        if not train_size:
            raise ValueError("size='trained' needs a model whose training size is known "
                             "(a checkpoint or the shipped weights); pass size='native' or a size")
        scale = train_size / math.sqrt(height * width)
        return _round_size(height * scale), _round_size(width * scale)
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size)):
        raise ValueError(f"size must be None, 'native', 'trained', an int or an (H, W) pair, not {size!r}")
    check_input_size(*size)
    return int(size[0]), int(size[1])


def plan_sizes(height: int, width: int, size: SizeSpec = None,
               train_size: int | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(mask size, depth size)``: the ``(H, W)`` the network sees for each output.

    The default (``size=None``) with a known training size predicts the depth at the training
    scale and the mask at the native size (at most ``MAX_SIDE`` pixels on the longer side), or at
    the training scale when the input is smaller than that: each output from the scale that
    measured best for it, in one pass or two. Any other ``size`` is one pass for both, as
    :func:`model_size` says."""
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


MAX_SIDE = 1024  # the default's native pass: longer side at most this (memory and time grow with the area)


def _capped(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, MAX_SIDE / max(height, width))
    return _round_size(height * scale), _round_size(width * scale)


def training_size(metadata: dict[str, Any]) -> int | None:
    """The image size a model finished training at, from a checkpoint's or weights file's metadata:
    ``train_size`` or ``image_size`` (int or text), or the last stage of ``config`` (dict or JSON)."""
    for key in ("train_size", "image_size"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    config = metadata.get("config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return None
    if isinstance(config, dict) and config.get("stages"):
        try:
            return int(config["stages"][-1][0])
        except (TypeError, ValueError, IndexError, KeyError):
            return None
    return None


ModelSource = Union[None, str, os.PathLike, nn.Module, "Predictor"]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _pretrained_size() -> int | None:
    """The training size of the shipped weights: from their own metadata, else from the manifest."""
    from safetensors import safe_open

    files = pretrained_files()
    with safe_open(str(files["weights"]), framework="pt") as f:
        size = training_size(f.metadata() or {})
    if size is None:
        try:
            size = training_size(json.loads(files["manifest"].read_text()))
        except (OSError, ValueError):
            pass
    return size


def _load_file(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    from dsnet.model import DSResNet

    if path.is_dir():
        path = path / "best.pt"
    if path.suffix == ".safetensors":
        tensors, metadata = read_weights(path)
    else:
        metadata = load_checkpoint(path)
        if not isinstance(metadata.get("model"), dict):
            raise CheckpointError(f"{path} is a dsnet checkpoint without model weights")
        tensors = metadata["model"]
    return load_state_into(DSResNet(), tensors, str(path)), metadata


@dataclass
class Predictor:
    """A model ready to predict: in eval mode on ``device``, with the size it was trained at."""

    model: nn.Module
    device: torch.device
    train_size: int | None = None
    source: str = "module"

    def __call__(self, bg: ImageInput, bg_fg: ImageInput, *, size: SizeSpec = None, batch_size: int = 16,
                 threshold: float = 0.5) -> PredictionResult:
        return _predict(self, bg, bg_fg, size=size, batch_size=batch_size, threshold=threshold)


def load_predictor(model: ModelSource = None, device: str | torch.device | None = None) -> Predictor:
    """A :class:`Predictor` from a checkpoint path (or its folder), a ``.safetensors`` file, a
    model, or None for the shipped pretrained weights. ``device``: default CUDA when available
    (a model you pass stays where it is unless ``device`` is given)."""
    if isinstance(model, Predictor):
        if device is None or torch.device(device) == model.device:
            return model
        return Predictor(model.model.to(device), torch.device(device), model.train_size, model.source)
    if isinstance(model, nn.Module):
        if device is not None:
            model.to(device)
        first = next(model.parameters(), None)
        return Predictor(model, first.device if first is not None else torch.device("cpu"), None, "module")
    device = torch.device(device) if device is not None else default_device()
    if model is None:
        return Predictor(load_pretrained(device), device, _pretrained_size(), "pretrained")
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a checkpoint path, a DSResNet, a Predictor or None, not {type(model).__name__}")
    net, metadata = _load_file(Path(model))
    return Predictor(net.to(device).eval(), device, training_size(metadata), str(model))


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


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _predict(predictor: Predictor, bg: ImageInput, bg_fg: ImageInput, *, size: SizeSpec, batch_size: int,
             threshold: float) -> PredictionResult:
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    (bgs, bg_batched), (fgs, fg_batched) = as_images(bg, "bg"), as_images(bg_fg, "bg_fg")
    if len(bgs) != len(fgs):
        raise ValueError(f"bg has {len(bgs)} images but bg_fg has {len(fgs)}; they come in pairs")
    if bgs.shape[2:] != fgs.shape[2:]:
        raise ValueError(f"bg is {bgs.shape[2]}x{bgs.shape[3]} pixels but bg_fg is {fgs.shape[2]}x{fgs.shape[3]}: "
                         "BG and BG-FG must show the same view at the same size")
    height, width = bgs.shape[2:]
    mask_size, depth_size = plan_sizes(height, width, size, predictor.train_size)
    model, device = predictor.model, predictor.device
    dtype = next(model.parameters()).dtype
    was_training, parts = model.training, []
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(bgs), batch_size):
                pair = {"bg": bgs[start:start + batch_size].to(device, dtype),
                        "bg_fg": fgs[start:start + batch_size].to(device, dtype)}
                outputs = {}
                for net_size in dict.fromkeys((mask_size, depth_size)):  # one pass, or two
                    scaled = normalize({k: _resize(v, net_size) for k, v in pair.items()})
                    outputs[net_size] = model(scaled["bg"], scaled["bg_fg"])
                logits = [_resize(outputs[depth_size].depth.float(), (height, width)),
                          _resize(outputs[mask_size].mask.float(), (height, width))]
                logits = torch.cat(logits, dim=1)
                parts.append(torch.sigmoid(logits).cpu())
    finally:
        model.train(was_training)
    probs = torch.cat(parts).numpy()
    depth, mask_prob = probs[:, 0], probs[:, 1]
    if not (bg_batched or fg_batched):
        depth, mask_prob = depth[0], mask_prob[0]
    return PredictionResult(mask=mask_prob > threshold, mask_prob=mask_prob, depth=depth, mask_size=mask_size,
                            depth_size=depth_size)


def predict(bg: ImageInput, bg_fg: ImageInput, model: ModelSource = None, *, size: SizeSpec = None,
            device: str | torch.device | None = None, batch_size: int = 16,
            threshold: float = 0.5) -> PredictionResult:
    """The foreground's mask and the scene's depth for BG ``bg`` and BG-FG ``bg_fg``.

    Inputs: file paths, PIL images, numpy arrays (``H x W x C`` or ``N x H x W x C``), tensors
    (``C x H x W`` or ``N x C x H x W``) or lists of them, any size, values in [0, 1] (floats) or
    0-255 (uint8). ``model``: a checkpoint, a ``.safetensors`` file, a ``DSResNet``, a
    :class:`Predictor`, or None for the shipped weights. ``size``: see :func:`plan_sizes`.
    Returns a :class:`PredictionResult` at the input's size."""
    return load_predictor(model, device)(bg, bg_fg, size=size, batch_size=batch_size, threshold=threshold)


def plot_prediction(bg_fg: ImageInput, result: PredictionResult, index: int = 0, axes=None, truth=None):
    """BG-FG, the mask probability and the depth side by side (and the true mask and depth when
    ``truth`` has them); draws into ``axes`` if given. Returns the axes."""
    image = as_images(bg_fg, "bg_fg")[0]
    image = image[min(index, len(image) - 1)].permute(1, 2, 0).cpu().numpy()
    pick = (lambda a: a[index]) if result.mask.ndim == 3 else (lambda a: a)
    panels = [("BG-FG", image, None), ("mask probability", pick(result.mask_prob), "gray"),
              ("depth (near = dark)", pick(result.depth), "magma")]
    if truth is not None:
        panels += [("true mask", truth["mask"], "gray"), ("true depth", truth["depth"], "magma")]
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
    for ax, (title, pixels, cmap) in zip(axes, panels):
        ax.imshow(pixels, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def save_prediction(result: PredictionResult, out_dir: str | os.PathLike, name: str,
                    bg_fg: ImageInput | None = None, index: int | None = None) -> dict[str, Path]:
    """Write ``NAME_mask.png`` (8-bit, 0 or 255), ``NAME_depth.png`` (16-bit gray, 0 near, 65535 at
    20 m) and, given ``bg_fg``, ``NAME_figure.png`` (side by side) into ``out_dir``. Each file
    appears whole or not at all (written to a temporary name, then renamed)."""
    from matplotlib.figure import Figure
    from PIL import Image

    pick = (lambda a: a) if index is None else (lambda a: a[index])
    out = Path(out_dir)
    mask = Image.fromarray(pick(result.mask).astype(np.uint8) * 255)
    depth = Image.fromarray((pick(result.depth) * 65535).round().astype(np.uint16))
    written = {
        "mask": atomic_write(out / f"{name}_mask.png", lambda tmp: mask.save(tmp, format="PNG")),
        "depth": atomic_write(out / f"{name}_depth.png", lambda tmp: depth.save(tmp, format="PNG")),
    }
    if bg_fg is not None:
        fig = Figure(figsize=(9, 3.2))
        plot_prediction(bg_fg, result, index or 0, axes=fig.subplots(1, 3))
        fig.tight_layout()
        written["figure"] = atomic_write(out / f"{name}_figure.png",
                                         lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return written

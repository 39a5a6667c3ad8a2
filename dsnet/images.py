"""Images in, float tensors out: file paths, PIL images, numpy arrays and tensors of any layout
and pixel type become float32 RGB in [0, 1], one image at a time and resized as early as possible.

Hand-written infrastructure below the chapters (it imports no chapter module): prediction, the
command line and the plots all read images through it.

The largest image taken is :data:`MAX_PIXELS` (8192 x 8192). Predictions come back at the input's
own size, as two float32 maps and a boolean mask: 9 bytes a pixel, 0.6 GB at the limit, plus a
transient float copy of each image while it is decoded. The network itself sees at most 1024 pixels
a side by default, so a larger photo costs memory and time without improving the answer (a
48-megapixel phone photo, 8000 x 6000, is within the limit). Larger inputs are refused from their
header or shape, before any pixel is decoded or converted.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dsnet.files import shown

if TYPE_CHECKING:
    import PIL.Image

MAX_PIXELS = 8192 * 8192
"""The most pixels (height x width) of one image; see the module's docstring for why."""

UNSIGNED_WIDE = (torch.uint16,) if hasattr(torch, "uint16") else ()
"""The 16-bit unsigned tensor type (torch >= 2.3), read as a 16-bit image, as numpy's uint16 is."""

ImageInput = Union[str, os.PathLike, "PIL.Image.Image", np.ndarray, Tensor, list, tuple]
Size = tuple[int, int]


def check_pixels(height: int, width: int, name: str) -> None:
    """ValueError, in one sentence, for an image with no pixels or more than :data:`MAX_PIXELS`."""
    if height < 1 or width < 1:
        raise ValueError(f"{name} is {height}x{width} pixels: an image needs at least one pixel")
    if height * width > MAX_PIXELS:
        side = math.isqrt(MAX_PIXELS)
        raise ValueError(f"{name} is {height}x{width} pixels, more than dsnet takes ({MAX_PIXELS:,} pixels, "
                         f"e.g. {side}x{side}); scale it down first")


def _unreadable(path, error: BaseException) -> ValueError:
    reason = shown(str(error).strip().splitlines()[0][:120]) if str(error).strip() else ""
    return ValueError(f"{shown(path)} is not an image that PIL can read ({type(error).__name__}"
                      + (f": {reason})" if reason else ")"))


@contextmanager
def open_image(path: str | os.PathLike) -> Iterator[Any]:
    """The PIL image at ``path``, header read, pixels not yet decoded. ``FileNotFoundError`` for
    a missing file, ``ValueError`` for one that is not an image or that PIL finds too large."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{shown(path)} does not exist" if not path.exists() else f"{shown(path)} is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        count = f"{int(pixels[1]):,} pixels" if pixels else "too many pixels for PIL"
        raise ValueError(f"{shown(path)} has {count}, more than dsnet takes ({MAX_PIXELS:,}); scale it down first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise _unreadable(path, error) from None
    with image:
        try:
            yield image
        except (OSError, SyntaxError) as error:  # damaged data found while reading it (EXIF, pixels)
            raise _unreadable(path, error) from None


def _oriented_by_reader(image) -> bool:
    """Whether PIL's reader turns this image upright itself: recent Pillow's TIFF reader reports the
    displayed size in the header and applies the orientation tag while it loads the pixels."""
    tags = getattr(image, "tag_v2", None)
    if tags is None or 256 not in tags or 257 not in tags:
        return False
    return tuple(image.size) != (tags[256], tags[257])      # stored width, height


def _rotated(image) -> bool:
    """Whether the EXIF orientation swaps the axes of the image as PIL holds it (tags 5 to 8, left
    for us to apply)."""
    return image.getexif().get(0x0112, 1) in (5, 6, 7, 8) and not _oriented_by_reader(image)


def _displayed_size(image) -> Size:
    width, height = image.size
    return (width, height) if _rotated(image) else (height, width)


def oriented_size(path: str | os.PathLike) -> Size:
    """``(height, width)`` of an image file as displayed (after EXIF rotation), from its header only."""
    with open_image(path) as image:
        return _displayed_size(image)


def check_image(path: str | os.PathLike) -> Size:
    """``(height, width)`` of an image file as displayed, after checking its size and decoding all
    of it, so that a truncated or damaged file is found now rather than when its turn comes.
    A JPEG is decoded at 1/8 scale: fast, and the decoder still reads every byte."""
    with open_image(path) as image:
        size = _displayed_size(image)
        check_pixels(*size, shown(path))
        try:
            image.draft(image.mode, (1, 1))
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise _unreadable(path, error) from None
        if image.mode == "F":
            _check_range(*image.getextrema(), shown(path), floating=True)
        if image.mode == "I":
            integer_full_scale(image, shown(path))
    return size


def read_image(path: str | os.PathLike, at_least: Size | None = None) -> np.ndarray:
    """The image file at ``path``, upright (EXIF orientation applied), as float32 ``H x W x 3`` in
    [0, 1]. With ``at_least`` (an ``(H, W)``), an image at least twice as large may come back
    reduced while it is decoded (JPEG's DCT scaling, PIL's box reduce) by an integer factor that
    divides both of its sides, never below that size."""
    with open_image(path) as image:
        check_pixels(*_displayed_size(image), shown(path))
        try:
            image = _decoded(image, at_least, draft=True)
        except (OSError, SyntaxError, ValueError) as error:
            raise _unreadable(path, error) from None
        return pil_to_array(image, name=shown(path))


def _decoded(image, at_least: Size | None, draft: bool):
    """``image`` loaded, reduced toward ``at_least`` (displayed orientation) by the largest integer
    factor that divides both sides, so that the reduced pixels cover the image exactly; ``draft``:
    let a JPEG decode at 1/2, 1/4 or 1/8 scale (only for an image we opened: it changes the object)."""
    if at_least is not None:
        height, width = at_least[::-1] if _rotated(image) else at_least
        if draft and image.format == "JPEG":
            factor = _exact_factor(image.size, (width, height), (8, 4, 2))
            image.draft(image.mode, (image.size[0] // factor, image.size[1] // factor))
        factor = _exact_factor(image.size, (width, height), range(min(image.size[0] // width,
                                                                      image.size[1] // height), 1, -1))
        if factor > 1 and image.mode in ("L", "RGB", "RGBA"):
            image = image.reduce(factor)
    image.load()
    return image


def _exact_factor(size: Size, target: Size, candidates) -> int:
    """The first of ``candidates`` that divides both sides of ``size`` (W, H) and leaves at least
    ``target`` (W, H), else 1."""
    return next((f for f in candidates if size[0] % f == 0 and size[1] % f == 0
                 and size[0] // f >= target[0] and size[1] // f >= target[1]), 1)


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _stored_bits(image) -> int | None:
    """The bits per pixel that an integer image's file format says it holds, if it says."""
    if image.format == "PNG":                       # PNG's deepest grayscale is 16-bit
        return 16
    bits = getattr(image, "tag_v2", {}).get(258)    # TIFF's BitsPerSample
    bits = bits[0] if isinstance(bits, tuple) else bits
    return bits if bits in (8, 16) else None


def integer_full_scale(image, name: str = "image") -> int:
    """The value that means white in a 32-bit integer image (PIL mode ``I``): 255 or 65535, from the
    bit depth its file format states, else from what it holds (values up to 255: 8-bit, up to
    65535: 16-bit). ValueError for negative values or values no 16-bit image holds."""
    low, high = image.getextrema()
    bits = _stored_bits(image) or (8 if high <= 255 else 16)
    if low < 0 or high > 2 ** bits - 1:
        raise ValueError(f"{name}: integer pixels from {low} to {high} are not an 8- or 16-bit image "
                         f"(expected 0-255 or 0-65535); scale it into one of those ranges first")
    return 2 ** bits - 1


def pil_to_array(image, at_least: Size | None = None, name: str = "image") -> np.ndarray:
    """A PIL image of any mode, upright, as float32 ``H x W x 3`` in [0, 1] (reduced toward
    ``at_least`` as :func:`read_image` says). 16-bit modes are divided by 65535; a 32-bit integer
    image by what :func:`integer_full_scale` finds; float images must already be in [0, 1]."""
    from PIL import ImageOps

    if at_least is not None:
        image = _decoded(image, at_least, draft=False)
    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        scale = 65535 if image.mode != "I" else integer_full_scale(image, name)
        gray = np.asarray(image, dtype=np.float32) / scale
        return np.repeat(np.clip(gray, 0, 1)[..., None], 3, axis=2)
    if image.mode == "F":
        gray = np.asarray(image, dtype=np.float32)
        _check_range(float(gray.min()), float(gray.max()), name, floating=True)
        return np.repeat(gray.clip(0, 1)[..., None], 3, axis=2)
    if image.mode == "La":                          # premultiplied alpha: PIL converts it via LA only
        image = image.convert("LA")
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def resize(x: Tensor, size: Size) -> Tensor:
    """``(N, C, H, W)`` resized to ``size`` (bilinear, antialiased when shrinking), or ``x`` itself."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def _check_range(low: float, high: float, name: str, floating: bool) -> None:
    """Float pixels must be in [0, 1] (0-255 floats are the most common silent mistake), integer
    pixels 0-255."""
    if floating:
        if not (math.isfinite(low) and math.isfinite(high)) or low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(f"{name}: float pixels must be in [0, 1], got values from {low:.4g} to {high:.4g}"
                             + (" (divide 0-255 images by 255, or pass uint8)" if high > 1.5 else ""))
    elif low < 0 or high > 255:
        raise ValueError(f"{name}: integer pixels must be 0-255 (or uint16 0-65535), got {int(low)} to {int(high)}")


def _check_values(x: np.ndarray | Tensor, name: str) -> None:
    """The pixel type and range of a whole array or tensor, by reductions (no converted copy)."""
    if isinstance(x, Tensor):
        if x.is_complex():
            raise TypeError(f"{name}: complex pixels are not an image")
        if x.device.type == "meta":
            raise ValueError(f"{name} is a tensor on the meta device, which holds shapes but no pixels")
        if x.dtype in (torch.bool, torch.uint8) or x.dtype in UNSIGNED_WIDE:
            return
        floating = x.is_floating_point()
        try:
            low, high = (float(v) for v in torch.aminmax(x))
        except RuntimeError:                   # integer types without a kernel (uint32, uint64)
            low, high = (float(v) for v in torch.aminmax(x.to(torch.float64)))
    else:
        if x.dtype in (np.bool_, np.uint8, np.uint16):
            return
        floating = x.dtype.kind == "f"
        low, high = float(x.min()), float(x.max())
    _check_range(low, high, name, floating)


def _check_layout(shape: tuple[int, ...], name: str, kind: str) -> tuple[int, int, int, bool]:
    """``(count, height, width, batched)`` of a numpy array (channels last) or a tensor (channels
    first) of shape ``shape``; ValueError for any other layout."""
    numpy = kind == "numpy"
    what = "numpy array" if numpy else "tensor"
    if len(shape) not in (2, 3, 4):
        raise ValueError(f"{name}: expected a 2-, 3- or 4-D {what}, got shape {tuple(shape)}")
    batched = len(shape) == 4
    image = shape[1:] if batched else shape
    if len(image) == 2:
        height, width, channels = image[0], image[1], 1
    elif numpy:
        height, width, channels = image
    else:
        channels, height, width = image
    if numpy and channels > 4:
        hint = "; for C x H x W use x.transpose(1, 2, 0)" if not batched and shape[0] in (1, 3, 4) else ""
        raise ValueError(f"{name}: numpy {'batches are N x H x W x C' if batched else 'images are H x W x C'} "
                         f"(channels last), got shape {tuple(shape)}{hint}")
    if not numpy and channels > 4 and not batched:
        hint = "; for H x W x C use t.permute(2, 0, 1)" if shape[2] in (1, 3, 4) else ""
        raise ValueError(f"{name}: tensor images are C x H x W (channels first), got shape {tuple(shape)}{hint}")
    if channels < 1 or channels > 4:
        raise ValueError(f"{name}: expected 1 to 4 channels (gray, gray + alpha, RGB, RGBA), got {channels} "
                         f"in shape {tuple(shape)}")
    count = shape[0] if batched else 1
    if count < 1:
        raise ValueError(f"{name} is an empty batch (shape {tuple(shape)})")
    check_pixels(height, width, name)
    return count, height, width, batched


def _unit_rgb(t: Tensor) -> Tensor:
    """A ``(C, H, W)`` image of 1 to 4 channels and any supported dtype as a new float32
    ``(1, 3, H, W)`` tensor in [0, 1] on the CPU: gray repeated, alpha dropped; uint16 is 16-bit,
    other integers 8-bit."""
    t = t[:1].expand(3, -1, -1) if t.shape[0] in (1, 2) else t[:3]
    if t.dtype in UNSIGNED_WIDE:             # few kernels take uint16: widen before anything else
        return (t.to(torch.int32).to(torch.float32) / 65535.0)[None]
    if t.dtype == torch.bool:
        out = t.float()
    elif t.is_floating_point():
        out = t.to(torch.float32).clamp(0, 1)          # out of place: t may be the caller's own tensor
    else:
        out = t.to(torch.float32).div_(255)
    return out[None]


def _array_pixels(x: np.ndarray) -> Tensor:
    """One numpy image, ``H x W x C``, as :func:`_unit_rgb` says."""
    if x.dtype == np.uint16:
        return _unit_rgb(torch.from_numpy(x.astype(np.float32) / 65535.0).permute(2, 0, 1))
    x = np.ascontiguousarray(x) if x.flags.writeable else np.array(x)   # torch wants writable memory
    return _unit_rgb(torch.from_numpy(x).permute(2, 0, 1))


@dataclass
class Images:
    """Images whose count and size are known before any pixel is decoded: ``len(images)`` of
    them, each ``height x width`` (as displayed). :meth:`load` converts one at a time."""

    name: str
    items: list                 # per image: a Path, a PIL image, an H x W x C array or a C x H x W tensor
    height: int
    width: int
    batched: bool

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, sizes: Sequence[Size] = ()) -> list[Tensor]:
        """Image ``index`` as float32 ``(1, 3, h, w)`` in [0, 1], resized from its own pixels to
        each of ``sizes`` (none: one tensor at its own size). A file or PIL image at least twice
        the largest size is reduced while it is decoded, as :func:`read_image` says, so that its
        float copy is small; only this one image is converted at a time."""
        from PIL import Image

        item = self.items[index]
        sizes = list(sizes) or [(self.height, self.width)]
        largest = max(sizes, key=lambda s: s[0] * s[1])
        if isinstance(item, Path):
            image = torch.from_numpy(read_image(item, largest)).permute(2, 0, 1)[None]
        elif isinstance(item, Image.Image):
            image = torch.from_numpy(pil_to_array(item, largest, self.name)).permute(2, 0, 1)[None]
        elif isinstance(item, np.ndarray):
            image = _array_pixels(item)
        else:
            image = _unit_rgb(item)
        return [resize(image, size) for size in sizes]

    def batch(self, start: int, stop: int, sizes: Sequence[Size] = ()) -> list[Tensor]:
        """Images ``start:stop`` as one ``(n, 3, h, w)`` tensor per size, as :meth:`load` makes them."""
        loaded = [self.load(i, sizes) for i in range(start, min(stop, len(self)))]
        return [torch.cat(column) for column in zip(*loaded)]


def open_images(x: ImageInput, name: str = "image") -> Images:
    """``x`` as :class:`Images`: checked (type, layout, pixel range, size) without converting a pixel.

    Raises ``TypeError`` for an unsupported type, ``ValueError`` for an unsupported shape, range or
    size (more than :data:`MAX_PIXELS`, or none), ``FileNotFoundError`` for a missing file."""
    from PIL import Image

    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        height, width = oriented_size(path)
        check_pixels(height, width, shown(path))
        return Images(name, [path], height, width, False)
    if isinstance(x, Image.Image):
        height, width = _displayed_size(x)
        check_pixels(height, width, name)
        if x.mode == "F":
            _check_range(*x.getextrema(), name, floating=True)
        if x.mode == "I":
            integer_full_scale(x, name)
        return Images(name, [x], height, width, False)
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name}: numpy dtype {x.dtype} is not an image type (use uint8, uint16 or float)")
        _, height, width, batched = _check_layout(x.shape, name, "numpy")
        _check_values(x, name)
        x = x[:, :, None] if x.ndim == 2 else x
        return Images(name, list(x) if batched else [x], height, width, batched)
    if isinstance(x, Tensor):
        _, height, width, batched = _check_layout(tuple(x.shape), name, "tensor")
        _check_values(x, name)
        x = x.detach()[None] if x.dim() == 2 else x.detach()
        return Images(name, list(x) if batched else [x], height, width, batched)
    if isinstance(x, (list, tuple)):
        return _open_list(x, name)
    raise TypeError(f"{name} must be a file path, PIL image, numpy array or torch tensor (or a list of them), "
                    f"not {type(x).__name__}")


def _open_list(x: list | tuple, name: str) -> Images:
    if not x:
        raise ValueError(f"{name} is an empty {type(x).__name__}")
    parts = []
    for i, item in enumerate(x):
        part = open_images(item, f"{name}[{i}]")
        if part.batched:
            raise ValueError(f"{name}[{i}] is a batch; a list holds single images")
        parts.append(part)
    sizes = sorted({(p.height, p.width) for p in parts})
    if len(sizes) > 1:
        raise ValueError(f"{name}: the images of a list must have one size, got "
                         + ", ".join(f"{h}x{w}" for h, w in sizes) + "; predict them one at a time")
    return Images(name, [p.items[0] for p in parts], parts[0].height, parts[0].width, True)


def as_images(x: ImageInput, name: str = "image") -> tuple[Tensor, bool]:
    """``x`` as a float32 ``(N, 3, H, W)`` tensor in [0, 1] at its own size, and whether it was a
    batch. Everything in memory at once: for many or large images, :func:`open_images` instead."""
    images = open_images(x, name)
    return images.batch(0, len(images))[0], images.batched

# Generated from book/renderer.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/renderer.md, line 430
"""The pictures of the synthetic museum, all from matplotlib's sample data: the paintings, the
photographs that lie on its surfaces, and the noise table of its camera shots, each made on first
use and kept, per device, until :func:`clear_caches`."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

PAINTING_SIZE = 128


class DeviceCache:
    """Values made on first use and kept until :meth:`clear`: ``get(name, device, make)`` returns
    the value kept under ``name`` for ``device``, calling ``make()`` the first time (``"cuda"`` and
    ``"cuda:0"`` are kept apart). Every caller shares the values: treat them as read-only."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, torch.device], Any] = {}

    def get(self, name: str, device: torch.device | str, make: Callable[[], Any]) -> Any:
        key = (name, torch.device(device))
        if key not in self.kept:
            self.kept[key] = make()
        return self.kept[key]

    def clear(self) -> None:
        """Frees every kept value; the next ``get`` makes it again."""
        self.kept.clear()


CACHE = DeviceCache()      # every image and table of this module


def clear_caches() -> None:
    """Frees the renderer's kept images and tables (paintings, photographs, their banks and the
    noise table) on every device; the next render makes them again, equal to the bit. On a GPU,
    ``torch.cuda.empty_cache()`` then hands the memory back to the device."""
    CACHE.clear()


def _sample(name: str) -> str:
    """The path of one of matplotlib's sample data files."""
    from matplotlib import cbook

    return cbook.get_sample_data(name, asfileobj=False)


def _sample_rgb(name: str) -> np.ndarray:
    """One of matplotlib's sample pictures as RGB ``(H, W, 3)`` floats in [0, 1], what is
    transparent in it shown on a wall's off-white."""
    from PIL import Image

    im = Image.open(_sample(name)).convert("RGBA")
    canvas = Image.new("RGBA", im.size, (235, 230, 220, 255))
    return np.asarray(Image.alpha_composite(canvas, im).convert("RGB")) / 255.0


def _measured_images() -> tuple[np.ndarray, np.ndarray]:
    """matplotlib's two measured images, as stored: the elevation model of the Jacksboro fault
    ``(H, W)`` and an MRI slice ``(256, 256)`` as floats. Paintings and textures crop and colour
    them each their own way."""
    import gzip

    dem = np.load(_sample("jacksboro_fault_dem.npz"))["elevation"]
    with gzip.open(_sample("s1045.ima.gz")) as f:
        mri = np.frombuffer(f.read(), np.uint16).reshape(256, 256).astype(float)
    return dem, mri


def _shaded_relief(dem: np.ndarray) -> np.ndarray:
    """An elevation model ``(H, W)`` as hill-shaded RGB ``(H, W, 3)`` in [0, 1]."""
    import matplotlib
    from matplotlib.colors import LightSource

    return LightSource(azdeg=315, altdeg=45).shade(dem, matplotlib.colormaps["gist_earth"],
                                                   blend_mode="overlay")[..., :3]


def _load_paintings() -> tuple[list[np.ndarray], list[float]]:
    import matplotlib
    from matplotlib.colors import Normalize

    def cmap(values, name):
        return matplotlib.colormaps[name](Normalize()(values))[..., :3]

    topo = np.load(_sample("topobathy.npz"))["topo"]
    dem, mri = _measured_images()
    gauss = np.load(_sample("axes_grid/bivariate_normal.npy"))
    images = [
        _sample_rgb("grace_hopper.jpg"),
        _sample_rgb("Minduka_Present_Blue_Pack.png"),
        _sample_rgb("logo2.png"),
        cmap(topo[::-1], "terrain"),
        _shaded_relief(dem),
        cmap(mri, "bone"),
        cmap(gauss, "magma"),
        cmap(np.add.outer(np.sin(np.linspace(0, 9, 64)), np.cos(np.linspace(0, 7, 64))), "twilight"),
    ]
    return images, [im.shape[1] / im.shape[0] for im in images]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    return np.asarray(im.resize((size, size), Image.BILINEAR)) / 255.0


def painting_images() -> tuple[Tensor, Tensor]:
    """The paintings, ``(n, 128, 128, 3)`` floats in [0, 1], and their aspect ratios
    (width / height before resizing, float64 ``(n,)``), on the CPU. Loaded on the first call and
    kept until :func:`clear_caches`: treat them as read-only."""
    def make() -> tuple[Tensor, Tensor]:
        images, aspects = _load_paintings()
        pictures = torch.from_numpy(np.stack([_resize(im, PAINTING_SIZE) for im in images])).float()
        return pictures, torch.tensor(aspects, dtype=torch.float64)

    return CACHE.get("painting_images", "cpu", make)


def painting_bank(device: torch.device | str = "cpu") -> Tensor:
    """All paintings as one ``(3, n * 128 * 128)`` table on ``device``, for lookups by flat
    index; made once per device and kept until :func:`clear_caches`."""
    def make() -> Tensor:
        pictures, _ = painting_images()
        return pictures.permute(3, 0, 1, 2).reshape(3, -1).contiguous().to(device)

    return CACHE.get("painting_bank", device, make)


# book/renderer.md, line 1201
TEXTURE_SIZE, TEXTURE_LEVELS = 256, 4


def _load_photos() -> list[np.ndarray]:
    import matplotlib

    hopper = _sample_rgb("grace_hopper.jpg")
    # square crops (top row, left column, side): flag, face, uniform, medals, backdrop, whole portrait
    crops = [(0, 0, 160), (170, 170, 180), (420, 0, 180), (420, 250, 180), (100, 382, 130), (44, 0, 512)]
    photos = [hopper[r:r + n, c:c + n] for r, c, n in crops]
    dem, mri = _measured_images()
    photos.append(_shaded_relief(dem[:, 30:374]))
    photos.append(matplotlib.colormaps["bone"](mri[40:200, 50:210] / mri.max())[..., :3])
    return photos


def texture_images() -> Tensor:
    """The photographs for textures, ``(n, 256, 256, 4)`` on the CPU: RGB in [0, 1], then the
    luminance's z-score (mean 0, standard deviation 1 per photograph, clipped to +-3), the detail
    that a surface takes. Loaded on the first call and kept until :func:`clear_caches`: treat as
    read-only."""
    def make() -> Tensor:
        rgb = torch.from_numpy(np.stack([_resize(p, TEXTURE_SIZE) for p in _load_photos()])).float()
        lum = rgb @ torch.tensor([0.299, 0.587, 0.114])
        z = (lum - lum.mean((1, 2), keepdim=True)) / lum.std((1, 2), keepdim=True).clamp(min=1e-3)
        return torch.cat([rgb, z.clamp(-3, 3)[..., None]], -1)

    return CACHE.get("texture_images", "cpu", make)


def texture_bank(device: torch.device | str = "cpu") -> Tensor:
    """``texture_images()`` and three halvings of it (2 x 2 means: a mip map), level after level,
    as one flat ``(4, n * (256**2 + 128**2 + 64**2 + 32**2))`` table on ``device``; made once per
    device and kept until :func:`clear_caches`."""
    def make() -> Tensor:
        x, levels = texture_images().permute(3, 0, 1, 2), []
        for _ in range(TEXTURE_LEVELS):
            levels.append(x.reshape(4, -1))
            x = torch.nn.functional.avg_pool2d(x, 2)
        return torch.cat(levels, 1).contiguous().to(device)

    return CACHE.get("texture_bank", device, make)


# book/renderer.md, line 1408
NOISE_ROWS, NOISE_COLS = 4096, 1024   # the noise table: 3 x 1024 rows of 1024 pixels fit in it
NOISE_SEED = 20_240_601


def noise_bank(device: torch.device | str = "cpu") -> Tensor:
    """A table ``(NOISE_ROWS, NOISE_COLS)`` of standard normal numbers (float32), drawn on the CPU
    from a fixed seed, so the same on every device; made once per device and kept until
    :func:`clear_caches`."""
    def make() -> Tensor:
        values = np.random.default_rng(NOISE_SEED).standard_normal((NOISE_ROWS, NOISE_COLS), dtype=np.float32)
        return torch.from_numpy(values).to(device)

    return CACHE.get("noise_bank", device, make)

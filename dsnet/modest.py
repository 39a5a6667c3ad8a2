# Generated from book/renderer.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/renderer.md, line 1614
"""The MODEST Museum layout on disk: a resumable writer for the synthetic museum, and a
reader for a written folder or for the real download."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dsnet.files import atomic_write, atomic_write_text, probe_writable
from dsnet.images import open_image

if TYPE_CHECKING:
    from dsnet.scene import Realism

FOLDERS = ("bg", "bg_fg", "bg_fg_mask", "bg_fg_depth_map")
MARKER = ".dsnet-museum.json"


# book/renderer.md, line 1641
class ModestError(ValueError):
    """A MODEST folder that cannot be read or written as asked; the message names the file."""


def sample_names(index: int, fg_per_bg: int, width: int = 3) -> tuple[str, str, str, str]:
    """The four file names (no extension) of sample ``index``: its background, composite,
    mask and depth map, as ``file_map.txt`` lists them."""
    b, f = divmod(index, fg_per_bg)
    bg = f"bg{b:0{width}d}"
    fg = f"{bg}_fg{f:0{width}d}_00"
    return bg, fg, f"{fg}_mask", f"{fg}_depth_map"


def _to_uint8(x: Tensor) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] to an ``(H, W, C)`` or ``(H, W)`` uint8 array."""
    a = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


def _save_jpeg(path: Path, pixels: np.ndarray, quality: int) -> None:
    """Write to a hidden temporary name, then rename: a file is either whole or absent."""
    from PIL import Image

    atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="JPEG", quality=quality))


def _bbox(mask: Tensor) -> tuple[int, int, int, int]:
    """``x, y, width, height`` of the mask's non-zero pixels; zeros for an empty mask."""
    ys, xs = torch.nonzero(mask.reshape(mask.shape[-2:]) > 0.5, as_tuple=True)
    if len(xs) == 0:
        return 0, 0, 0, 0
    x0, y0 = int(xs.min()), int(ys.min())
    return x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1


# book/renderer.md, line 1684
def _read_marker(marker: Path) -> dict:
    """The settings recorded by the run that wrote ``marker``'s folder."""
    try:
        settings = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        settings = None
    if not isinstance(settings, dict):
        raise ModestError(f"{marker} is damaged, so the settings this folder was written with are "
                          "unknown; use a new folder (or delete this one)")
    return settings


def _check_folder(root: Path, settings: dict) -> None:
    """Refuse, before anything is written, a folder this run cannot or must not write to."""
    existing = root
    while not existing.exists():                 # ends at "/" or "."
        existing = existing.parent
    if not existing.is_dir():
        raise ModestError(f"cannot write to {root}: {existing} is a file, not a folder")
    try:
        probe_writable(existing)
    except OSError as error:
        raise ModestError(f"cannot write to {root}: {existing} is not writable ({error.strerror})") from None
    marker = root / MARKER
    if marker.exists():
        old = _read_marker(marker)
        if old != settings:
            changed = ", ".join(f"{k}={old.get(k)!r}" for k in {**old, **settings} if old.get(k) != settings.get(k))
            raise ModestError(f"{root} was written with other settings ({changed}); use a new folder")
    elif root.exists() and any(root.iterdir()):
        raise ModestError(f"{root} is not empty and was not written by dsnet; use a new or empty folder")


def _prepare(root: Path, settings: dict) -> None:
    """Create the folder and its marker, then the four image folders."""
    try:
        atomic_write_text(root / MARKER, json.dumps(settings, indent=1) + "\n")
        for folder in FOLDERS:
            (root / folder).mkdir(exist_ok=True)
    except OSError as error:
        raise ModestError(f"cannot write to {root}: {error.strerror or error}") from None


def _render_missing(root: Path, settings: dict, todo: list[int], paths: list[list[Path]], batch_size: int,
                    device: torch.device | str, progress: bool) -> dict[int, tuple[int, int, int, int]]:
    """Render and save the samples ``todo``; returns their foreground boxes. The folders and
    the marker are made once the first batch has rendered."""
    from dsnet.scene import museum_batch
    from tqdm.auto import tqdm

    s, boxes = settings, {}
    with tqdm(total=s["count"], initial=s["count"] - len(todo), desc="museum", unit="sample",
              disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            batch = museum_batch(chunk, s["size"], s["seed"], s["split"], s["fg_per_bg"], device,
                                 s.get("realism", "none"))
            if start == 0:
                _prepare(root, settings)
            for j, i in enumerate(chunk):
                p = paths[i]
                if not p[0].exists():              # the first sample of its background
                    _save_jpeg(p[0], _to_uint8(batch["bg"][j]), s["quality"])
                for path, key in zip(p[1:], ("bg_fg", "mask", "depth")):
                    _save_jpeg(path, _to_uint8(batch[key][j]), s["quality"])
                boxes[i] = _bbox(batch["mask"][j])
                bar.update(1)
    return boxes


def write_modest(out: str | os.PathLike, count: int, size: int = 224, seed: int = 0, fg_per_bg: int = 4,
                 split: str = "train", quality: int = 95, batch_size: int = 32,
                 device: torch.device | str = "cpu", progress: bool = True,
                 realism: Realism | bool | str | None = None) -> Path:
    """Render ``count`` samples of the synthetic museum into ``out`` in the MODEST Museum layout.

    Resumable: samples whose four files exist are kept (files appear only whole, by rename),
    the rest are rendered; ``file_map.txt`` and ``bbox.txt`` are written last. Refuses, before
    writing anything, a folder it cannot write to, a non-empty folder it did not create, and one
    created with other settings; ``size`` is at most ``dsnet.scene.MAX_SIZE``. ``realism`` is a
    ``dsnet.scene.Realism`` (or what ``Realism.of`` takes); it is recorded with the settings."""
    from dsnet.scene import Realism, render_problem

    root = Path(out)
    try:
        realism = Realism.of(realism)
    except (TypeError, ValueError) as error:
        raise ModestError(str(error)) from None
    problem = render_problem(size, split, fg_per_bg) or next((message for bad, message in (
        (count < 1, f"count must be 1 or more, not {count}"),
        (batch_size < 1, f"batch_size must be 1 or more, not {batch_size}"),
        (not 1 <= quality <= 100, f"quality must be from 1 to 100, not {quality}")) if bad), None)
    if problem is not None:
        raise ModestError(problem)
    settings = {"generator": "dsnet.scene", "count": count, "size": size, "seed": seed,
                "fg_per_bg": fg_per_bg, "split": split, "quality": quality}
    if realism != Realism():                     # recorded only when on: older folders stay valid
        settings["realism"] = str(realism)
    _check_folder(root, settings)
    for stale in root.glob("*/.*.tmp"):          # left by a run that was killed mid-write
        stale.unlink()
    width = max(3, len(str(max(count - 1, 0) // fg_per_bg)), len(str(fg_per_bg - 1)))
    names = [sample_names(i, fg_per_bg, width) for i in range(count)]
    paths = [[root / folder / f"{name}.jpeg" for folder, name in zip(FOLDERS, row)] for row in names]
    todo = [i for i in range(count) if not all(p.exists() for p in paths[i])]
    try:
        boxes = _render_missing(root, settings, todo, paths, batch_size, device, progress)
        for i in range(count):
            if i not in boxes:                   # kept from an earlier run: read its mask
                boxes[i] = _bbox(_read_image(paths[i][2], 1))
        atomic_write_text(root / "bbox.txt", "".join(
            f"{names[i][1]}.jpeg\t" + "\t".join(map(str, boxes[i])) + "\n" for i in range(count)))
        atomic_write_text(root / "file_map.txt", "".join("\t".join(n) + "\n" for n in names))
    except OSError as error:                     # e.g. a full disk
        raise ModestError(f"writing {root} failed: {error}") from None
    return root


# book/renderer.md, line 1811
@contextmanager
def _opened(path: Path, size: int | None = None) -> Iterator[Any]:
    """The image at ``path`` as :func:`dsnet.images.open_image` opens it (header read), checked to
    be ``size`` pixels square; any problem, also while its pixels are decoded in the block, is a
    :class:`ModestError` that names the file."""
    try:
        with open_image(path) as image:
            if size is not None and image.size != (size, size):
                raise ModestError(f"{path}: is {image.size[0]}x{image.size[1]}, expected {size}x{size}")
            yield image
    except FileNotFoundError:
        raise ModestError(f"{path}: missing") from None
    except ModestError:
        raise
    except Exception as error:                    # PIL's errors for damaged pixel data vary
        reason = str(error).removeprefix(f"{path} ")
        raise ModestError(f"{path}: not a readable image ({reason})") from None


KINDS = ("bg", "bg_fg", "mask", "depth")
LABELS = {"mask": "0 for the background and 255 for the foreground", "depth": "0 at the camera to 255 at 20 m or farther"}
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")


def _check_label_mode(path: Path, image, kind: str) -> None:
    """A mask or depth map must be an 8-bit image: a 16-bit or float one would be clipped to 8 bits
    on reading (every depth 1.0), so it is refused from its header."""
    if kind in LABELS and image.mode not in EIGHT_BIT_MODES:
        raise ModestError(f"{path}: a {kind} stored as a {image.mode!r} image (16-bit or float); MODEST "
                          f"{kind}s are 8-bit grayscale, {LABELS[kind]}: convert it to that")


def _label_pixels(path: Path, image, kind: str) -> np.ndarray:
    """A mask's or depth map's 8-bit gray pixels, refused when implausible: in colour (a colour
    map is not a depth map), or a mask that would read as empty (a 0/1 mask instead of 0/255)."""
    if image.mode not in ("1", "L"):
        rgb = np.asarray(image.convert("RGB")).astype(np.int16)
        if int(np.abs(rgb - rgb[..., :1]).max(initial=0)) > 24:     # JPEG's colour noise stays well below
            raise ModestError(f"{path}: the {kind} is in colour; MODEST {kind}s are grayscale, {LABELS[kind]}")
    gray = np.asarray(image.convert("L"))
    if kind == "mask" and 0 < int(gray.max(initial=0)) < 128:
        raise ModestError(f"{path}: mask values reach only {int(gray.max())}, so the mask would read as empty; "
                          f"masks are {LABELS['mask']} (a 0/1 mask needs multiplying by 255)")
    return gray


def _read_image(path: Path, channels: int, size: int | None = None, kind: str = "bg") -> Tensor:
    """An image file as a float ``(channels, H, W)`` tensor in [0, 1]; errors name the file. A
    ``kind`` of ``"mask"`` or ``"depth"`` is checked to be a plausible label first."""
    with _opened(path, size) as image:
        _check_label_mode(path, image, kind)
        if kind in LABELS:
            a = _label_pixels(path, image, kind)
        else:
            a = np.asarray(image.convert("RGB" if channels == 3 else "L"))
    t = torch.from_numpy(a.copy()).float() / 255
    return t.permute(2, 0, 1) if t.ndim == 3 else t[None]


def read_file_map(root: str | os.PathLike) -> list[tuple[str, str, str, str]]:
    """The lines of ``root/file_map.txt``: (bg, bg_fg, mask, depth map) names without extension.
    Every name must lead to a file inside ``root``: a name with a path in it (``../``, ``/``), or
    one whose file is a link out of the folder, is refused with its line number, so that a
    downloaded folder can never make dsnet read a file elsewhere on the machine."""
    path = Path(root) / "file_map.txt"
    if not path.is_file():
        raise ModestError(f"{path}: missing; is {root} a MODEST Museum folder?")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModestError(f"{path}: not UTF-8 text; save it as UTF-8 (one line per sample, four "
                          "tab-separated names)") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.strip().split("\t")
        if len(fields) != 4:
            raise ModestError(f"{path}:{n}: expected 4 tab-separated names, found {len(fields)}")
        for folder, name in zip(FOLDERS, fields):
            _check_inside(Path(root), folder, name, f"{path}:{n}")
        rows.append(tuple(fields))
    if not rows:
        raise ModestError(f"{path}: lists no samples")
    return rows


def _check_inside(root: Path, folder: str, name: str, where: str) -> None:
    """ModestError unless ``root/folder/name.jpeg`` is a plain file name whose file stays inside
    ``root`` once links are followed (the folder itself too may be a link)."""
    plain = "\0" not in name and name not in ("", ".", "..") and Path(name).name == name
    file = root / folder / f"{name}.jpeg"
    if plain and not (file.is_symlink() or (root / folder).is_symlink()):
        return                     # one lstat per file: a plain name in a real folder stays inside
    if not plain or not file.resolve().is_relative_to(root.resolve()):
        raise ModestError(f"{where}: {name!r} leads outside the dataset folder {root}; file_map.txt "
                          "names files of the folder's own bg, bg_fg, mask and depth folders only")


def modest_split(backgrounds: list[str], split_by: str = "background", val_fraction: float = 0.3,
                 seed: int = 0) -> tuple[list[int], list[int]]:
    """Train and validation indices of samples whose backgrounds are ``backgrounds``.

    ``"random"``: the seed project's split, a random 70/30 over samples (the same rooms appear
    in both); ``"background"``: whole backgrounds go to one side, so validation shows rooms the
    model never saw."""
    g = torch.Generator().manual_seed(seed)
    if split_by == "random":
        order = torch.randperm(len(backgrounds), generator=g).tolist()
        n_val = round(val_fraction * len(order))
        return sorted(order[n_val:]), sorted(order[:n_val])
    if split_by != "background":
        raise ValueError(f"split_by must be 'background' or 'random', not {split_by!r}")
    unique = sorted(set(backgrounds))
    order = [unique[i] for i in torch.randperm(len(unique), generator=g).tolist()]
    val = set(order[:round(val_fraction * len(unique))])
    train_idx = [i for i, b in enumerate(backgrounds) if b not in val]
    return train_idx, [i for i, b in enumerate(backgrounds) if b in val]


class ModestMuseum(Dataset):
    """A folder in the MODEST Museum layout (the real download, or one ``write_modest`` made).

    Items are dicts like the synthetic museum's: ``bg``, ``bg_fg`` ``(3, H, W)`` and ``mask``,
    ``depth`` ``(1, H, W)``, floats in [0, 1] (masks thresholded at 0.5 unless
    ``binary_mask=False``). ``split`` is ``"train"``, ``"val"`` or ``"all"``.

    ``check="header"`` opens every file once when the dataset is made (size and format, no
    decoding), ``"full"`` decodes them too, ``"none"`` trusts the folder. A bad sample raises
    a :class:`ModestError` naming its file, or with ``on_error="skip"`` is left out and
    counted in ``skipped`` (its reasons in ``problems``)."""

    def __init__(self, root: str | os.PathLike, split: str = "train", split_by: str = "background",
                 val_fraction: float = 0.3, seed: int = 0, image_size: int | None = None,
                 resize: int | None = None, check: str = "header", on_error: str = "raise",
                 binary_mask: bool = True) -> None:
        if split not in ("train", "val", "all") or check not in ("none", "header", "full") \
                or on_error not in ("raise", "skip"):
            raise ValueError("split: train/val/all, check: none/header/full, on_error: raise/skip")
        self.root = Path(root)
        rows = read_file_map(self.root)
        self.image_size = image_size if image_size is not None else self._first_size(rows)
        self.resize, self.binary_mask = resize, binary_mask
        self.problems: list[str] = []
        good = []
        for row in rows:
            try:
                for kind, path in zip(KINDS, self._paths(row)):
                    self._check(path, check, kind)
                good.append(row)
            except ModestError as error:
                if on_error == "raise":
                    raise
                self.problems.append(str(error))
        self.skipped = len(self.problems)
        if not good:
            raise ModestError(f"{self.root}: no readable samples ({self.skipped} skipped)")
        if split == "all":
            keep = list(range(len(good)))
        else:
            train_idx, val_idx = modest_split([r[0] for r in good], split_by, val_fraction, seed)
            keep = train_idx if split == "train" else val_idx
            if not keep:
                raise ModestError(f"{self.root}: the {split} split is empty: {len(set(r[0] for r in good))} "
                                  f"background(s), {len(good)} sample(s), {val_fraction:.0%} of the backgrounds "
                                  "for validation; a folder needs enough backgrounds for both splits")
        self.samples = [good[i] for i in keep]

    def _paths(self, row) -> list[Path]:
        return [self.root / folder / f"{name}.jpeg" for folder, name in zip(FOLDERS, row)]

    def _first_size(self, rows) -> int:
        with _opened(self._paths(rows[0])[0]) as image:
            return image.size[1]

    def _check(self, path: Path, check: str, kind: str) -> None:
        if check == "none":
            if not path.is_file():
                raise ModestError(f"{path}: missing")
            return
        if check == "full":
            _read_image(path, 1 if kind in LABELS else 3, self.image_size, kind)
            return
        with _opened(path, self.image_size) as image:
            _check_label_mode(path, image, kind)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        paths = self._paths(self.samples[index])
        out = {k: _read_image(p, c, self.image_size, k) for k, p, c in zip(KINDS, paths, (3, 3, 1, 1))}
        if self.resize is not None and self.resize != self.image_size:
            out = {k: torch.nn.functional.interpolate(v[None], size=(self.resize,) * 2, mode="bilinear",
                                                      align_corners=False, antialias=True)[0]
                   for k, v in out.items()}
        if self.binary_mask:
            out["mask"] = (out["mask"] > 0.5).float()
        return out


# book/renderer.md, line 2027
if __name__ == "__main__" and __spec__ is not None:     # run as `python -m dsnet.modest`, not in a notebook
    import sys

    print("python -m dsnet.modest: a library module, not a command; "
          "run `dsnet data generate --out DIR --count N`", file=sys.stderr)
    sys.exit(2)

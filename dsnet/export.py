# Generated from book/using.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/using.md, line 923
"""Export a trained DSResNet as a deployable artifact (``torch.export`` or TorchScript) with its
input contract written next to it, checked against the eager model."""
from __future__ import annotations

import copy
import errno
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dsnet._version import __version__
from dsnet.data import InputStats, standardize
from dsnet.files import probe_writable
from dsnet.io import atomic_write, pretrained_files
from dsnet.inference import ModelSource, load_predictor
from dsnet.shapes import DIVISOR, MIN_SIZE, check_input_size

FORMATS = {"export": ".pt2", "torchscript": ".ts"}
TOLERANCE = 1e-4


class Deployable(nn.Module):
    """DSResNet with its input standardization and output sigmoids built in:
    ``(bg, bg_fg)`` RGB ``(N, 3, H, W)`` in [0, 1] -> ``(depth, mask_prob)`` ``(N, 1, H, W)`` in [0, 1].
    ``stats``: the model's :class:`dsnet.data.InputStats` (None: those it carries), kept as
    buffers so that the artifact holds them and moves with them."""

    def __init__(self, model: nn.Module, stats: InputStats | None = None) -> None:
        super().__init__()
        self.model = model
        stats = stats or InputStats.of(model)
        for key, (mean, std) in (("bg", stats.bg), ("bg_fg", stats.bg_fg)):
            self.register_buffer(f"{key}_mean", torch.tensor(mean).view(1, 3, 1, 1))
            self.register_buffer(f"{key}_std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, bg: Tensor, bg_fg: Tensor) -> tuple[Tensor, Tensor]:
        depth, mask = self.model(standardize(bg, self.bg_mean, self.bg_std),
                                 standardize(bg_fg, self.bg_fg_mean, self.bg_fg_std))
        return torch.sigmoid(depth), torch.sigmoid(mask)


# book/using.md, line 971
def format_of(path: str | os.PathLike, format: str | None = None) -> str:
    """``format`` if given, else from the suffix: ``.pt2`` -> export, ``.ts``/``.pt``/``.jit`` -> torchscript."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix in (".ts", ".pt", ".jit", ".torchscript"):
        return "torchscript"
    if suffix in (".pt2", ""):
        return "export"
    raise ValueError(f"cannot tell the format from {Path(path).name!r}: use a .pt2 or .ts file, or pass format")


def contract_path(path: str | os.PathLike) -> Path:
    """Where the input contract of the artifact ``path`` is written: ``path`` + ``.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def load_exported(path: str | os.PathLike, format: str | None = None):
    """The artifact at ``path`` as a callable ``(bg, bg_fg) -> (depth, mask_prob)``; its format
    from ``format``, else its contract, else its suffix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    kind = format
    if kind is None and contract_path(path).is_file():
        kind = json.loads(contract_path(path).read_text()).get("format")
    kind = format_of(path, kind)
    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        return torch.export.load(str(path)).module()
    except Exception as error:
        raise ValueError(f"{path} is not a readable {kind} artifact ({type(error).__name__})") from None


def _example(size: tuple[int, int], batch: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, 3, *size, generator=g) for _ in range(2))


def max_difference(artifact, eager: nn.Module, bg: Tensor, bg_fg: Tensor) -> float:
    """The largest absolute difference between the artifact's and the eager model's outputs."""
    with torch.inference_mode():
        got, want = artifact(bg, bg_fg), eager(bg, bg_fg)
    return max(float((a - b).abs().max()) for a, b in zip(got, want))


def _write(kind: str, module: nn.Module, example: tuple[Tensor, Tensor], tmp: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice and tracer warnings
        if kind == "torchscript":
            torch.jit.save(torch.jit.trace(module, example, check_trace=False), str(tmp))
            return
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.export.export(module, example, dynamic_shapes={"bg": {0: batch}, "bg_fg": {0: batch}})
        torch.export.save(program, str(tmp))


def export_model(model: ModelSource, path: str | os.PathLike, *, format: str | None = None,
                 size: int | tuple[int, int] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write ``model`` (as :func:`dsnet.inference.load_predictor` takes it) to ``path`` as a
    ``torch.export`` program (``.pt2``) or TorchScript (``.ts``), and its input contract to
    ``path + '.json'``. ``size``: the image size of a ``torch.export`` program (default: the
    training size, else 224); TorchScript takes any valid size. The destination is checked first
    (:func:`check_destination`, :func:`check_writable`); both files appear only after the
    artifact, loaded back, matched the eager model within 1e-4. Returns the contract."""
    path = Path(path)
    kind = format_of(path, format)
    check_destination(path, model, overwrite)
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        check_input_size(*size)
    predictor = load_predictor(model, "cpu")
    check_writable(path)
    if size is None:
        size = (predictor.train_size or 224,) * 2
    eager = Deployable(copy.deepcopy(predictor.model).float().cpu().eval(), predictor.input_stats).eval()
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp{FORMATS[kind]}")  # torch warns about other suffixes
    try:
        _write(kind, eager, _example(size, 2, seed=0), staged)
        # any batch size, and (TorchScript) another size than the example's
        other = size if kind == "export" else (size[0] + DIVISOR, max(MIN_SIZE, size[1] - DIVISOR))
        artifact = load_exported(staged, kind)
        difference = max(max_difference(artifact, eager, *_example(size, 1, seed=1)),
                         max_difference(artifact, eager, *_example(other, 3, seed=2)))
        if not difference <= TOLERANCE:
            raise RuntimeError(f"the exported model differs from the eager one by {difference:.3g}")
        contract = _contract(kind, path, size, predictor, difference)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    atomic_write(contract_path(path), lambda tmp: tmp.write_text(json.dumps(contract, indent=1) + "\n"))
    return contract


def _source_file(model: ModelSource) -> Path | None:
    """The file ``model`` is read from, if it is a file: a checkpoint, its run folder's best.pt,
    a weights file, or the shipped weights."""
    if model is None or model == "pretrained":
        return pretrained_files()["weights"]
    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        return source / "best.pt" if source.is_dir() else source
    return None


def check_destination(path: Path, model: ModelSource, overwrite: bool) -> None:
    """ValueError when writing ``path`` (and its contract) would destroy the model being exported,
    even with ``overwrite``, or replace a file that exists without it."""
    source = _source_file(model)
    for target in (path, contract_path(path)):
        if source is not None and target.exists() and source.exists() and os.path.samefile(target, source):
            raise ValueError(f"{target} is the model being exported; write the export to another file")
        if target.is_file() and not overwrite:    # a folder is refused by check_writable, with its own words
            raise ValueError(f"{target} exists already; choose another file, or replace it with overwrite=True "
                             "(dsnet export --overwrite)")


def check_writable(path: Path) -> None:
    """Fail now, not after the export, when the file ``path`` cannot be written: ValueError for a
    folder, ``NotADirectoryError`` when a parent is a file, the OS's error for a folder that cannot
    be created or written to. Creates the missing folders."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; name the file to write, e.g. {path / 'dsresnet.pt2'}")
    blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(errno.ENOTDIR, f"cannot write {path}: {blocker} is a file, not a folder")
    try:
        probe_writable(path.parent)
    except OSError as error:
        raise type(error)(error.errno, f"cannot write {path}: {error.strerror or type(error).__name__}") from None


def contract_parts(shape: str, who: str, stats: InputStats) -> dict[str, Any]:
    """What every export's JSON contract says alike: ``images``, its two inputs of ``shape``;
    ``alignment``, that lining the pair up is not inside; ``normalization``, applied inside by
    ``who`` ("the artifact", "the model"), with the model's statistics ``stats``; ``outputs``, the
    two maps."""
    return {
        "images": {"bg": f"float32 {shape}: the background, RGB in [0, 1]",
                   "bg_fg": f"float32 {shape}: the same view with the foreground, RGB in [0, 1]"},
        "alignment": "not inside: dsnet.predict first lines bg up with bg_fg (one shift, one gain per "
                     "colour; dsnet.inference.align_to); for two hand-held shots, do the same before calling",
        "normalization": {
            "applied_inside": True,
            "note": f"{who} computes (x - mean) / std itself; do not normalize the inputs",
            **stats.to_dict(),
        },
        "outputs": [
            {"name": "depth", "shape": "(N, 1, H, W)", "meaning": "float32 in [0, 1], sigmoid of the depth "
             "logits: linear depth, 0 = at the camera, 1 = 20 m or farther"},
            {"name": "mask_prob", "shape": "(N, 1, H, W)", "meaning": "float32 in [0, 1], the probability that "
             "a pixel shows the foreground; threshold at 0.5 for a mask"},
        ],
    }


def _contract(kind: str, path: Path, size: tuple[int, int], predictor, difference: float) -> dict[str, Any]:
    if kind == "export":
        shape, sizes = f"(N, 3, {size[0]}, {size[1]})", f"exactly {size[0]} x {size[1]} (resize your images)"
    else:
        shape, sizes = "(N, 3, H, W)", f"H and W divisible by {DIVISOR} and at least {MIN_SIZE}"
    parts = contract_parts(shape, "the artifact", predictor.input_stats)
    return {
        "artifact": path.name,
        "format": kind,
        "load": ("torch.export.load(path).module()" if kind == "export" else "torch.jit.load(path)"),
        "inputs": {**parts["images"], "sizes": sizes, "batch": "any N >= 1; bg and bg_fg of one shape",
                   "device": "cpu", "alignment": parts["alignment"]},
        "normalization": parts["normalization"],
        "outputs": parts["outputs"],
        "image_size": list(size),
        "train_size": predictor.train_size,
        "source": predictor.source,
        "max_abs_difference_vs_eager": difference,
        "dsnet_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
    }

"""Saving and loading models and checkpoints, safely and atomically.

* Checkpoints (``.pt``) hold everything to resume training: model, optimizer, scheduler,
  grad scaler, RNG states, epoch, step, config and history. They contain only tensors and
  plain Python values, so they load with ``torch.load(..., weights_only=True)``: a checkpoint
  can never run code.
* Weights for shipping (``.safetensors``) hold the model's tensors, in fp16 by default, and
  string metadata (config, version). No pickle at all.
* Both hold ``input_stats``: how the model's inputs are standardized
  (:class:`dsnet.data.InputStats`), so that prediction and export standardize as training did.
  A file written before the field existed holds :data:`dsnet.data.MODEST_INPUTS`, as every
  training run did.

:func:`load_model` is the one loader: a model in eval mode on a device, from a file, the shipped
weights or a model in memory, carrying ``train_size`` and ``input_stats``.

Every file is written to a temporary name next to its target and renamed into place, so an
interrupted save leaves the previous file intact, never a truncated one. Reading refuses silent
corruption: weights holding inf or NaN, and shipped weights whose SHA-256 differs from the manifest.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dsnet.device import pick_device
from dsnet.files import atomic_write  # noqa: F401  (re-exported: dsnet.io.atomic_write)

if TYPE_CHECKING:
    from dsnet.data import InputStats

CHECKPOINT_FORMAT = "dsnet-checkpoint-1"
PRETRAINED = "dsresnet.safetensors"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # torch puts bold text codes into some load errors


class CheckpointError(ValueError):
    """A file that is not a usable dsnet checkpoint or weights file."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a training checkpoint (a dict of tensors and plain values) atomically. A ``state``
    without ``input_stats`` gets those of :data:`dsnet.data.MODEST_INPUTS`: what training
    standardizes its inputs with."""
    from dsnet.data import MODEST_INPUTS

    state = {"format": CHECKPOINT_FORMAT, "input_stats": MODEST_INPUTS.to_dict(), **state}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, without unpickling any code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise _unreadable(path, error) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a dsnet checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
    if isinstance(state.get("model"), dict):
        require_finite(state["model"], path)
    return state


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    """One sentence for a file ``torch.load(weights_only=True)`` rejects: a payload that needs code
    to load (a pickled function or class), or a truncated or foreign file."""
    text = _ANSI.sub("", str(error)).strip()
    if text.startswith("Weights only load failed"):
        found = re.search(r"GLOBAL (\S+?)[.,]?(\s|$)", text)  # the function or class it would call
        if found:
            return CheckpointError(f"{path} is not a readable dsnet checkpoint: it needs code to load "
                                   f"({found.group(1)}), and dsnet never runs code from a file")
        details = [p.strip() for p in text.split("\n\n")[1:] if p.strip() and not p.strip().startswith("Check the")]
        text = details[0] if details else "the safe unpickler refused it"  # e.g. garbage: "Unsupported operand"
    reason = re.split(r"(?<=[.!?])\s|\n", text)[0].rstrip(".") if text else type(error).__name__
    reason = reason if len(reason) <= 200 else reason[:197].rsplit(" ", 1)[0] + " ..."
    return CheckpointError(f"{path} is not a readable dsnet checkpoint ({reason})")


def require_finite(tensors: dict[str, Any], source: str | os.PathLike) -> None:
    """Refuse weights holding inf or NaN (a damaged file loads otherwise, and predicts nothing)."""
    # the largest magnitude is inf or NaN exactly when some value is: 4x faster than isfinite().all()
    bad = [k for k, v in tensors.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and v.numel() and not bool(torch.isfinite(v.detach().abs().amax()))]
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckpointError(f"{source} is damaged: {names} hold{'s' if len(bad) == 1 else ''} inf or NaN "
                              "values; replace it with an intact copy")


def load_state_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Copy ``state_dict`` into ``model``; a mismatch names the source and the first differences."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    reshaped = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or reshaped:
        details = "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                            for what, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("other shape", reshaped)) if keys)
        raise CheckpointError(f"{source} holds another architecture than DSResNet ({details})")
    retyped = [k for k in own if own[k].is_floating_point() and not state_dict[k].is_floating_point()]
    if retyped:
        found = ", ".join(f"{k} ({str(state_dict[k].dtype).replace('torch.', '')})" for k in retyped[:3])
        raise CheckpointError(f"{source} stores floating-point weights as integers: {found}"
                              f"{' ...' if len(retyped) > 3 else ''}; quantized or converted weights do not "
                              "load into DSResNet, pass the float file")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state_dict.items()})
    return model


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Write the model's tensors as safetensors (``dtype`` for floating point tensors), with
    ``metadata`` and the model's ``input_stats`` (:meth:`dsnet.data.InputStats.of`) unless
    ``metadata`` names them."""
    from safetensors.torch import save_file

    from dsnet.data import InputStats

    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu()
               for k, v in model.state_dict().items()}
    metadata = {"input_stats": InputStats.of(model).to_dict(), **(metadata or {})}
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=text))


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file, with clear errors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file ({error})") from None
    require_finite(tensors, path)
    return tensors, metadata


TRAIN_SIZES = range(64, 1024 + 1, 32)
"""The sizes a dsnet model can have been trained at: multiples of 32 from 64 to 1024."""


def checked_training_size(metadata: dict[str, Any], source: str | os.PathLike) -> int | None:
    """:func:`training_size`, refused in one sentence when it is no size dsnet trains at (the
    planned network sizes follow from it, so a damaged value would plan an enormous pass)."""
    size = training_size(metadata)
    if size is not None and size not in TRAIN_SIZES:
        raise CheckpointError(f"{source} says it was trained at {size} px, which no dsnet model is (a multiple "
                              f"of 32 from {TRAIN_SIZES.start} to {TRAIN_SIZES.stop - 1}): its metadata is damaged")
    return size


def weights_kind(path: Path) -> str:
    """``"safetensors"`` or ``"checkpoint"``, from the file's first bytes, for a file whose suffix
    does not say; CheckpointError for a file that is neither."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read ({error.strerror or type(error).__name__})") from None
    if head[:4] == b"PK\x03\x04":                # torch.save writes a zip archive
        return "checkpoint"
    if len(head) == 9 and head[8:9] == b"{":       # safetensors: 8-byte header length, then JSON
        return "safetensors"
    raise CheckpointError(f"{path} is neither a dsnet checkpoint (.pt) nor a .safetensors weights file")


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


def stored_input_stats(metadata: dict[str, Any], source: str | os.PathLike,
                       fallback: dict[str, Any] | None = None) -> InputStats:
    """The :class:`dsnet.data.InputStats` of a checkpoint's or weights file's ``metadata`` (a dict,
    or its JSON text in safetensors), else of ``fallback`` (the manifest of the shipped weights),
    else :data:`dsnet.data.MODEST_INPUTS`: files written before the field existed were trained on
    those. CheckpointError for a damaged value."""
    from dsnet.data import MODEST_INPUTS, InputStats

    for where in (metadata, fallback or {}):
        if where.get("input_stats") is not None:
            try:
                return InputStats.from_dict(where["input_stats"])
            except ValueError as error:
                raise CheckpointError(f"{source} holds damaged input statistics: {error}") from None
    return MODEST_INPUTS


def load_weights(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """A DSResNet (on the CPU, in train mode) and the metadata it was saved with, from a
    ``.safetensors`` weights file, a ``.pt`` checkpoint, or a run folder (its ``best.pt``): the
    file reader under :func:`load_model`, for training and tools that need the metadata.

    The metadata is the checkpoint itself (config, history, ...) or the safetensors header. The
    model carries ``train_size``, the image size it finished training at (None if unknown), and
    ``input_stats`` (:func:`stored_input_stats`)."""
    from dsnet.model import DSResNet

    path = Path(path)
    if path.is_dir():
        if not (path / "best.pt").is_file():
            raise CheckpointError(f"{path} is a folder without best.pt; pass a checkpoint, a .safetensors "
                                  "file or a run folder written by dsnet train")
        path = path / "best.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    kind = {".safetensors": "safetensors", ".pt": "checkpoint", ".pth": "checkpoint"}.get(path.suffix.lower())
    if (kind or weights_kind(path)) == "safetensors":
        tensors, metadata = read_weights(path)
    else:
        metadata = load_checkpoint(path)
        tensors = metadata.get("model")
        if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
            raise CheckpointError(f"{path} is a dsnet checkpoint without model weights")
    model = load_state_into(DSResNet(), tensors, str(path))
    model.train_size = checked_training_size(metadata, path)
    model.input_stats = stored_input_stats(metadata, path)
    return model, metadata


ModelFile = str | os.PathLike | nn.Module | None


def load_model(source: ModelFile = None, device: str | torch.device | None = None) -> nn.Module:
    """A DSResNet in eval mode on ``device``, carrying ``train_size`` and ``input_stats``, from
    ``source``: a ``.pt`` checkpoint or its run folder, a ``.safetensors`` weights file, None (or
    ``"pretrained"``) for the weights shipped with dsnet, or a model in memory, which is never
    changed (:func:`ready_model`: itself when it is ready, else an eval-mode copy).

    ``device``: see :func:`target_device`; ValueError for a device this machine lacks."""
    if isinstance(source, nn.Module):
        return ready_model(source, target_device(source, device))
    if not (source is None or isinstance(source, (str, os.PathLike))):
        raise TypeError(f"model must be a checkpoint path, a .safetensors file, a DSResNet, a Predictor or None, "
                        f"not {type(source).__name__}")
    target = target_device(None, device)
    model = _read_pretrained() if source is None or source == "pretrained" else load_weights(source)[0]
    return model.to(target).eval()


def target_device(model: nn.Module | None, device: str | torch.device | None = None) -> torch.device:
    """Where :func:`load_model` puts a model: ``device``, checked to exist (ValueError otherwise).

    None, the one default: a model already in memory stays on its device (it may be training
    there, and a prediction must not move it), and one read from a file goes where
    :func:`dsnet.device.pick_device` says, CUDA when available, else the CPU: a model is loaded to
    predict, and that is where prediction runs fastest."""
    if device is not None:
        return pick_device(device)
    return device_of(model) if model is not None else pick_device(None)


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def ready_model(model: nn.Module, device: torch.device | None = None) -> nn.Module:
    """``model`` itself if it is in eval mode (every module) and on ``device`` (None: where it
    is), else an eval-mode copy on ``device``. Prediction never switches the mode or the device
    of a model it is given: a model shared by threads, or one in the middle of its training,
    stays as it was, and concurrent predictions on one model are safe as long as nothing trains,
    moves or changes it meanwhile."""
    if not any(module.training for module in model.modules()) and device in (None, device_of(model)):
        return model
    return copy.deepcopy(model).eval().to(device or device_of(model))


def pretrained_files() -> dict[str, Path]:
    """Paths of the shipped weights, manifest and history (inside the installed package)."""
    folder = resources.files("dsnet") / "weights"
    return {name: Path(str(folder / file)) for name, file in
            (("weights", PRETRAINED), ("manifest", "manifest.json"), ("history", "history.json"))}


def load_pretrained(device: str | torch.device | None = None) -> nn.Module:
    """The DSResNet trained by the project, shipped inside the package (no network needed), in
    eval mode on ``device``: ``load_model(None, device)``."""
    return load_model(None, device)


def _read_pretrained() -> nn.Module:
    """The shipped weights, checked against the manifest's hash, as a DSResNet on the CPU with
    ``train_size`` and ``input_stats`` from the weights' metadata, else from the manifest."""
    from dsnet.model import DSResNet

    path = pretrained_files()["weights"]
    if not path.is_file():
        raise CheckpointError(f"this dsnet has no pretrained weights ({path} is missing); "
                              "reinstall dsnet or pass a checkpoint")
    _verify_pretrained(path)
    tensors, metadata = read_weights(path)
    model = load_state_into(DSResNet(), tensors, str(path))
    manifest = pretrained_manifest()
    model.train_size = checked_training_size(metadata, path) or checked_training_size(manifest, path)
    model.input_stats = stored_input_stats(metadata, path, fallback=manifest)
    return model


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_VERIFIED: set[tuple[Any, ...]] = set()  # shipped files whose hash matched, by identity and version


def _verify_pretrained(path: Path) -> None:
    """Refuse shipped weights whose bytes differ from the manifest's ``weights_sha256``. A manifest
    without the field (written before it existed) is not checked. A match is remembered per process
    and file version (inode, size, times): hashing the 20 MB file took 11 of a load's 58 ms on a
    2-core CPU, and repeated loads of an unchanged file need not pay it again."""
    manifest = pretrained_files()["manifest"]
    try:
        expected = json.loads(manifest.read_text()).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        raise CheckpointError(f"{manifest} is missing or unreadable; reinstall dsnet") from None
    if expected is None:
        return
    info = path.stat()
    key = (str(path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, expected)
    if key in _VERIFIED:
        return
    if file_sha256(path) != expected:
        raise CheckpointError(f"{path} is damaged (its SHA-256 differs from the one in {manifest.name}); "
                              "reinstall dsnet")
    _VERIFIED.add(key)


def pretrained_manifest() -> dict[str, Any]:
    """How the shipped weights were trained: command, machine, time, image size, test metrics."""
    return json.loads(pretrained_files()["manifest"].read_text())

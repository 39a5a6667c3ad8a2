"""Saving and loading models and checkpoints, safely and atomically.

* Checkpoints (``.pt``) hold everything to resume training: model, optimizer, scheduler,
  grad scaler, RNG states, epoch, step, config and history. They contain only tensors and
  plain Python values, so they load with ``torch.load(..., weights_only=True)``: a checkpoint
  can never run code.
* Weights for shipping (``.safetensors``) hold the model's tensors, in fp16 by default, and
  string metadata (config, version). No pickle at all.

Every file is written to a temporary name next to its target and renamed into place, so an
interrupted save leaves the previous file intact, never a truncated one.
"""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT_FORMAT = "dsnet-checkpoint-1"
PRETRAINED = "dsresnet.safetensors"


class CheckpointError(ValueError):
    """A file that is not a usable dsnet checkpoint or weights file."""


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(temporary_path)``, then rename the temporary file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a training checkpoint (a dict of tensors and plain values) atomically."""
    return atomic_write(path, lambda tmp: torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, without unpickling any code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is not a readable dsnet checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a dsnet checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
    return state


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
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state_dict.items()})
    return model


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Write the model's tensors as safetensors (``dtype`` for floating point tensors)."""
    from safetensors.torch import save_file

    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu()
               for k, v in model.state_dict().items()}
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
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
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file ({error})") from None


def load_model(source: str | os.PathLike | nn.Module | None = None,
               device: str | torch.device | None = None) -> nn.Module:
    """A DSResNet in eval mode from ``source``: a model (returned as is), a ``.pt`` checkpoint,
    a ``.safetensors`` weights file, or None for the pretrained weights shipped with dsnet."""
    from dsnet.model import DSResNet

    if isinstance(source, nn.Module):
        model = source
    elif source is None:
        return load_pretrained(device)
    else:
        path = Path(source)
        if path.suffix == ".safetensors":
            tensors, _ = read_weights(path)
        else:
            state = load_checkpoint(path)
            if "model" not in state:
                raise CheckpointError(f"{path} is a dsnet checkpoint without model weights")
            tensors = state["model"]
        model = load_state_into(DSResNet(), tensors, str(path))
    device = torch.device(device) if device is not None else next(model.parameters()).device
    return model.to(device).eval()


def pretrained_files() -> dict[str, Path]:
    """Paths of the shipped weights, manifest and history (inside the installed package)."""
    folder = resources.files("dsnet") / "weights"
    return {name: Path(str(folder / file)) for name, file in
            (("weights", PRETRAINED), ("manifest", "manifest.json"), ("history", "history.json"))}


def load_pretrained(device: str | torch.device | None = None) -> nn.Module:
    """The DSResNet trained by the project, shipped inside the package: no network needed."""
    from dsnet.model import DSResNet

    path = pretrained_files()["weights"]
    if not path.is_file():
        raise CheckpointError(f"this dsnet has no pretrained weights ({path} is missing); "
                              "reinstall dsnet or pass a checkpoint")
    tensors, _ = read_weights(path)
    model = load_state_into(DSResNet(), tensors, str(path))
    return model.to(torch.device(device or "cpu")).eval()


def pretrained_manifest() -> dict[str, Any]:
    """How the shipped weights were trained: command, machine, time, image size, test metrics."""
    return json.loads(pretrained_files()["manifest"].read_text())

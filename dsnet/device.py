"""Where a model runs and in which precision: one rule for training, benchmarks, inference and export.

Hand-written infrastructure below the chapters: it imports no chapter module.
"""
from __future__ import annotations

import platform

import torch


def cpu_model() -> str:
    """The CPU's model name as ``/proc/cpuinfo`` gives it, else what :mod:`platform` knows."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    except OSError:
        return name


def pick_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device called ``name``, checked to exist: ``"auto"`` (or None) is CUDA when available,
    else the CPU. Raises ``ValueError`` with one sentence for a name torch does not know or a
    device this machine does not have (``"cuda"`` on a CPU-only torch, ``"cuda:3"`` with one GPU)."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {str(name)!r} is not available: torch knows no device of that name; "
                         "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r} is not available: this torch "
                             f"{'has no CUDA support' if torch.version.cuda is None else 'sees no GPU'}; "
                             "use cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {str(name)!r} is not available: this machine has {count} GPU(s), "
                             f"cuda:0 to cuda:{count - 1}")
    elif device.type not in ("cpu", "mps", "xpu"):
        raise ValueError(f"device {str(name)!r} is not supported; use auto, cpu or cuda")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"device {str(name)!r} is not available ({str(error).splitlines()[0]})") from None
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 natively. On CUDA this excludes emulation: a T4 (compute
    capability 7.5) answers ``is_bf16_supported()`` with True, yet has no bf16 convolutions."""
    if device.type != "cuda":
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.3 has no including_emulation and no emulation either
        return torch.cuda.is_bf16_supported()


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 where the GPU has it natively, fp16 (with a grad
    scaler when training) on other GPUs, and None (float32) on the CPU or with ``enabled`` off."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if native_bf16(device) else torch.float16


def precision_name(dtype: torch.dtype | None) -> str:
    """``"bfloat16"``, ``"float16"`` or ``"float32"``: how logs, histories and manifests say it."""
    return str(dtype).replace("torch.", "") if dtype is not None else "float32"

"""Checks of the prepared GPU run (tools/gpu_run.sh) that no command of dsnet makes on its own.

    python tools/gpu_checks.py env                      # what this machine is, as JSON
    python tools/gpu_checks.py fp16 --device cuda       # the T4 path: steps forced to fp16 + grad scaler
    python tools/gpu_checks.py export --checkpoint RUN/best.pt --device cuda --out DIR

Each prints one JSON line and exits 1 when its check fails.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch


def environment() -> dict:
    from dsnet._version import __version__
    from dsnet.device import amp_dtype, native_bf16, pick_device, precision_name

    device = pick_device("auto")
    info = {"python": platform.python_version(), "torch": torch.__version__, "dsnet": __version__,
            "cuda": torch.version.cuda, "device": str(device), "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "training_precision": precision_name(amp_dtype(device))}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"gpu": props.name, "capability": f"{props.major}.{props.minor}",
                 "memory_gib": round(props.total_memory / 2**30, 1), "native_bf16": native_bf16(device),
                 "bf16_with_emulation": torch.cuda.is_bf16_supported()}
    return info


def fp16_steps(device_name: str, steps: int, batch_size: int = 16) -> dict:
    """``steps`` optimizer steps on ``batch_size`` scenes in fp16 autocast with the grad scaler, as
    on a T4: finite losses. (A CPU emulates fp16, slowly: the dry run takes a small batch.)"""
    import dsnet.train as training
    from dsnet.data import SyntheticMuseum

    training.amp_dtype = lambda device, enabled=True: torch.float16  # what the rule picks on a T4
    run = training.build_run(training.make_config("quick", device=device_name))
    batch = SyntheticMuseum(64, length=batch_size, seed=0, device=run.device).batch(range(batch_size))
    started = time.perf_counter()
    losses = [training.train_step(run, batch).item() for _ in range(steps)]
    return {"check": "fp16", "device": str(run.device), "scaler_enabled": run.scaler.is_enabled(),
            "scale": run.scaler.get_scale(), "losses": [round(x, 4) for x in losses],
            "seconds": round(time.perf_counter() - started, 2),
            "ok": run.scaler.is_enabled() and all(map(torch.isfinite, torch.tensor(losses)))}


def export_check(checkpoint: Path, device_name: str, out: Path) -> dict:
    """Export the checkpoint (dsnet exports float32 programs on the CPU, a portable contract), then
    run the artifact on ``device`` and compare it with the eager model there."""
    from dsnet.export import export_model
    from dsnet.inference import load_predictor

    predictor = load_predictor(checkpoint, device=device_name)
    path = out / "export" / "dsresnet.pt2"
    export_model(predictor, path)  # checks the artifact against the eager model (CPU) before it appears
    size = [predictor.train_size or 224] * 2  # a torch.export program takes the training size
    program = torch.export.load(str(path)).module().to(predictor.device)
    bg, bg_fg = (torch.rand(2, 3, *size, device=predictor.device) for _ in range(2))
    with torch.inference_mode():
        depth, mask = program(bg, bg_fg)
        inputs = predictor.input_stats.apply(bg, bg_fg)     # the artifact normalizes inside itself
        eager = predictor.model.eval()(*inputs)              # float32, like the artifact
    difference = max(float((depth - torch.sigmoid(eager.depth)).abs().max()),
                     float((mask - torch.sigmoid(eager.mask)).abs().max()))
    return {"check": "export", "device": str(predictor.device), "artifact": str(path), "size": size,
            "max_abs_difference_vs_eager": difference, "ok": difference < 1e-3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=("env", "fp16", "export"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="scenes per fp16 step (default 16)")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    if args.check == "env":
        result = environment() | {"ok": True}
    elif args.check == "fp16":
        result = fp16_steps(args.device, args.steps, args.batch_size)
    else:
        result = export_check(args.checkpoint, args.device, args.out)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

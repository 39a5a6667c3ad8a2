"""Copy a finished training run into the package as the shipped pretrained weights.

    python tools/ship_pretrained.py RUN_DIR --command "dsnet train --profile medium" \
        --machine "2-core CPU" [--force]

Writes ``dsnet/weights/dsresnet.safetensors`` (fp16), ``manifest.json`` (command, machine, wall
time, image size, test metrics, dsnet version, and the weights file's SHA-256, which
``load_pretrained`` checks) and ``history.json``. Refuses to replace shipped weights whose test
metrics are better, unless ``--force``: every shipped copy stays in git history.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from dsnet.device import amp_dtype, pick_device
from dsnet.files import atomic_write_text
from dsnet.io import file_sha256, load_checkpoint, load_state_into, pretrained_files, save_weights
from dsnet.losses import build_loss
from dsnet.model import DSResNet
from dsnet.train import Ranks, TrainConfig, eval_batches, evaluate


def better(new: dict, old: dict) -> bool:
    """New test metrics beat the old ones: higher mask IoU without worse depth, or the reverse."""
    iou, rmse = new["mask_iou"] - old["mask_iou"], old["depth_rmse"] - new["depth_rmse"]
    return (iou >= 0 and rmse >= 0) and (iou > 0 or rmse > 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="run folder with best.pt and history.json")
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--machine", required=True, help="where it ran, e.g. '2-core CPU (no GPU)'")
    parser.add_argument("--note", default="", help="anything a reader should know about the run")
    parser.add_argument("--force", action="store_true", help="replace even if the test metrics are not better")
    parser.add_argument("--to", type=Path, default=None, metavar="DIR",
                        help="write the three files into DIR instead of the package (tools/gpu_run.sh does this); "
                             "the comparison with the shipped metrics is still printed")
    args = parser.parse_args(argv)

    state = load_checkpoint(args.run / "best.pt")
    history = state["history"]  # up to the best epoch: what the shipped weights saw
    config = TrainConfig.from_dict(state["config"])
    size = history[-1]["size"]
    model = load_state_into(DSResNet(), state["model"], str(args.run / "best.pt"))
    model.half().float()  # evaluate exactly what is shipped: the fp16 weights
    device = pick_device("auto")
    test = evaluate(model.to(device), eval_batches(config, "test", size, device, Ranks()), build_loss(config.loss),
                    config, amp_dtype(device, config.amp))
    files = pretrained_files()
    if files["manifest"].exists():
        old = json.loads(files["manifest"].read_text())["test"]
        print(f"{'beats' if better(test, old) else 'does not beat'} the shipped weights: mask IoU "
              f"{test['mask_iou']:.4f} vs {old['mask_iou']:.4f}, depth RMSE {test['depth_rmse']:.4f} vs "
              f"{old['depth_rmse']:.4f}")
        if not better(test, old) and not args.force and args.to is None:
            print(f"not shipped: test metrics {test} do not beat the shipped {old}", file=sys.stderr)
            return 1
    if args.to is not None:
        files = {name: args.to / path.name for name, path in files.items()}
    config = state["config"]
    save_weights(model, files["weights"], metadata={"dsnet_version": state["dsnet_version"],
                                                    "train_size": str(size), "config": config})
    manifest = {
        "command": args.command,
        "machine": f"{args.machine}; {platform.processor() or platform.machine()}, torch {torch.__version__}",
        "wall_seconds": round(sum(h["seconds"] for h in history)),  # training epochs, without evaluation
        "image_size": size,
        "stages": config["stages"],
        "epochs": len(history),
        "precision": history[-1].get("precision", "float32"),  # what training computed in (histories before 0.1 lack it)
        "config": config,
        "test": test,
        "test_split": f"{config['test_samples']} held-out synthetic scenes at {size}px",
        "dsnet_version": state["dsnet_version"],
        "weights_sha256": file_sha256(files["weights"]),  # load_pretrained refuses other bytes
        "note": args.note,
    }
    atomic_write_text(files["manifest"], json.dumps(manifest, indent=1) + "\n")
    atomic_write_text(files["history"], json.dumps(history, indent=1) + "\n")
    print(f"shipped {args.run} -> {files['weights'].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Copy a finished training run into the package as the shipped pretrained weights.

    python tools/ship_pretrained.py RUN_DIR --command "dsnet train --profile medium" \
        --machine "2-core CPU" [--force]

Writes ``dsnet/weights/dsresnet.safetensors`` (fp16), ``manifest.json`` (command, machine, wall
time, image size, test metrics, proxy scores, dsnet version, and the weights file's SHA-256, which
``load_pretrained`` checks) and ``history.json``.

The test metrics are measured on the plain synthetic test split (no ``Realism``), whatever the run
trained on, so that every shipped model is measured alike; a run with realism also records them on
its own kind of scenes (``test_realism``). The proxy scores are the mask IoU on the 64 real-photograph
proxy pairs of ``dsnet.proxy`` (lossless and JPEG 75), computed for the new and the shipped weights.
New weights replace the shipped ones when (see :func:`better`) the synthetic metrics hold and the
proxy improves, or the synthetic metrics improve and the proxy holds; otherwise only with
``--force``. Every shipped copy stays in git history.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from dsnet.device import amp_dtype, pick_device
from dsnet.files import atomic_write_text
from dsnet.io import (file_sha256, load_checkpoint, load_state_into, pretrained_files, save_weights,
                      stored_input_stats)
from dsnet.losses import build_loss
from dsnet.model import DSResNet
from dsnet.train import Ranks, TrainConfig, data_source, evaluate


# about one standard error of a paired difference over the 512 test scenes (0.0022 for mask IoU, measured)
SYNTHETIC_SLACK = {"mask_iou": 0.002, "depth_rmse": 0.001}
PROXY_SLACK = 0.002
PROXY = dict(count=64, size=224, seed=0)


def _holds_and_improves(gains: list[float], slacks: list[float]) -> tuple[bool, bool]:
    """For ``gains`` (new minus old, higher is better): whether none falls below minus its slack
    (holds), and whether none is negative and one is positive (improves)."""
    holds = all(gain >= -slack for gain, slack in zip(gains, slacks))
    return holds, all(gain >= 0 for gain in gains) and any(gain > 0 for gain in gains)


def better(new: dict, old: dict, new_proxy: dict, old_proxy: dict) -> bool:
    """Whether new weights beat the shipped ones: their synthetic test metrics hold and both proxy
    scores improve, or the synthetic metrics improve and both proxy scores hold."""
    synthetic_holds, synthetic_improves = _holds_and_improves(
        [new["mask_iou"] - old["mask_iou"], old["depth_rmse"] - new["depth_rmse"]],
        [SYNTHETIC_SLACK["mask_iou"], SYNTHETIC_SLACK["depth_rmse"]])
    proxy_holds, proxy_improves = _holds_and_improves([new_proxy[k] - old_proxy[k] for k in old_proxy],
                                                      [PROXY_SLACK] * len(old_proxy))
    return (synthetic_holds and proxy_improves) or (synthetic_improves and proxy_holds)


def proxy_scores(model, count: int = PROXY["count"]) -> dict:
    """Mask IoU of ``model`` (anything ``dsnet.predict`` takes) on ``count`` proxy pairs, lossless
    and JPEG 75."""
    from dsnet.proxy import evaluate_proxy, proxy_pairs

    pairs = {**PROXY, "count": count}
    return {"lossless": evaluate_proxy(model, proxy_pairs(**pairs)).iou,
            "jpeg75": evaluate_proxy(model, proxy_pairs(**pairs, jpeg_quality=75)).iou}


def started_from(config: TrainConfig, shipped: dict | None, shipped_proxy: dict | None) -> dict:
    """What a fine-tuned run (``config.init``) started from: the shipped weights' own record
    (command, training time, size, test metrics, hash) and their proxy scores, measured now, when
    it was ``pretrained``; else the file it named."""
    if not config.init:
        return {}
    if config.init == "pretrained" and shipped:
        keep = ("command", "machine", "wall_seconds", "image_size", "test", "weights_sha256")
        return {"started_from": {**{k: shipped[k] for k in keep if k in shipped}, "proxy": shipped_proxy}}
    return {"started_from": {"weights": config.init}}


def replaced(shipped: dict | None, shipped_proxy: dict | None, alike: dict | None) -> dict:
    """The record of the weights the new ones replace, kept in the new manifest as its "before":
    command, machine, training time, size, test metrics and proxy scores (measured now), and the
    new weights' test metrics at the replaced ones' size (``new_test_at_same_size``)."""
    if not shipped:
        return {}
    keep = ("command", "machine", "wall_seconds", "image_size", "epochs", "test", "test_split", "weights_sha256")
    return {"replaced": {**{k: shipped[k] for k in keep if k in shipped}, "proxy": shipped_proxy,
                         "new_test_at_same_size": alike}}


def test_metrics(model, config: TrainConfig, size: int, realism: str, device) -> dict:
    """``model``'s metrics on the run's synthetic test split at ``size``, rendered with ``realism``."""
    config = TrainConfig.from_dict({**config.to_dict(), "realism": realism})
    return evaluate(model, data_source(config).eval_batches("test", size, device, Ranks()), build_loss(config.loss),
                    config, amp_dtype(device, config.amp))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="run folder with best.pt and history.json")
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--machine", required=True, help="where it ran, e.g. '2-core CPU (no GPU)'")
    parser.add_argument("--note", default="", help="anything a reader should know about the run")
    parser.add_argument("--force", action="store_true", help="replace even if the test metrics are not better")
    parser.add_argument("--to", type=Path, default=None, metavar="DIR",
                        help="write the three files into DIR instead of the package (tools/gpu_run.sh does this); "
                             "the comparison with the shipped metrics is still printed")
    parser.add_argument("--proxy-pairs", type=int, default=PROXY["count"], metavar="N",
                        help=f"proxy pairs to score the weights on (default {PROXY['count']}; the gate's "
                             "figures need the default, the dry run of tools/gpu_run.sh takes fewer)")
    args = parser.parse_args(argv)
    if args.proxy_pairs < 1:
        parser.error("--proxy-pairs must be at least 1")
    return args


def measure(run: Path, proxy_pairs: int) -> SimpleNamespace:
    """The run's best weights as they would ship (fp16), with their test metrics (plain and, for
    a run with realism, on its own kind of scenes) and proxy scores."""
    state = load_checkpoint(run / "best.pt")
    history = state["history"]  # up to the best epoch: what the shipped weights saw
    config = TrainConfig.from_dict(state["config"])
    size = history[-1]["size"]
    model = load_state_into(DSResNet(), state["model"], str(run / "best.pt"))
    model.half().float()  # evaluate exactly what is shipped: the fp16 weights
    model.train_size = size
    model.input_stats = stored_input_stats(state, run / "best.pt")  # written into the weights' metadata too
    device = pick_device("auto")
    model.to(device)
    realism = None if config.realism == "none" else test_metrics(model, config, size, config.realism, device)
    return SimpleNamespace(state=state, history=history, config=config, size=size, model=model, device=device,
                           test=test_metrics(model, config, size, "none", device), realism=realism,
                           proxy=proxy_scores(model, proxy_pairs))


def compare(new: SimpleNamespace, shipped: dict, old_proxy: dict) -> tuple[dict, bool]:
    """The new weights' test metrics at the size the shipped ones were tested at, and whether
    they beat the shipped ones there (:func:`better`); prints the comparison."""
    old, old_size = shipped["test"], shipped.get("image_size", new.size)
    alike = new.test if old_size == new.size else test_metrics(new.model, new.config, old_size, "none", new.device)
    verdict = better(alike, old, new.proxy, old_proxy)
    print(f"{'beats' if verdict else 'does not beat'} the shipped weights: mask IoU {alike['mask_iou']:.4f} vs "
          f"{old['mask_iou']:.4f}, depth RMSE {alike['depth_rmse']:.4f} vs {old['depth_rmse']:.4f} (synthetic "
          f"test at {old_size} px), proxy " + ", ".join(f"{k} {new.proxy[k]:.4f} vs {old_proxy[k]:.4f}"
                                                         for k in new.proxy))
    return alike, verdict


def manifest_of(args: argparse.Namespace, new: SimpleNamespace, weights: Path, extra: dict) -> dict:
    """The manifest of the new weights (written to ``weights``), ``extra`` being their origin and
    the record of the weights they replace."""
    state, history, size = new.state, new.history, new.size
    return {
        "command": args.command,
        "machine": f"{args.machine}; {platform.processor() or platform.machine()}, torch {torch.__version__}",
        "wall_seconds": round(sum(h["seconds"] for h in history)),  # training epochs, without evaluation
        "image_size": size,
        "stages": state["config"]["stages"],
        "epochs": len(history),
        "precision": history[-1].get("precision", "float32"),  # what training computed in (histories before 0.1 lack it)
        "input_stats": new.model.input_stats.to_dict(),  # how the inputs are standardized (InputStats)
        "config": state["config"],
        "test": new.test,
        "test_split": f"{new.config.test_samples} held-out synthetic scenes at {size}px, without realism",
        **({"test_realism": new.realism} if new.realism else {}),
        "proxy": {**new.proxy, "pairs": args.proxy_pairs, "size": PROXY["size"]},
        **extra,
        "dsnet_version": state["dsnet_version"],
        "weights_sha256": file_sha256(weights),  # load_pretrained refuses other bytes
        "note": args.note,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    new = measure(args.run, args.proxy_pairs)
    files = pretrained_files()
    shipped = json.loads(files["manifest"].read_text()) if files["manifest"].exists() else None
    old_proxy = proxy_scores(None, args.proxy_pairs) if shipped else None
    alike = None
    if shipped:
        alike, verdict = compare(new, shipped, old_proxy)
        if not verdict and not args.force and args.to is None:
            print("not shipped: the synthetic test metrics must hold and the proxy improve, or the reverse "
                  "(--force ships anyway)", file=sys.stderr)
            return 1
    if args.to is not None:
        files = {name: args.to / path.name for name, path in files.items()}
    save_weights(new.model, files["weights"], metadata={"dsnet_version": new.state["dsnet_version"],
                                                        "train_size": str(new.size), "config": new.state["config"]})
    extra = {**started_from(new.config, shipped, old_proxy), **replaced(shipped, old_proxy, alike)}
    manifest = manifest_of(args, new, files["weights"], extra)
    atomic_write_text(files["manifest"], json.dumps(manifest, indent=1) + "\n")
    atomic_write_text(files["history"], json.dumps(new.history, indent=1) + "\n")
    print(f"shipped {args.run} -> {files['weights'].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

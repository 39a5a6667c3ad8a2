"""``dsnet train``: the trainer of the Training chapter, from the command line.

Every field of :class:`dsnet.train.TrainConfig` is an option (``--batch-size 32``,
``--no-amp``, ``--stages 96:3,160:3,224:2``); options not given keep the profile's value.
Works the same under ``torchrun --nproc-per-node N -m dsnet train ...``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing

from dsnet.commands import UsageError

HELP = {
    "stages": "progressive resizing as SIZE:EPOCHS pairs, e.g. 96:3,160:3,224:2",
    "data": "'synthetic' (scenes rendered on the training device) or a folder in the MODEST layout",
    "train_samples": "synthetic data: fresh scenes per epoch",
    "val_samples": "synthetic data: validation scenes",
    "test_samples": "synthetic data: test scenes",
    "optimizer": "adamw, or sgd (momentum 0.9)",
    "lr": "peak learning rate",
    "scheduler": "onecycle (per step) or plateau (per epoch, on the validation loss)",
    "loss": "loss spec, e.g. 'seed' or '2*rmse:depth + bce:mask + 2*dice:mask'",
    "augment": "photometric augmentation, identical for BG and BG-FG",
    "jpeg": "JPEG round trip of every image at a random quality in 60-95, as in real photo datasets",
    "device": "auto (CUDA when available), cpu, cuda, cuda:1, ...",
    "amp": "mixed precision on CUDA (bf16, else fp16 with a grad scaler)",
    "channels_last": "channels-last memory layout for model and batches",
    "compile": "torch.compile the model",
    "fused": "fused optimizer kernels on CUDA",
    "workers": "DataLoader worker processes for MODEST folders",
    "predictions_every": "save a validation prediction grid every N epochs (0: never)",
    "out_dir": "folder for checkpoints (last.pt, best.pt), history.json and test.json",
    "log_every": "steps between progress updates and non-finite checks",
    "seed": "seed of data order, augmentation and initialization",
    "batch_size": "images per optimizer step (over all processes)",
    "weight_decay": "weight decay of the optimizer",
}


def parse_stages(text: str) -> tuple[tuple[int, int], ...]:
    try:
        stages = tuple((int(size), int(epochs)) for size, epochs in (pair.split(":") for pair in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"stages {text!r} must look like 96:3,160:3") from None
    if not stages or any(epochs < 1 for _, epochs in stages):
        raise argparse.ArgumentTypeError(f"stages {text!r}: every stage needs at least one epoch")
    return stages


def register(subparsers) -> None:
    from dsnet.train import PROFILES, TrainConfig

    parser = subparsers.add_parser("train", help="train DSResNet", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="named settings: quick (CPU, minutes), medium (CPU, about half an hour), full (GPU); "
                             "default: $DSNET_PROFILE, else full with CUDA and quick without")
    parser.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name == "profile":
            continue
        flag, kind = "--" + field.name.replace("_", "-"), hints[field.name]
        if field.name == "stages":
            parser.add_argument(flag, type=parse_stages, default=None, help=HELP[field.name])
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=HELP[field.name])
        else:
            parser.add_argument(flag, type=kind, default=None, help=HELP[field.name])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dsnet.train import NonFiniteLoss, TrainConfig, make_config, train

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if f.name != "profile" and getattr(args, f.name) is not None}
    try:
        config = make_config(args.profile, **overrides)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.print_config:
        print(json.dumps(dataclasses.asdict(config), indent=1))
        return 0
    try:
        result = train(config, resume=args.resume)
    except NonFiniteLoss as error:
        raise UsageError(str(error)) from None
    print(json.dumps({"best_checkpoint": str(result.best_checkpoint),
                      "test": {k: round(v, 5) for k, v in result.test.items()}}, indent=1))
    return 0

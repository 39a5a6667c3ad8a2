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

def parse_stages(text: str) -> tuple[tuple[int, int], ...]:
    try:
        stages = tuple((int(size), int(epochs)) for size, epochs in (pair.split(":") for pair in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"stages {text!r} must look like 96:3,160:3") from None
    if not stages or any(epochs < 1 for _, epochs in stages):
        raise argparse.ArgumentTypeError(f"stages {text!r}: every stage needs at least one epoch")
    return stages


def register(subparsers) -> None:
    # the options are TrainConfig's fields: importing dsnet.train (and torch) waits until
    # `dsnet train` is used, so that `dsnet --help` and the other commands start fast
    parser = subparsers.add_parser("train", help="train DSResNet", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, options=add_options)
    parser.set_defaults(func=run)


def add_options(parser: argparse.ArgumentParser) -> None:
    """``dsnet train``'s options: the profile, the run's folder handling, and every
    :class:`dsnet.train.TrainConfig` field."""
    from dsnet.train import PROFILES, TrainConfig

    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="named settings: quick (CPU, minutes), medium (CPU, about half an hour), cpu-long (CPU, about "
                             "an hour and a half: the shipped weights), full (GPU), "
                             "seed (the seed project's recipe, GPU), smoke (one short epoch: does it run?); "
                             "default: $DSNET_PROFILE, else full with CUDA and quick without")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT_DIR/last.pt (says so, and starts from scratch, when there is none)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in OUT_DIR; without this or --resume such a folder is refused")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name == "profile":
            continue
        flag, kind, text = "--" + field.name.replace("_", "-"), hints[field.name], field.metadata["help"]
        if field.name == "stages":
            parser.add_argument(flag, type=parse_stages, default=None, help=text)
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=text)


def run(args: argparse.Namespace) -> int:
    from dsnet.train import NonFiniteLoss, TrainConfig, finish_run, make_config, start_run

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if f.name != "profile" and getattr(args, f.name) is not None}
    try:
        config = make_config(args.profile, **overrides)
        if args.print_config:
            print(json.dumps(config.to_dict(), indent=1))
            return 0
        run = start_run(config, resume=args.resume, overwrite=args.overwrite)  # every check before any work
    except ValueError as error:  # dsnet.io.CheckpointError included: a cut, foreign or unsafe last.pt
        raise UsageError(str(error)) from None
    try:
        result = finish_run(run)
    except NonFiniteLoss as error:
        raise UsageError(str(error)) from None
    print(json.dumps({"best_checkpoint": str(result.best_checkpoint),
                      "test": {k: round(v, 5) for k, v in result.test.items()}}, indent=1))
    return 0

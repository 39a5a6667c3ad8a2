"""``dsnet export``: a trained model as one deployable file, with its input contract.

    dsnet export --checkpoint runs/quick/best.pt --out dsresnet.pt2
    dsnet export --checkpoint runs/quick/best.pt --out dsresnet.ts      # TorchScript: any size

writes the artifact and ``OUT.json``, the contract: input layout, value range, sizes,
normalization (built into the artifact) and the meaning of the two outputs. --out is checked
first (a file that can be written, its folder created if needed; an existing one only with
--overwrite, and never the model being exported), before any export work; the
artifact is loaded back and compared with the eager model before it is put in place.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsnet.commands import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a trained model (torch.export or TorchScript)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a checkpoint (.pt, or its run folder) or .safetensors weights; "
                             "default: the weights shipped with dsnet")
    parser.add_argument("--out", required=True, type=Path, help="the artifact to write, e.g. dsresnet.pt2")
    parser.add_argument("--format", choices=("export", "torchscript"), default=None,
                        help="export: a torch.export program (.pt2) for one image size and any batch; "
                             "torchscript: traced (.ts), any valid size. Default: from the suffix of --out")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out (and its .json contract) if they exist; the model being exported "
                             "is never replaced")
    parser.add_argument("--size", type=int, nargs="+", metavar="N", default=None,
                        help="image size of a torch.export program: N or H W (default: the training size, else 224)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dsnet.export import export_model, format_of
    from dsnet.io import CheckpointError

    if args.size is not None and len(args.size) not in (1, 2):
        raise UsageError("--size takes N or H W")
    size = None if args.size is None else (args.size[0] if len(args.size) == 1 else tuple(args.size))
    try:
        format_of(args.out, args.format)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        contract = export_model(args.checkpoint, args.out, format=args.format, size=size, overwrite=args.overwrite)
    except (CheckpointError, ValueError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    except OSError as error:                 # export_model checks the destination before exporting
        reason = error.strerror or type(error).__name__
        message = reason if reason.startswith("cannot write") else f"cannot write {args.out} ({reason})"
        raise UsageError(message) from None
    print(json.dumps({k: contract[k] for k in ("artifact", "format", "image_size", "max_abs_difference_vs_eager")}))
    return 0

"""``dsnet export``: a trained model as one deployable file, with its input contract.

    dsnet export --checkpoint runs/quick/best.pt --out dsresnet.pt2
    dsnet export --checkpoint runs/quick/best.pt --out dsresnet.ts      # TorchScript: any size

writes the artifact and ``OUT.json``, the contract: input layout, value range, sizes,
normalization (built into the artifact) and the meaning of the two outputs. The artifact is
loaded back and compared with the eager model before it is put in place.
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
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; name the file to write, e.g. {args.out / 'dsresnet.pt2'}")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {args.out.parent} ({error.strerror or type(error).__name__})") from None
    try:
        contract = export_model(args.checkpoint, args.out, format=args.format, size=size)
    except (CheckpointError, ValueError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    except OSError as error:
        raise UsageError(f"cannot write {args.out} ({error.strerror or type(error).__name__})") from None
    print(json.dumps({k: contract[k] for k in ("artifact", "format", "image_size", "max_abs_difference_vs_eager")}))
    return 0

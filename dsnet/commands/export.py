"""``dsnet export``: a trained model as one deployable file, with its input contract.

    dsnet export --checkpoint runs/quick/best.pt --out dsresnet.pt2
    dsnet export --checkpoint runs/quick/best.pt --out dsresnet.ts      # TorchScript: any size
    dsnet export --format onnx --out dsresnet.onnx                      # ONNX: any size, any runtime

writes the artifact and ``OUT.json``, the contract: input layout, value range, sizes,
normalization (built into the artifact) and the meaning of the two outputs. ONNX (one file,
float16 weights computed in float32, for ONNX Runtime in Python, C++ or a browser) needs
``pip install 'dsnet[onnx]'``. --out is checked first (a file that can be written, its folder
created if needed; an existing one only with --overwrite, and never the model being exported),
before any export work; the artifact is loaded back and compared with the eager model before it
is put in place.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from dsnet.commands import UsageError
from dsnet.shapes import DIVISOR, MIN_SIZE


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a trained model (torch.export, TorchScript or ONNX)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a checkpoint (.pt, or its run folder) or .safetensors weights; "
                             "default: the weights shipped with dsnet")
    parser.add_argument("--out", required=True, type=Path, help="the artifact to write, e.g. dsresnet.pt2")
    parser.add_argument("--format", choices=("export", "torchscript", "onnx"), default=None,
                        help="export: a torch.export program (.pt2) for one image size and any batch; "
                             "torchscript: traced (.ts), any valid size; onnx: one .onnx file, any valid size "
                             "and batch (needs pip install 'dsnet[onnx]'). Default: from the suffix of --out")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out (and its .json contract) if they exist; the model being exported "
                             "is never replaced")
    parser.add_argument("--size", type=int, nargs="+", metavar="N", default=None,
                        help="image size of a torch.export program: N or H W (default: the training size, else 224)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.size is not None and len(args.size) not in (1, 2):
        raise UsageError("--size takes N or H W")
    kind = _kind(args)
    if kind == "onnx":
        if args.size is not None:
            raise UsageError(f"--size is for a torch.export program; an ONNX model takes any batch and any H, W "
                             f"divisible by {DIVISOR} (at least {MIN_SIZE})")
        from dsnet.onnx_export import export_onnx

        contract = _exported(args, lambda: export_onnx(args.checkpoint, args.out, overwrite=args.overwrite))
        shown = ("artifact", "format", "checked_with", "max_abs_difference_vs_pytorch")
    else:
        from dsnet.export import export_model

        size = None if args.size is None else (args.size[0] if len(args.size) == 1 else tuple(args.size))
        contract = _exported(args, lambda: export_model(args.checkpoint, args.out, format=kind, size=size,
                                                        overwrite=args.overwrite))
        shown = ("artifact", "format", "image_size", "max_abs_difference_vs_eager")
    print(json.dumps({k: contract[k] for k in shown}))
    return 0


def _kind(args: argparse.Namespace) -> str:
    """The format to write: --format, else from the suffix of --out (``.onnx`` is ONNX)."""
    if args.format is not None:
        return args.format
    if args.out.suffix.lower() == ".onnx":
        return "onnx"
    from dsnet.export import format_of

    try:
        return format_of(args.out)
    except ValueError:
        raise UsageError(f"cannot tell the format from {args.out.name!r}: use a .pt2, .ts or .onnx file, "
                         "or pass --format") from None


def _exported(args: argparse.Namespace, export: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``export()``'s contract; its refusals (bad input, a destination that cannot be written, the
    ONNX tools missing) as one-line :class:`UsageError` s."""
    from dsnet.io import CheckpointError

    try:
        return export()
    except (CheckpointError, ValueError, ImportError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    except OSError as error:                 # the exports check the destination before exporting
        reason = error.strerror or type(error).__name__
        message = reason if reason.startswith("cannot write") else f"cannot write {args.out} ({reason})"
        raise UsageError(message) from None

"""``dsnet bench``: training and inference images/s of the plain way and the dsnet fast path.

    dsnet bench                                   # 96 and 224 px on CUDA if available, else CPU
    dsnet bench --sizes 96 224 --steps 20 --batch-size 64 --compile --json bench.json
    dsnet bench --device cpu --sizes 64 --steps 3 --batch-size 4
    dsnet bench --predict --sizes 224 --batch-size 4   # the dsnet predict path against the forward pass

The plain way: float32, NCHW, eager, JPEG files decoded by a DataLoader. The fast path: batches
rendered on the device, channels-last, mixed precision and a fused optimizer on CUDA, optionally
torch.compile. Medians over the timed steps after warm-up; TFLOP/s from torch's FLOP counter.

With --predict: pairs/s of the dsnet predict path on a folder of JPEG pairs (decode, resize,
predict, save the mask and depth PNGs) next to the network's forward passes alone, and the
overhead in percent; --batch-size is then the number of pairs per timed step.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dsnet.commands import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="images/s of the plain way and the fast path, side by side",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 224], help="image sizes (default 96 224)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step (default 16)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast path's model")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain way (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument("--predict", action="store_true",
                        help="measure the dsnet predict path (decode, resize, predict, save) against the forward pass")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dsnet.bench import bench_predict, format_predict, format_table, run_bench
    from dsnet.io import atomic_write

    if args.threads is not None:
        if args.threads < 1:
            raise UsageError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if args.predict and args.compile:
        raise UsageError("--compile applies to the training and inference bench, not to --predict")
    if args.json is not None:
        check_json(args.json)
    log = None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    try:
        if args.predict:
            report = bench_predict(args.sizes, steps=args.steps, warmup=args.warmup, pairs=args.batch_size,
                                   device=args.device, log=log)
        else:
            report = run_bench(args.sizes, steps=args.steps, warmup=args.warmup, batch_size=args.batch_size,
                               device=args.device, compile=args.compile, workers=args.workers, log=log)
    except ValueError as error:
        raise UsageError(str(error)) from None
    report["command"] = command_line(args)
    print(format_predict(report) if args.predict else format_table(report))
    if args.json is not None:
        text = json.dumps(report, indent=1) + "\n"
        atomic_write(args.json, lambda tmp: tmp.write_text(text))
    return 0


def check_json(path: Path) -> None:
    """A UsageError now, before minutes of measuring, when the report cannot be written to ``path``;
    creates its missing folders (:func:`dsnet.export.check_writable`)."""
    from dsnet.export import check_writable

    if path.is_dir():
        raise UsageError(f"--json {path} is a folder; name the file to write, e.g. {path / 'bench.json'}")
    try:
        check_writable(path)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        message = reason if reason.startswith("cannot write") else f"cannot write {path} ({reason})"
        raise UsageError(f"--json: {message}; name a file in a folder you can write") from None


def command_line(args: argparse.Namespace) -> str:
    """The ``dsnet bench`` command that repeats this measurement, every setting spelled out."""
    words = ["dsnet bench --sizes", *map(str, args.sizes), f"--steps {args.steps} --warmup {args.warmup}",
             f"--batch-size {args.batch_size} --device {args.device} --workers {args.workers}"]
    if args.threads is not None:
        words.append(f"--threads {args.threads}")
    if args.compile:
        words.append("--compile")
    if args.predict:
        words.append("--predict")
    return " ".join(words)

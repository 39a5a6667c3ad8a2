"""``dsnet data``: write the synthetic museum to disk, and measure how fast it renders
(:func:`dsnet.bench.bench_renderer`).

    dsnet data generate --out data/museum --count 10000 --size 224
    dsnet data generate --out data/real-ish --count 10000 --realism
    dsnet data bench --sizes 224 96 64 --realism textures,camera
"""
from __future__ import annotations

import argparse

# dsnet.scene.MAX_SIZE, repeated here because importing the renderer (and torch) for --help is slow;
# a test keeps the two equal.
MAX_SIZE = 1024
SIZE_HELP = (f"at most {MAX_SIZE}: the renderer's memory grows with the square of the size, and the "
             "training presets use 64 to 224")
# dsnet.scene.Realism's switches, repeated for the same reason; a test keeps them equal.
REALISM = ("textures", "soft_edges", "fg_textures", "camera")
# Samples one folder may hold: a million is over three million files, and the writer keeps every
# sample's paths in memory, so a mistyped count fails here, not after minutes and gigabytes.
MAX_COUNT = 1_000_000
REALISM_HELP = ("imitate photographs: alone, all of it; or some of " + ", ".join(n.replace("_", "-") for n in REALISM)
                + ", separated by commas (default: none; mask and depth stay exact)")


def _add_realism(parser) -> None:
    parser.add_argument("--realism", nargs="?", const="all", default="none", metavar="SWITCHES", help=REALISM_HELP)


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="generate or benchmark the synthetic museum",
                                   description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    gen = sub.add_parser("generate", help="write samples in the MODEST Museum layout (resumable)")
    gen.add_argument("--out", required=True, help="folder to write (new, empty, or an earlier run's)")
    gen.add_argument("--count", type=int, required=True, help=f"number of samples (1 to {MAX_COUNT:,})")
    gen.add_argument("--size", type=int, default=224, help=f"image side in pixels (default 224; {SIZE_HELP})")
    gen.add_argument("--seed", type=int, default=0, help="0 or more: which scenes are drawn (default 0)")
    gen.add_argument("--fg-per-bg", type=int, default=4, help="composites per background (default 4)")
    gen.add_argument("--split", default="train", choices=("train", "val", "test"),
                     help="which random stream of scenes to draw from (default train)")
    gen.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    gen.add_argument("--batch-size", type=int, default=32)
    gen.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ... or auto")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_realism(gen)
    gen.set_defaults(func=generate)
    bench = sub.add_parser("bench", help="samples per second of the renderer")
    bench.add_argument("--sizes", type=int, nargs="+", default=[224, 96, 64],
                       help=f"image sides in pixels (default 224 96 64; {SIZE_HELP})")
    bench.add_argument("--batch-size", type=int, default=64)
    bench.add_argument("--repeats", type=int, default=5, help="timed batches per size (median reported)")
    bench.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ... or auto")
    bench.add_argument("--threads", type=int, default=None, help="torch CPU threads, 1 or more (default: torch's)")
    _add_realism(bench)
    bench.set_defaults(func=bench_command)


def _realism(text: str):
    """The ``Realism`` that ``--realism`` names, or a UsageError naming the problem."""
    from dsnet.commands import UsageError
    from dsnet.scene import Realism

    try:
        return Realism.parse(text)
    except ValueError as error:
        raise UsageError(f"--realism: {error}") from None


def _pick_device(name: str):
    """The device called ``name``, or a UsageError naming the problem."""
    from dsnet.commands import UsageError
    from dsnet.device import pick_device

    try:
        return pick_device(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def generate(args: argparse.Namespace) -> int:
    """Check every option, then the folder (in ``write_modest``), before writing anything."""
    from dsnet.commands import UsageError
    from dsnet.modest import ModestError, write_modest

    if args.count > MAX_COUNT:
        raise UsageError(f"--count {args.count} is more than the {MAX_COUNT:,} samples one folder may hold; "
                         f"ask for at most {MAX_COUNT:,}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, not {args.seed}")
    realism = _realism(args.realism)
    device = _pick_device(args.device)
    try:
        root = write_modest(args.out, args.count, size=args.size, seed=args.seed, fg_per_bg=args.fg_per_bg,
                            split=args.split, quality=args.quality, batch_size=args.batch_size,
                            device=device, progress=not args.quiet, realism=realism)
    except ModestError as error:
        raise UsageError(str(error)) from None
    print(f"{args.count} samples in {root}")
    return 0


def bench_command(args: argparse.Namespace) -> int:
    """Check the options, then time the renderer with :func:`dsnet.bench.bench_renderer` and print its table."""
    import torch

    from dsnet.bench import bench_renderer, format_renderer
    from dsnet.commands import UsageError

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be 1 or more, not {args.threads}")
    realism = _realism(args.realism)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        report = bench_renderer(args.sizes, args.batch_size, args.repeats, args.device, realism)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(format_renderer(report))
    return 0

"""``dsnet predict``: the foreground's mask and the scene's depth for your own photos.

One pair::

    dsnet predict --bg empty.jpg --bg-fg person.jpg --out predictions/

writes ``predictions/person_mask.png`` (0 or 255), ``person_depth.png`` (16-bit gray: 0 at the
camera, 65535 at 20 m or farther) and ``person_figure.png`` (BG-FG, mask and depth side by side).

Two folders: ``--bg photos/bg --bg-fg photos/bg_fg`` pairs the files with the same name (the
same stem: ``room1.jpg`` with ``room1.png``) and writes the three files per pair.

Every input is checked (exists, is an image, BG and BG-FG of one size, every file paired) before
anything is written, and each output file appears whole or not at all.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from dsnet.commands import UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


def parse_size(text: str):
    """``native``, ``trained``, ``224`` or ``192x256``."""
    if text in ("native", "trained"):
        return text
    match = re.fullmatch(r"(\d+)(?:[x,](\d+))?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r} must be native, trained, N or HxW")
    height, width = int(match[1]), int(match[2] or match[1])
    return height if height == width and not match[2] else (height, width)


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="predict mask and depth for your own BG / BG-FG photos",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bg", required=True, type=Path, help="the background photo, or a folder of them")
    parser.add_argument("--bg-fg", required=True, type=Path,
                        help="the same view with the foreground, or a folder of files named like --bg's")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a checkpoint (.pt, or its run folder) or .safetensors weights; "
                             "default: the weights shipped with dsnet")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="what the network sees: 'trained' (the training scale; the default when the "
                             "checkpoint records it), 'native' (nearest multiple of 32), N, or HxW")
    parser.add_argument("--threshold", type=float, default=0.5, help="mask probability threshold (default 0.5)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    parser.add_argument("--no-figure", action="store_true", help="write only the mask and depth PNGs")
    parser.set_defaults(func=run)


def _images(folder: Path) -> dict[str, Path]:
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            by_stem.setdefault(path.stem, []).append(path)
    twins = [paths for paths in by_stem.values() if len(paths) > 1]
    if twins:
        raise UsageError(f"{folder} has several images named {twins[0][0].stem!r} "
                         f"({', '.join(p.name for p in twins[0])}); keep one")
    return {stem: paths[0] for stem, paths in by_stem.items()}


def pairs_of(bg: Path, bg_fg: Path) -> list[tuple[Path, Path]]:
    """The (BG, BG-FG) file pairs named on the command line; UsageError for anything missing."""
    for name, path in (("--bg", bg), ("--bg-fg", bg_fg)):
        if not path.exists():
            raise UsageError(f"{name} {path} does not exist")
    if bg.is_dir() != bg_fg.is_dir():
        raise UsageError("--bg and --bg-fg must both be files or both be folders")
    if not bg.is_dir():
        return [(bg, bg_fg)]
    bgs, fgs = _images(bg), _images(bg_fg)
    lonely = sorted(set(bgs) ^ set(fgs))
    if lonely:
        where = [f"{(bg if s in bgs else bg_fg) / (bgs.get(s) or fgs[s]).name}" for s in lonely[:3]]
        raise UsageError(f"{len(lonely)} image(s) without a partner of the same name in the other folder: "
                         + ", ".join(where) + (" ..." if len(lonely) > 3 else ""))
    if not bgs:
        raise UsageError(f"{bg} and {bg_fg} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [(bgs[s], fgs[s]) for s in sorted(bgs)]


def check_pairs(pairs: list[tuple[Path, Path]]) -> None:
    """Every file is an image and each pair has one size (headers only, no decoding)."""
    from dsnet.inference import oriented_size

    for bg, bg_fg in pairs:
        try:
            sizes = oriented_size(bg), oriented_size(bg_fg)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if sizes[0] != sizes[1]:
            raise UsageError(f"{bg} is {sizes[0][0]}x{sizes[0][1]} pixels but {bg_fg} is "
                             f"{sizes[1][0]}x{sizes[1][1]}: BG and BG-FG must have the same size")


def check_out(out: Path) -> None:
    """Create ``out`` if needed; UsageError unless it is a writable folder."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {out} ({error.strerror or type(error).__name__})") from None
    if not out.is_dir():
        raise UsageError(f"--out {out} is not a folder")
    probe = out / f".dsnet-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"cannot write to the output folder {out} ({reason})") from None


def run(args: argparse.Namespace) -> int:
    from dsnet.io import CheckpointError
    from dsnet.inference import load_predictor, save_prediction
    from dsnet.progress import progress

    if not 0 < args.threshold < 1:
        raise UsageError(f"--threshold must be between 0 and 1, got {args.threshold}")
    pairs = pairs_of(args.bg, args.bg_fg)
    check_pairs(pairs)
    try:
        predictor = load_predictor(args.checkpoint, args.device)
    except (CheckpointError, RuntimeError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    check_out(args.out)
    names = [bg_fg.stem for _, bg_fg in pairs]
    for (bg, bg_fg), name in progress(list(zip(pairs, names)), desc="predict", unit="pair",
                                      disable=len(pairs) == 1):
        try:
            result = predictor(bg, bg_fg, size=args.size, threshold=args.threshold)
            save_prediction(result, args.out, name, bg_fg=None if args.no_figure else bg_fg)
        except (ValueError, TypeError, OSError) as error:
            raise UsageError(str(error).splitlines()[0]) from None
    print(f"wrote {len(pairs) * (2 if args.no_figure else 3)} files for {len(pairs)} pair(s) to {args.out} "
          f"(network input: mask {result.mask_size[0]}x{result.mask_size[1]}, depth "
          f"{result.depth_size[0]}x{result.depth_size[1]})")
    return 0

"""``dsnet predict``: the foreground's mask and the scene's depth for your own photos.

One pair::

    dsnet predict --bg empty.jpg --bg-fg person.jpg --out predictions/

writes ``predictions/person_mask.png`` (0 or 255), ``person_depth.png`` (16-bit gray: 0 at the
camera, 65535 at 20 m or farther) and ``person_figure.png`` (BG-FG, mask and depth side by side).

Two folders: ``--bg photos/bg --bg-fg photos/bg_fg`` pairs the files with the same name (the
same stem: ``room1.jpg`` with ``room1.png``) and writes the three files per pair.

Every input is checked before anything is written: it exists, has its partner, decodes completely
(a truncated or damaged file is found before the first output, not when its turn comes), has at
most 8192x8192 pixels, and BG and BG-FG have one size; every output name fits the file system, and
--size suits every pair. Outputs that already exist in --out are not replaced: the command names
the first one and stops, unless --overwrite is given; --skip-existing instead continues a folder,
leaving out the pairs whose outputs are all there. A pair's files appear together, whole, or not
at all. --out may not be one of the input folders.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from dsnet.commands import UsageError
from dsnet.files import probe_writable, shown

if TYPE_CHECKING:
    from dsnet.inference import PredictOptions

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
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                        help="first move and re-expose BG to match BG-FG, one shift and one gain per colour for "
                             "the whole frame, as two hand-held shots need; a pair that lines up is left as it is "
                             "(default: on; --no-align skips it)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    parser.add_argument("--no-figure", action="store_true", help="write only the mask and depth PNGs")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs that already exist in --out (default: refuse, naming the first)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave out the pairs whose outputs are all in --out already, e.g. to continue "
                             "after an interruption")
    parser.set_defaults(func=run)


def _images(folder: Path) -> dict[str, Path]:
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            by_stem.setdefault(path.stem, []).append(path)
    twins = [paths for paths in by_stem.values() if len(paths) > 1]
    if twins:
        raise UsageError(f"{shown(folder)} has several images named {shown(twins[0][0].stem)!r} "
                         f"({', '.join(shown(p.name) for p in twins[0])}); keep one")
    return {stem: paths[0] for stem, paths in by_stem.items()}


def pairs_of(bg: Path, bg_fg: Path) -> list[tuple[Path, Path]]:
    """The (BG, BG-FG) file pairs named on the command line; UsageError for anything missing."""
    for name, path in (("--bg", bg), ("--bg-fg", bg_fg)):
        if not path.exists():
            raise UsageError(f"{name} {shown(path)} does not exist")
    if bg.is_dir() != bg_fg.is_dir():
        raise UsageError("--bg and --bg-fg must both be files or both be folders")
    if not bg.is_dir():
        return [(bg, bg_fg)]
    if os.path.samefile(bg, bg_fg):
        raise UsageError(f"--bg and --bg-fg are the same folder ({shown(bg)}): each photo would be paired with "
                         "itself; put the backgrounds and the scenes with the foreground in two folders")
    bgs, fgs = _images(bg), _images(bg_fg)
    lonely = sorted(set(bgs) ^ set(fgs))
    if lonely:
        where = [shown((bg if s in bgs else bg_fg) / (bgs.get(s) or fgs[s]).name) for s in lonely[:3]]
        raise UsageError(f"{len(lonely)} image(s) without a partner of the same name in the other folder: "
                         + ", ".join(where) + (" ..." if len(lonely) > 3 else ""))
    if not bgs:
        raise UsageError(f"{shown(bg)} and {shown(bg_fg)} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [(bgs[s], fgs[s]) for s in sorted(bgs)]


def check_pairs(pairs: list[tuple[Path, Path]], size, train_size: int | None) -> None:
    """Every file decodes completely, holds pixels dsnet reads and is not too large; each pair
    has one size, and ``size`` (as --size gave it) plans a pass for it."""
    from dsnet.images import check_image
    from dsnet.inference import plan_sizes

    for bg, bg_fg in pairs:
        try:
            sizes = check_image(bg), check_image(bg_fg)
        except (ValueError, OSError) as error:
            raise UsageError(str(error).splitlines()[0]) from None
        if sizes[0] != sizes[1]:
            raise UsageError(f"{shown(bg)} is {sizes[0][0]}x{sizes[0][1]} pixels but {shown(bg_fg)} is "
                             f"{sizes[1][0]}x{sizes[1][1]}: BG and BG-FG must have the same size")
        try:
            plan_sizes(*sizes[0], size, train_size)
        except ValueError as error:
            raise UsageError(f"{shown(bg_fg)}: {error}") from None


def check_names(names: list[str], out: Path, figures: bool) -> None:
    """UsageError for an output name longer than the file system takes (usually 255 bytes)."""
    from dsnet.inference import prediction_paths

    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    try:
        longest = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        longest = 255
    for name in names:
        for path in prediction_paths(out, name, figure=figures).values():
            if len(os.fsencode(path.name)) > longest:
                raise UsageError(f"the output {shown(path.name)} would be longer than the {longest} bytes a file name "
                                 "may have here; rename that input to a shorter name")


def check_not_an_input(out: Path, bg: Path, bg_fg: Path) -> None:
    """UsageError when --out is a folder of inputs: outputs would mix with the photos."""
    for name, folder in (("--bg", bg), ("--bg-fg", bg_fg)):
        if folder.is_dir() and out.exists() and os.path.samefile(out, folder):
            raise UsageError(f"--out {shown(out)} is the {name} folder; write the predictions to a folder of "
                             "their own")


def check_clashes(names: list[str], out: Path, figures: bool) -> None:
    """UsageError naming the first output file that exists already."""
    from dsnet.inference import prediction_paths

    if not out.is_dir():
        return
    for name in names:
        for path in prediction_paths(out, name, figure=figures).values():
            if path.exists():
                raise UsageError(f"{shown(path)} exists already; pass --overwrite to replace it, --skip-existing "
                                 "to leave out the pairs already done, or choose another --out")


def check_out(out: Path) -> None:
    """Create ``out`` if needed; UsageError unless it is a writable folder."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {shown(out)} is not a folder")
    try:
        probe_writable(out)
    except OSError as error:
        reason, doing = error.strerror or type(error).__name__, "write to" if out.is_dir() else "create"
        raise UsageError(f"cannot {doing} the output folder {shown(out)} ({reason})") from None


def options_of(args: argparse.Namespace) -> PredictOptions:
    """The :class:`dsnet.inference.PredictOptions` the command line asks for, its device checked
    to exist; UsageError naming the option otherwise."""
    from dsnet.device import pick_device
    from dsnet.inference import PredictOptions

    try:
        device = pick_device(args.device)
    except ValueError as error:
        raise UsageError(f"--device: {error}") from None
    try:
        return PredictOptions(size=args.size, threshold=args.threshold, align=args.align, device=device)
    except ValueError as error:      # its sentences start with the field's name, which is the option's
        raise UsageError(f"--{error}") from None


def run(args: argparse.Namespace) -> int:
    from dsnet.inference import load_predictor, predict_files

    if args.overwrite and args.skip_existing:
        raise UsageError("--overwrite and --skip-existing contradict each other; pass one")
    options = options_of(args)
    pairs = pairs_of(args.bg, args.bg_fg)
    check_not_an_input(args.out, args.bg, args.bg_fg)
    names = [bg_fg.stem for _, bg_fg in pairs]
    check_names(names, args.out, figures=not args.no_figure)
    if not (args.overwrite or args.skip_existing):
        check_clashes(names, args.out, figures=not args.no_figure)
    try:
        predictor = load_predictor(args.checkpoint, options.device)
    except (ValueError, RuntimeError) as error:      # CheckpointError is a ValueError
        raise UsageError(str(error).splitlines()[0]) from None
    check_pairs(pairs, options.size, predictor.train_size)
    check_out(args.out)
    try:
        result, written = predict_files(predictor, pairs, args.out, options, figures=not args.no_figure,
                                        skip_existing=args.skip_existing, show_progress=len(pairs) > 1)
    except ValueError as error:
        raise UsageError(str(error)) from None
    skipped = f"; {len(pairs) - written} pair(s) done before, left as they were" if written < len(pairs) else ""
    sizes = (f" (network input: mask {result.mask_size[0]}x{result.mask_size[1]}, depth "
             f"{result.depth_size[0]}x{result.depth_size[1]})" if result is not None else "")
    print(f"wrote {written * (2 if args.no_figure else 3)} files for {written} pair(s) to {shown(args.out)}"
          f"{sizes}{skipped}")
    return 0

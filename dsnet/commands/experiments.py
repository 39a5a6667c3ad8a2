"""``dsnet experiments``: train the Experiments chapter's arms and store each run as JSON.

    dsnet experiments                                  # every arm, seeds 0 1 2, into runs/experiments
    dsnet experiments --experiment fusion              # one experiment's arms
    dsnet experiments --arms spec siamese --seeds 3 4 --out my-runs
    dsnet experiments --arms spec --seeds 0 --budget tiny --out /tmp/check
    dsnet experiments --device auto --out gpu-runs    # on a GPU (Colab): the whole set in minutes

Each run is one file, ARM-seedN.json: config, every step's loss, the per-epoch history, the test
metrics, the wall time, the machine and the command. The learning rate is the range test's pick
stored in the folder's lr_range.json; the first run into a folder without one makes it. A stored
run is kept unless --overwrite. Runs train on the CPU, one after another (about 90 s each on a
2-core CPU at the cpu budget).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dsnet.commands import UsageError

ARM_NAMES = ("spec", "siamese", "early", "no_p_skips", "mask_bce", "mask_dice", "depth_ssim", "norm_before",
             "lr_x10", "lr_div10", "fixed_96", "progressive")
EXPERIMENT_NAMES = ("fusion", "skips", "loss", "norm", "lr", "resizing")


def register(subparsers) -> None:
    parser = subparsers.add_parser("experiments", help="train the Experiments chapter's arms, stored as JSON",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", choices=ARM_NAMES, default=None, metavar="ARM",
                        help=f"arms to train (default: all): {', '.join(ARM_NAMES)}")
    parser.add_argument("--experiment", choices=EXPERIMENT_NAMES, default=None,
                        help="train this experiment's arms (instead of --arms)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                        help="seeds (default 0 1 2)")
    parser.add_argument("--budget", choices=("cpu", "tiny"), default="cpu",
                        help="cpu: the chapter's runs; tiny: eight steps a stage, to check the pipeline")
    parser.add_argument("--out", type=Path, default=Path("runs/experiments"),
                        help="folder of the stored runs (default runs/experiments; the book's own set is "
                             "dsnet/experiment_runs in the repository)")
    parser.add_argument("--overwrite", action="store_true", help="train again the runs already stored")
    parser.add_argument("--device", default="cpu",
                        help="cpu (as the book's runs), auto (CUDA when available), cuda, cuda:1, ...")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.arms and args.experiment:
        raise UsageError("give --arms or --experiment, not both")
    if any(seed < 0 for seed in args.seeds):
        raise UsageError("seeds must be 0 or more")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a folder")
    from dsnet.experiments import ARMS, EXPERIMENTS, run_experiments

    arms = EXPERIMENTS[args.experiment] if args.experiment else (args.arms or list(ARMS))
    try:
        written = run_experiments(arms, args.seeds, args.out, args.budget, args.overwrite, args.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{len(written)} run(s) written to {args.out}")
    return 0

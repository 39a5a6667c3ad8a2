"""The ``dsnet`` command line: ``dsnet SUBCOMMAND ...`` and ``python -m dsnet SUBCOMMAND ...``.

Each subcommand lives in its own module under ``dsnet.commands`` with two functions:
``register(subparsers)`` adds its parser and sets ``func``; ``func(args) -> int`` runs it.
A parser whose options need a heavy import adds them when it is used
(:class:`dsnet.commands.CommandParser`), so that ``dsnet --help`` stays fast.
Bad input is reported as one line on stderr with exit status 2 (:class:`UsageError`).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from dsnet._version import __version__
from dsnet.commands import CommandParser, UsageError
from dsnet.files import shown

COMMANDS = ("bench", "data", "train", "predict", "export", "experiments")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsnet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"dsnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       parser_class=CommandParser)
    for name in COMMANDS:
        importlib.import_module(f"dsnet.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"dsnet {args.command}: error: {shown(str(error))}", file=sys.stderr)   # one line, always
        return 2
    except KeyboardInterrupt:
        print(f"dsnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

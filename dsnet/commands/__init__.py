"""The subcommands of ``dsnet``: one module each, with ``register(subparsers)`` and ``run(args)``.

:class:`UsageError` lives here, below the command modules and :mod:`dsnet.cli`, so that every
command can raise it without importing the CLI that imports them."""
from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""


class CommandParser(argparse.ArgumentParser):
    """An argument parser that may add its options on first use: ``options(parser)`` runs once,
    before the parser first parses or prints its help. ``dsnet --help`` then lists a command
    without importing what its options are made of (``dsnet train``'s come from
    :class:`dsnet.train.TrainConfig`, and with it torch, a second or more)."""

    def __init__(self, *args: Any, options: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._options = options

    def _complete(self) -> None:
        options, self._options = self._options, None
        if options is not None:
            options(self)

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._complete()
        return super().format_usage()

    def format_help(self) -> str:
        self._complete()
        return super().format_help()

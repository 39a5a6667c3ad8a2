"""The subcommands of ``dsnet``: one module each, with ``register(subparsers)`` and ``run(args)``.

:class:`UsageError` lives here, below the command modules and :mod:`dsnet.cli`, so that every
command can raise it without importing the CLI that imports them."""


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""

"""The command line, ``python -m dsnet.sync``: parses the options, prints what the library returns,
and turns its results and errors into the exit status (0 in sync, 1 stale or failed, 2 refused)."""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import dsnet.sync as package
from dsnet.sync.errors import ChapterError, ExecutionError, UnknownChapterError
from dsnet.sync.project import Project, find_project
from dsnet.sync.update import Stale, update, verify

SYNC_TOOLS = ("jupytext", "nbformat", "yaml")
EXECUTE_TOOLS = ("nbclient", "jupyter_cache", "myst_nb", "ipykernel")


def missing_tools(execute: bool) -> list[str]:
    """The modules this run needs that are not installed (they come with ``dsnet[sync]``)."""
    needed = SYNC_TOOLS + (EXECUTE_TOOLS if execute else ())
    return [name for name in needed if importlib.util.find_spec(name) is None]


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m dsnet.sync``."""
    parser = argparse.ArgumentParser(prog="python -m dsnet.sync", description=package.__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 and name every stale file")
    parser.add_argument("--execute", nargs="*", metavar="CHAPTER", type=Path,
                        help="execute these chapters (all when none is named) and store their outputs")
    parser.add_argument("--verify", nargs="*", metavar="CHAPTER", type=Path,
                        help="execute these chapters (all when none is named) once, keep the run for the book "
                             "build, and exit 1 naming every cell whose outputs differ from the stored ones")
    parser.add_argument("--root", type=Path, help="the source checkout (default: the one holding this package)")
    return parser


def report(stale: list[Stale], check: bool) -> int:
    """Print what the sync found stale (with ``check``) or updated; the exit status."""
    verb = "stale" if check else "updated"
    for entry in stale:
        print(f"{verb}: {entry}")
    if check and stale:
        print(f"{len(stale)} file(s) out of sync; run `python -m dsnet.sync`.", file=sys.stderr)
        return 1
    if any(entry.unrun for entry in stale):
        return 1
    if not stale:
        print("in sync: chapters, modules and notebooks agree.")
    return 0


def run_verify(project: Project, chapters: list[Path]) -> int:
    """Print each verified chapter's mismatches and verdict as it finishes; 1 if any differ."""
    failed = 0
    for result in verify(project, chapters):
        for problem in result.problems:
            print(f"{result.chapter}: {problem}")
        print(f"{result.chapter}: {'outputs differ from the stored ones' if result.problems else 'outputs as stored'}")
        failed += bool(result.problems)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: the process's arguments); the exit status."""
    args = build_parser().parse_args(argv)
    missing = missing_tools(args.execute is not None or args.verify is not None)
    if missing:
        print(f"dsnet.sync: needs the book tools, missing {', '.join(missing)}; "
              "install them with: pip install 'dsnet[sync]' (or -e '.[sync]' in a clone)", file=sys.stderr)
        return 2
    project = find_project(args.root.resolve() if args.root else None)
    if project is None:
        print("dsnet.sync: no chapters to sync here: this dsnet is installed, not a source checkout "
              "(clone the repository and run it there).", file=sys.stderr)
        return 2
    try:
        to_execute, to_verify = (project.named_chapters(names) for names in (args.execute, args.verify))
        if to_verify:
            return run_verify(project, to_verify)
        stale = update(project, args.check, to_execute,
                       on_execute=lambda chapter: print(f"executing {chapter.relative_to(project.root)} ...",
                                                        flush=True))
        return report(stale, args.check)
    except (ChapterError, UnknownChapterError) as error:
        print(f"dsnet.sync: {error}", file=sys.stderr)
        return 2
    except ExecutionError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Bringing the files the sync owns up to date (or, with ``check``, only naming the stale ones), and
verifying chapters against their stored outputs. Results come back as data; printing them and
choosing an exit status is the command line's job (``dsnet.sync.__main__``)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dsnet.files import atomic_write_text
from dsnet.sync.compare import output_mismatches
from dsnet.sync.execute import execute
from dsnet.sync.modules import expected_modules, generated_modules_on_disk
from dsnet.sync.notebooks import expected_notebook, missing_outputs, with_setup_cell
from dsnet.sync.project import Project


@dataclass(frozen=True)
class Stale:
    """A file that disagreed with its chapter: its path in the checkout and why. ``unrun`` marks a
    notebook whose cells have no stored outputs, which only executing the chapter resolves."""

    path: Path
    reason: str
    unrun: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Verified:
    """One verified chapter (its path in the checkout) and every output that differs from the stored one."""

    chapter: Path
    problems: list[str] = field(default_factory=list)


def plan(project: Project) -> dict[Path, str | None]:
    """Every file the sync owns, with its expected text (None: the file should not exist)."""
    url = project.repository_url()
    files: dict[Path, str | None] = {}
    for chapter in project.chapters():
        text = chapter.read_text(encoding="utf-8")
        files[chapter] = with_setup_cell(text, url)
    for path in generated_modules_on_disk(project):
        files[path] = None
    # The setup cell is never exported, so modules can be read from the chapters as they are.
    files.update(expected_modules(project))
    return files


def _update_sources(project: Project, check: bool) -> list[Stale]:
    """Chapters (their setup cell) and generated modules: the stale ones, rewritten unless ``check``."""
    stale: list[Stale] = []
    for path, text in plan(project).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        reason = ("should not exist (no chapter exports it)" if text is None
                  else "missing" if current is None else "differs from its chapter")
        stale.append(Stale(path.relative_to(project.root), reason))
        if not check:
            if text is None:
                path.unlink()
            else:
                atomic_write_text(path, text)
    return stale


def _update_notebook(project: Project, chapter: Path, check: bool, executed: object = None) -> list[Stale]:
    """The chapter's paired notebook (outputs from ``executed``, else the stored ones): stale or
    rewritten unless ``check``, and whether cells lack stored outputs."""
    ipynb = chapter.with_suffix(".ipynb")
    rel = ipynb.relative_to(project.root)
    stale: list[Stale] = []
    expected = expected_notebook(chapter, executed)
    current = ipynb.read_text(encoding="utf-8") if ipynb.exists() else None
    if current != expected:
        stale.append(Stale(rel, "missing" if current is None else f"inputs or metadata differ from {chapter.name}"))
        if not check:
            atomic_write_text(ipynb, expected)
    unrun = missing_outputs(expected)
    if unrun:
        stale.append(Stale(rel, f"cells {unrun} have no stored outputs; run "
                                f"`python -m dsnet.sync --execute {chapter.relative_to(project.root)}`", unrun=True))
    return stale


def update(project: Project, check: bool = False, to_execute: list[Path] | None = None,
           on_execute: Callable[[Path], None] | None = None) -> list[Stale]:
    """Bring every file the sync owns up to date with the chapters (with ``check``, change nothing)
    and return what was stale. The chapters in ``to_execute`` run first (not with ``check``), and
    their notebooks store the fresh outputs; ``on_execute`` hears of each before it runs. A
    :class:`ChapterError` for a chapter whose markers are refused (before anything is written), an
    :class:`ExecutionError` for one that fails to run."""
    # Chapters and modules first: notebooks are built from the (fixed) chapters.
    stale = _update_sources(project, check)
    for chapter in project.chapters():
        executed = None
        if chapter in (to_execute or []) and not check:
            if on_execute is not None:
                on_execute(chapter)
            executed = execute(chapter, project)
        stale += _update_notebook(project, chapter, check, executed)
    return stale


def verify(project: Project, chapters: list[Path]) -> Iterator[Verified]:
    """Execute each chapter once (keeping the run for the book build) and compare its outputs with
    the stored ones, one chapter at a time; an :class:`ExecutionError` for one that fails to run."""
    for chapter in chapters:
        problems = output_mismatches(chapter, execute(chapter, project), project)
        yield Verified(chapter.relative_to(project.root), problems)

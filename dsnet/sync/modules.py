"""Chapter cells to generated modules: a code cell whose first line is ``#| export: dsnet.NAME``
belongs to ``dsnet/NAME.py``. Markers that are malformed, misplaced, or aim at hand-written code
are refused with the chapter and line (:class:`ChapterError`)."""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from dsnet.sync.errors import ChapterError
from dsnet.sync.project import Project

EXPORT_RE = re.compile(r"^#\| export: dsnet\.([a-z_][a-z0-9_]*)\s*$")
# What someone may have meant as an export marker: refused unless it is exactly EXPORT_RE, because
# a cell dropped in silence only surfaces later, as a NameError in the module it was meant for.
MARKER_LIKE_RE = re.compile(r"^\s*#\s*(\|.*export|export\s*:\s*dsnet\b)", re.I)
MARKER_FORM = "`#| export: dsnet.<lowercase module>` (a module directly in dsnet/)"
GENERATED_MARK = "# Generated from "


@dataclass
class ExportCell:
    """A code cell marked for ``dsnet/<module>.py``: its source without the marker, the marker's
    line in the chapter (from 1), and the chapter line of the body's first line."""

    module: str
    line: int
    body: str
    body_line: int

    def source_comment(self, chapter_rel: str) -> str:
        """The comment put above the body in the module, e.g. ``# book/model.md, line 12``: the
        line just below it is chapter line 12, the next 13, and so on, so that a line number in a
        traceback leads to the chapter's line."""
        return f"# {chapter_rel}, line {self.body_line}"


def _marker_module(line: str) -> str | None:
    """The module a well-formed export marker names, else None."""
    match = EXPORT_RE.match(line)
    return match.group(1) if match and not keyword.iskeyword(match.group(1)) else None


def _leading_comments(lines: list[str]) -> list[str]:
    """The blank and comment lines a cell starts with: where a marker, or a misplaced one, sits."""
    head = []
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            break
        head.append(line)
    return head


def _marker_problem(where: str, index: int, line: str) -> str:
    """The sentence that refuses ``line``, the ``index``-th line of a cell."""
    text = line.strip()
    if index > 0 and _marker_module(line):
        return f"{where}: the export marker `{text}` must be its cell's first line (one marker per cell)"
    return f"{where}: `{text}` is not a valid export marker; write {MARKER_FORM} as the cell's first line"


def export_cells(chapter: Path, shown: str) -> list[ExportCell]:
    """The chapter's code cells marked for export, in order. A line among a cell's leading comments
    that looks like a marker but is not a well-formed first line is a :class:`ChapterError`
    naming ``shown`` (the chapter as the user knows it, e.g. ``book/blocks.md``) and the line."""
    import jupytext

    text = chapter.read_text(encoding="utf-8")
    cells: list[ExportCell] = []
    cursor = 0
    for cell in jupytext.read(chapter).cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        # the cell's source stands verbatim in the chapter, after the previous cell's
        at = text.find(cell.source, cursor)
        at = cursor if at < 0 else at
        cursor = at + len(cell.source)
        first = text.count("\n", 0, at) + 1
        lines = cell.source.split("\n")
        for index, line in enumerate(_leading_comments(lines)):
            if MARKER_LIKE_RE.match(line) and not (index == 0 and _marker_module(line)):
                raise ChapterError(_marker_problem(f"{shown} line {first + index}", index, line))
        module = _marker_module(lines[0])
        if module:
            rest = "\n".join(lines[1:])
            skipped = len(rest) - len(rest.lstrip("\n"))
            cells.append(ExportCell(module, first, rest.strip("\n"), first + 1 + skipped))
    return cells


def check_target(project: Project, shown: str, cell: ExportCell) -> None:
    """A :class:`ChapterError` when ``cell`` would overwrite or shadow a module written by hand
    (one whose file does not start with the generated header, or a subpackage such as
    ``dsnet.commands``)."""
    where, name = f"{shown} line {cell.line}", cell.module
    if (project.package / name).is_dir():
        raise ChapterError(f"{where}: `#| export: dsnet.{name}` would shadow the hand-written package "
                           f"dsnet/{name}/; export to a module of its own, {MARKER_FORM}")
    target = project.package / f"{name}.py"
    if target.exists() and not target.read_text(encoding="utf-8").startswith(GENERATED_MARK):
        raise ChapterError(f"{where}: `#| export: dsnet.{name}` would overwrite dsnet/{name}.py, which is "
                           "written by hand; export to a module of its own, under a new name")


def module_text(chapter_rel: str, cells: list[ExportCell]) -> str:
    """A generated module: the header naming its chapter, then each exported cell's code below a
    comment naming the chapter line it starts at (a comment, so the first cell's docstring and
    ``from __future__`` import keep their places)."""
    header = (
        f"{GENERATED_MARK}{chapter_rel} by `python -m dsnet.sync`.\n"
        "# Do not edit: change the chapter and run the sync again.\n"
    )
    blocks = [f"{cell.source_comment(chapter_rel)}\n{cell.body}" for cell in cells]
    return header + "\n\n\n".join(blocks) + "\n"


def expected_modules(project: Project) -> dict[Path, str]:
    """Every generated module's expected text; a :class:`ChapterError` for a marker the sync refuses,
    one that would overwrite a hand-written module, or a module exported by two chapters."""
    owners: dict[str, str] = {}
    files: dict[Path, str] = {}
    for chapter in project.chapters():
        rel = chapter.relative_to(project.root).as_posix()
        modules: dict[str, list[ExportCell]] = {}
        for cell in export_cells(chapter, rel):
            check_target(project, rel, cell)
            if owners.setdefault(cell.module, rel) != rel:
                raise ChapterError(f"dsnet.{cell.module} is exported by both {owners[cell.module]} and {rel} "
                                   f"line {cell.line}; export it from one chapter only")
            modules.setdefault(cell.module, []).append(cell)
        for name, cells in modules.items():
            files[project.package / f"{name}.py"] = module_text(rel, cells)
    return files


def generated_modules_on_disk(project: Project) -> list[Path]:
    """The modules in ``dsnet/`` that carry the generated header, whether or not a chapter still exports them."""
    return [p for p in sorted(project.package.glob("*.py"))
            if p.read_text(encoding="utf-8").startswith(GENERATED_MARK)]

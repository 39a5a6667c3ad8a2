"""Keep the chapters, the generated modules and the Colab notebooks in agreement.

The chapters in ``book/*.md`` (Jupytext MyST notebooks) are the single source of the
code they teach. A code cell whose first line is ``#| export: dsnet.NAME`` belongs to
the module ``dsnet/NAME.py``; this tool writes those modules and the paired
``book/*.ipynb`` files that Colab opens. A marker that is malformed, not a cell's first line, or
names a module written by hand (one without the generated header) stops the sync with the
chapter and line::

    python -m dsnet.sync            # regenerate modules and notebooks
    python -m dsnet.sync --check    # exit 1 and name every stale file
    python -m dsnet.sync --execute book/shapes.md   # also refresh stored outputs
    python -m dsnet.sync --verify book/shapes.md    # run it, compare with the stored outputs

Stored outputs: every code cell of a paired notebook keeps the outputs of its last
execution, which the tests compare by nbval's rules, except cells tagged
``nbval-ignore-output`` or ``nbval-skip`` (nondeterministic: timings, training, widgets),
whose outputs are never stored. Images are not stored either (nbval does not compare
them, and they would bloat every diff); the built book renders them fresh.

Each chapter executes once per test run: ``--verify`` (and ``--execute``) run it with
jupyter-cache, the way ``jupyter-book build`` does, and store the executed notebook in the
book's cache (``_build/.jupyter_cache``), where the book build (``execute_notebooks: cache``)
finds it instead of running the chapter a second time.

Everything is compared by content, never by file times, so a fresh clone checks clean.
"""
from __future__ import annotations

import argparse
import hashlib
import keyword
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from dsnet.files import atomic_write_text

EXPORT_RE = re.compile(r"^#\| export: dsnet\.([a-z_][a-z0-9_]*)\s*$")
# What someone may have meant as an export marker: refused unless it is exactly EXPORT_RE, because
# a cell dropped in silence only surfaces later, as a NameError in the module it was meant for.
MARKER_LIKE_RE = re.compile(r"^\s*#\s*(\|.*export|export\s*:\s*dsnet\b)", re.I)
MARKER_FORM = "`#| export: dsnet.<lowercase module>` (a module directly in dsnet/)"
GENERATED_MARK = "# Generated from "
UNSTORED_TAGS = {"nbval-ignore-output", "nbval-skip"}
UNSTORED_MIME = {"image/png", "image/jpeg", "image/svg+xml", "application/vnd.jupyter.widget-view+json"}
SETUP_TAG = "colab-setup"


class ChapterError(ValueError):
    """A chapter whose export markers the sync refuses: printed as one line, exit status 2."""


@dataclass
class Project:
    """Paths of a source checkout: ``root/book/*.md`` and ``root/dsnet/``."""

    root: Path

    @property
    def book(self) -> Path:
        return self.root / "book"

    @property
    def package(self) -> Path:
        return self.root / "dsnet"

    def chapters(self) -> list[Path]:
        return sorted(p for p in self.book.glob("*.md") if _is_notebook(p))

    def repository_url(self) -> str:
        import yaml

        config = yaml.safe_load((self.root / "_config.yml").read_text())
        return config["repository"]["url"].rstrip("/")


def _is_notebook(path: Path) -> bool:
    head = path.read_text(encoding="utf-8")[:400]
    return head.startswith("---") and "format_name: myst" in head


def find_project(start: Path | None = None) -> Project | None:
    """The source checkout that holds this package, or None for an installed wheel."""
    root = (start or Path(__file__).resolve().parent.parent)
    if (root / "book").is_dir() and (root / "_toc.yml").is_file():
        return Project(root)
    return None


# ---------------------------------------------------------------- Colab setup cell
def setup_cell_source(repository_url: str) -> str:
    """The first code cell of every chapter: installs dsnet in Colab, nothing elsewhere."""
    return (
        "# In Colab, install dsnet (with what its chapters import and Colab lacks) from the book's\n"
        "# repository; elsewhere this does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "dsnet[colab] @ git+{repository_url}"'
    )


def setup_cell_block(repository_url: str) -> str:
    return (
        "```{code-cell} ipython3\n"
        f":tags: [{SETUP_TAG}, remove-cell]\n"
        "\n"
        f"{setup_cell_source(repository_url)}\n"
        "```"
    )


_FIRST_CODE_CELL = re.compile(r"```\{code-cell\}[^\n]*\n(?:.*?\n)??```", re.S)


def with_setup_cell(md_text: str, repository_url: str) -> str:
    """``md_text`` whose first code cell is the current Colab setup cell."""
    block = setup_cell_block(repository_url)
    match = _FIRST_CODE_CELL.search(md_text)
    if match and SETUP_TAG in match.group(0).split("\n", 2)[1]:
        return md_text[: match.start()] + block + md_text[match.end():]
    # No setup cell yet: put one right after the chapter's title line.
    title = re.search(r"^# .*\n", md_text, re.M)
    at = title.end() if title else 0
    return md_text[:at] + "\n" + block + "\n" + md_text[at:]


# ---------------------------------------------------------------- modules
@dataclass
class ExportCell:
    """A code cell marked for ``dsnet/<module>.py``: its source without the marker, and the
    marker's line in the chapter (from 1)."""

    module: str
    line: int
    body: str


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
            cells.append(ExportCell(module, first, "\n".join(lines[1:]).strip("\n")))
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


def module_text(chapter_rel: str, cells: list[str]) -> str:
    header = (
        f"{GENERATED_MARK}{chapter_rel} by `python -m dsnet.sync`.\n"
        "# Do not edit: change the chapter and run the sync again.\n"
    )
    return header + "\n\n\n".join(cells) + "\n"


def expected_modules(project: Project) -> dict[Path, str]:
    """Every generated module's expected text; a :class:`ChapterError` for a marker the sync refuses,
    one that would overwrite a hand-written module, or a module exported by two chapters."""
    owners: dict[str, str] = {}
    files: dict[Path, str] = {}
    for chapter in project.chapters():
        rel = chapter.relative_to(project.root).as_posix()
        modules: dict[str, list[str]] = {}
        for cell in export_cells(chapter, rel):
            check_target(project, rel, cell)
            if owners.setdefault(cell.module, rel) != rel:
                raise ChapterError(f"dsnet.{cell.module} is exported by both {owners[cell.module]} and {rel} "
                                   f"line {cell.line}; export it from one chapter only")
            modules.setdefault(cell.module, []).append(cell.body)
        for name, cells in modules.items():
            files[project.package / f"{name}.py"] = module_text(rel, cells)
    return files


def generated_modules_on_disk(project: Project) -> list[Path]:
    return [p for p in sorted(project.package.glob("*.py"))
            if p.read_text(encoding="utf-8").startswith(GENERATED_MARK)]


# ---------------------------------------------------------------- notebooks
def _cell_id(source: str, taken: set[str]) -> str:
    base = hashlib.sha1(source.encode()).hexdigest()[:8]
    cid, n = base, 1
    while cid in taken:
        cid, n = f"{base}-{n}", n + 1
    taken.add(cid)
    return cid


def _stores_outputs(cell) -> bool:
    return cell.cell_type == "code" and not UNSTORED_TAGS & set(cell.metadata.get("tags", []))


def _clean_output(output, count: int):
    if "data" in output:
        output["data"] = {k: v for k, v in output["data"].items() if k not in UNSTORED_MIME}
        output["metadata"] = {}
    if output.get("output_type") == "execute_result":
        output["execution_count"] = count
    return output


def _merge_streams(outputs: list) -> list:
    """Join consecutive writes to one stream: how a kernel splits them varies from run to run."""
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous["name"] == output["name"]):
            previous["text"] = "".join(previous["text"]) + "".join(output["text"])
        else:
            merged.append(output)
    return merged


def normalize(nb, chapter_meta: dict):
    """Deterministic notebook: stable ids and metadata, only the outputs worth storing."""
    import nbformat

    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = nbformat.from_dict(chapter_meta)
    taken: set[str] = set()
    count = 0
    for cell in nb.cells:
        cell.id = _cell_id(cell.source, taken)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if _stores_outputs(cell) and cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
            cleaned = [_clean_output(o, count) for o in cell.outputs]
            cell.outputs = _merge_streams([o for o in cleaned if "data" not in o or o["data"]])
        else:
            cell.execution_count = None
            cell.outputs = []
    return nb


def chapter_metadata(md_nb) -> dict:
    meta = dict(md_nb.metadata)
    meta.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    meta["language_info"] = {"name": "python"}
    colab = {"provenance": [], "toc_visible": True}
    meta["colab"] = colab
    if meta.get("dsnet", {}).get("gpu"):
        meta["accelerator"] = "GPU"
        colab["gpuType"] = "T4"
    return meta


def expected_notebook(chapter: Path, executed=None) -> str:
    """The paired notebook's text: inputs from the chapter, outputs from ``executed``
    (a freshly run notebook) or else from the notebook already on disk."""
    import jupytext
    import nbformat
    from jupytext.combine import combine_inputs_with_outputs

    md_nb = jupytext.read(chapter)
    meta = chapter_metadata(md_nb)
    ipynb = chapter.with_suffix(".ipynb")
    source = executed
    if source is None and ipynb.exists():
        source = nbformat.read(ipynb, as_version=4)
    if source is not None:
        md_nb = combine_inputs_with_outputs(md_nb, source)
    text = nbformat.writes(normalize(md_nb, meta), version=4)
    return text if text.endswith("\n") else text + "\n"


def missing_outputs(ipynb_text: str) -> list[int]:
    """Indices of code cells that should have stored outputs but were never executed."""
    import nbformat

    nb = nbformat.reads(ipynb_text, as_version=4)
    return [i for i, c in enumerate(nb.cells) if _stores_outputs(c) and c.get("execution_count") is None]


def cache_path(project: Project) -> Path:
    """The jupyter-cache that ``jupyter-book build`` reads (``execute_notebooks: cache``)."""
    return project.root / "_build" / ".jupyter_cache"


def book_notebook(chapter: Path):
    """The chapter as the book reads it: MyST-NB's own reader, so that the cache key (a hash of
    the code cells and the kernelspec) is the one ``jupyter-book build`` looks up."""
    from myst_nb.core.read import read_myst_markdown_notebook

    return read_myst_markdown_notebook(chapter.read_text(encoding="utf-8"), add_source_map=True,
                                       path=str(chapter))


def execute(chapter: Path, project: Project, timeout: int = 900):
    """Run the chapter once in a fresh kernel (in its folder, as the book does) and store the
    executed notebook in the book's jupyter-cache, so that the book build reuses this execution
    instead of running the chapter again. Exits with the failing cell's error on failure."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    nb = book_notebook(chapter)
    # the book's pages show text progress bars, not widgets (dsnet.progress; the book build sets the same)
    saved = os.environ.get("DSNET_PROGRESS")
    os.environ["DSNET_PROGRESS"] = saved or "text"
    try:
        result = single_nb_execution(nb, cwd=str(chapter.parent), timeout=timeout, allow_errors=False)
    finally:
        os.environ.pop("DSNET_PROGRESS") if saved is None else os.environ.update(DSNET_PROGRESS=saved)
    if result.err is not None:
        raise SystemExit(failure_message(chapter, result.err, result.exc_string, timeout))
    get_cache(str(cache_path(project))).cache_notebook_bundle(
        CacheBundleIn(nb, str(chapter), data={"execution_seconds": result.time}),
        check_validity=False, overwrite=True)
    return nb


def failure_message(chapter: Path, error: BaseException, trace: str | None, timeout: int) -> str:
    """What went wrong while executing ``chapter``: one line for a cell that ran past ``timeout``
    (the kernel's own noise after the interrupt, a ZMQ traceback, is left out), else the end of
    the failing cell's traceback."""
    from nbclient.exceptions import CellTimeoutError

    if isinstance(error, CellTimeoutError):
        preview = str(error).split("-------------------")
        first = preview[1].strip().splitlines()[0] if len(preview) > 2 and preview[1].strip() else "?"
        return (f"dsnet.sync: {chapter.name}: a cell ran past the {timeout} s limit and was stopped "
                f"(it starts: {first[:80]})")
    text = re.sub(r"\x1b\[[0-9;]*m", "", trace or repr(error))
    text = text.split("[IPKernelApp]")[0]  # the kernel's log after the error is not the error
    return f"dsnet.sync: {chapter.name} failed while executing:\n" + "\n".join(text.strip().splitlines()[-12:])


# nbval's own rules: the keys it never compares, and its comparison of one cell's outputs. To
# those we add glue's records: they hold a value at full float precision for the prose to format,
# so their last digits follow the processor's rounding; the claims the prose makes are asserted in
# the cells, and what a cell prints is compared.
GLUE_RECORDS = ("application/papermill.record/text/plain", "application/papermill.record/text/html")
NBVAL_SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                      "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg", *GLUE_RECORDS)


class _NbvalCell:
    """The part of nbval's notebook-cell item that compares outputs, without a pytest session."""

    def __init__(self, patterns: list[tuple[str, str]]):
        from types import SimpleNamespace

        from nbval.plugin import IPyNbCell, nocolors

        self.parent = SimpleNamespace(skip_compare=NBVAL_SKIP_COMPARE, sanitize_patterns=dict(patterns))
        self.colors = nocolors
        self.comparison_traceback: list[str] = []
        self._compare, self._sanitize = IPyNbCell.compare_outputs, IPyNbCell.sanitize

    def sanitize(self, text):
        return self._sanitize(self, text)

    def format_output_compare(self, key, left, right):
        self.comparison_traceback.append(f"mismatch {key!r}:\n--- stored\n{left}\n+++ this run\n{right}")

    def compare(self, test: list, ref: list) -> str | None:
        """None when nbval would pass the cell, else the reason."""
        from nbval.plugin import coalesce_streams

        self.comparison_traceback = []
        if self._compare(self, coalesce_streams(test), coalesce_streams(ref)):
            return None
        return "\n".join(self.comparison_traceback)


def sanitize_patterns(project: Project) -> list[tuple[str, str]]:
    """The regex-replace pairs of ``tests/nbval_sanitize.cfg`` (nbval's format)."""
    from nbval.plugin import get_sanitize_patterns

    config = project.root / "tests" / "nbval_sanitize.cfg"
    return get_sanitize_patterns(config.read_text()) if config.exists() else []


def output_mismatches(chapter: Path, executed, project: Project) -> list[str]:
    """Every code cell whose fresh outputs ``executed`` differ from the outputs stored in the
    chapter's ``.ipynb``, compared as strictly as nbval does (same keys, same sanitizing)."""
    import nbformat

    stored = nbformat.read(chapter.with_suffix(".ipynb"), as_version=4)
    fresh = nbformat.reads(expected_notebook(chapter, executed), as_version=4)
    stored_code = [c for c in stored.cells if c.cell_type == "code"]
    fresh_code = [c for c in fresh.cells if c.cell_type == "code"]
    if [c.source for c in stored_code] != [c.source for c in fresh_code]:
        return [f"{chapter.with_suffix('.ipynb').name}: its code differs from {chapter.name}; "
                "run `python -m dsnet.sync`"]
    cell, problems = _NbvalCell(sanitize_patterns(project)), []
    for index, (old, new) in enumerate(zip(stored_code, fresh_code)):
        if not _stores_outputs(old):
            continue
        reason = cell.compare(new.outputs, old.outputs)
        if reason:
            first = old.source.strip().splitlines()[0] if old.source.strip() else ""
            problems.append(f"code cell {index} ({first[:60]}): {reason}")
    return problems


# ---------------------------------------------------------------- the command
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


def run(project: Project, check: bool, to_execute: list[Path]) -> int:
    files = plan(project)
    stale: list[str] = []
    # Chapters and modules first: notebooks are built from the (fixed) chapters.
    for path, text in files.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        rel = path.relative_to(project.root)
        stale.append(f"{rel}: " + ("should not exist (no chapter exports it)" if text is None
                                   else "missing" if current is None else "differs from its chapter"))
        if not check:
            if text is None:
                path.unlink()
            else:
                atomic_write_text(path, text)
    for chapter in project.chapters():
        ipynb = chapter.with_suffix(".ipynb")
        rel = ipynb.relative_to(project.root)
        executed = None
        if chapter in to_execute and not check:
            print(f"executing {chapter.relative_to(project.root)} ...", flush=True)
            executed = execute(chapter, project)
        expected = expected_notebook(chapter, executed)
        current = ipynb.read_text(encoding="utf-8") if ipynb.exists() else None
        if current != expected:
            stale.append(f"{rel}: " + ("missing" if current is None else "inputs or metadata differ from "
                                       f"{chapter.name}"))
            if not check:
                atomic_write_text(ipynb, expected)
        unrun = missing_outputs(expected)
        if unrun:
            stale.append(f"{rel}: cells {unrun} have no stored outputs; run "
                         f"`python -m dsnet.sync --execute {chapter.relative_to(project.root)}`")
    verb = "stale" if check else "updated"
    for line in stale:
        print(f"{verb}: {line}")
    unresolved = [s for s in stale if "no stored outputs" in s]
    if check and stale:
        print(f"{len(stale)} file(s) out of sync; run `python -m dsnet.sync`.", file=sys.stderr)
        return 1
    if unresolved:
        return 1
    if not stale:
        print("in sync: chapters, modules and notebooks agree.")
    return 0


SYNC_TOOLS = ("jupytext", "nbformat", "yaml")
EXECUTE_TOOLS = ("nbclient", "jupyter_cache", "myst_nb", "nbval", "ipykernel")


def missing_tools(execute: bool) -> list[str]:
    """The modules this run needs that are not installed (they come with ``dsnet[sync]``)."""
    import importlib.util

    needed = SYNC_TOOLS + (EXECUTE_TOOLS if execute else ())
    return [name for name in needed if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsnet.sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 and name every stale file")
    parser.add_argument("--execute", nargs="*", metavar="CHAPTER", type=Path,
                        help="execute these chapters (all when none is named) and store their outputs")
    parser.add_argument("--verify", nargs="*", metavar="CHAPTER", type=Path,
                        help="execute these chapters (all when none is named) once, keep the run for the book "
                             "build, and exit 1 naming every cell whose outputs differ from the stored ones")
    parser.add_argument("--root", type=Path, help="the source checkout (default: the one holding this package)")
    args = parser.parse_args(argv)
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
        to_execute, to_verify = (_named_chapters(project, names) for names in (args.execute, args.verify))
    except ValueError as error:
        print(f"dsnet.sync: {error}", file=sys.stderr)
        return 2
    try:
        return verify(project, to_verify) if to_verify else run(project, args.check, to_execute)
    except ChapterError as error:
        print(f"dsnet.sync: {error}", file=sys.stderr)
        return 2


def _named_chapters(project: Project, names: list[Path] | None) -> list[Path]:
    """None: no chapter; []: every chapter; else the named ones, which must be chapters."""
    if names is None:
        return []
    if not names:
        return project.chapters()
    # a relative name is read from the checkout's root, else from the current folder
    chapters = [(project.root / p if (project.root / p).exists() else p).resolve() for p in names]
    unknown = [str(p) for p in chapters if p not in project.chapters()]
    if unknown:
        raise ValueError(f"not a chapter: {', '.join(unknown)}")
    return chapters


def verify(project: Project, chapters: list[Path]) -> int:
    """Execute each chapter once and compare its outputs with the stored ones; 1 if any differ."""
    failed = 0
    for chapter in chapters:
        problems = output_mismatches(chapter, execute(chapter, project), project)
        rel = chapter.relative_to(project.root)
        for problem in problems:
            print(f"{rel}: {problem}")
        print(f"{rel}: {'outputs differ from the stored ones' if problems else 'outputs as stored'}")
        failed += bool(problems)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())

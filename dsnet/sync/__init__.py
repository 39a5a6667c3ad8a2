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

The package, a part per job: ``project`` (the checkout, its chapters and ``_toc.yml``), ``modules``
(export markers to generated modules), ``notebooks`` (the paired ``.ipynb``), ``execute`` (running a
chapter), ``compare`` (its outputs against the stored ones), ``update`` (the files brought up to
date, as data) and ``__main__`` (the command line, the only part that prints or exits). Every
error the sync raises is a :class:`SyncError`.
"""
from __future__ import annotations

from dsnet.sync.compare import GLUE_RECORDS, NBVAL_SKIP_COMPARE, compare_outputs, output_mismatches, sanitize_patterns
from dsnet.sync.errors import ChapterError, ExecutionError, SyncError, UnknownChapterError
from dsnet.sync.execute import book_notebook, cache_path, execute, failure_message, kernel_env
from dsnet.sync.modules import (
    EXPORT_RE,
    GENERATED_MARK,
    MARKER_FORM,
    ExportCell,
    check_target,
    export_cells,
    expected_modules,
    generated_modules_on_disk,
    module_text,
)
from dsnet.sync.notebooks import (
    SETUP_TAG,
    UNSTORED_MIME,
    UNSTORED_TAGS,
    chapter_metadata,
    expected_notebook,
    missing_outputs,
    normalize,
    setup_cell_source,
    with_setup_cell,
)
from dsnet.sync.project import Project, TocChapter, find_project, read_toc
from dsnet.sync.update import Stale, Verified, plan, update, verify

__all__ = [
    "EXPORT_RE", "GENERATED_MARK", "GLUE_RECORDS", "MARKER_FORM", "NBVAL_SKIP_COMPARE", "SETUP_TAG", "UNSTORED_MIME",
    "UNSTORED_TAGS", "ChapterError", "ExecutionError", "ExportCell", "Project", "Stale", "SyncError", "TocChapter",
    "UnknownChapterError", "Verified", "book_notebook", "cache_path", "chapter_metadata", "check_target",
    "compare_outputs", "execute", "expected_modules", "expected_notebook", "export_cells", "failure_message",
    "find_project", "generated_modules_on_disk", "kernel_env", "main", "missing_outputs", "module_text", "normalize",
    "output_mismatches", "plan", "read_toc", "sanitize_patterns", "setup_cell_source", "update", "verify",
    "with_setup_cell",
]


def main(argv: list[str] | None = None) -> int:
    """The command line, ``python -m dsnet.sync`` with ``argv``: its exit status. Imported on call,
    so that ``python -m dsnet.sync`` does not find its ``__main__`` imported already."""
    from dsnet.sync.__main__ import main as command_line

    return command_line(argv)

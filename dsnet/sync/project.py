"""The source checkout the sync works on: where the book and the package are, and which chapters
the book has (``book/*.md`` notebooks, and their reading order in ``_toc.yml``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from dsnet.sync.errors import UnknownChapterError


class TocChapter(NamedTuple):
    """One chapter of ``_toc.yml``."""

    part: str                 # its part's caption ("" for the root page)
    files: tuple[str, ...]    # the chapter's page and its sections', ``book/NAME`` without suffix


def read_toc(root: Path) -> list[TocChapter]:
    """The chapters of ``root/_toc.yml`` in reading order, the root page first as a chapter of its own."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    chapters = [TocChapter("", (toc["root"],))]
    for part in toc.get("parts", []):
        for chapter in part["chapters"]:
            files = (chapter["file"], *(section["file"] for section in chapter.get("sections", [])))
            chapters.append(TocChapter(str(part.get("caption", "")), files))
    return chapters


@dataclass
class Project:
    """Paths of a source checkout: ``root/book/*.md`` and ``root/dsnet/``."""

    root: Path
    _toc: list[TocChapter] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def book(self) -> Path:
        """The folder of the chapters and their paired notebooks."""
        return self.root / "book"

    @property
    def package(self) -> Path:
        """The ``dsnet`` package folder, where the generated modules go."""
        return self.root / "dsnet"

    def chapters(self) -> list[Path]:
        """Every chapter the sync owns: each ``book/*.md`` that is a notebook, sorted by name. Files on
        disk, not the table of contents, so that a chapter missing from ``_toc.yml`` is still synced
        (and the tests can catch that it is missing)."""
        return sorted(p for p in self.book.glob("*.md") if _is_notebook(p))

    def toc(self) -> list[TocChapter]:
        """The chapters of ``_toc.yml`` in reading order (read once per project)."""
        if self._toc is None:
            self._toc = read_toc(self.root)
        return self._toc

    def toc_files(self) -> list[str]:
        """Every file of ``_toc.yml`` in reading order (``book/NAME``, without suffix)."""
        return [name for chapter in self.toc() for name in chapter.files]

    def reading_order(self) -> list[Path]:
        """The chapters of :meth:`chapters` that ``_toc.yml`` lists, in its order (the API and
        references pages are not notebooks)."""
        notebooks = set(self.chapters())
        return [path for path in (self.root / f"{name}.md" for name in self.toc_files()) if path in notebooks]

    def repository_url(self) -> str:
        """The book's repository (``_config.yml``), which the Colab setup cell installs from."""
        import yaml

        config = yaml.safe_load((self.root / "_config.yml").read_text())
        return config["repository"]["url"].rstrip("/")

    def named_chapters(self, names: list[Path] | None) -> list[Path]:
        """None: no chapter; []: every chapter; else the named ones, which must be chapters (an
        :class:`UnknownChapterError` names the others)."""
        if names is None:
            return []
        if not names:
            return self.chapters()
        # a relative name is read from the checkout's root, else from the current folder
        chapters = [(self.root / p if (self.root / p).exists() else p).resolve() for p in names]
        unknown = [str(p) for p in chapters if p not in self.chapters()]
        if unknown:
            raise UnknownChapterError(f"not a chapter: {', '.join(unknown)}")
        return chapters


def _is_notebook(path: Path) -> bool:
    head = path.read_text(encoding="utf-8")[:400]
    return head.startswith("---") and "format_name: myst" in head


def find_project(start: Path | None = None) -> Project | None:
    """The source checkout that holds this package, or None for an installed wheel."""
    root = start or Path(__file__).resolve().parents[2]
    if (root / "book").is_dir() and (root / "_toc.yml").is_file():
        return Project(root)
    return None

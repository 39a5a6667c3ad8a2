"""Helpers that several test files import (``from helpers import ...``): the book's table of contents."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import yaml


class TocChapter(NamedTuple):
    """One chapter of ``_toc.yml``."""

    part: str                 # its part's caption ("" for the root page)
    files: tuple[str, ...]    # the chapter's page and its sections', ``book/NAME`` without suffix


def read_toc(root: Path) -> list[TocChapter]:
    """The chapters of ``root/_toc.yml`` in reading order, the root page first as a chapter of its own."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    chapters = [TocChapter("", (toc["root"],))]
    for part in toc.get("parts", []):
        for chapter in part["chapters"]:
            files = (chapter["file"], *(section["file"] for section in chapter.get("sections", [])))
            chapters.append(TocChapter(str(part.get("caption", "")), files))
    return chapters

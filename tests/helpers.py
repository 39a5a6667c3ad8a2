"""Helpers that several test files import (``from helpers import ...``): the book's table of contents,
read by the sync's own reader (``dsnet.sync.project``), so that the tests and the sync agree on it."""
from __future__ import annotations

from dsnet.sync.project import TocChapter, read_toc

__all__ = ["TocChapter", "read_toc"]

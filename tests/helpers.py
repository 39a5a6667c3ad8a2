"""Helpers that several test files import (``from helpers import ...``): the book's table of contents,
read by the sync's own reader (``dsnet.sync.project``), so that the tests and the sync agree on it."""
from __future__ import annotations

from pathlib import Path

from dsnet.sync.project import TocChapter, read_toc

__all__ = ["TINY", "TocChapter", "quiet", "read_toc", "tiny"]


TINY = dict(stages=((64, 2),), train_samples=32, val_samples=8, test_samples=8, batch_size=8, log_every=2)
"""A training run of a few seconds on a CPU: two epochs of 32 scenes at 64 px."""


def tiny(tmp_path: Path, **overrides):
    """The quick profile at :data:`TINY` settings, writing to ``tmp_path / "run"``."""
    from dsnet.train import make_config

    return make_config("quick", **{**TINY, "out_dir": str(tmp_path / "run"), **overrides})


def quiet(_message: str) -> None:
    """A ``log`` that prints nothing."""

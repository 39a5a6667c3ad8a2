"""Fixtures that several test files share (the tiny trained DSResNet), and how pytest's workers
share out the tests."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dsnet.sync import Project

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest runs one worker per CPU (pyproject.toml): each computes on one thread, and so do the
    # processes it starts (commands, kernels), or the threads of two workers would share every core
    # and wait on each other; with two workers on two cores that made the unit tests four times slower.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    if "torch" in sys.modules:   # imported before this file: the variables came too late for it
        sys.modules["torch"].set_num_threads(1)

LONGEST_FIRST = ("test_colab.py", "test_chapters.py")
SHARE_THE_RUN = {"training"} | {chapter.stem for chapter in Project(Path(__file__).parent.parent).reading_order()
                                if "find_runs(" in chapter.read_text()}
"""The Training chapter and the chapters that look for the run it writes: one worker runs them, in
the order of ``_toc.yml``."""


def chapter_of(nodeid: str) -> str | None:
    """The chapter that a test of ``tests/test_chapters.py`` runs, from its id; None for any other test."""
    path, _, name = nodeid.partition("::")
    if not path.endswith("test_chapters.py") or "[" not in name:
        return None
    return name.partition("[")[2].rstrip("]")


def work_unit(nodeid: str) -> str:
    """What one worker takes whole: a test file (its module fixtures are made once, by one worker:
    the Colab environment, the browser page's data), or one chapter; the chapters that share the
    Training chapter's run are one unit."""
    chapter = chapter_of(nodeid)
    if chapter is None:
        return nodeid.partition("::")[0]
    return "the training run" if chapter in SHARE_THE_RUN else nodeid


@pytest.hookimpl(optionalhook=True)   # a hook of pytest-xdist
def pytest_xdist_make_scheduler(config, log):
    """Workers take whole work units (:func:`work_unit`), in the order of the collection
    (pyproject.toml sets ``--no-loadscope-reorder``). pytest-xdist's own grouping by mark
    (``--dist loadgroup``) is not used: with pytest 9.2 it groups nothing (pytest-xdist issue 1386)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config, items):
    """The longest first, the Colab check, then the chapters (the shared run first), so that the
    workers start them at once and share out the short ones at the end (a scheduling hint; any
    order passes)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), chapter_of(item.nodeid) not in SHARE_THE_RUN))


# Trains in seconds on a CPU, yet its predictions depend on the input: enough for prediction,
# export and the command line, whose tests check plumbing, not accuracy.
TINY = dict(stages=((64, 2),), train_samples=32, val_samples=8, test_samples=8, batch_size=8, device="cpu")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A DSResNet trained for a few seconds at 64 x 64 (its ``best.pt``), once per session."""
    # imported here, not at the top: every test file loads this conftest, and most train nothing
    from dsnet.train import make_config, train

    out = tmp_path_factory.getbasetemp() / "tiny_dsresnet"
    train(make_config("quick", **TINY, out_dir=str(out)), log=lambda _line: None)
    return out / "best.pt"

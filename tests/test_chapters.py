"""Every chapter of the book, executed once per test run and compared with its stored outputs.

Each chapter runs in a fresh kernel, the way ``jupyter-book build`` runs it, and its executed
notebook goes into the book's jupyter-cache (``_build/.jupyter_cache``): the book build that
follows (``execute_notebooks: cache``) reuses this run instead of executing the chapter again.
The comparison uses nbval's own rules: same output keys, same counts, same text after the
sanitizing patterns of ``tests/nbval_sanitize.cfg``; cells tagged ``nbval-ignore-output`` are run
but not compared. The chapters that read the run the Training chapter makes run after it, on the
same worker; pytest's other workers take the other chapters meanwhile, each kernel on one thread
(``SHARE_THE_RUN`` and the scheduler in ``tests/conftest.py``).

The Training chapter trains the profile that ``$DSNET_PROFILE`` names; these tests set it to
``smoke`` (one short epoch) unless it is set already. The training cell's output is not compared
(it depends on the machine), so a shorter run checks the same code and every compared output in a
fraction of the time: ``DSNET_PROFILE=quick pytest`` trains what the published book trains.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsnet.sync import ExecutionError, Project, execute, output_mismatches

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Project(ROOT)


def test_every_chapter_is_in_the_table_of_contents():
    assert set(PROJECT.reading_order()) == set(PROJECT.chapters())


@pytest.fixture(autouse=True)
def training_profile(monkeypatch):
    """The profile the Training chapter trains: ``$DSNET_PROFILE``, else smoke."""
    monkeypatch.setenv("DSNET_PROFILE", os.environ.get("DSNET_PROFILE") or "smoke")


@pytest.mark.parametrize("chapter", PROJECT.reading_order(), ids=lambda path: path.stem)
def test_the_chapter_runs_and_reproduces_its_stored_outputs(chapter: Path):
    try:
        executed = execute(chapter, PROJECT)
    except ExecutionError as failure:  # a failing cell, its traceback's end as the message
        pytest.fail(str(failure), pytrace=False)
    problems = output_mismatches(chapter, executed, PROJECT)
    assert not problems, (f"{chapter.name}: outputs differ from book/{chapter.stem}.ipynb; if the change is "
                          f"intended, run `python -m dsnet.sync --execute book/{chapter.name}`\n" + "\n".join(problems))

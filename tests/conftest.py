"""Fixtures that several test files share (the tiny trained DSResNet), and how pytest's workers
share out the tests."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest runs one worker per CPU (pyproject.toml): each computes on one thread, and so do the
    # processes it starts (commands, kernels), or the threads of two workers would share every core
    # and wait on each other; with two workers on two cores that made the unit tests four times slower.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    if "torch" in sys.modules:   # imported before this file: the variables came too late for it
        sys.modules["torch"].set_num_threads(1)

LONGEST_FIRST = ("test_colab.py", "test_chapters.py")


def pytest_configure(config):
    # pytest-xdist declares it too; declared here as well for a run without it (`-p no:xdist`)
    config.addinivalue_line("markers", "xdist_group(name): tests that one worker runs, in order")


@pytest.hookimpl(tryfirst=True)   # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """The order and the groups in which pytest's workers take the tests (a scheduling hint; any
    order passes). Each test file is one group, so that one worker makes its module fixtures, once;
    the chapters go one by one, except those that share the Training chapter's run
    (tests/test_chapters.py). The longest come first, the Colab check, then the chapters (the
    shared run first), so that the workers start them at once and share out the short ones at the
    end."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    for item in items:
        if item.path.name != "test_chapters.py":
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), item.get_closest_marker("xdist_group") is None))


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

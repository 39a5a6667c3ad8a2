"""Fixtures that several test files share: the tiny trained DSResNet."""
from __future__ import annotations

from pathlib import Path

import pytest

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

"""Every chapter runs in Colab's environment after its first cell alone.

A virtual environment is pinned (``COLAB_PINS``) to the packages of Colab's GPU runtime as Google
publishes them: ``pip-freeze.gpu.txt`` in the repository googlecolab/backend-info, as of its commit
a724079 of 2026-08-19. That is numpy, matplotlib, pillow, tqdm, safetensors, jupytext, ipywidgets and
scikit-image (with scipy; the proxy section cuts its scenes from scikit-image's photographs), with
neither torchinfo nor nbval; to follow a newer image, copy those versions from that file into
``COLAB_PINS`` and change the commit and date here. Two exceptions: this machine's Python (Colab's
is 3.13), and torch 2.13.0 (the only CPU build on its disk; Colab has 2.11, and the code keeps to
2.11's API). Each stored ``book/*.ipynb`` then runs as a reader gets it, with ``google.colab``
present, so its setup cell installs ``dsnet[colab]`` (here from a wheel of this checkout) and the
Training chapter resumes instead of starting over. The Training chapter runs the smoke profile
(``DSNET_PROFILE=smoke``).

The environment is built once and kept in ``_build/colab-venv`` (rebuilt when the pins change).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLAB_PINS = ["numpy==2.1.3", "matplotlib==3.10.0", "pillow==11.3.0", "tqdm==4.67.3", "safetensors==0.8.0",
              "jupytext==1.19.5", "ipywidgets==7.7.1", "scikit-image==0.25.2", "scipy==1.16.3"]
RUNNER = ["ipykernel", "nbclient", "nbformat"]   # Colab's own kernel machinery, here from PyPI
TORCH = "torch==2.13.0"
SLOW_FIRST = ("using", "proxy", "training_results", "training", "training_runs", "lr_range", "experiments")
"""The chapters that take longest, longest first: a scheduling hint only (any order passes)."""


def pip(python: Path, *args: str) -> None:
    # --no-compile: no bytecode for all of torch up front; a kernel compiles what it imports
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", *args],
                   check=True, timeout=900)


@pytest.fixture(scope="module")
def colab_python() -> Path:
    folder = ROOT / "_build" / "colab-venv"
    python, stamp = folder / "bin" / "python", folder / "pins.json"
    pins = [TORCH, *COLAB_PINS, *RUNNER]
    state = json.loads(stamp.read_text()) if stamp.exists() else {}
    if not (python.exists() and isinstance(state, dict) and state.get("pins") == pins):
        venv.create(folder, with_pip=True, clear=True)
        pip(python, TORCH)
        pip(python, *COLAB_PINS, *RUNNER)
        stamp.write_text(json.dumps({"pins": pins, "installed": sorted(installed(python))}))
    # what an earlier run's setup cells installed (dsnet, torchinfo) goes: each run starts bare, as Colab does
    extra = installed(python) - set(json.loads(stamp.read_text())["installed"])
    if extra:
        subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "-y", *sorted(extra)], check=True, timeout=300)
    return python


def installed(python: Path) -> set[str]:
    """The names of the distributions installed in the environment of ``python``."""
    script = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
    return set(subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True).stdout.split())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "-w", str(out), str(ROOT)], check=True, timeout=600)
    return next(out.glob("dsnet-*.whl"))


def test_the_environment_is_colabs(colab_python):
    pinned = dict(pin.split("==") for pin in COLAB_PINS)
    script = ("import importlib.metadata as m, importlib.util as u, json, sys; print(json.dumps("
              "{p: m.version(p) for p in sys.argv[1:]} | "
              "{'torchinfo': bool(u.find_spec('torchinfo')), 'nbval': bool(u.find_spec('nbval'))}))")
    versions = json.loads(subprocess.run([str(colab_python), "-c", script, *pinned], capture_output=True, text=True,
                                         check=True).stdout)
    assert versions == {**pinned, "torchinfo": False, "nbval": False}


def test_every_chapter_runs_in_colab_after_its_setup_cell(colab_python, wheel, tmp_path):
    # intro first (it installs dsnet), then the longest chapters, so that the parallel runs end together
    notebooks = sorted((ROOT / "book").glob("*.ipynb"),
                       key=lambda p: (p.stem != "intro", SLOW_FIRST.index(p.stem) if p.stem in SLOW_FIRST else 99))
    env = {**os.environ, "DSNET_PROFILE": "smoke", "PYTHONPATH": ""}
    # a test worker has one core (tests/conftest.py); a run of its own, up to four
    jobs = 1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(4, os.cpu_count() or 1))
    result = subprocess.run([str(colab_python), str(ROOT / "tests" / "colab" / "run_chapters.py"), "--jobs", str(jobs),
                             str(wheel), str(tmp_path), *map(str, notebooks)],
                            capture_output=True, text=True, env=env, timeout=3000)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert result.stdout.count(": ok in ") == len(notebooks), result.stdout

"""Run the stored chapter notebooks the way a Colab reader gets them. Executed by
``tests/test_colab.py`` with the Python of a virtual environment pinned to Colab's packages.

    python run_chapters.py WHEEL OUT NOTEBOOK...

For each notebook: ``google.colab`` is present in the kernel (an IPython startup file puts a
stand-in module into ``sys.modules``), the Colab setup cell installs ``dsnet[colab]`` from WHEEL (a
wheel built from this checkout) instead of from GitHub, and the kernel starts in an empty folder
of its own under OUT, as a fresh Colab runtime would. Prints one line per notebook and exits 1 if
any failed, with the failing cell's error.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

COLAB_STARTUP = '''import sys, types
_google = sys.modules.get("google") or types.ModuleType("google")
_colab = types.ModuleType("google.colab")
_google.colab = _colab
sys.modules.setdefault("google", _google)
sys.modules["google.colab"] = _colab
'''
INSTALL = re.compile(r'"dsnet(\[[a-z,]+\])? @ git\+[^"]+"')


def as_colab_gets_it(nb, wheel: Path):
    """The notebook with its setup cell installing from ``wheel``; fails if there is no setup cell."""
    setup = next((c for c in nb.cells if "colab-setup" in c.metadata.get("tags", [])), None)
    if setup is None or not INSTALL.search(setup.source):
        raise SystemExit("no Colab setup cell installing dsnet from git")
    setup.source = INSTALL.sub(lambda m: f'"dsnet{m.group(1) or ""} @ {wheel.as_uri()}"', setup.source)
    return nb


CELL_TIMEOUT = 300   # seconds; the slowest cell of any chapter takes about a minute here


def run(path: Path, wheel: Path, out: Path) -> str | None:
    """Execute one notebook as Colab gets it; the failing cell's error, or None. A cell that gets no
    answer within CELL_TIMEOUT is tried once more in a fresh kernel and folder: now and then the
    kernel and this client lose a message between them and both sit idle, waiting on each other,
    which is no fault of the chapter. A chapter that hangs twice fails."""
    for attempt in (1, 2):
        nb = as_colab_gets_it(nbformat.read(path, as_version=4), wheel)
        folder = Path(tempfile.mkdtemp(prefix=f"{path.stem}-", dir=out))
        try:
            NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                           resources={"metadata": {"path": str(folder)}}).execute()
            return None
        except CellTimeoutError as error:
            if attempt == 2:
                return f"no answer within {CELL_TIMEOUT} s, twice: " + str(error).strip().splitlines()[0]
            print(f"{path.name}: no answer within {CELL_TIMEOUT} s; once more in a fresh kernel", flush=True)
        except CellExecutionError as error:
            return "\n".join(str(error).strip().splitlines()[-15:])
    return None


def main(argv: list[str]) -> int:
    wheel, out, notebooks = Path(argv[0]).resolve(), Path(argv[1]).resolve(), [Path(p) for p in argv[2:]]
    ipython = out / "ipython"
    (ipython / "profile_default" / "startup").mkdir(parents=True, exist_ok=True)
    (ipython / "profile_default" / "startup" / "00-google-colab.py").write_text(COLAB_STARTUP)
    os.environ["IPYTHONDIR"] = str(ipython)
    failed = 0
    for path in notebooks:
        started = time.perf_counter()
        error = run(path, wheel, out)
        print(f"{path.name}: {'FAILED' if error else 'ok'} in {time.perf_counter() - started:.0f} s", flush=True)
        if error:
            print(error, flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

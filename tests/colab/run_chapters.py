"""Run the stored chapter notebooks the way a Colab reader gets them. Executed by
``tests/test_colab.py`` with the Python of a virtual environment pinned to Colab's packages.

    python run_chapters.py [--jobs N] WHEEL OUT NOTEBOOK...

For each notebook: ``google.colab`` is present in the kernel (an IPython startup file puts a
stand-in module into ``sys.modules``), the Colab setup cell installs ``dsnet[colab]`` from WHEEL (a
wheel built from this checkout) instead of from GitHub, and the kernel starts in an empty folder
of its own under OUT, as a fresh Colab runtime would. Prints one line per notebook and exits 1 if
any failed, with the failing cell's error. With ``--jobs N`` the first notebook runs alone (its
setup cell installs into the bare environment) and the others N at a time, each in a process of
its own whose kernel uses one thread, so N notebooks share N cores without oversubscribing them.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from traitlets.config import Config

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


@contextlib.contextmanager
def kernel_sockets() -> Iterator[Config]:
    """Kernel settings under which the kernel and this client talk over Unix sockets in a new,
    short folder of their own (a socket's path has at most 107 bytes), removed afterwards. Over TCP
    each kernel manager picks free ports, closes them and hands their numbers to the kernel, and a
    kernel started at the same moment by a parallel run can take one of them first; the kernel then
    dies before it answers (jupyter_client issue 154). The same as
    ``dsnet.sync.execute.kernel_sockets``, which this file cannot import: it runs in Colab's
    environment, without the sync's packages."""
    with tempfile.TemporaryDirectory(prefix="kernel-") as folder:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "ipc")}})


def run(path: Path, wheel: Path, out: Path) -> str | None:
    """Execute one notebook as Colab gets it; the failing cell's error, or None. A cell that gets no
    answer within CELL_TIMEOUT is tried once more in a fresh kernel and folder: now and then the
    kernel and this client lose a message between them and both sit idle, waiting on each other,
    which is no fault of the chapter. So is a kernel that dies before it runs any cell. A chapter
    that hangs or loses its kernel twice fails."""
    for attempt in (1, 2):
        nb = as_colab_gets_it(nbformat.read(path, as_version=4), wheel)
        folder = Path(tempfile.mkdtemp(prefix=f"{path.stem}-", dir=out))
        with kernel_sockets() as config:
            try:
                NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", config=config,
                               resources={"metadata": {"path": str(folder)}}).execute()
                return None
            except CellTimeoutError as error:
                failure = f"no answer within {CELL_TIMEOUT} s"
                detail = str(error).strip().splitlines()[0]
            except CellExecutionError as error:
                return "\n".join(str(error).strip().splitlines()[-15:])
            except RuntimeError as error:
                if "Kernel died before replying" not in str(error):
                    raise
                failure, detail = "the kernel died as it started", str(error)
        if attempt == 2:
            return f"{failure}, twice: {detail}"
        print(f"{path.name}: {failure}; once more in a fresh kernel", flush=True)
    return None


def run_one(path: Path, wheel: Path, out: Path) -> bool:
    """Run one notebook and print its line (and its error); True if it passed."""
    started = time.perf_counter()
    error = run(path, wheel, out)
    print(f"{path.name}: {'FAILED' if error else 'ok'} in {time.perf_counter() - started:.0f} s", flush=True)
    if error:
        print(error, flush=True)
    return error is None


def run_in_child(path: Path, wheel: Path, out: Path) -> tuple[bool, str]:
    """Run one notebook in a process of its own whose kernel uses one thread (OMP/MKL/torch)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, __file__, "--one", str(wheel), str(out), str(path)],
                           capture_output=True, text=True, env=env)
    return child.returncode == 0, child.stdout + child.stderr


def main(argv: list[str]) -> int:
    jobs = 1
    if argv[:1] == ["--jobs"]:
        jobs, argv = int(argv[1]), argv[2:]
    one = argv[:1] == ["--one"]
    argv = argv[1:] if one else argv
    wheel, out, notebooks = Path(argv[0]).resolve(), Path(argv[1]).resolve(), [Path(p) for p in argv[2:]]
    ipython = out / "ipython"
    (ipython / "profile_default" / "startup").mkdir(parents=True, exist_ok=True)
    (ipython / "profile_default" / "startup" / "00-google-colab.py").write_text(COLAB_STARTUP)
    os.environ["IPYTHONDIR"] = str(ipython)
    if one or jobs == 1:
        return 0 if all([run_one(path, wheel, out) for path in notebooks]) else 1
    # The first notebook alone: its setup cell installs dsnet[colab] into the bare environment. The
    # others then run `jobs` at a time, each kernel on one thread, so that no more threads run than
    # `jobs` cores (their outputs are not compared here, only that every cell runs).
    passed = run_one(notebooks[0], wheel, out)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for ok, printed in pool.map(lambda path: run_in_child(path, wheel, out), notebooks[1:]):
            print(printed, end="", flush=True)
            passed &= ok
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

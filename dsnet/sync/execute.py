"""Running a chapter: once, in a fresh kernel in the chapter's folder, the way ``jupyter-book build``
runs it, with the executed notebook stored in the book's jupyter-cache (``_build/.jupyter_cache``)
so that the book build (``execute_notebooks: cache``) reuses this run."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsnet.sync.errors import ExecutionError
from dsnet.sync.project import Project


@dataclass
class KernelRun:
    """How one execution went: its seconds, and the error that stopped it (None: it ran through)."""

    seconds: float
    error: BaseException | None = None
    trace: str | None = None


def cache_path(project: Project) -> Path:
    """The jupyter-cache that ``jupyter-book build`` reads (``execute_notebooks: cache``)."""
    return project.root / "_build" / ".jupyter_cache"


def book_notebook(chapter: Path) -> Any:
    """The chapter as the book reads it: MyST-NB's own reader, so that the cache key (a hash of
    the code cells and the kernelspec) is the one ``jupyter-book build`` looks up."""
    from myst_nb.core.read import read_myst_markdown_notebook

    return read_myst_markdown_notebook(chapter.read_text(encoding="utf-8"), add_source_map=True,
                                       path=str(chapter))


def kernel_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a chapter's kernel runs in: ``base`` (default: this process's), with text
    progress bars unless it chooses otherwise; the book's pages show text, not widgets
    (dsnet.progress; the book build sets the same through dsnet.book)."""
    env = dict(os.environ if base is None else base)
    env["DSNET_PROGRESS"] = env.get("DSNET_PROGRESS") or "text"
    return env


def run_notebook(nb: Any, cwd: Path, timeout: int, env: Mapping[str, str]) -> KernelRun:
    """Execute ``nb`` in place in a fresh kernel started in ``cwd`` with environment ``env``, as
    jupyter-cache's ``single_nb_execution`` does (a notebook's ``execution`` metadata may set
    its own timeout and allow_errors), which cannot hand the kernel an environment."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    own = nb.metadata.get("execution", {})
    with kernel_sockets() as config:
        client = NotebookClient(nb, timeout=own.get("timeout", timeout), allow_errors=own.get("allow_errors", False),
                                record_timing=False, resources={"metadata": {"path": str(cwd)}}, config=config)
        start = time.perf_counter()
        try:
            client.execute(env=dict(env))
        except (CellExecutionError, CellTimeoutError) as error:
            return KernelRun(time.perf_counter() - start, error, traceback.format_exc())
        return KernelRun(time.perf_counter() - start)


@contextlib.contextmanager
def kernel_sockets() -> Iterator[Any]:
    """Kernel settings under which the kernel and its client talk over Unix sockets in a new
    folder of their own (short: a socket's path has at most 107 bytes), removed afterwards. Over
    TCP, a kernel manager picks free ports, closes them and hands their numbers to the kernel, and a
    kernel started at the same moment by another process (the tests run chapters side by side) can
    take one first (jupyter_client issue 154). Windows has no Unix sockets: TCP there."""
    from traitlets.config import Config

    if os.name == "nt":
        yield Config()
        return
    with tempfile.TemporaryDirectory(prefix="kernel-") as folder:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "ipc")}})


def execute(chapter: Path, project: Project, timeout: int = 900, env: Mapping[str, str] | None = None) -> Any:
    """Run the chapter once in a fresh kernel (in its folder, as the book does, with
    :func:`kernel_env` of ``env``) and store the executed notebook in the book's jupyter-cache, so
    that the book build reuses this execution instead of running the chapter again. Returns the
    executed notebook; an :class:`ExecutionError` carries the failing cell's error."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    nb = book_notebook(chapter)
    result = run_notebook(nb, chapter.parent, timeout, kernel_env(env))
    if result.error is not None:
        raise ExecutionError(failure_message(chapter, result.error, result.trace, timeout))
    with cache_lock(project):
        get_cache(str(cache_path(project))).cache_notebook_bundle(
            CacheBundleIn(nb, str(chapter), data={"execution_seconds": result.seconds}),
            check_validity=False, overwrite=True)
    return nb


@contextlib.contextmanager
def cache_lock(project: Project) -> Iterator[None]:
    """The book's jupyter-cache held for one writer: chapters may run in parallel processes (the
    tests' workers), and two storing at once would race on the cache's database and files. Where
    there is no ``fcntl`` (Windows), writers are not kept apart."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = cache_path(project).parent
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".jupyter_cache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def failure_message(chapter: Path, error: BaseException, trace: str | None, timeout: int) -> str:
    """What went wrong while executing ``chapter``: one line for a cell that ran past ``timeout``
    (the kernel's own noise after the interrupt, a ZMQ traceback, is left out), else the end of
    the failing cell's traceback."""
    from nbclient.exceptions import CellTimeoutError

    if isinstance(error, CellTimeoutError):
        preview = str(error).split("-------------------")
        first = preview[1].strip().splitlines()[0] if len(preview) > 2 and preview[1].strip() else "?"
        return (f"dsnet.sync: {chapter.name}: a cell ran past the {timeout} s limit and was stopped "
                f"(it starts: {first[:80]})")
    text = re.sub(r"\x1b\[[0-9;]*m", "", trace or repr(error))
    text = text.split("[IPKernelApp]")[0]  # the kernel's log after the error is not the error
    return f"dsnet.sync: {chapter.name} failed while executing:\n" + "\n".join(text.strip().splitlines()[-12:])

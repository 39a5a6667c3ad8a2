"""Files that appear whole or not at all. Hand-written infrastructure with no dependency beyond
the standard library, so that ``python -m dsnet.sync`` can use it without torch."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def temporary_name(path: Path) -> Path:
    """The hidden name next to ``path`` that a write goes to before the rename (``.NAME.PID.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, then rename the temporary file to ``path``: an interrupted
    write leaves the previous file intact, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_group(writes: dict[Path, Callable[[Path], object]]) -> list[Path]:
    """Write several files that belong together (a prediction's mask, depth and figure): every
    ``write(temporary_path)`` first, then the renames one after another. An error or an interrupt
    while writing leaves none of them new (earlier versions intact); only a stop in the
    microseconds between two renames can leave the group part-renamed."""
    temps = {Path(path): temporary_name(Path(path)) for path in writes}
    try:
        for path, write in writes.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write(temps[Path(path)])
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return list(temps)


def shown(path: str | os.PathLike) -> str:
    """``path`` as a message shows it: control characters (a newline, an escape sequence) written
    as escapes, so that a file name can never break a one-line message or drive a terminal."""
    text = os.fspath(path)
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def probe_writable(folder: Path) -> None:
    """Create ``folder`` (and its parents) if missing, then write and delete an empty file in it:
    the OS's own error (``OSError`` and its kinds) now, instead of after a long job, when files
    cannot be written there."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".dsnet-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()

"""Small helpers the chapters share when they run as a book. Hand-written infrastructure: it
imports no chapter module.

:func:`glue` puts a value computed by a cell into the chapter's prose (myst-nb's ``{glue:text}``
role) when the book is built; in Colab or plain Jupyter, where myst-nb is usually not installed, it
does nothing and the cell's own printed output carries the value.

As a Sphinx extension (``_config.yml``: ``sphinx: extra_extensions: [dsnet.book]``), :func:`setup`
gives the chapters text progress bars while the book executes them.
"""
from __future__ import annotations

import os
import sys
from typing import Any


def glue(name: str, value: Any) -> Any:
    """Make ``value`` available to the prose as ``{glue:text}`name```; returns ``value``. A numpy
    or torch scalar is glued as the Python number it holds, so that format specs such as
    ``{glue:text}`name:.3f``` work on it."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return value
    myst_glue(name, value, display=False)
    return value


def in_colab() -> bool:
    """Whether this code runs in a Google Colab kernel."""
    return "google.colab" in sys.modules


def setup(app: Any) -> dict[str, bool]:
    """Sphinx extension hook: executing the book's chapters gives text bars (``DSNET_PROGRESS=text``,
    see :mod:`dsnet.progress`), which the kernels Jupyter Book starts inherit. A value already set
    is kept."""
    from dsnet.progress import ENV_VAR

    os.environ.setdefault(ENV_VAR, "text")
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Progress bars that suit where the code runs: a widget in Jupyter and Colab, clean text in the
built book and in a terminal.

>>> from dsnet.progress import progress
>>> for batch in progress(loader, desc="epoch 1"):
...     ...

:func:`progress` takes the arguments of :class:`tqdm.tqdm` and picks the kind of bar from the
environment variable ``DSNET_PROGRESS``:

``auto`` (or unset)
    ``tqdm.auto``: an ipywidgets bar in a Jupyter/Colab kernel, text on stderr in a terminal.
    A kernel without ipywidgets gets the text bar below instead of tqdm's warning.
``text``
    A plain text bar on stdout that redraws at most every :data:`TEXT_MININTERVAL` seconds
    (unless ``mininterval`` is given) and never moves the cursor between lines, so that the
    stored output of a notebook cell reads as a short log, one line per redraw.
``widget``
    Always ``tqdm.auto`` (as ``auto``, but without the ipywidgets check).

The book sets ``DSNET_PROGRESS=text`` while it executes the chapters: ``_config.yml`` lists
:mod:`dsnet.book` as a Sphinx extension (see :func:`dsnet.book.setup`), and the kernels that
Jupyter Book starts inherit the build's environment. A widget saved into a built page would show
only with the widget JavaScript loaded from a CDN, frozen at its last state; the text bar shows
everywhere.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable

ENV_VAR = "DSNET_PROGRESS"
MODES = ("auto", "text", "widget")
TEXT_MININTERVAL = 30.0
"""Seconds between redraws of a text bar (a 5-minute loop prints about ten lines)."""


def progress_mode() -> str:
    """``"text"`` or ``"widget"``: the kind of bar :func:`progress` makes here and now."""
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: expected one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    if _in_kernel() and not _has_ipywidgets():
        return "text"
    return "widget"


def progress(iterable: Iterable | None = None, **tqdm_kwargs: Any):
    """A tqdm progress bar over ``iterable`` (or a manual one, updated with ``.update(n)``).

    Takes every keyword of :class:`tqdm.tqdm` (``desc``, ``total``, ``leave``, ``unit``,
    ``postfix``, ...). Returns ``tqdm.auto.tqdm`` (a widget in Jupyter) or, where
    :func:`progress_mode` says ``"text"``, a text bar on stdout; use it as any tqdm bar
    (``set_postfix``, ``write``, ``close``, a ``with`` block).
    """
    if progress_mode() == "widget":
        from tqdm.auto import tqdm

        return tqdm(iterable, **tqdm_kwargs)
    tqdm_kwargs.setdefault("file", sys.stdout)
    tqdm_kwargs.setdefault("mininterval", TEXT_MININTERVAL)
    tqdm_kwargs.setdefault("dynamic_ncols", False)
    return _text_bar_class()(iterable, **tqdm_kwargs)


_TEXT_BAR = None


def _text_bar_class():
    """``tqdm.std.tqdm`` that never moves the cursor: nested bars (``position=1``, ...) would
    otherwise write ANSI cursor moves, which a stored cell output shows as junk."""
    global _TEXT_BAR
    if _TEXT_BAR is None:
        from tqdm.std import tqdm

        class TextProgress(tqdm):
            def moveto(self, n):
                pass

            # A new postfix or description waits for the next redraw instead of forcing one, so
            # that ``set_postfix(loss=...)`` once per batch does not print a line per batch.
            def set_postfix(self, ordered_dict=None, refresh=False, **kwargs):
                super().set_postfix(ordered_dict, refresh=refresh, **kwargs)

            def set_postfix_str(self, s="", refresh=False):
                super().set_postfix_str(s, refresh=refresh)

            def set_description(self, desc=None, refresh=False):
                super().set_description(desc, refresh=refresh)

            def set_description_str(self, desc=None, refresh=False):
                super().set_description_str(desc, refresh=refresh)

        _TEXT_BAR = TextProgress
    return _TEXT_BAR


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _has_ipywidgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True

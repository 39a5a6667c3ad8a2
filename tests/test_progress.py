"""dsnet.progress: a widget in a Jupyter kernel, clean text in the built book and in a terminal."""
from __future__ import annotations

import io
import os

import nbformat
import pytest
from nbclient import NotebookClient
from tqdm.auto import tqdm as auto_tqdm
from tqdm.notebook import tqdm as notebook_tqdm
from tqdm.std import tqdm as std_tqdm

from dsnet import book
from dsnet import progress as progress_module
from dsnet.progress import ENV_VAR, TEXT_MININTERVAL, progress, progress_mode
from dsnet.sync.execute import kernel_sockets


@pytest.fixture
def mode(monkeypatch):
    def set_mode(value: str | None):
        if value is None:
            monkeypatch.delenv(ENV_VAR, raising=False)
        else:
            monkeypatch.setenv(ENV_VAR, value)
    return set_mode


def test_text_mode_gives_a_plain_bar_on_stdout(mode, capsys):
    mode("text")
    bar = progress(range(3), desc="x")
    assert isinstance(bar, std_tqdm) and not isinstance(bar, notebook_tqdm)
    assert bar.mininterval == TEXT_MININTERVAL
    assert list(bar) == [0, 1, 2]
    out = capsys.readouterr()
    assert "x: 100%" in out.out and out.err == ""


def test_tqdm_keywords_win_over_the_text_defaults(mode):
    mode("text")
    sink = io.StringIO()
    with progress(total=4, file=sink, mininterval=0, desc="manual") as bar:
        bar.update(4)
    assert bar.mininterval == 0
    assert "manual: 100%|" in sink.getvalue()


def test_text_bars_never_move_the_cursor(mode):
    mode("text")
    sink = io.StringIO()
    for _ in progress(range(2), file=sink, mininterval=0):
        for _ in progress(range(3), file=sink, mininterval=0, leave=False):
            pass
    text = sink.getvalue()
    assert "\x1b[" not in text  # nested tqdm bars write ESC[A to go up a line
    assert text.count("|") >= 2 * 5


def test_set_postfix_waits_for_the_next_redraw(mode):
    mode("text")
    sink = io.StringIO()
    bar = progress(total=100, file=sink, mininterval=3600)
    for i in range(100):
        bar.update(1)
        bar.set_postfix(loss=1 / (i + 1))
    bar.close()
    lines = [line for line in sink.getvalue().replace("\r", "\n").splitlines() if line.strip()]
    assert len(lines) == 2, lines  # the bar at 0 and the final one from close()
    assert "loss=0.01" in lines[-1]


@pytest.mark.parametrize("value", ["widget", "auto", None])
def test_widget_and_auto_modes_are_tqdm_auto(mode, value):
    mode(value)
    bar = progress(range(2), file=io.StringIO())
    assert type(bar) is auto_tqdm
    bar.close()


def test_auto_in_a_kernel_without_ipywidgets_is_text(mode, monkeypatch):
    mode("auto")
    monkeypatch.setattr(progress_module, "_in_kernel", lambda: True)
    monkeypatch.setattr(progress_module, "_has_ipywidgets", lambda: False)
    assert progress_mode() == "text"
    monkeypatch.setattr(progress_module, "_has_ipywidgets", lambda: True)
    assert progress_mode() == "widget"


def test_an_unknown_mode_says_what_is_allowed(mode):
    mode("fancy")
    with pytest.raises(ValueError, match=r"DSNET_PROGRESS='fancy': expected one of auto, text, widget"):
        progress(range(2))


def test_the_book_s_sphinx_hook_asks_for_text_and_keeps_a_choice(mode):
    mode(None)
    assert book.setup(app=None)["parallel_read_safe"]
    assert os.environ[ENV_VAR] == "text"
    mode("widget")
    book.setup(app=None)
    assert os.environ[ENV_VAR] == "widget"


def _run_in_kernel(mode, value):
    """Outputs of a notebook cell that loops over a progress bar, run as Jupyter Book runs it."""
    mode(value)
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(
        "from dsnet.progress import progress\n"
        "for _ in progress(range(5), desc='loop'):\n"
        "    pass"))
    with kernel_sockets() as config:   # no TCP ports: another worker may be starting a kernel too
        NotebookClient(nb, timeout=120, kernel_name="python3", config=config).execute()
    return nb.cells[0].outputs


def test_in_a_kernel_auto_shows_a_widget_and_the_book_build_shows_text(mode):
    widget = _run_in_kernel(mode, "auto")
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in widget), widget
    text = _run_in_kernel(mode, "text")
    assert all(o.output_type == "stream" and o.name == "stdout" for o in text), text
    assert "loop: 100%|" in "".join(o.text for o in text)

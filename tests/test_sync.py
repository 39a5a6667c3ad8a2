"""The literate sync: chapters, generated modules and Colab notebooks must agree."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def sync(*args: str, root: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsnet.sync", "--root", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A copy of the parts of the source checkout that the sync reads and writes. Not the runs a
    chapter trains into ``book/runs``: the Training chapter may be writing them meanwhile, in
    another of pytest's workers."""
    for name in ("book", "dsnet"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_repository_is_in_sync():
    result = sync("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_modules_name_their_chapter():
    for module in ("blocks", "shapes", "model"):
        first = (ROOT / "dsnet" / f"{module}.py").read_text().splitlines()[0]
        assert first == f"# Generated from book/{module}.md by `python -m dsnet.sync`."


def test_a_hand_edit_to_a_generated_module_is_caught_and_repaired(checkout):
    module = checkout / "dsnet" / "blocks.py"
    pristine = module.read_text()
    module.write_text(pristine.replace("kernel_size=3", "kernel_size=5", 1))
    result = sync("--check", root=checkout)
    assert result.returncode == 1
    assert "stale: dsnet/blocks.py: differs from its chapter" in result.stdout
    assert sync(root=checkout).returncode == 0
    assert module.read_text() == pristine
    assert sync("--check", root=checkout).returncode == 0


def test_a_chapter_edit_without_regenerating_names_every_stale_file(checkout):
    chapter = checkout / "book" / "shapes.md"
    chapter.write_text(chapter.read_text().replace("MIN_SIZE = 2 * DIVISOR", "MIN_SIZE = 3 * DIVISOR"))
    result = sync("--check", root=checkout)
    assert result.returncode == 1
    assert "stale: dsnet/shapes.py" in result.stdout
    assert "stale: book/shapes.ipynb" in result.stdout
    assert "dsnet/model.py" not in result.stdout  # only what changed is named


def test_regenerating_keeps_stored_outputs_of_unchanged_cells(checkout):
    chapter = checkout / "book" / "blocks.md"
    chapter.write_text(chapter.read_text().replace("## The double convolution", "## The double convolution, again"))
    assert sync(root=checkout).returncode == 0
    cells = json.loads((checkout / "book" / "blocks.ipynb").read_text())["cells"]
    assert any("## The double convolution, again" in "".join(c["source"]) for c in cells)
    outputs = ["".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    assert "(2, 3, 64, 64) -> (2, 16, 64, 64)\n" in outputs


def test_a_changed_printed_shape_fails_the_output_check_until_outputs_are_refreshed(checkout):
    chapter = checkout / "book" / "blocks.md"
    chapter.write_text(chapter.read_text().replace("x = torch.randn(2, 3, 64, 64)", "x = torch.randn(1, 3, 64, 64)"))
    assert sync(root=checkout).returncode == 0
    notebook = checkout / "book" / "blocks.ipynb"
    assert "(2, 3, 64, 64) -> (2, 16, 64, 64)" in notebook.read_text()  # the stored output is now wrong
    result = sync("--verify", "book/blocks.md", root=checkout)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "(1, 3, 64, 64) -> (1, 16, 64, 64)" in result.stdout
    assert "book/blocks.md: outputs differ from the stored ones" in result.stdout
    assert sync("--execute", "book/blocks.md", root=checkout).returncode == 0
    assert sync("--verify", "book/blocks.md", root=checkout).returncode == 0


def test_a_verified_chapter_is_what_the_book_build_finds_in_its_cache(checkout):
    from jupyter_cache import get_cache

    from dsnet.sync import Project, book_notebook

    chapter = checkout / "book" / "shapes.md"
    cache = checkout / "_build" / ".jupyter_cache"
    assert sync("--verify", "book/shapes.md", root=checkout).returncode == 0
    record = get_cache(str(cache)).match_cache_notebook(book_notebook(chapter))  # what myst-nb looks up
    assert record.uri == str(chapter)
    assert Project(checkout).chapters()  # the checkout is a project the sync knows


def test_an_export_removed_from_its_chapter_deletes_the_module(checkout):
    (checkout / "dsnet" / "orphan.py").write_text("# Generated from book/gone.md by `python -m dsnet.sync`.\n")
    result = sync("--check", root=checkout)
    assert result.returncode == 1
    assert "dsnet/orphan.py: should not exist" in result.stdout
    sync(root=checkout)
    assert not (checkout / "dsnet" / "orphan.py").exists()


def test_the_colab_setup_cell_follows_the_repository_url(checkout):
    config = checkout / "_config.yml"
    config.write_text(config.read_text().replace("github.com/dsnet-book/dsnet", "github.com/someone/fork"))
    result = sync("--check", root=checkout)
    assert result.returncode == 1
    assert "stale: book/model.md" in result.stdout
    sync(root=checkout)
    notebook = json.loads((checkout / "book" / "model.ipynb").read_text())
    setup = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    assert 'git+https://github.com/someone/fork"' in "".join(setup["source"])
    assert "colab-setup" in setup["metadata"]["tags"]


def test_an_installed_package_has_no_chapters_to_sync(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(ROOT / "dsnet", site / "dsnet", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "dsnet.sync", "--check"], capture_output=True, text=True,
                            cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""}, timeout=120)
    assert result.returncode == 2
    assert "no chapters to sync here" in result.stderr


def test_a_cell_past_the_time_limit_is_one_line_naming_the_limit():
    from nbclient.exceptions import CellTimeoutError
    from nbformat.v4 import new_code_cell

    from dsnet.sync import failure_message

    error = CellTimeoutError.error_from_timeout_and_cell("Cell execution timed out", 900,
                                                         new_code_cell("result = train(config)\nprint(result)"))
    noise = "Traceback ...\n[IPKernelApp] ERROR | Exception in message handler:\nzmq.error.ZMQError: Socket operation"
    message = failure_message(Path("training.md"), error, noise, 900)
    assert message == ("dsnet.sync: training.md: a cell ran past the 900 s limit and was stopped "
                       "(it starts: result = train(config))")


def test_a_failing_cell_is_reported_without_the_kernels_log():
    from dsnet.sync import failure_message

    trace = "ValueError: bad size\n[IPKernelApp] WARNING | Kernel is running over TCP without encryption."
    message = failure_message(Path("shapes.md"), ValueError("bad size"), trace, 900)
    assert message.endswith("ValueError: bad size") and "IPKernelApp" not in message


TRIAL = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Trial

```{code-cell} ipython3
#| export: dsnet.trial
SIDE = 3
```

Prose between the cells.

```{code-cell} ipython3
:tags: [hide-input]

MARKER
def area():
    return SIDE * SIDE
```
"""


@pytest.fixture()
def trial(tmp_path: Path):
    """A checkout with the real package and one chapter, ``book/trial.md``, whose second exported
    cell starts with the given lines; returns that chapter."""
    shutil.copytree(ROOT / "dsnet", tmp_path / "dsnet",
                    ignore=shutil.ignore_patterns("__pycache__", "weights", "experiment_runs"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "book").mkdir()

    def write(marker: str) -> Path:
        chapter = tmp_path / "book" / "trial.md"
        chapter.write_text(TRIAL.replace("MARKER", marker))
        return chapter

    return write


def refused(chapter: Path, marker_line: str, capsys) -> str:
    """Run the sync on ``chapter``'s checkout, expect it refused before writing anything, and
    return its one line on stderr, checked to name the chapter and the line of ``marker_line``."""
    from dsnet.sync import main

    root = chapter.parent.parent
    before = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert main(["--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    line = chapter.read_text().splitlines().index(marker_line) + 1
    assert err.startswith(f"dsnet.sync: book/trial.md line {line}: "), err
    assert {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} == before
    return err


@pytest.mark.parametrize("marker", [
    "#|export: dsnet.io",            # no space after the bar
    "#| export:dsnet.trial2",         # no space after the colon
    "#| export : dsnet.trial2",       # a space before the colon
    "#| Export: dsnet.trial2",        # capitalised keyword
    "#| export: dsnet.Train",         # capitalised module
    "#| export: numpy.trial2",        # not in dsnet
    "#| export: dsnet.commands.data",  # inside a subpackage
    "#| export: dsnet.import",        # a module no one can import
    " #| export: dsnet.trial2",       # indented
    "# export: dsnet.trial2",         # the bar left out
])
def test_a_malformed_export_marker_is_refused_with_its_chapter_and_line(trial, capsys, marker):
    err = refused(trial(marker), marker, capsys)
    assert f"`{marker.strip()}` is not a valid export marker" in err
    assert "write `#| export: dsnet.<lowercase module>`" in err


def test_an_export_marker_below_the_first_line_is_refused(trial, capsys):
    chapter = trial("# the area of the square\n#| export: dsnet.trial2")
    err = refused(chapter, "#| export: dsnet.trial2", capsys)
    assert "must be its cell's first line" in err


@pytest.mark.parametrize("module", ["io", "files", "cli", "__init__"])
def test_exporting_over_a_hand_written_module_is_refused(trial, capsys, module):
    marker = f"#| export: dsnet.{module}"
    err = refused(trial(marker), marker, capsys)
    assert f"would overwrite dsnet/{module}.py, which is written by hand" in err


@pytest.mark.parametrize("package", ["commands", "sync"])
def test_exporting_over_a_hand_written_package_is_refused(trial, capsys, package):
    marker = f"#| export: dsnet.{package}"
    err = refused(trial(marker), marker, capsys)
    assert f"would shadow the hand-written package dsnet/{package}/" in err


def test_well_formed_markers_export_and_may_replace_a_generated_module(trial):
    from dsnet.sync import Project, expected_modules

    chapter = trial("#| export: dsnet.shapes")                # dsnet/shapes.py is generated: replaceable
    modules = expected_modules(Project(chapter.parent.parent))
    package = chapter.parent.parent / "dsnet"
    assert modules[package / "trial.py"].endswith("SIDE = 3\n")
    assert modules[package / "shapes.py"].startswith("# Generated from book/trial.md")
    assert "def area():" in modules[package / "shapes.py"]


def test_each_exported_cell_names_the_chapter_line_its_code_starts_at(trial):
    from dsnet.sync import Project, expected_modules

    chapter = trial("#| export: dsnet.trial")
    text = expected_modules(Project(chapter.parent.parent))[chapter.parent.parent / "dsnet" / "trial.py"]
    lines, source = text.splitlines(), TRIAL.splitlines()
    assert lines[0].startswith("# Generated from book/trial.md")
    comments = [n for n, line in enumerate(lines) if line.startswith("# book/trial.md, line ")]
    assert [lines[n + 1] for n in comments] == ["SIDE = 3", "def area():"]
    for n in comments:
        assert source[int(lines[n].rsplit(" ", 1)[1]) - 1] == lines[n + 1]


def test_a_module_exported_by_two_chapters_is_one_line(trial, capsys):
    from dsnet.sync import main

    chapter = trial("#| export: dsnet.trial2")
    (chapter.parent / "other.md").write_text(TRIAL.replace("MARKER", "#| export: dsnet.trial3"))
    assert main(["--root", str(chapter.parent.parent)]) == 2
    err = capsys.readouterr().err
    line = TRIAL.splitlines().index("#| export: dsnet.trial") + 1
    assert err == (f"dsnet.sync: dsnet.trial is exported by both book/other.md and book/trial.md line {line}; "
                   "export it from one chapter only\n")


def test_outputs_compare_by_nbval_rules():
    from nbformat import from_dict

    from dsnet.sync import GLUE_RECORDS, compare_outputs

    def stream(text: str, name: str = "stdout"):
        return from_dict({"output_type": "stream", "name": name, "text": text})

    def result(data: dict):
        return from_dict({"output_type": "execute_result", "execution_count": 3, "metadata": {}, "data": data})

    patterns = {"0x[0-9a-fA-F]+": "0xADDRESS"}
    stored = [stream("a\nb\n"), result({"text/plain": "4"})]
    assert compare_outputs([stream("a\n"), result({"text/plain": "4"}), stream("b\n")], stored, patterns) is None
    assert compare_outputs([stream("at 0x7f3a\n")], [stream("at 0x55\n")], patterns) is None
    assert compare_outputs([stream("50%\r100%\n")], [stream("100%\n")], patterns) is None
    glued = result({"text/plain": "4", GLUE_RECORDS[0]: "0.30000000000000004"})
    assert compare_outputs([glued], [result({"text/plain": "4", GLUE_RECORDS[0]: "0.3"})], patterns) is None
    assert "mismatch 'stdout'" in compare_outputs([stream("a\nc\n")], [stream("a\nb\n")], patterns)
    assert "Missing output fields" in compare_outputs([stream("a\nb\n")], stored, patterns)
    assert "Unexpected output fields" in compare_outputs(stored, [stream("a\nb\n")], patterns)
    assert "dissimilar number" in compare_outputs([result({"text/plain": "4"})] * 2, [result({"text/plain": "4"})],
                                                  patterns)


def test_a_failing_chapter_raises_and_the_kernel_gets_its_own_environment(trial, monkeypatch):
    import os

    from dsnet.sync import ExecutionError, Project, execute, kernel_env

    monkeypatch.delenv("DSNET_PROGRESS", raising=False)
    monkeypatch.setenv("DSNET_SYNC_PROBE", "from the caller")
    assert kernel_env()["DSNET_PROGRESS"] == "text" and kernel_env({"DSNET_PROGRESS": "none"})["DSNET_PROGRESS"] == "none"
    chapter = trial('import os\nprint(os.environ["DSNET_PROGRESS"], os.environ["DSNET_SYNC_PROBE"])\nMARKER = 1')
    executed = execute(chapter, Project(chapter.parent.parent))
    printed = [o["text"] for c in executed.cells if c.cell_type == "code" for o in c.outputs if "text" in o]
    assert printed == ["text from the caller\n"]
    assert "DSNET_PROGRESS" not in os.environ          # the caller's environment is untouched
    chapter.write_text(chapter.read_text().replace("MARKER = 1", 'raise ValueError("bad size")'))
    with pytest.raises(ExecutionError) as failure:
        execute(chapter, Project(chapter.parent.parent))
    assert str(failure.value).startswith("dsnet.sync: trial.md failed while executing:")
    assert str(failure.value).endswith("ValueError: bad size")


def test_stale_files_come_back_as_data(checkout):
    from dsnet.sync import Project, update

    (checkout / "dsnet" / "orphan.py").write_text("# Generated from book/gone.md by `python -m dsnet.sync`.\n")
    ipynb = checkout / "book" / "shapes.ipynb"
    notebook = json.loads(ipynb.read_text())
    next(c for c in notebook["cells"] if c["cell_type"] == "code" and c["outputs"])["execution_count"] = None
    ipynb.write_text(json.dumps(notebook, indent=1) + "\n")
    stale = {str(entry): entry for entry in update(Project(checkout), check=True)}
    assert stale["dsnet/orphan.py: should not exist (no chapter exports it)"].unrun is False
    assert any(entry.unrun and entry.path == Path("book/shapes.ipynb") for entry in stale.values())
    assert (checkout / "dsnet" / "orphan.py").exists()      # check changes nothing


def test_a_kernel_talks_over_unix_sockets_in_a_folder_removed_afterwards():
    from dsnet.sync.execute import kernel_sockets

    with kernel_sockets() as config:
        sockets = Path(config.KernelManager.ip).parent
        assert config.KernelManager.transport == "ipc" and sockets.is_dir()
        assert len(str(sockets / "ipc-99999")) < 108   # the longest socket path a kernel makes there
    assert not sockets.exists()

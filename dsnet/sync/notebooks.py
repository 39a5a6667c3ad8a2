"""The paired ``book/*.ipynb`` that Colab opens: inputs and metadata from the chapter, the Colab
setup cell first, and only the outputs worth storing (see :func:`normalize`)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

UNSTORED_TAGS = {"nbval-ignore-output", "nbval-skip"}
UNSTORED_MIME = {"image/png", "image/jpeg", "image/svg+xml", "application/vnd.jupyter.widget-view+json"}
SETUP_TAG = "colab-setup"


# ---------------------------------------------------------------- Colab setup cell
def setup_cell_source(repository_url: str) -> str:
    """The first code cell of every chapter: installs dsnet in Colab, nothing elsewhere."""
    return (
        "# In Colab, install dsnet (with what its chapters import and Colab lacks) from the book's\n"
        "# repository; elsewhere this does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "dsnet[colab] @ git+{repository_url}"'
    )


def setup_cell_block(repository_url: str) -> str:
    """The setup cell as it stands in a chapter: a tagged, hidden MyST code cell."""
    return (
        "```{code-cell} ipython3\n"
        f":tags: [{SETUP_TAG}, remove-cell]\n"
        "\n"
        f"{setup_cell_source(repository_url)}\n"
        "```"
    )


_FIRST_CODE_CELL = re.compile(r"```\{code-cell\}[^\n]*\n(?:.*?\n)??```", re.S)


def with_setup_cell(md_text: str, repository_url: str) -> str:
    """``md_text`` whose first code cell is the current Colab setup cell."""
    block = setup_cell_block(repository_url)
    match = _FIRST_CODE_CELL.search(md_text)
    if match and SETUP_TAG in match.group(0).split("\n", 2)[1]:
        return md_text[: match.start()] + block + md_text[match.end():]
    # No setup cell yet: put one right after the chapter's title line.
    title = re.search(r"^# .*\n", md_text, re.M)
    at = title.end() if title else 0
    return md_text[:at] + "\n" + block + "\n" + md_text[at:]


# ---------------------------------------------------------------- stored outputs
def _cell_id(source: str, taken: set[str]) -> str:
    """A cell id from the cell's source, so that an unchanged cell keeps its id."""
    base = hashlib.sha1(source.encode()).hexdigest()[:8]
    cid, n = base, 1
    while cid in taken:
        cid, n = f"{base}-{n}", n + 1
    taken.add(cid)
    return cid


def stores_outputs(cell: Any) -> bool:
    """Whether the paired notebook keeps this cell's outputs (code cells not tagged nondeterministic)."""
    return cell.cell_type == "code" and not UNSTORED_TAGS & set(cell.metadata.get("tags", []))


def _clean_output(output: Any, count: int) -> Any:
    """``output`` without images or widgets and their metadata, numbered ``count``."""
    if "data" in output:
        output["data"] = {k: v for k, v in output["data"].items() if k not in UNSTORED_MIME}
        output["metadata"] = {}
    if output.get("output_type") == "execute_result":
        output["execution_count"] = count
    return output


def _merge_streams(outputs: list) -> list:
    """Join consecutive writes to one stream: how a kernel splits them varies from run to run."""
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous["name"] == output["name"]):
            previous["text"] = "".join(previous["text"]) + "".join(output["text"])
        else:
            merged.append(output)
    return merged


def normalize(nb: Any, chapter_meta: dict) -> Any:
    """Deterministic notebook: stable ids and metadata, only the outputs worth storing."""
    import nbformat

    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = nbformat.from_dict(chapter_meta)
    taken: set[str] = set()
    count = 0
    for cell in nb.cells:
        cell.id = _cell_id(cell.source, taken)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if stores_outputs(cell) and cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
            cleaned = [_clean_output(o, count) for o in cell.outputs]
            cell.outputs = _merge_streams([o for o in cleaned if "data" not in o or o["data"]])
        else:
            cell.execution_count = None
            cell.outputs = []
    return nb


def chapter_metadata(md_nb: Any) -> dict:
    """The notebook metadata for a chapter: its own, plus what Colab reads (a GPU if it asks for one)."""
    meta = dict(md_nb.metadata)
    meta.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    meta["language_info"] = {"name": "python"}
    colab = {"provenance": [], "toc_visible": True}
    meta["colab"] = colab
    if meta.get("dsnet", {}).get("gpu"):
        meta["accelerator"] = "GPU"
        colab["gpuType"] = "T4"
    return meta


def expected_notebook(chapter: Path, executed: Any = None) -> str:
    """The paired notebook's text: inputs from the chapter, outputs from ``executed``
    (a freshly run notebook) or else from the notebook already on disk."""
    import jupytext
    import nbformat
    from jupytext.combine import combine_inputs_with_outputs

    md_nb = jupytext.read(chapter)
    meta = chapter_metadata(md_nb)
    ipynb = chapter.with_suffix(".ipynb")
    source = executed
    if source is None and ipynb.exists():
        source = nbformat.read(ipynb, as_version=4)
    if source is not None:
        md_nb = combine_inputs_with_outputs(md_nb, source)
    text = nbformat.writes(normalize(md_nb, meta), version=4)
    return text if text.endswith("\n") else text + "\n"


def missing_outputs(ipynb_text: str) -> list[int]:
    """Indices of code cells that should have stored outputs but were never executed."""
    import nbformat

    nb = nbformat.reads(ipynb_text, as_version=4)
    return [i for i, c in enumerate(nb.cells) if stores_outputs(c) and c.get("execution_count") is None]

"""Comparing a chapter's fresh outputs with the ones stored in its ``.ipynb``, by nbval's rules:
streams of one name joined and carriage returns applied, the keys nbval never compares left out,
the patterns of ``tests/nbval_sanitize.cfg`` applied to text, and then for every output key the
same number of values, equal one by one (the order among different keys does not count)."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from dsnet.sync.notebooks import expected_notebook, stores_outputs
from dsnet.sync.project import Project

# nbval's own rules: the keys it never compares. To those we add glue's records: they hold a value
# at full float precision for the prose to format, so their last digits follow the processor's
# rounding; the claims the prose makes are asserted in the cells, and what a cell prints is compared.
GLUE_RECORDS = ("application/papermill.record/text/plain", "application/papermill.record/text/html")
NBVAL_SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                      "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg", *GLUE_RECORDS)
# nbval drops a line's text up to a carriage return that more text follows on that line. (It also
# means to apply backspaces, but its loop for that never runs, so neither do we.)
_CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.M)


def sanitize_patterns(project: Project) -> list[tuple[str, str]]:
    """The regex-replace pairs of ``tests/nbval_sanitize.cfg`` (nbval's format)."""
    config = project.root / "tests" / "nbval_sanitize.cfg"
    if not config.exists():
        return []
    return re.findall(r"^regex: (.*)$\n^replace: (.*)$", config.read_text(), flags=re.M)


def coalesce_streams(outputs: list) -> list[dict]:
    """``outputs`` with every stream's writes joined into its first output (a copy: the notebook is
    left as it was), carriage returns applied, and each stream keyed by its name, as nbval does."""
    merged: list[dict] = []
    streams: dict[str, dict] = {}
    for output in outputs:
        if output["output_type"] != "stream":
            merged.append(output)
        elif output["name"] in streams:
            streams[output["name"]]["text"] += output["text"]
        else:
            streams[output["name"]] = {"output_type": "stream", "name": output["name"], "text": output["text"]}
            merged.append(streams[output["name"]])
    return [{"output_type": "stream", o["name"]: _CARRIAGE_RETURN.sub("", o["text"])}
            if o["output_type"] == "stream" else o for o in merged]


def compared_values(outputs: list, patterns: dict[str, str]) -> dict[str, list]:
    """Every compared key of ``outputs`` (the keys of ``data`` flattened in) with its sanitized
    values, in order."""
    def sanitize(value: Any) -> Any:
        if isinstance(value, str):
            for regex, replace in patterns.items():
                value = re.sub(regex, replace, value)
        return value

    values: dict[str, list] = defaultdict(list)
    for output in coalesce_streams(outputs):
        for key, value in output.items():
            if key in NBVAL_SKIP_COMPARE:
                continue
            if key == "data":
                for mime, data in value.items():
                    if mime not in NBVAL_SKIP_COMPARE:
                        values[mime].append(sanitize(data))
            else:
                values[key].append(sanitize(value))
    return values


def compare_outputs(test: list, ref: list, patterns: dict[str, str]) -> str | None:
    """None when nbval would pass a cell whose stored outputs are ``ref`` and whose fresh ones are
    ``test``, else the reason."""
    fresh, stored = compared_values(test, patterns), compared_values(ref, patterns)
    if stored.keys() - fresh.keys():
        return f"Missing output fields from running code: {stored.keys() - fresh.keys()}"
    if fresh.keys() - stored.keys():
        return f"Unexpected output fields from running code: {fresh.keys() - stored.keys()}"
    for key, old in stored.items():
        new = fresh[key]
        if len(new) != len(old):
            return "\n".join([f'dissimilar number of outputs for key "{key}"<<<<<<<<<<<< Reference outputs '
                              "from ipynb file:", *map(str, old), "============ disagrees with newly computed "
                              "(test) output:", *map(str, new), ">>>>>>>>>>>>"])
        for left, right in zip(old, new):
            if left != right:
                return f"mismatch {key!r}:\n--- stored\n{left}\n+++ this run\n{right}"
    return None


def output_mismatches(chapter: Path, executed: Any, project: Project) -> list[str]:
    """Every code cell whose fresh outputs ``executed`` differ from the outputs stored in the
    chapter's ``.ipynb``, compared as strictly as nbval does (same keys, same sanitizing)."""
    import nbformat

    stored = nbformat.read(chapter.with_suffix(".ipynb"), as_version=4)
    fresh = nbformat.reads(expected_notebook(chapter, executed), as_version=4)
    stored_code = [c for c in stored.cells if c.cell_type == "code"]
    fresh_code = [c for c in fresh.cells if c.cell_type == "code"]
    if [c.source for c in stored_code] != [c.source for c in fresh_code]:
        return [f"{chapter.with_suffix('.ipynb').name}: its code differs from {chapter.name}; "
                "run `python -m dsnet.sync`"]
    patterns, problems = dict(sanitize_patterns(project)), []
    for index, (old, new) in enumerate(zip(stored_code, fresh_code)):
        if not stores_outputs(old):
            continue
        reason = compare_outputs(new.outputs, old.outputs, patterns)
        if reason:
            first = old.source.strip().splitlines()[0] if old.source.strip() else ""
            problems.append(f"code cell {index} ({first[:60]}): {reason}")
    return problems

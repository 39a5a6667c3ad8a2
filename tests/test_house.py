"""The shape of the house: chapters import only what came before them, and functions stay short.

A module generated from a chapter may import (at the top or inside a function) only modules
generated from the same or an earlier chapter in ``_toc.yml``, or hand-written infrastructure whose
own imports reach no later chapter: ``dsnet.files`` and ``dsnet.device`` reach none, ``dsnet.io``
reaches the model chapter (it builds a ``DSResNet`` to load weights into), so chapters from the
model on may use it. Importing the package itself (``from dsnet import __version__``) counts as
importing every chapter.

Pages of a part whose caption starts with "Appendix" are reference material that a reader may
open at any point: every chapter may import their modules, and their modules may import no
chapter's module (only infrastructure that reaches no chapter, and each other). They are placed
before every chapter, like such infrastructure, so the one rule above checks both directions.
"""
from __future__ import annotations

import ast
import math
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GENERATED = "# Generated from "
APPENDIX = "Appendix"   # a part whose caption starts with this holds reference pages, not chapters


def chapter_order(root: Path) -> dict[str, int]:
    """``{"book/NAME.md": place}``; a chapter's sections (its sub-pages) share the chapter's place.
    The root page is 0 and the chapters count from 1; every page of an appendix part is -1, the
    level of infrastructure that reaches no chapter."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    order = {f"{toc['root']}.md": 0}
    place = 0
    for part in toc.get("parts", []):
        appendix = str(part.get("caption", "")).startswith(APPENDIX)
        for chapter in part["chapters"]:
            if not appendix:
                place += 1
            for entry in [chapter, *chapter.get("sections", [])]:
                order[f"{entry['file']}.md"] = -1 if appendix else place
    return order


def dsnet_imports(path: Path) -> set[str]:
    """Every ``dsnet`` module that ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dsnet"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "dsnet":   # from dsnet import X: X may be a submodule or a re-export
                found |= {f"dsnet.{a.name}" if (path.parent / f"{a.name}.py").exists() else "dsnet" for a in node.names}
            elif node.module.split(".")[0] == "dsnet":
                found.add(node.module)
    return found


def levels(package: Path, root: Path) -> tuple[dict[str, str], dict[str, float]]:
    """Each chapter module's chapter, and each module's level: its chapter's place in the book (-1
    for an appendix page), or for hand-written code the latest chapter it reaches through its
    imports (-1: none; inf: the package itself, which reaches every chapter)."""
    order = chapter_order(root)
    modules = {f"dsnet.{p.stem}": p for p in package.glob("*.py") if p.stem != "__init__"}
    chapter_of = {name: p.read_text().splitlines()[0].split()[3]
                  for name, p in modules.items() if p.read_text().startswith(GENERATED)}
    imports = {name: dsnet_imports(p) - {name} for name, p in modules.items()}
    level: dict[str, float] = {"dsnet": math.inf, **{n: order[c] for n, c in chapter_of.items()}}

    def reach(name: str, seen: frozenset = frozenset()) -> float:
        if name in level:
            return level[name]
        if name not in imports or name in seen:
            return -1
        return max([reach(i, seen | {name}) for i in imports[name]], default=-1)

    for name in modules:
        level[name] = reach(name)
    return chapter_of, level


def backward_imports(package: Path, root: Path) -> list[str]:
    """Every import of a chapter or appendix module that breaks the reading order, as a sentence."""
    chapter_of, level = levels(package, root)
    problems = []
    for name, chapter in sorted(chapter_of.items()):
        appendix = level[name] < 0
        for imported in sorted(dsnet_imports(package / f"{name.split('.')[1]}.py") - {name}):
            if level.get(imported, -1) <= level[name]:
                continue
            if imported in chapter_of:
                where = (f"generated from the chapter {chapter_of[imported]}, and an appendix imports no chapter"
                         if appendix else f"generated from the later chapter {chapter_of[imported]}")
            elif imported == "dsnet":
                where = "the package itself"
            else:
                where = f"hand-written code that imports {'chapters' if appendix else 'later chapters'}"
            problems.append(f"{name} (from {chapter}) imports {imported}, {where}")
    return problems


def test_chapters_import_only_what_came_before():
    assert backward_imports(ROOT / "dsnet", ROOT) == []


def test_a_planted_backward_import_is_caught(tmp_path):
    package = tmp_path / "dsnet"
    shutil.copytree(ROOT / "dsnet", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "_toc.yml", tmp_path / "_toc.yml")
    model = package / "model.py"
    model.write_text(model.read_text() + "\n\ndef _late():\n    from dsnet.train import TrainConfig\n")
    io = package / "io.py"
    io.write_text(io.read_text() + "\n\nfrom dsnet import __version__\n")
    problems = backward_imports(package, tmp_path)
    assert "dsnet.model (from book/model.md) imports dsnet.train, generated from the later chapter book/training.md" in problems
    assert "dsnet.train (from book/training.md) imports dsnet.io, hand-written code that imports later chapters" \
        in problems


def test_appendix_modules_import_no_chapter(tmp_path):
    package = tmp_path / "dsnet"
    shutil.copytree(ROOT / "dsnet", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "_toc.yml", tmp_path / "_toc.yml")
    order = chapter_order(tmp_path)
    assert order["book/renderer.md"] == -1 < order["book/data.md"]   # the renderer is an appendix page
    assert "dsnet.scene" in dsnet_imports(package / "data.py")        # which a chapter may import
    scene = package / "scene.py"
    scene.write_text(scene.read_text() + "\n\ndef _late():\n    from dsnet.data import SyntheticMuseum\n")
    problems = backward_imports(package, tmp_path)
    assert ("dsnet.scene (from book/renderer.md) imports dsnet.data, generated from the chapter book/data.md, "
            "and an appendix imports no chapter") in problems
    assert not any(problem.startswith("dsnet.data ") for problem in problems)


def test_no_function_in_the_package_is_longer_than_60_lines():
    long = []
    for path in sorted((ROOT / "dsnet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_glue_hands_the_book_plain_numbers(monkeypatch):
    import numpy as np
    import torch

    import myst_nb

    from dsnet.book import glue

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: glued.update({name: value}))
    glue("a", np.float64(0.25))
    glue("b", torch.tensor(3))
    glue("c", 0.5)
    assert glued == {"a": 0.25, "b": 3, "c": 0.5} and all(type(v) in (float, int) for v in glued.values())

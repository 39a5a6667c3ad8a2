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

The library never imports the command line: no module of the package but ``dsnet.cli``,
``dsnet.__main__`` and ``dsnet.commands`` itself imports ``dsnet.cli`` or ``dsnet.commands``, so the
commands stay thin wrappers of functions that a notebook or a script can call the same way.
"""
from __future__ import annotations

import ast
import importlib
import math
import shutil
from pathlib import Path

from helpers import read_toc

ROOT = Path(__file__).resolve().parent.parent
GENERATED = "# Generated from "
APPENDIX = "Appendix"   # a part whose caption starts with this holds reference pages, not chapters


def chapter_order(root: Path) -> dict[str, int]:
    """``{"book/NAME.md": place}``; a chapter's sections (its sub-pages) share the chapter's place.
    The root page is 0 and the chapters count from 1; every page of an appendix part is -1, the
    level of infrastructure that reaches no chapter."""
    order: dict[str, int] = {}
    place = -1                      # the root page, a chapter of its own in read_toc, takes 0
    for chapter in read_toc(root):
        appendix = chapter.part.startswith(APPENDIX)
        if not appendix:
            place += 1
        order |= {f"{name}.md": -1 if appendix else place for name in chapter.files}
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


COMMAND_LINE = ("dsnet.cli", "dsnet.commands")
COMMAND_LINE_FILES = ("cli.py", "__main__.py", "commands")   # the command line itself, in the package's folder


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``source`` at any level (inside functions too), relative
    imports resolved against ``package``, the package the file is in. ``from A import B`` counts as
    importing ``A`` and ``A.B`` (B may be a submodule); ``importlib.import_module`` and ``__import__``
    count when they name the module literally."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            above = parts[:len(parts) - node.level + 1] if node.level else []    # from . import x: the package itself
            base = ".".join([*above, node.module or ""]).strip(".")
            found += [(node.lineno, base)] + [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def command_line_imports(source: str, package: str = "dsnet") -> list[str]:
    """Every import of ``dsnet.cli`` or ``dsnet.commands`` (or a module under it) in ``source``."""
    hits = {(line, name) for line, name in imported_modules(source, package)
            if any(name == cli or name.startswith(f"{cli}.") for cli in COMMAND_LINE)}
    lines: dict[int, str] = {}
    for line, name in sorted(hits, key=lambda hit: (hit[0], len(hit[1]))):
        lines.setdefault(line, name)     # the shortest name of each import statement
    return [f"line {line} imports {name}" for line, name in sorted(lines.items())]


def library_command_line_imports(package: Path) -> list[str]:
    """Every import of the command line in the library: each module of ``package`` (the ``dsnet``
    folder, subpackages included) outside the command line itself."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in COMMAND_LINE_FILES:
            continue
        inside = ".".join([package.name, *relative.parts[:-1]])
        problems += [f"{package.name}/{relative.as_posix()} {problem}"
                     for problem in command_line_imports(path.read_text(), inside)]
    return problems


def test_the_library_never_imports_the_command_line():
    assert library_command_line_imports(ROOT / "dsnet") == []


def test_an_import_of_the_command_line_is_caught_at_any_level():
    source = """import json
import dsnet.commands.data
from dsnet.cli import main
from dsnet import cli, io


def helper():
    from dsnet.commands import UsageError
    from . import commands
    from .commands.predict import run


class Later:
    def method(self):
        importlib.import_module("dsnet.cli")


from dsnet.bench import run_bench
from dsnet.commandset import x
"""
    assert command_line_imports(source) == [
        "line 2 imports dsnet.commands.data", "line 3 imports dsnet.cli", "line 4 imports dsnet.cli",
        "line 8 imports dsnet.commands", "line 9 imports dsnet.commands", "line 10 imports dsnet.commands.predict",
        "line 15 imports dsnet.cli"]
    assert command_line_imports("from .. import cli\n", "dsnet.weights") == ["line 1 imports dsnet.cli"]
    assert command_line_imports("from . import cli\n", "dsnet.weights") == []     # dsnet.weights.cli


def test_a_planted_import_of_the_command_line_is_found_and_the_command_line_may_import_itself(tmp_path):
    package = tmp_path / "dsnet"
    (package / "commands").mkdir(parents=True)
    (package / "weights").mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("from dsnet.cli import main\n")
    (package / "cli.py").write_text("from dsnet.commands import UsageError\n")
    (package / "commands" / "__init__.py").write_text("")
    (package / "commands" / "data.py").write_text("from dsnet.commands import UsageError\nfrom dsnet.bench import x\n")
    (package / "bench.py").write_text("def run():\n    from dsnet.commands.data import bench_command\n")
    (package / "weights" / "tool.py").write_text("from ..cli import main\n")
    assert library_command_line_imports(package) == ["dsnet/bench.py line 2 imports dsnet.commands.data",
                                                     "dsnet/weights/tool.py line 1 imports dsnet.cli"]


def export_lists(source: str) -> dict[str, dict[str, str]]:
    """The public names that ``source`` (the text of ``dsnet/__init__.py``) lists twice, each list as
    ``{name: module}``: ``_EXPORTS``, what ``import dsnet`` imports on first use, and the imports
    under ``if TYPE_CHECKING:``, what type checkers and editors see."""
    lazy: dict[str, str] = {}
    typed: dict[str, str] = {}
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets += [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(getattr(target, "id", None) == "_EXPORTS" for target in targets):
            lazy = ast.literal_eval(node.value)
        elif isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            typed |= {alias.asname or alias.name: line.module
                      for line in node.body if isinstance(line, ast.ImportFrom) for alias in line.names}
    return {"_EXPORTS": lazy, "TYPE_CHECKING": typed}


def export_mismatches(source: str) -> list[str]:
    """Every name that one export list of ``source`` has and the other lacks, or takes from another module."""
    (first, a), (second, b) = export_lists(source).items()
    return ([f"{name} is in {first} only" for name in sorted(a.keys() - b.keys())]
            + [f"{name} is in {second} only" for name in sorted(b.keys() - a.keys())]
            + [f"{name} comes from {a[name]} in {first} but from {b[name]} in {second}"
               for name in sorted(a.keys() & b.keys()) if a[name] != b[name]])


def test_the_package_lists_one_set_of_public_names():
    import dsnet

    source = (ROOT / "dsnet" / "__init__.py").read_text()
    assert export_mismatches(source) == []
    exports = export_lists(source)["_EXPORTS"]
    assert dsnet.__all__ == sorted(exports)
    assert [name for name, module in exports.items() if not hasattr(importlib.import_module(module), name)] == []


def test_a_name_in_one_export_list_only_is_caught():
    source = (ROOT / "dsnet" / "__init__.py").read_text()
    planted = {
        "lazy": source.replace('    "Realism": "dsnet.scene",\n',
                               '    "Realism": "dsnet.scene",\n    "plan_sizes": "dsnet.inference",\n'),
        "typed": source.replace("    from dsnet.io import load_model, load_pretrained\n",
                                "    from dsnet.io import load_model, load_pretrained, save_weights\n"),
        "moved": source.replace('"Realism": "dsnet.scene"', '"Realism": "dsnet.data"'),
    }
    assert all(text != source for text in planted.values())
    assert export_mismatches(planted["lazy"]) == ["plan_sizes is in _EXPORTS only"]
    assert export_mismatches(planted["typed"]) == ["save_weights is in TYPE_CHECKING only"]
    assert export_mismatches(planted["moved"]) == [
        "Realism comes from dsnet.data in _EXPORTS but from dsnet.scene in TYPE_CHECKING"]


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

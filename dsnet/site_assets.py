"""The files the built book serves itself instead of loading them from a CDN, so that every page
works offline: MathJax for the formulas, and for the page "Try it in your browser" (``book/browser.md``)
its scripts, ONNX Runtime Web and the model.

Hand-written infrastructure for the book's build; no chapter imports it. As a Sphinx extension
(``_config.yml``: ``sphinx: extra_extensions: [dsnet.site_assets]``), after an HTML build it writes

* ``_static/mathjax/``: MathJax 3 from ``node_modules`` (installed by ``npm ci`` from
  ``package-lock.json``), which ``mathjax_path`` in ``_config.yml`` points at;
* ``try/``: the page's scripts (``book/try/``), ONNX Runtime Web's WebAssembly build, and the page's
  data made by :func:`make_page_data`: the shipped weights exported to ONNX
  (:func:`dsnet.onnx_export.export_onnx`) with its contract, sample pairs from the renderer, and the
  depth colour map. The data is kept in ``_build/try_data`` and made again only when the weights or
  the code that makes it change.

Only these files are copied, not whole packages, and not into the book's own ``_static`` folder,
whose scripts Jupyter Book would load on every page.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent   # a clone of the book: the package installed editable
PACKAGE = Path(__file__).resolve().parent
PAGE_SCRIPTS = "book/try"               # the page's scripts, in the book's folder
SITE_FOLDER = "try"                     # the page's files, at the root of the built site
MATHJAX_FOLDER = "_static/mathjax"      # mathjax_path: mathjax/tex-mml-chtml.js (under _static)
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
MATHJAX_FILES = ("tex-mml-chtml.js", "input/tex/extensions", "input/mml", "output/chtml/fonts/woff-v2",
                 "a11y", "ui", "sre")
"""MathJax's combined component (the one Sphinx loads by default) and what it may load on demand:
TeX extensions, MathML entities, fonts, the accessibility tools and menu."""
SAMPLE_COUNT, SAMPLE_SIZE = 4, 224
DEPTH_COLORMAP = "magma"                # the book's depth figures (dsnet.plots)
DATA_FILES = ("dsresnet.onnx", "dsresnet.onnx.json", "magma.json",
              *(f"samples/{i}_{kind}.png" for i in range(1, SAMPLE_COUNT + 1) for kind in ("bg", "bg_fg")))


class MissingNodePackages(RuntimeError):
    """``node_modules`` lacks a package the site serves, or holds another version than the lock file."""


def node_package(name: str, root: Path = ROOT) -> Path:
    """The folder of the npm package ``name`` in ``root/node_modules``, after checking that it is
    the version ``package-lock.json`` pins; :class:`MissingNodePackages` (saying to run ``npm ci``)
    otherwise."""
    lock = json.loads((root / "package-lock.json").read_text(encoding="utf-8"))
    wanted = lock["packages"].get(f"node_modules/{name}", {}).get("version")
    folder = root / "node_modules" / name
    manifest = folder / "package.json"
    found = json.loads(manifest.read_text(encoding="utf-8"))["version"] if manifest.is_file() else None
    if wanted is None or found != wanted:
        have = f"version {found}" if found else "nothing"
        raise MissingNodePackages(f"the book serves {name} {wanted} from node_modules, which holds {have}: "
                                  f"run `npm ci` in {root}")
    return folder


def copy_files(source: Path, names: tuple[str, ...], target: Path) -> int:
    """Copy each file or folder ``names`` (relative to ``source``) to the same place under
    ``target``; returns the number of bytes copied. FileNotFoundError for a name that is missing."""
    copied = 0
    for name in names:
        src, dst = source / name, target / name
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing")
        files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
        for file in files:
            out = dst / file.relative_to(src) if src.is_dir() else dst
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, out)
            copied += file.stat().st_size
    return copied


def data_key() -> dict[str, str]:
    """What the page's data depends on: the shipped weights, the code that exports and draws it,
    and the versions of the tools; :func:`make_page_data` makes it again when any of them changes."""
    import onnx
    import torch

    from dsnet._version import __version__
    from dsnet.io import file_sha256, pretrained_files

    code = hashlib.sha256()
    for module in ("onnx_export.py", "export.py", "site_assets.py", "scene.py", "scene_parts.py", "raycast.py",
                   "realism.py", "scene_assets.py", "data.py"):
        code.update((PACKAGE / module).read_bytes())
    return {"weights": file_sha256(pretrained_files()["weights"]), "code": code.hexdigest(),
            "dsnet": __version__, "torch": torch.__version__, "onnx": onnx.__version__}


def make_page_data(folder: Path) -> bool:
    """Write the page's data into ``folder`` (:data:`DATA_FILES`): the shipped weights as ONNX with
    its contract, :data:`SAMPLE_COUNT` sample pairs and the depth colour map. Returns False and
    writes nothing when the data there was made from the same inputs (:func:`data_key`)."""
    from dsnet.onnx_export import export_onnx

    key = data_key()
    stamp = folder / "key.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == key and all((folder / f).is_file() for f in DATA_FILES):
        return False
    stamp.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(None, folder / "dsresnet.onnx", overwrite=True)
    write_samples(folder / "samples")
    (folder / "magma.json").write_text(json.dumps(colormap_table(DEPTH_COLORMAP)) + "\n")
    stamp.write_text(json.dumps(key, indent=1) + "\n")
    return True


def write_samples(folder: Path, count: int = SAMPLE_COUNT, size: int = SAMPLE_SIZE) -> None:
    """``count`` pairs ``I_bg.png``, ``I_bg_fg.png`` (I from 1), ``size`` x ``size``, rendered from
    the synthetic museum's test split (scenes that training never sees) with photographic realism."""
    import numpy as np
    import torch
    from PIL import Image

    from dsnet.data import SyntheticMuseum

    batch = SyntheticMuseum(size=size, length=count, split="test", realism=True).batch(range(count))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        for kind in ("bg", "bg_fg"):
            pixels = (batch[kind][i].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(np.ascontiguousarray(pixels)).save(folder / f"{i + 1}_{kind}.png", optimize=True)


def colormap_table(name: str) -> dict[str, Any]:
    """matplotlib's colour map ``name`` as 256 ``[r, g, b]`` (0-255): value ``v`` in [0, 1] takes
    entry ``min(255, floor(v * 256))``, as ``imshow(..., vmin=0, vmax=1)`` picks it."""
    import matplotlib
    import numpy as np

    colors = matplotlib.colormaps[name].resampled(256)(np.arange(256))[:, :3]
    return {"name": name, "rgb": (colors * 255).round().astype(int).tolist()}


def write_site_assets(outdir: Path, data: Path, root: Path = ROOT) -> dict[str, int]:
    """Put MathJax and the browser page's files into the built site ``outdir``: from the book in
    ``root`` (its ``node_modules`` and ``book/try``), the page's data made (or reused) in ``data``;
    returns the bytes copied per part."""
    ort, mathjax = node_package("onnxruntime-web", root), node_package("mathjax", root)
    make_page_data(data)
    target = outdir / SITE_FOLDER
    if target.exists():
        shutil.rmtree(target)
    scripts = tuple(sorted(p.name for p in (root / PAGE_SCRIPTS).iterdir() if p.suffix in (".mjs", ".css")))
    return {
        "page": copy_files(root / PAGE_SCRIPTS, scripts, target),
        "model and samples": copy_files(data, DATA_FILES, target),
        "onnxruntime-web": copy_files(ort / "dist", ORT_FILES, target / "ort"),
        "mathjax": copy_files(mathjax / "es5", MATHJAX_FILES, outdir / MATHJAX_FOLDER),
    }


def _build_finished(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.errors import ExtensionError
    from sphinx.util import logging

    outdir, started = Path(app.outdir), time.perf_counter()
    try:
        copied = write_site_assets(outdir, outdir.parent / "try_data", Path(app.confdir))
    except MissingNodePackages as error:
        raise ExtensionError(str(error)) from None
    logging.getLogger(__name__).info("dsnet.site_assets: " + ", ".join(
        f"{part} {size / 1e6:.1f} MB" for part, size in copied.items()) + f" ({time.perf_counter() - started:.1f} s)")


def setup(app: Any) -> dict[str, bool]:
    """Sphinx extension hook: after an HTML build, :func:`write_site_assets` into the output."""
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""The page "Try it in your browser" (``book/browser.md``) in headless Chromium: DSResNet runs in
the page and gives what PyTorch gives. :func:`check_try_page` is called by ``check_book.py`` with
its browser (offline: only the local server resolves) and returns the problems and a short report.

Through the page's own file inputs (Selenium ``send_keys``) it runs

* three pairs that must stop with their one sentence: a file that is not an image, two sizes that
  differ, a photo over the page's size limit;
* a sample pair (224 x 224), then the same pair resized to 200 x 300, then the sample again through
  its button. For each it reads back what the page keeps in ``window.dsnetLast`` and checks:
  the sizes the network ran at are :func:`dsnet.inference.plan_sizes`'; the network's inputs are
  :func:`dsnet.images.resize` of the file as dsnet reads it (within ``INPUT_TOLERANCE``); its
  outputs are what the PyTorch model (the shipped weights, :class:`dsnet.export.Deployable`)
  gives on those same inputs (within ``TOLERANCE``: float32 arithmetic in both); the maps at the
  photo's size are ``dsnet.predict(..., align=False)``'s (within ``MAP_TOLERANCE``, the logits'
  round trip through float32 probabilities) and the masks agree on all but ``MASK_FLIPS`` of the pixels;
  and the three PNGs it offers for download (overlay, depth, mask) are there, named after the pair,
  at the photo's size, the mask's white pixels exactly where the page's mask is.

The in-page time per pair at 224 px (the model's two passes) is reported, not judged.
"""
from __future__ import annotations

import base64
import time
from pathlib import Path

TRY_PAGE = "book/browser.html"
TOLERANCE = 1e-4          # network outputs in [0, 1], page (ONNX Runtime Web) vs PyTorch
INPUT_TOLERANCE = 1e-5    # network inputs in [0, 1], page vs dsnet.images.resize
MAP_TOLERANCE = 1e-3      # mask probability and depth at the photo's size, page vs dsnet.predict
MASK_FLIPS = 1e-3         # share of pixels whose thresholded mask may differ from dsnet.predict's
RUN_TIMEOUT = 180         # s: the first pair downloads the model and starts ONNX Runtime

# Everything window.dsnetLast holds, with its float arrays as base64 (one round trip).
READ_LAST_JS = r"""
const last = window.dsnetLast;
const b64 = (a) => {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
};
return {height: last.height, width: last.width, plan: last.plan, modelMs: last.modelMs, totalMs: last.totalMs,
        threads: last.threads, maps: {mask: b64(last.maps.mask), depth: b64(last.maps.depth)},
        passes: last.passes.map(p => ({size: p.size, ms: p.ms, bg: b64(p.bg), bg_fg: b64(p.bgFg),
                                       depth: b64(p.depth), mask: b64(p.mask)}))};
"""


def _floats(text: str, shape: tuple[int, ...]):
    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype=np.float32).reshape(shape)


DOWNLOADS = {"overlay": "dsnet-overlay-png", "depth": "dsnet-depth-png", "mask": "dsnet-mask-png"}
READ_DOWNLOADS_JS = r"""
const [ids, done] = [arguments[0], arguments[arguments.length - 1]];
const until = Date.now() + 10000;   // the PNGs are encoded after the result is shown
(async () => {
  const ready = () => Object.values(ids).every((id) => (document.getElementById(id).getAttribute("href") || "").startsWith("blob:"));
  while (!ready() && Date.now() < until) await new Promise((wake) => setTimeout(wake, 50));
  const out = {};
  for (const [kind, id] of Object.entries(ids)) {
    const link = document.getElementById(id), href = link.getAttribute("href") || "";
    if (!href.startsWith("blob:")) { out[kind] = null; continue; }
    const bytes = new Uint8Array(await (await fetch(href)).arrayBuffer());
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    out[kind] = {name: link.download, png: btoa(text)};
  }
  done(out);
})();
"""


def download_problems(driver, last: dict) -> list[str]:
    """What is wrong with the three PNGs the page offers for download after the result ``last``:
    each must be there, named ``*_KIND.png``, at the photo's size; the mask's white pixels must be
    exactly where the page's mask probability is above one half."""
    import io

    import numpy as np
    from PIL import Image

    problems, files = [], driver.execute_async_script(READ_DOWNLOADS_JS, DOWNLOADS)
    for kind, item in files.items():
        if not item:
            problems.append(f"no {kind} PNG to download")
            continue
        image = Image.open(io.BytesIO(base64.b64decode(item["png"])))
        if not item["name"].endswith(f"_{kind}.png") or image.format != "PNG":
            problems.append(f"the {kind} download is {item['name']!r}, a {image.format}, not a *_{kind}.png PNG")
        elif image.size != (last["width"], last["height"]):
            problems.append(f"the {kind} PNG is {image.size[0]}x{image.size[1]}, the photo {last['width']}x{last['height']}")
        elif kind == "mask":
            page = _floats(last["maps"]["mask"], (last["height"], last["width"])) > 0.5
            if not np.array_equal(np.asarray(image.convert("L")) > 127, page):
                problems.append("the mask PNG is not the page's mask")
    return problems


def run_pair(driver, bg: Path, bg_fg: Path | None = None, sample: int | None = None) -> tuple[str, str]:
    """Choose ``bg`` and ``bg_fg`` in the page's file inputs (or click sample button ``sample``)
    and wait for the page to finish: ``(state, status sentence)``, state "done" or "error"."""
    from selenium.webdriver.common.by import By

    driver.execute_script("for (const id of ['dsnet-bg', 'dsnet-bg-fg']) document.getElementById(id).value = '';"
                          "for (const id of arguments[0]) document.getElementById(id).removeAttribute('href');"
                          "document.getElementById('dsnet-try').dataset.state = 'test'; window.dsnetLast = undefined;",
                          list(DOWNLOADS.values()))
    if sample is not None:
        driver.find_element(By.CSS_SELECTOR, f"button[data-sample='{sample}']").click()
    else:
        driver.find_element(By.ID, "dsnet-bg").send_keys(str(bg))
        driver.find_element(By.ID, "dsnet-bg-fg").send_keys(str(bg_fg))
    deadline = time.time() + RUN_TIMEOUT
    while time.time() < deadline:
        state, text = driver.execute_script("return [document.getElementById('dsnet-try').dataset.state,"
                                            " document.getElementById('dsnet-status').textContent]")
        if state in ("done", "error"):
            return state, text
        time.sleep(0.1)
    return "timeout", text


def bad_inputs(folder: Path, sample_bg: Path) -> list[tuple[str, Path, Path, str]]:
    """``(what, bg, bg_fg, words the page must say)`` for pairs the page must refuse, written to ``folder``."""
    from PIL import Image

    text = folder / "notes.png"
    text.write_text("not an image, whatever its name says\n")
    narrow = folder / "narrow.png"
    Image.open(sample_bg).crop((0, 0, 160, 224)).save(narrow)
    huge = folder / "huge.png"
    Image.new("RGB", (4128, 512)).save(huge)
    return [("a file that is not an image", text, sample_bg, "“notes.png” is not an image this browser can read"),
            ("two sizes", sample_bg, narrow, "BG is 224 × 224 pixels but BG-FG is 160 × 224"),
            ("a photo over the limit", huge, huge, "this page takes photos up to 4096 pixels on the longer side")]


def odd_pair(folder: Path, bg: Path, bg_fg: Path) -> tuple[Path, Path]:
    """The sample pair resized to 300 x 200 (W x H): other sizes than the network's, two passes."""
    from PIL import Image

    out = []
    for path in (bg, bg_fg):
        target = folder / f"odd_{path.name}"
        Image.open(path).convert("RGB").resize((300, 200), Image.Resampling.BICUBIC).save(target)
        out.append(target)
    return out[0], out[1]


def compare(last: dict, bg: Path, bg_fg: Path, model, train_size: int | None) -> tuple[list[str], float]:
    """What is wrong with the page's result ``last`` (from :data:`READ_LAST_JS`) for the files
    ``bg``, ``bg_fg``, and the largest difference of its network outputs from ``model``'s."""
    import numpy as np
    import torch

    from dsnet.images import read_image, resize
    from dsnet.inference import plan_sizes, predict

    problems, worst = [], 0.0
    height, width = last["height"], last["width"]
    planned = tuple(tuple(last["plan"][k]) for k in ("mask", "depth"))
    if planned != plan_sizes(height, width, None, train_size):
        problems.append(f"the page ran the network at {planned}, dsnet.predict at {plan_sizes(height, width, None, train_size)}")
    files = {key: torch.from_numpy(read_image(path)).permute(2, 0, 1)[None] for key, path in (("bg", bg), ("bg_fg", bg_fg))}
    for run in last["passes"]:
        h, w = run["size"]
        inputs = {key: torch.from_numpy(_floats(run[key], (1, 3, h, w)).copy()) for key in files}
        for key, x in inputs.items():
            gap = float((x - resize(files[key], (h, w))).abs().max())
            if not gap <= INPUT_TOLERANCE:
                problems.append(f"{key} at {h}x{w} differs from dsnet's resizing by {gap:.2g} (> {INPUT_TOLERANCE:g})")
        with torch.inference_mode():
            want = dict(zip(("depth", "mask"), model(inputs["bg"], inputs["bg_fg"])))
        for key, expected in want.items():
            gap = float(np.abs(_floats(run[key], (1, 1, h, w)) - expected.numpy()).max())
            worst = max(worst, gap)
            if not gap <= TOLERANCE:
                problems.append(f"{key} at {h}x{w} differs from PyTorch by {gap:.2g} (> {TOLERANCE:g})")
    reference = predict(str(bg), str(bg_fg), device="cpu", align=False)
    maps = {key: _floats(last["maps"][key], (height, width)) for key in ("mask", "depth")}
    for key, expected in (("mask", reference.mask_prob), ("depth", reference.depth)):
        gap = float(np.abs(maps[key] - expected).max())
        if not gap <= MAP_TOLERANCE:
            problems.append(f"the {key} at the photo's size differs from dsnet.predict's by {gap:.2g} (> {MAP_TOLERANCE:g})")
    flips = float(((maps["mask"] > 0.5) != reference.mask).mean())
    if flips > MASK_FLIPS:
        problems.append(f"the mask differs from dsnet.predict's on {flips:.2%} of the pixels")
    return problems, worst


def check_try_page(driver, base: str, html: Path) -> tuple[list[str], list[str]]:
    """``(problems, report lines)`` for the page :data:`TRY_PAGE` of the book built in ``html``,
    served at ``base``, in ``driver``'s browser."""
    import tempfile

    import torch

    from dsnet.export import Deployable
    from dsnet.io import load_pretrained

    torch.set_num_threads(1)     # small passes; more threads only contend with Chromium's

    samples = html / "try" / "samples"
    bg, bg_fg = samples / "1_bg.png", samples / "1_bg_fg.png"
    if not (bg.is_file() and bg_fg.is_file()):
        return [f"the sample pair {bg.name}, {bg_fg.name} is missing from {samples}"], []
    problems, report = [], []
    driver.get(base + TRY_PAGE)
    with tempfile.TemporaryDirectory(prefix="check-try-") as tmp:
        for what, b, f, words in bad_inputs(Path(tmp), bg):
            state, text = run_pair(driver, b, f)
            if state != "error" or words not in text:
                problems.append(f"{what}: the page says {text!r} ({state}), not {words!r}")
        pretrained = load_pretrained("cpu")
        model = Deployable(pretrained.float()).eval()
        runs = [("224 x 224 (first pair: loads the model)", bg, bg_fg, None),
                ("300 x 200", *odd_pair(Path(tmp), bg, bg_fg), None),
                ("224 x 224 (its sample button)", bg, bg_fg, 1)]
        for label, b, f, sample in runs:
            state, text = run_pair(driver, b, f, sample)
            if state != "done":
                problems.append(f"{label}: the page ended {state!r}: {text}")
                continue
            last = driver.execute_script(READ_LAST_JS)
            found, worst = compare(last, b, f, model, pretrained.train_size)
            found += download_problems(driver, last)
            problems += [f"{label}: {problem}" for problem in found]
            sizes = ", ".join(f"{r['size'][1]}x{r['size'][0]} {r['ms']:.0f} ms" for r in last["passes"])
            report.append(f"{label}: the model took {last['modelMs']:.0f} ms ({sizes}; {last['threads']} thread(s)), "
                          f"{last['totalMs']:.0f} ms in all; largest difference from PyTorch {worst:.1e}")
    return problems, report

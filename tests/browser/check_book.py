#!/usr/bin/env python
"""Open every page of the built book in headless Chromium and check what a reader sees.

Run after ``jupyter-book build .``::

    python tests/browser/check_book.py            # _build/html -> _build/screenshots/*.png

It serves ``_build/html`` on 127.0.0.1 (a local http.server thread), drives Debian's Chromium
through Debian's chromedriver with Selenium (``apt-get install chromium chromium-driver``; no
browser is downloaded) and, on every HTML page of the book (found in the built HTML, so new
chapters are covered without edits here), checks:

* the title: ``<first heading> — <book title>``;
* every ``<img>`` loaded (``naturalWidth > 0``);
* no output cell shows a traceback, an error or a warning (error outputs, stderr outputs,
  ``Traceback (most recent call last)``, ``SomethingError:``/``SomethingWarning:`` lines);
* no output cell holds a live ipywidgets view (it needs the widget manager from a CDN, and shows
  its last state at best), and no page shows a raw widget (``HBox(children=...``) or
  "Error displaying widget";
* every same-origin link, stylesheet, script and image answers HTTP 200, and every ``#anchor``
  it points at exists on the target page;
* a chapter with a paired notebook has a Colab button that opens that notebook
  (``.../blob/<branch>/book/NAME.ipynb``, from ``repository`` in ``_config.yml``);
* every formula is typeset by MathJax (each ``.math`` element holds an ``mjx-container``) and no
  page shows a raw ``$$``;
* the root ``index.html`` redirects to a page of the book;
* the page "Try it in your browser" runs DSResNet on pairs chosen through its file inputs and gives
  what PyTorch gives, and offers its three PNGs for download (``check_try.py`` says how); it
  prints the time per pair at 224 px;
* no page, and no worker of a page, asked for anything but the local server: Chromium's network
  log (``--log-net-log``) lists every request the browser made, and every one that a page made
  must go to 127.0.0.1;

and saves a full-page screenshot to ``_build/screenshots/NAME.png``. It prints a table of the
pages and exits 1 with a per-page list of the failures.

Chromium runs offline: every host except 127.0.0.1 is unresolvable (``--host-resolver-rules``),
so the result never depends on the network, and a page that still loaded something from a CDN
would fail the network check, as it would fail a reader without internet.
"""
from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from check_try import TRY_PAGE, check_try_page

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-proxy-server", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--window-size=1280,900",
]
MAX_SCREENSHOT_HEIGHT = 60000  # px; a taller page is cut there (and the table says so)

# Read in the page: everything the checks need, in one round trip.
PAGE_STATE_JS = r"""
const done = arguments[arguments.length - 1];
// Images may be lazy: make them eager and scroll through the page so that all of them load.
for (const img of document.images) img.loading = "eager";
const height = () => document.documentElement.scrollHeight;
for (let y = 0; y < height(); y += 800) { window.scrollTo(0, y); await new Promise(r => setTimeout(r, 20)); }
window.scrollTo(0, 0);
const deadline = Date.now() + 10000;
while (Date.now() < deadline && [...document.images].some(i => !i.complete))
  await new Promise(r => setTimeout(r, 100));
// Formulas: wait for MathJax's first typesetting, then count what it left untouched.
if (window.MathJax && MathJax.startup && MathJax.startup.promise)
  await Promise.race([MathJax.startup.promise, new Promise(r => setTimeout(r, 10000))]);
const maths = [...document.querySelectorAll(".math")];
const prose = document.createTreeWalker(document.querySelector("main") || document.body, NodeFilter.SHOW_TEXT, {
  acceptNode: n => n.parentElement.closest("pre, code, script, style, .highlight, mjx-container")
    ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
let rawDollars = 0;
while (prose.nextNode()) if (prose.currentNode.textContent.includes("$$")) rawDollars++;
const h1 = document.querySelector("main h1, article h1, h1");
const outputs = [...document.querySelectorAll(".cell_output")].map(el => ({
  text: el.innerText,
  error: !!el.querySelector(".output.error, .output.traceback, .traceback"),
  stderr: [...el.querySelectorAll(".output.stderr")].map(s => s.innerText),
  widgets: el.querySelectorAll("script[type='application/vnd.jupyter.widget-view+json']").length,
}));
const urls = (sel, attr) => [...document.querySelectorAll(sel)].map(e => e[attr]).filter(u => u);
const nav = performance.getEntriesByType("navigation")[0];
done({
  title: document.title,
  h1: h1 ? h1.textContent.replace(/[#¶]\s*$/, "").trim() : "",
  images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
  outputs: outputs,
  body: document.body.innerText,
  links: urls("a[href]", "href"),
  assets: [...urls("link[href]", "href"), ...urls("script[src]", "src"), ...urls("img[src]", "src")],
  colab: urls("a[href*='colab.research.google.com']", "href"),
  loadMs: nav ? Math.round(nav.loadEventEnd - nav.startTime) : -1,
  math: {count: maths.length, untypeset: maths.filter(m => !m.querySelector("mjx-container")).length,
         rawDollars: rawDollars},
  width: document.documentElement.scrollWidth,
  height: height(),
});
"""

TRACEBACK_MARKERS = ("Traceback (most recent call last)",)
WIDGET_MARKERS = ("HBox(children=", "VBox(children=", "Error displaying widget", "Output(outputs=")


@dataclass
class PageResult:
    name: str
    title: str = ""
    load_ms: int = -1
    images: int = 0
    links: int = 0
    shot: str = ""
    shot_bytes: int = 0
    problems: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ serving
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


class LinkChecker:
    """Fetches each same-origin URL once; remembers the status and the ids of HTML targets."""

    def __init__(self, origin: str):
        self.origin = origin
        self._cache: dict[str, tuple[int, set[str]]] = {}

    def fetch(self, url: str) -> tuple[int, set[str]]:
        if url not in self._cache:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    status, body = response.status, response.read()
                    ctype = response.headers.get("Content-Type", "")
            except urllib.error.HTTPError as error:
                status, body, ctype = error.code, b"", ""
            ids: set[str] = set()
            if status == 200 and "html" in ctype:
                parser = _Ids()
                parser.feed(body.decode("utf-8", "replace"))
                ids = parser.ids
            self._cache[url] = (status, ids)
        return self._cache[url]

    def problems(self, urls: list[str], kind: str) -> list[str]:
        found = []
        for url in sorted(set(urls)):
            if not url.startswith(self.origin):
                continue
            target, _, fragment = url.partition("#")
            status, ids = self.fetch(target)
            shown = url[len(self.origin) - 1:]
            if status != 200:
                found.append(f"{kind} {shown}: HTTP {status}")
            elif fragment and kind == "link" and urllib.parse.unquote(fragment) not in ids:
                found.append(f"link {shown}: no element with id {fragment!r} on that page")
        return found


# ------------------------------------------------------------------ the book
def book_config(root: Path) -> dict:
    import yaml

    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))


def pages(html_dir: Path) -> list[str]:
    """Every HTML page of the built book, as a path relative to ``html_dir``."""
    found = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0] in SKIP_DIRS or (rel.as_posix() == "index.html" and is_redirect(path)):
            continue
        found.append(rel.as_posix())
    return found


def is_redirect(path: Path) -> bool:
    return 'http-equiv="Refresh"' in path.read_text(encoding="utf-8", errors="replace")[:2000]


def expected_colab_url(config: dict, page: str) -> str:
    if "repository" not in config:
        return "(no repository in _config.yml)"
    repo = urllib.parse.urlparse(config["repository"]["url"].rstrip("/")).path.strip("/")
    branch = config["repository"].get("branch", "master")
    colab = config.get("launch_buttons", {}).get("colab_url", "https://colab.research.google.com").rstrip("/")
    book_path = (config["repository"].get("path_to_book") or "").strip("/")
    notebook = f"{book_path}/{page[:-5]}.ipynb".lstrip("/")
    return f"{colab}/github/{repo}/blob/{branch}/{notebook}"


def output_problems(outputs: list[dict]) -> list[str]:
    import re

    exception_line = re.compile(r"^\s*(?:\S+:\d+: )?([A-Z]\w*(?:Error|Exception|Warning)): ", re.M)
    found = []
    for i, out in enumerate(outputs, 1):
        where = f"output cell {i}"
        if out["error"]:
            found.append(f"{where}: an error output")
        if out["widgets"]:
            found.append(f"{where}: a live widget, which the page shows only if the widget manager loads "
                         "from its CDN (tag the cell remove-output and show a static figure or table; "
                         "progress bars: dsnet.progress.progress)")
        for text in out["stderr"]:
            if re.search(r"warn|error|traceback", text, re.I):
                found.append(f"{where}: stderr says {text.strip().splitlines()[0][:100]!r}")
        for marker in TRACEBACK_MARKERS:
            if marker in out["text"]:
                found.append(f"{where}: shows a traceback")
        for match in exception_line.finditer(out["text"]):
            line = out["text"][match.start():].strip().splitlines()[0]
            found.append(f"{where}: shows {line[:100]!r}")
    return found


# ------------------------------------------------------------------ the browser
def start_browser(chromium: str, chromedriver: str, profile: Path):
    """Chromium under Selenium, with its profile and its network log (``netlog.json``, written
    when it quits) in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}", f"--log-net-log={profile / 'netlog.json'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


def screenshot(driver, path: Path, width: int, height: int) -> tuple[str, int]:
    """A full-page PNG: the viewport is stretched to the page's height for the capture."""
    import base64

    height = max(1, min(height, MAX_SCREENSHOT_HEIGHT))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "fromSurface": True})["data"]
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    png = base64.b64decode(data)
    path.write_bytes(png)
    cut = " (cut)" if height == MAX_SCREENSHOT_HEIGHT else ""
    return f"{width}x{height}{cut}", len(png)


def check_page(driver, base: str, page: str, config: dict, links: LinkChecker, shots: Path) -> PageResult:
    result = PageResult(page)
    driver.get(base + page)
    state = driver.execute_async_script(PAGE_STATE_JS)
    result.title, result.load_ms = state["title"], state["loadMs"]
    problems = result.problems

    book_title = config.get("title", "")
    if not state["title"].strip():
        problems.append("the page has no title")
    elif book_title and not state["title"].endswith(book_title):
        problems.append(f"title {state['title']!r} does not end with the book title {book_title!r}")
    elif state["h1"] and not state["title"].startswith(state["h1"]):
        problems.append(f"title {state['title']!r} does not start with the page heading {state['h1']!r}")

    result.images = len(state["images"])
    problems += [f"image {i['src']} did not load" for i in state["images"] if not i["ok"]]
    problems += output_problems(state["outputs"])
    problems += [f"the page shows {m!r} (a widget that did not render)" for m in WIDGET_MARKERS if m in state["body"]]
    math = state["math"]
    if math["untypeset"]:
        problems.append(f"{math['untypeset']} of {math['count']} formulas not typeset by MathJax")
    if math["rawDollars"]:
        problems.append(f"{math['rawDollars']} piece(s) of text show a raw '$$' (a formula that was not parsed)")

    same_origin = [u for u in state["links"] if u.startswith(links.origin)]
    result.links = len(set(u.partition("#")[0] for u in same_origin))
    problems += links.problems(state["links"], "link")
    problems += links.problems(state["assets"], "asset")

    notebook = ROOT / (page[:-5] + ".ipynb")
    wanted = expected_colab_url(config, page)
    if notebook.exists() or state["colab"]:
        if wanted not in state["colab"]:
            problems.append(f"Colab button {state['colab'] or 'missing'}; expected {wanted}")
        if not notebook.exists():
            problems.append(f"the Colab button opens {notebook.relative_to(ROOT)}, which does not exist")

    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / (page[:-5].replace("/", "_") + ".png")
    result.shot, result.shot_bytes = screenshot(driver, shot, state["width"], state["height"])
    return result


def check_root_redirect(driver, base: str, book_pages: list[str]) -> list[str]:
    driver.get(base + "index.html")
    deadline = time.time() + 10
    while time.time() < deadline and driver.current_url.endswith("/index.html"):
        time.sleep(0.1)
    landed = driver.current_url[len(base):].partition("#")[0]
    return [] if landed in book_pages else [f"index.html leads to {driver.current_url}, not to a page of the book"]


def check_try(driver, base: str, html: Path, book_pages: list[str]) -> PageResult:
    """The page "Try it in your browser" running DSResNet (``check_try.py``); prints its timings."""
    result = PageResult(f"{TRY_PAGE} (DSResNet in the page)")
    if TRY_PAGE not in book_pages:
        result.problems = [f"the built book has no page {TRY_PAGE}"]
        return result
    try:
        result.problems, report = check_try_page(driver, base, html)
    except Exception as error:  # a broken page or driver is a failed check, not a crash
        result.problems, report = [f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"], []
    for line in report:
        print(f"try it in your browser: {line}")
    return result


def network_problems(netlog: Path, origin: str) -> list[str]:
    """Every request that a page of the book (or a worker of one) made to anything but ``origin``,
    from Chromium's network log ``netlog``. Requests that the browser makes for itself (update
    checks and the like, with no initiating page) are not the book's and are left out."""
    if not netlog.is_file():
        return [f"Chromium wrote no network log ({netlog})"]
    text = netlog.read_text(encoding="utf-8", errors="replace").rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:          # a log cut short, by a browser that did not quit cleanly
        try:
            log = json.loads(text.rstrip(",") + "]}")
        except json.JSONDecodeError:
            return ["Chromium's network log cannot be read"]
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = [e.get("params") or {} for e in log.get("events", []) if e.get("type") == start]
    if not any(r.get("url", "").startswith(origin) for r in requests):
        return ["Chromium's network log holds no request to the local server: it logged nothing"]
    return sorted({f"{r['initiator']} asked for {r['url'][:150]}" for r in requests
                   if str(r.get("initiator", "")).startswith(("http://", "https://"))
                   and not r.get("url", "").startswith((origin, "data:", "blob:"))})


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html", help="the built book")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    args = parser.parse_args(argv)

    for what, path in (("chromium", args.chromium), ("chromedriver", args.chromedriver)):
        if not Path(path).is_file():
            print(f"check_book: {what} not found at {path}; install it with "
                  "`apt-get install chromium chromium-driver`", file=sys.stderr)
            return 2
    book_pages = pages(args.html)
    if not book_pages:
        print(f"check_book: no pages under {args.html}; build the book first "
              "(`jupyter-book build .`)", file=sys.stderr)
        return 2

    config = book_config(ROOT)
    server, base = serve(args.html)
    profile = Path(tempfile.mkdtemp(prefix="check-book-chromium-"))
    started = time.time()
    results: list[PageResult] = []
    try:
        driver = start_browser(args.chromium, args.chromedriver, profile)
        try:
            links = LinkChecker(base)
            for page in book_pages:
                try:
                    results.append(check_page(driver, base, page, config, links, args.screenshots))
                except Exception as error:  # a page that breaks the driver is a failed page
                    results.append(PageResult(page, problems=[f"{type(error).__name__}: {error}"]))
            if is_redirect(args.html / "index.html"):
                root = PageResult("index.html (redirect)")
                root.problems = check_root_redirect(driver, base, book_pages)
                results.append(root)
            results.append(check_try(driver, base, args.html, book_pages))
        finally:
            driver.quit()
        network = PageResult("network: every request of every page")
        network.problems = network_problems(profile / "netlog.json", base)
        results.append(network)
    finally:
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)

    print(f"\nBrowser check of {args.html} ({len(book_pages)} pages, {time.time() - started:.1f} s)\n")
    header = ("page", "load ms", "imgs", "links", "screenshot", "KiB", "result")
    rows = [(r.name, str(r.load_ms) if r.load_ms >= 0 else "-", str(r.images), str(r.links), r.shot or "-",
             f"{r.shot_bytes / 1024:.0f}" if r.shot_bytes else "-",
             "ok" if not r.problems else f"FAIL ({len(r.problems)})") for r in results]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    failed = [r for r in results if r.problems]
    if failed:
        print(f"\n{len(failed)} page(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"\n{r.name}:", file=sys.stderr)
            for problem in r.problems:
                print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"\nall {len(results)} pages passed; screenshots in {args.screenshots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

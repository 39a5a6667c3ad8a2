"""dsnet.site_assets and the scripts of the page "Try it in your browser" (book/try/*.mjs, run by
Node.js here: the same code the browser runs), without building the book: the pinned JavaScript,
the colour map, the sample pairs, the cache of the page's data, and the page's sizes and resizing
against dsnet's own (tests/browser/check_book.py runs the whole page in Chromium)."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import dsnet.site_assets as site
from dsnet.images import resize
from dsnet.inference import plan_sizes

ROOT = Path(__file__).resolve().parent.parent


def test_package_json_pins_what_the_lock_file_installs():
    wanted = json.loads((ROOT / "package.json").read_text())["dependencies"]
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == wanted
    assert {name: lock["packages"][f"node_modules/{name}"]["version"] for name in wanted} == wanted
    assert wanted["onnxruntime-web"].startswith("1.") and wanted["mathjax"].startswith("3.")


def test_a_missing_or_other_node_package_says_to_run_npm_ci(tmp_path):
    (tmp_path / "package-lock.json").write_text(json.dumps({"packages": {"node_modules/thing": {"version": "1.2.3"}}}))
    with pytest.raises(site.MissingNodePackages, match=r"serves thing 1.2.3 from node_modules, which holds nothing: run `npm ci`"):
        site.node_package("thing", tmp_path)
    folder = tmp_path / "node_modules" / "thing"
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"version": "1.2.2"}))
    with pytest.raises(site.MissingNodePackages, match="which holds version 1.2.2"):
        site.node_package("thing", tmp_path)
    (folder / "package.json").write_text(json.dumps({"version": "1.2.3"}))
    assert site.node_package("thing", tmp_path) == folder


def test_the_colour_map_is_matplotlibs_as_imshow_picks_it():
    import matplotlib

    table = site.colormap_table("magma")
    assert table["name"] == "magma" and len(table["rgb"]) == 256
    magma = matplotlib.colormaps["magma"]
    for value in (0.0, 0.1234, 0.5, 0.999, 1.0):
        entry = table["rgb"][min(255, math.floor(value * 256))]
        assert entry == [round(c * 255) for c in magma(value)[:3]], value


def test_sample_pairs_are_pngs_of_one_scene_with_and_without_its_foreground(tmp_path):
    from PIL import Image

    site.write_samples(tmp_path, count=2, size=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1_bg.png", "1_bg_fg.png", "2_bg.png", "2_bg_fg.png"]
    for i in (1, 2):
        bg, bg_fg = (np.asarray(Image.open(tmp_path / f"{i}_{kind}.png")) for kind in ("bg", "bg_fg"))
        assert bg.shape == bg_fg.shape == (64, 64, 3) and (bg != bg_fg).any()


def test_the_page_data_is_made_once_per_weights_and_code(tmp_path, monkeypatch):
    made = []

    def fake_export(model, path, overwrite):
        made.append(path)
        Path(path).write_bytes(b"onnx")
        Path(f"{path}.json").write_text("{}")

    def fake_samples(folder):
        folder.mkdir(parents=True, exist_ok=True)
        for name in site.DATA_FILES:
            if name.startswith("samples/"):
                (folder.parent / name).write_bytes(b"png")

    monkeypatch.setattr("dsnet.onnx_export.export_onnx", fake_export)
    monkeypatch.setattr(site, "write_samples", fake_samples)
    assert site.make_page_data(tmp_path) is True
    assert site.make_page_data(tmp_path) is False and len(made) == 1
    assert sorted(json.loads((tmp_path / "magma.json").read_text())) == ["name", "rgb"]
    monkeypatch.setattr(site, "data_key", lambda: {"weights": "other"})
    assert site.make_page_data(tmp_path) is True and len(made) == 2


NODE_SCRIPT = """
import {planSizes, pairProblem} from "%(sizes)s";
import {rgbPlanes, resizePlane} from "%(resize)s";
import fs from "fs";
const cases = JSON.parse(fs.readFileSync(process.argv[2]));
const out = {plans: cases.plans.map(([h, w, t]) => planSizes(h, w, t)),
             problems: cases.problems.map(([a, b]) => pairProblem(a, b)), resized: []};
for (const c of cases.resize) {
  out.resized.push({rgb: Array.from(rgbPlanes(Uint8ClampedArray.from(c.rgba), c.H, c.W, c.h, c.w)),
                    plane: Array.from(resizePlane(Float32Array.from(c.plane), c.H, c.W, c.h, c.w))});
}
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def node_results(tmp_path_factory):
    """The page's planSizes, pairProblem and resizing, run by Node.js on the cases below."""
    node = shutil.which("node")
    assert node is not None, "Node.js is not installed; the book's build needs it for npm ci (README: set-up)"
    folder = tmp_path_factory.mktemp("node")
    script = folder / "run.mjs"
    script.write_text(NODE_SCRIPT % {"sizes": (ROOT / "book/try/sizes.mjs").as_uri(),
                                     "resize": (ROOT / "book/try/resize.mjs").as_uri()})
    rng = np.random.default_rng(0)
    resize_cases = [dict(H=H, W=W, h=h, w=w, rgba=rng.integers(0, 256, H * W * 4).tolist(),
                         plane=(rng.standard_normal(H * W) * 5).astype(np.float32).tolist())
                    for H, W, h, w in ((224, 224, 160, 160), (200, 300, 192, 288), (50, 70, 64, 96), (97, 300, 64, 192))]
    cases = {"plans": PLANS, "problems": [[{"width": w1, "height": h1}, {"width": w2, "height": h2}]
                                          for (w1, h1), (w2, h2) in PROBLEMS], "resize": resize_cases}
    (folder / "cases.json").write_text(json.dumps(cases))
    done = subprocess.run([node, str(script), str(folder / "cases.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return cases, json.loads(done.stdout)


PLANS = [(224, 224, 160), (200, 300, 160), (3000, 4000, 160), (4096, 256, 160), (80, 80, 160), (720, 1280, 160),
         (1000, 999, 160), (50, 50, None), (768, 48, 160), (3024, 4032, 96), (1, 1, 160), (80, 48, 224), (112, 80, 160),
         (80, 80, None), (80, 144, 64)]  # the last two: sides of 2.5 and 4.5 blocks, rounded to even as Python does
PROBLEMS = [((224, 224), (224, 224)), ((224, 224), (160, 224)), ((4097, 300), (4097, 300)), ((2000, 100), (2000, 100))]


def test_the_page_runs_the_network_at_the_sizes_dsnet_predict_chooses(node_results):
    cases, out = node_results
    for (h, w, train), js in zip(cases["plans"], out["plans"]):
        assert (tuple(js["mask"]), tuple(js["depth"])) == plan_sizes(h, w, None, train), (h, w, train)


def test_the_page_refuses_a_pair_in_one_sentence(node_results):
    _, out = node_results
    assert out["problems"][0] == ""
    assert out["problems"][1] == ("BG is 224 × 224 pixels but BG-FG is 160 × 224: the two must show the same "
                                  "view at the same size.")
    assert "up to 4096 pixels on the longer side" in out["problems"][2]
    assert "more than 16 times longer one way than the other" in out["problems"][3]


def test_the_page_resizes_as_dsnet_does(node_results):
    cases, out = node_results
    for case, js in zip(cases["resize"], out["resized"]):
        size = (case["h"], case["w"])
        rgba = np.array(case["rgba"], dtype=np.uint8).reshape(case["H"], case["W"], 4)
        want = resize(torch.from_numpy(rgba[..., :3] / np.float32(255)).permute(2, 0, 1)[None], size)[0]
        np.testing.assert_allclose(np.array(js["rgb"], np.float32).reshape(3, *size), want.numpy(), atol=1e-6)
        plane = torch.tensor(case["plane"], dtype=torch.float32).reshape(1, 1, case["H"], case["W"])
        np.testing.assert_allclose(np.array(js["plane"], np.float32).reshape(size), resize(plane, size)[0, 0].numpy(),
                                   atol=1e-5)

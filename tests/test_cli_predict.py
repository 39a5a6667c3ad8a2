"""``dsnet predict`` and ``dsnet export`` from the command line: outputs, folder mode, and every bad
input as one line on stderr with exit status 2 and nothing written."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dsnet.images
from dsnet.cli import main
from dsnet.data import SyntheticMuseum
from dsnet.io import save_checkpoint
from dsnet.inference import predict


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """bg/ and bg_fg/ with three pairs at 64 x 96, named alike (one pair with different suffixes)."""
    root = tmp_path_factory.mktemp("photos")
    batch = SyntheticMuseum(96, length=3, split="test").batch(range(3))
    for folder in ("bg", "bg_fg"):
        (root / folder).mkdir()
    for i in range(3):
        for key, suffix in (("bg", ".jpg"), ("bg_fg", ".png" if i == 2 else ".jpg")):
            pixels = (batch[key][i, :, 16:80].permute(1, 2, 0) * 255).round().byte().numpy()
            Image.fromarray(pixels).save(root / key / f"room{i}{suffix}")
    return root


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_pair(photos, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "--bg", photos / "bg/room0.jpg", "--bg-fg", photos / "bg_fg/room0.jpg",
                            "--checkpoint", checkpoint, "--out", out, "--device", "cpu")
    assert code == 0, err
    assert "wrote 3 files for 1 pair(s)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["room0_depth.png", "room0_figure.png", "room0_mask.png"]
    want = predict(photos / "bg/room0.jpg", photos / "bg_fg/room0.jpg", model=checkpoint, device="cpu")
    mask, depth = Image.open(out / "room0_mask.png"), Image.open(out / "room0_depth.png")
    assert mask.size == depth.size == (96, 64)
    assert np.array_equal(np.asarray(mask) == 255, want.mask)
    assert np.abs(np.asarray(depth) / 65535 - want.depth).max() < 1e-4
    assert Image.open(out / "room0_figure.png").format == "PNG"


def test_folders_pair_files_by_name(photos, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "--bg", photos / "bg", "--bg-fg", photos / "bg_fg", "--checkpoint", checkpoint,
                            "--out", out, "--no-figure", "--size", "96x128")
    assert code == 0, err
    assert "wrote 6 files for 3 pair(s)" in stdout and "mask 96x128" in stdout
    assert "predict" in err                                   # the progress bar
    assert sorted(p.name for p in out.iterdir()) == [f"room{i}_{k}.png" for i in range(3) for k in ("depth", "mask")]


def test_bad_input_is_one_line_and_exit_2(photos, checkpoint, tmp_path, capsys):
    bg, fg = photos / "bg/room0.jpg", photos / "bg_fg/room0.jpg"
    (tmp_path / "notes.jpg").write_text("not an image")
    Image.new("RGB", (90, 64)).save(tmp_path / "small.jpg")
    (tmp_path / "a_file").write_text("")
    lonely = tmp_path / "lonely"
    (lonely / "bg").mkdir(parents=True)
    (lonely / "bg_fg").mkdir()
    Image.new("RGB", (64, 64)).save(lonely / "bg" / "x.jpg")
    Image.new("RGB", (64, 64)).save(lonely / "bg_fg" / "y.jpg")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(checkpoint.read_bytes()[:3000])
    foreign = save_checkpoint({"model": {"conv.weight": torch.zeros(3, 3, 1, 1)}}, tmp_path / "foreign.pt")
    out = tmp_path / "out"
    cases = [
        (["--bg", tmp_path / "missing.jpg", "--bg-fg", fg], "--bg .*missing.jpg does not exist"),
        (["--bg", tmp_path / "notes.jpg", "--bg-fg", fg], "notes.jpg is not an image that PIL can read"),
        (["--bg", bg, "--bg-fg", tmp_path / "small.jpg"], "room0.jpg is 64x96 pixels but .*small.jpg is 64x90"),
        (["--bg", bg, "--bg-fg", photos / "bg_fg"], "must both be files or both be folders"),
        (["--bg", lonely / "bg", "--bg-fg", lonely / "bg_fg"], "2 image.s. without a partner"),
        (["--bg", bg, "--bg-fg", fg, "--checkpoint", corrupt], "corrupt.pt is not a readable dsnet checkpoint"),
        (["--bg", bg, "--bg-fg", fg, "--checkpoint", foreign], "foreign.pt holds another architecture"),
        (["--bg", bg, "--bg-fg", fg, "--threshold", "2"], "--threshold must be between 0 and 1"),
    ]
    for args, message in cases:
        code, stdout, err = run(capsys, *args, "--out", out, *(["--checkpoint", checkpoint] if "--checkpoint" not in args else []))
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("dsnet predict: error: "), err
        assert re.search(message, err), (message, err)
        assert not out.exists(), f"{args} wrote {out}"
    code, _, err = run(capsys, "--bg", bg, "--bg-fg", fg, "--checkpoint", checkpoint, "--out", tmp_path / "a_file" / "out")
    assert code == 2 and "cannot create the output folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "--bg", bg, "--bg-fg", fg, "--checkpoint", checkpoint, "--out", tmp_path / "a_file")
    assert code == 2 and ("cannot create the output folder" in err or "is not a folder" in err)


def test_the_console_script_prints_no_traceback(photos, tmp_path):
    result = subprocess.run([sys.executable, "-m", "dsnet", "predict", "--bg", str(photos / "bg/room0.jpg"),
                             "--bg-fg", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"dsnet predict: error: --bg-fg {tmp_path / 'nope.jpg'} does not exist"]
    assert not (tmp_path / "out").exists()


def test_help_explains_every_option():
    for command, options in (("predict", ("--bg", "--bg-fg", "--out", "--checkpoint", "--size", "--threshold",
                                          "--device", "--no-figure", "--overwrite")),
                             ("export", ("--checkpoint", "--out", "--format", "--size"))):
        result = subprocess.run([sys.executable, "-m", "dsnet", command, "--help"], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0
        for option in options:
            assert option in result.stdout, (command, option)


def copy_photos(photos: Path, to: Path) -> Path:
    shutil.copytree(photos, to)
    return to


def test_every_input_is_decoded_before_the_first_output_is_written(photos, checkpoint, tmp_path, capsys):
    folder = copy_photos(photos, tmp_path / "photos")
    Image.new("RGB", (96, 64), "gray").save(folder / "bg" / "zz.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), np.uint8)).save(folder / "bg_fg" / "zz.jpg")
    data = (folder / "bg_fg" / "zz.jpg").read_bytes()
    (folder / "bg_fg" / "zz.jpg").write_bytes(data[:len(data) // 2])        # the last pair, cut short
    out = tmp_path / "out"
    code, _, err = run(capsys, "--bg", folder / "bg", "--bg-fg", folder / "bg_fg", "--out", out,
                       "--checkpoint", checkpoint)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"zz.jpg is not an image that PIL can read \(OSError: image file is truncated", err), err
    assert not out.exists()                                              # room0 to room2 were not written either


def test_an_image_over_the_size_limit_is_refused_before_anything_is_written(photos, checkpoint, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setattr(dsnet.images, "MAX_PIXELS", 64 * 64)
    out = tmp_path / "out"
    code, _, err = run(capsys, "--bg", photos / "bg", "--bg-fg", photos / "bg_fg", "--out", out,
                       "--checkpoint", checkpoint)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "room0.jpg is 64x96 pixels, more than dsnet takes (4,096 pixels, e.g. 64x64); scale it down first" in err
    assert not out.exists()


def test_existing_outputs_are_kept_unless_overwrite_is_given(photos, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")                              # other files are no clash
    args = ["--bg", photos / "bg", "--bg-fg", photos / "bg_fg", "--out", out, "--checkpoint", checkpoint,
            "--no-figure"]
    assert run(capsys, *args)[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, err = run(capsys, *args)
    assert code == 2 and err.strip() == (f"dsnet predict: error: {out / 'room0_mask.png'} exists already; pass "
                                         "--overwrite to replace it, --skip-existing to leave out the pairs "
                                         "already done, or choose another --out")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    (out / "room1_depth.png").write_bytes(b"stale")
    code, stdout, err = run(capsys, *args, "--overwrite")
    assert code == 0 and "wrote 6 files for 3 pair(s)" in stdout, err
    assert Image.open(out / "room1_depth.png").size == (96, 64) and (out / "notes.txt").read_text() == "mine"
    code, _, err = run(capsys, "--bg", photos / "bg", "--bg-fg", photos / "bg_fg", "--out", out,
                       "--checkpoint", checkpoint)                       # the figures would be new files, the rest not
    assert code == 2 and "room0_mask.png exists already" in err


def test_an_unknown_device_is_one_line(photos, checkpoint, tmp_path, capsys):
    code, _, err = run(capsys, "--bg", photos / "bg/room0.jpg", "--bg-fg", photos / "bg_fg/room0.jpg",
                       "--out", tmp_path / "out", "--checkpoint", checkpoint, "--device", "tpu")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--device: device 'tpu'" in err, err
    assert not (tmp_path / "out").exists()


def test_bench_predict_reports_the_overhead_over_the_forward_pass(tmp_path, capsys):
    report_file = tmp_path / "bench.json"
    code = main(["bench", "--predict", "--sizes", "64", "--steps", "1", "--warmup", "0", "--batch-size", "1",
                 "--device", "cpu", "--quiet", "--json", str(report_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"64    dsnet predict --no-figure --size 64 +\d+\.\d\d +[+-]\d+\.\d%", out), out
    row = json.loads(report_file.read_text())["rows"][0]
    for key in ("one_pass", "default"):
        assert row[f"predict_{key}_pairs_per_s"] > 0 and row[f"forward_{key}_pairs_per_s"] > 0
        want = 100 * (row[f"forward_{key}_pairs_per_s"] / row[f"predict_{key}_pairs_per_s"] - 1)
        assert row[f"overhead_{key}_percent"] == pytest.approx(want)
    assert json.loads(report_file.read_text())["command"].endswith("--predict")
    assert main(["bench", "--predict", "--compile"]) == 2

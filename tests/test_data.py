"""Datasets, statistics, augmentation, the MODEST writer and reader, and the CLI."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from dsnet import data, modest, scene
from dsnet.cli import main
from dsnet.scene import Realism

FIXTURE = Path(__file__).parent / "fixtures" / "modest_tiny"


# ---- the on-the-fly dataset
def test_synthetic_dataset_items_and_loader():
    ds = data.SyntheticMuseum(size=32, length=10, seed=0, split="val")
    assert len(ds) == 10
    item = ds[3]
    assert item["bg"].shape == (3, 32, 32) and item["depth"].shape == (1, 32, 32)
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    first = next(iter(loader))
    assert first["bg_fg"].shape == (4, 3, 32, 32)
    assert (first["bg_fg"][3] - item["bg_fg"]).abs().gt(1e-4).float().mean() < 1e-3
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(ValueError):
        data.SyntheticMuseum(split="holdout")


def test_synthetic_dataset_takes_realism():
    ds = data.SyntheticMuseum(size=32, length=4, realism="camera")
    assert ds.realism == Realism(camera=True)
    b = ds.batch(range(4))
    ref = scene.museum_batch(range(4), 32, realism=Realism(camera=True))
    assert all(torch.equal(b[k], ref[k]) for k in b)
    plain = data.SyntheticMuseum(size=32, length=4).batch(range(4))
    assert torch.equal(b["mask"], plain["mask"]) and torch.equal(b["depth"], plain["depth"])
    assert not torch.equal(b["bg"], plain["bg"])
    assert data.SyntheticMuseum(size=32, length=4, realism=True).realism == Realism.parse("all")
    with pytest.raises(ValueError, match="unknown realism 'glossy'"):
        data.SyntheticMuseum(realism="glossy")


def test_batches_cover_the_dataset_once():
    ds = data.SyntheticMuseum(size=16, length=7, seed=0)
    sizes = [b["mask"].shape[0] for b in ds.batches(3, shuffle=True, epoch=2)]
    assert sizes == [3, 3, 1]
    assert [b["mask"].shape[0] for b in ds.batches(3, drop_last=True)] == [3, 3]


def test_channel_stats_and_normalize():
    batch = {"bg": torch.rand(4, 3, 8, 8), "bg_fg": torch.rand(4, 3, 8, 8),
             "mask": torch.zeros(4, 1, 8, 8), "depth": torch.full((4, 1, 8, 8), 0.5)}
    stats = data.channel_stats([batch])
    assert stats["mask"] == ((0.0,), (0.0,)) and stats["depth"] == ((0.5,), (0.0,))
    mean = batch["bg"].mean((0, 2, 3))
    assert stats["bg"][0] == pytest.approx(mean.tolist(), abs=1e-5)
    normed = data.normalize(batch, stats)
    assert normed["bg"].mean((0, 2, 3)).abs().max() < 1e-4
    assert normed["mask"] is batch["mask"]
    assert set(data.MODEST_STATS) == set(data.KEYS)


def test_model_inputs_are_normalized_in_the_model_layout():
    b = data.SyntheticMuseum(size=16, length=2).batch(range(2))
    ref = data.normalize(b)
    for channels_last in (False, True):
        bg, bg_fg = data.model_inputs(b, channels_last)
        assert torch.equal(bg, ref["bg"]) and torch.equal(bg_fg, ref["bg_fg"])
        for x in (bg, bg_fg):
            assert x.is_contiguous(memory_format=torch.channels_last) == channels_last
            assert x.is_contiguous() != channels_last


def test_photometric_treats_bg_and_bg_fg_alike():
    b = data.SyntheticMuseum(size=32, length=4).batch(range(4))
    out = data.photometric(b, generator=torch.Generator().manual_seed(1), brightness=0.5, hue=0.2)
    same = (b["bg"] == b["bg_fg"]).all(1, keepdim=True).expand_as(b["bg"])
    assert torch.equal(out["bg"][same], out["bg_fg"][same])
    assert (out["bg"] - b["bg"]).abs().mean() > 0.01
    assert out["mask"] is b["mask"] and out["bg"].min() >= 0 and out["bg"].max() <= 1


def test_jpeg_round_trip():
    b = data.SyntheticMuseum(size=32, length=2).batch(range(2))
    out = data.jpeg_round_trip(b, quality=(60, 95), generator=torch.Generator().manual_seed(0))
    assert out["bg"].shape == b["bg"].shape and out["bg"].dtype == torch.float32
    assert 0 < (out["bg"] - b["bg"]).abs().mean() < 0.1
    assert torch.equal(out["depth"], b["depth"])


# ---- writer and reader
def test_write_then_read_round_trip(tmp_path):
    root = modest.write_modest(tmp_path / "m", count=6, size=32, fg_per_bg=2, quality=100, progress=False)
    rows = modest.read_file_map(root)
    assert rows[3] == ("bg001", "bg001_fg001_00", "bg001_fg001_00_mask", "bg001_fg001_00_depth_map")
    assert len(list((root / "bg").iterdir())) == 3 and len(list((root / "bg_fg").iterdir())) == 6
    boxes = (root / "bbox.txt").read_text().splitlines()
    assert len(boxes) == 6 and boxes[0].split("\t")[0] == "bg000_fg000_00.jpeg"
    ds = modest.ModestMuseum(root, split="all")
    rendered = data.SyntheticMuseum(size=32, length=6, fg_per_bg=2).batch(range(6))
    for i in range(6):
        item = ds[i]
        assert (item["mask"] != rendered["mask"][i]).float().mean() < 0.02
        assert (item["depth"] - rendered["depth"][i]).abs().mean() < 0.02
        assert (item["bg_fg"] - rendered["bg_fg"][i]).abs().mean() < 0.05
        x, y, w, h = map(int, boxes[i].split("\t")[1:])
        m = rendered["mask"][i, 0]
        assert m[:, :x].sum() == 0 and m[:y].sum() == 0 and m[y + h:].sum() == 0 and m[:, x + w:].sum() == 0


def test_splits(tmp_path):
    root = modest.write_modest(tmp_path / "m", count=20, size=16, fg_per_bg=2, progress=False)
    for split_by in ("random", "background"):
        tr = modest.ModestMuseum(root, split="train", split_by=split_by, check="none")
        va = modest.ModestMuseum(root, split="val", split_by=split_by, check="none")
        assert len(tr) + len(va) == 20 and not set(tr.samples) & set(va.samples)
        assert len(va) == 6
        shared = {s[0] for s in tr.samples} & {s[0] for s in va.samples}
        assert (len(shared) == 0) == (split_by == "background")      # a random split shares rooms
    va = modest.ModestMuseum(root, split="val", split_by="background")
    assert not {s[0] for s in tr.samples} & {s[0] for s in va.samples}


def test_interrupted_writing_resumes(tmp_path, monkeypatch):
    real = modest._save_jpeg
    calls = {"n": 0}

    def dying(path, pixels, quality):
        calls["n"] += 1
        if calls["n"] == 11:                        # in the middle of the third sample
            Path(path).with_name(f".{Path(path).name}.tmp").write_bytes(b"half a jpeg")
            raise KeyboardInterrupt
        real(path, pixels, quality)

    monkeypatch.setattr(modest, "_save_jpeg", dying)
    with pytest.raises(KeyboardInterrupt):
        modest.write_modest(tmp_path / "m", count=6, size=16, fg_per_bg=2, batch_size=2, progress=False)
    root = tmp_path / "m"
    assert not (root / "file_map.txt").exists()
    monkeypatch.setattr(modest, "_save_jpeg", real)
    modest.write_modest(root, count=6, size=16, fg_per_bg=2, batch_size=2, progress=False)
    assert not list(root.rglob("*.tmp"))
    names = [r[1] for r in modest.read_file_map(root)]
    assert len(names) == len(set(names)) == 6
    assert sorted(p.stem for p in (root / "bg_fg").iterdir()) == sorted(names)
    ds = modest.ModestMuseum(root, split="all", check="full")
    assert len(ds) == 6 and ds.skipped == 0
    fresh = modest.write_modest(tmp_path / "n", count=6, size=16, fg_per_bg=2, progress=False)
    assert (fresh / "bbox.txt").read_text() == (root / "bbox.txt").read_text()


def test_writer_refuses_foreign_or_mismatched_folders(tmp_path):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(modest.ModestError, match="not empty"):
        modest.write_modest(tmp_path / "foreign", count=2, size=16, progress=False)
    modest.write_modest(tmp_path / "m", count=2, size=16, progress=False)
    with pytest.raises(modest.ModestError, match="other settings"):
        modest.write_modest(tmp_path / "m", count=2, size=32, progress=False)


def test_writer_records_realism(tmp_path):
    root = modest.write_modest(tmp_path / "m", count=2, size=16, progress=False, realism="textures,camera")
    assert json.loads((root / modest.MARKER).read_text())["realism"] == "textures,camera"
    plain = modest.write_modest(tmp_path / "p", count=2, size=16, progress=False)
    assert "realism" not in json.loads((plain / modest.MARKER).read_text())    # as before realism existed
    with pytest.raises(modest.ModestError, match="realism='textures,camera'"):
        modest.write_modest(root, count=2, size=16, progress=False)
    with pytest.raises(modest.ModestError, match="realism=None"):
        modest.write_modest(plain, count=2, size=16, progress=False, realism=True)
    modest.write_modest(root, count=2, size=16, progress=False, realism=Realism(textures=True, camera=True))
    item = modest.ModestMuseum(root, split="all")[1]
    rendered = scene.museum_batch(range(2), 16, fg_per_bg=4, realism="textures,camera")
    assert (item["bg_fg"] - rendered["bg_fg"][1]).abs().mean() < 0.05
    with pytest.raises(modest.ModestError, match="unknown realism 'matte'"):
        modest.write_modest(tmp_path / "q", count=2, size=16, progress=False, realism="matte")
    assert not (tmp_path / "q").exists()


def _copy_fixture(tmp_path):
    return Path(shutil.copytree(FIXTURE, tmp_path / "tiny"))


def test_fixture_reads():
    ds = modest.ModestMuseum(FIXTURE, split="all")
    assert len(ds) == 6 and ds.image_size == 32
    item = ds[0]
    assert item["bg"].shape == (3, 32, 32) and set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert modest.ModestMuseum(FIXTURE, split="all", resize=16)[1]["depth"].shape == (1, 16, 16)


def test_missing_file_map(tmp_path):
    root = _copy_fixture(tmp_path)
    (root / "file_map.txt").unlink()
    with pytest.raises(modest.ModestError, match="file_map.txt"):
        modest.ModestMuseum(root)


@pytest.mark.parametrize("damage", ["missing", "corrupt", "wrong size"])
def test_bad_image_is_named_or_skipped(tmp_path, damage):
    root = _copy_fixture(tmp_path)
    bad = root / "bg_fg_depth_map" / "bg001_fg001_00_depth_map.jpeg"
    if damage == "missing":
        bad.unlink()
    elif damage == "corrupt":
        bad.write_bytes(b"\xff\xd8 not really a jpeg")
    else:
        Image.new("L", (20, 32)).save(bad, format="JPEG")
    with pytest.raises(modest.ModestError, match="bg001_fg001_00_depth_map.jpeg"):
        modest.ModestMuseum(root, split="all")
    ds = modest.ModestMuseum(root, split="all", on_error="skip")
    assert len(ds) == 5 and ds.skipped == 1 and "bg001_fg001_00_depth_map" in ds.problems[0]


def test_truncated_image_fails_on_load_with_its_name(tmp_path):
    root = _copy_fixture(tmp_path)
    bad = root / "bg_fg" / "bg002_fg000_00.jpeg"
    bad.write_bytes(bad.read_bytes()[:-80])
    ds = modest.ModestMuseum(root, split="all")           # the header still reads
    with pytest.raises(modest.ModestError, match="bg002_fg000_00.jpeg"):
        ds[4]
    assert modest.ModestMuseum(root, split="all", check="full", on_error="skip").skipped == 1


def test_bad_file_map_line(tmp_path):
    root = _copy_fixture(tmp_path)
    (root / "file_map.txt").write_text("bg000\tbg000_fg000_00\n")
    with pytest.raises(modest.ModestError, match=r"file_map.txt:1"):
        modest.ModestMuseum(root)


# ---- the command line
def test_cli_generate_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "generate", "--out", str(out), "--count", "3", "--size", "16", "--quiet"]) == 0
    assert len(modest.read_file_map(out)) == 3
    assert main(["data", "generate", "--out", str(out), "--count", "3", "--size", "16", "--quiet"]) == 0
    assert main(["data", "generate", "--out", str(out), "--count", "3", "--size", "32", "--quiet"]) == 2
    assert main(["data", "generate", "--out", str(out), "--count", "0"]) == 2
    assert main(["data", "generate", "--out", str(tmp_path / "x"), "--count", "1", "--device", "nope"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "Traceback" not in err


def test_cli_bench(capsys):
    assert main(["data", "bench", "--sizes", "16", "--batch-size", "2", "--repeats", "1"]) == 0
    assert "samples/s" in capsys.readouterr().out

"""What a careful user or a security-minded reviewer tries: nothing destroyed, nothing read from
outside a dataset, no silent wrong answer, and every refusal one sentence before any work.
Each class of problem has its reported instance and at least one more case of its own kind."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dsnet.cli import main
from dsnet.images import as_images, check_image, pil_to_array, read_image
from dsnet.inference import load_predictor, plan_sizes, predict, ready_model
from dsnet.io import CheckpointError, load_model, load_pretrained, load_weights, save_weights
from dsnet.model import DSResNet
from dsnet.modest import ModestError, ModestMuseum, read_file_map, write_modest


@pytest.fixture(scope="module")
def museum(tmp_path_factory) -> Path:
    """A MODEST folder of 8 samples at 32 px, 4 per background: 2 backgrounds."""
    return write_modest(tmp_path_factory.mktemp("museum") / "m", count=8, size=32, fg_per_bg=4)


def copy_of(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "copy"))


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([*map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    """The one error line (progress bars, drawn on stderr too, may precede it)."""
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("dsnet ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- data loss: an export never replaces a file silently, and never its own source ---------------

def test_export_refuses_an_existing_output_and_its_own_checkpoint(checkpoint, tmp_path, capsys):
    source = tmp_path / "self.pt"
    source.write_bytes(checkpoint.read_bytes())
    before = source.read_bytes()
    for extra in ((), ("--overwrite",)):         # the source is protected even with --overwrite
        line = one_line_error(*cli(capsys, "export", "--checkpoint", source, "--out", source, *extra)[:3:2])
        assert "is the model being exported" in line
    assert source.read_bytes() == before
    run = tmp_path / "run"                       # a run folder: its best.pt is the source
    run.mkdir()
    (run / "best.pt").write_bytes(before)
    line = one_line_error(*cli(capsys, "export", "--checkpoint", run, "--out", run / "best.pt", "--format",
                               "torchscript", "--overwrite")[:3:2])
    assert "is the model being exported" in line and (run / "best.pt").read_bytes() == before
    other = tmp_path / "other.ts"
    other.write_text("keep me")
    line = one_line_error(*cli(capsys, "export", "--checkpoint", source, "--out", other)[:3:2])
    assert "--overwrite" in line and other.read_text() == "keep me"


# --- reads outside the dataset ----------------------------------------------------------------------

HOSTILE = ["../../secret", "/etc/hostname", "..", ".", "", "sub/dir", "a\0b", "../m/bg/bg000"]


@pytest.mark.parametrize("name", HOSTILE)
def test_no_file_map_entry_leads_outside_the_folder(museum, tmp_path, name):
    root = copy_of(museum, tmp_path)
    lines = (root / "file_map.txt").read_text().splitlines()
    fields = lines[2].split("\t")
    fields[1] = name
    lines[2] = "\t".join(fields)
    (root / "file_map.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ModestError, match=r"file_map.txt:3: .* leads outside the dataset folder"):
        read_file_map(root)
    with pytest.raises(ModestError, match="leads outside"):
        ModestMuseum(root, split="all", check="none")


def test_links_out_of_the_folder_are_refused_and_every_path_read_stays_inside(museum, tmp_path):
    outside = tmp_path / "private.jpeg"
    Image.new("RGB", (32, 32), "red").save(outside)
    root = copy_of(museum, tmp_path)
    name = read_file_map(root)[0][1]
    target = root / "bg_fg" / f"{name}.jpeg"
    target.unlink()
    target.symlink_to(outside)                   # a file that is a link out of the folder
    with pytest.raises(ModestError, match=r"file_map.txt:1: .* leads outside"):
        read_file_map(root)
    target.unlink()
    target.symlink_to(root / "bg_fg" / f"{read_file_map(museum)[1][1]}.jpeg")  # a link inside is fine
    data = ModestMuseum(root, split="all")
    inside = root.resolve()
    assert all(p.resolve().is_relative_to(inside) for row in data.samples for p in data._paths(row))
    linked = tmp_path / "linked"                 # a whole image folder that links elsewhere
    linked.mkdir()
    for path in (root / "bg").iterdir():
        (linked / path.name).write_bytes(path.read_bytes())
    import shutil

    shutil.rmtree(root / "bg")
    (root / "bg").symlink_to(linked)
    with pytest.raises(ModestError, match="leads outside"):
        read_file_map(root)


def test_training_on_a_folder_that_reaches_out_is_refused_before_any_step(museum, tmp_path, capsys):
    root = copy_of(museum, tmp_path)
    text = (root / "file_map.txt").read_text().replace(read_file_map(root)[0][0], "../../../etc/passwd", 1)
    (root / "file_map.txt").write_text(text)
    line = one_line_error(*cli(capsys, "train", "--data", root, "--out-dir", tmp_path / "run")[:3:2])
    assert "leads outside the dataset folder" in line and not (tmp_path / "run").exists()


# --- silent wrong answers: a shared model, pixel ranges, labels, weights -------------------------

def test_concurrent_predictions_on_one_shared_model_equal_the_sequential_ones():
    torch.manual_seed(0)
    model = DSResNet()                           # train mode, as DSResNet() and load_weights return it
    model.train_size = 64
    rng = np.random.default_rng(0)
    pairs = [(rng.random((64, 64, 3), dtype=np.float32), rng.random((64, 64, 3), dtype=np.float32))
             for _ in range(6)]
    want = [predict(bg, fg, model=model, device="cpu").mask_prob for bg, fg in pairs]
    got: dict[tuple[int, int], np.ndarray] = {}

    def worker(t: int) -> None:
        for i, (bg, fg) in enumerate(pairs):
            got[t, i] = predict(bg, fg, model=model, device="cpu").mask_prob

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 18 and all(np.array_equal(got[t, i], want[i]) for t, i in got)
    assert all(module.training for module in model.modules())          # left exactly as it was


def test_ready_model_copies_only_what_it_must():
    model = DSResNet().eval()
    assert ready_model(model) is model
    trained = DSResNet()
    copy = ready_model(trained)
    assert copy is not trained and not copy.training and trained.training
    assert load_predictor(trained).model is not trained and trained.training


def test_32_bit_integer_images_are_read_by_what_they_hold(tmp_path):
    pixels = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.int32)
    as_i = Image.fromarray(pixels)               # mode "I" holding 0-255: the reported case
    assert as_i.mode == "I"
    assert np.allclose(pil_to_array(as_i), pil_to_array(Image.fromarray(pixels.astype(np.uint8))), atol=1e-6)
    wide = Image.fromarray(pixels * 200)         # up to 51,000: a 16-bit image
    assert np.allclose(pil_to_array(wide)[..., 0], pixels * 200 / 65535, atol=1e-6)
    with pytest.raises(ValueError, match="not an 8- or 16-bit image"):
        as_images(Image.fromarray(pixels * 100_000))
    with pytest.raises(ValueError, match="not an 8- or 16-bit image"):
        as_images(Image.fromarray(pixels - 10))
    sixteen = tmp_path / "deep.png"              # a 16-bit PNG: its format says the scale
    Image.fromarray((pixels * 10).astype(np.uint16)).save(sixteen)
    assert np.allclose(read_image(sixteen)[..., 0], pixels * 10 / 65535, atol=1e-6)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK",
                                  "YCbCr", "LAB", "HSV", "I", "I;16", "F"])
def test_every_pillow_mode_reads_as_rgb_in_the_unit_range(mode):
    gray = Image.fromarray(np.tile(np.linspace(0, 255, 64).round().astype(np.uint8), (16, 1)))
    made = {"F": lambda: gray.point(lambda v: v / 255, "F"), "La": lambda: gray.convert("LA").convert("La"),
            "RGBa": lambda: gray.convert("RGBA").convert("RGBa"),
            "I;16": lambda: Image.fromarray(np.asarray(gray).astype(np.uint16) * 257)}
    image = made.get(mode, lambda: gray.convert(mode))()
    pixels = pil_to_array(image)
    assert pixels.shape == (16, 64, 3) and pixels.dtype == np.float32
    assert 0 <= pixels.min() and pixels.max() <= 1
    if mode not in ("1", "P", "PA", "HSV", "LAB", "CMYK"):   # lossy or palette modes keep only the order
        assert np.allclose(pixels[0, :, 0], np.linspace(0, 1, 64), atol=2 / 255), mode
    assert pixels[0, -1].mean() >= pixels[0, 0].mean()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".tif", ".jpg", ".png", ".webp"])
def test_every_orientation_of_every_format_comes_out_upright_once(tmp_path, suffix, orientation):
    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:8, :16] = 255                        # a white corner, top left as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}{suffix}"
    Image.fromarray(pixels).save(path, exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    from PIL import ImageOps

    reference = np.asarray(ImageOps.exif_transpose(Image.fromarray(pixels).copy()._apply_exif(exif)
                                                   if hasattr(Image.Image, "_apply_exif") else
                                                   _with_exif(pixels, exif)), dtype=np.float32) / 255
    assert check_image(path) == reference.shape[:2]
    got = read_image(path)
    assert got.shape == reference.shape and np.abs(got - reference).max() < 0.1, (suffix, orientation)


def _with_exif(pixels: np.ndarray, exif) -> Image.Image:
    """An in-memory image carrying ``exif`` (what a PNG with it reads back as)."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    buffer.seek(0)
    return Image.open(buffer)


def labelled(museum: Path, tmp_path: Path, kind: str, image: Image.Image) -> Path:
    root = copy_of(museum, tmp_path)
    folder, column = {"mask": ("bg_fg_mask", 2), "depth": ("bg_fg_depth_map", 3)}[kind]
    name = read_file_map(root)[0][column]
    with open(root / folder / f"{name}.jpeg", "wb") as f:
        image.save(f, format="PNG")              # PIL reads by content, whatever the suffix
    return root


def test_a_16_bit_depth_map_is_refused_not_clipped(museum, tmp_path):
    depth = Image.fromarray((np.linspace(0, 60000, 32 * 32).reshape(32, 32)).astype(np.uint16))
    root = labelled(museum, tmp_path, "depth", depth)
    with pytest.raises(ModestError, match=r"depth stored as a 'I;16' image .* 8-bit grayscale"):
        ModestMuseum(root, split="all")
    coloured = Image.fromarray(np.dstack([np.full((32, 32), v, np.uint8) for v in (250, 20, 120)]))
    root = labelled(museum, tmp_path / "b", "depth", coloured)
    with pytest.raises(ModestError, match="the depth is in colour"):
        ModestMuseum(root, split="all", check="full")


def test_a_mask_of_zeros_and_ones_is_refused_not_read_as_empty(museum, tmp_path):
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 1
    root = labelled(museum, tmp_path, "mask", Image.fromarray(mask))
    with pytest.raises(ModestError, match="mask values reach only 1"):
        ModestMuseum(root, split="all", check="full")
    data = ModestMuseum(root, split="all", check="header")       # also when a sample is read
    with pytest.raises(ModestError, match="mask values reach only 1"):
        [data[i] for i in range(len(data))]
    root = labelled(museum, tmp_path / "b", "mask", Image.fromarray(mask * 100))
    with pytest.raises(ModestError, match="mask values reach only 100"):
        ModestMuseum(root, split="all", check="full")


def test_integer_weights_are_refused(tmp_path):
    from safetensors.torch import save_file

    tensors = {k: (v.to(torch.int8) if v.is_floating_point() else v) for k, v in DSResNet().state_dict().items()}
    save_file(tensors, str(tmp_path / "int8.safetensors"))
    with pytest.raises(CheckpointError, match="stores floating-point weights as integers: .*int8"):
        load_weights(tmp_path / "int8.safetensors")
    from dsnet.io import save_checkpoint

    ints = {k: (v.to(torch.int32) if v.is_floating_point() else v) for k, v in DSResNet().state_dict().items()}
    save_checkpoint({"model": ints}, tmp_path / "int32.pt")
    with pytest.raises(CheckpointError, match="int32"):
        load_weights(tmp_path / "int32.pt")


# --- memory and late failures ------------------------------------------------------------------------

def test_planned_sizes_never_exceed_1024_and_extreme_shapes_are_refused():
    with pytest.raises(ValueError, match=r"1x4000000 pixels, more than 16 times"):
        plan_sizes(1, 4_000_000, None, 128)
    with pytest.raises(ValueError, match="more than 16 times"):
        plan_sizes(5000, 100, "native")
    for size in (None, "native", "trained"):
        for height, width in ((8000, 6000), (100, 1600), (4000, 4000)):
            planned = plan_sizes(height, width, size, 1024)
            assert all(max(p) <= 1024 for p in planned), (size, height, width, planned)
    with pytest.raises(ValueError, match="above 1024 pixels"):
        plan_sizes(64, 64, 2048)


def test_weights_that_claim_an_impossible_training_size_are_refused(tmp_path):
    path = save_weights(DSResNet(), tmp_path / "w.safetensors", metadata={"train_size": "20000"})
    with pytest.raises(CheckpointError, match="trained at 20000 px"):
        load_weights(path)
    path = save_weights(DSResNet(), tmp_path / "odd.safetensors", metadata={"train_size": "100"})
    with pytest.raises(CheckpointError, match="trained at 100 px"):
        load_weights(path)


def test_a_folder_with_one_background_or_a_truncated_file_is_refused_before_training(museum, tmp_path, capsys):
    one = write_modest(tmp_path / "one", count=4, size=32, fg_per_bg=4)
    with pytest.raises(ModestError, match="the val split is empty"):
        ModestMuseum(one, split="val")
    line = one_line_error(*cli(capsys, "train", "--data", one, "--out-dir", tmp_path / "r1")[:3:2])
    assert "split is empty" in line and not (tmp_path / "r1").exists()
    root = copy_of(museum, tmp_path)
    name = read_file_map(root)[-1][1]
    damaged = root / "bg_fg" / f"{name}.jpeg"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    line = one_line_error(*cli(capsys, "train", "--data", root, "--out-dir", tmp_path / "r2")[:3:2])
    assert name in line and not (tmp_path / "r2").exists()
    line = one_line_error(*cli(capsys, "train", "--data", museum, "--batch-size", "64",
                               "--out-dir", tmp_path / "r3")[:3:2])
    assert "fewer than one batch of 64" in line


# --- half-done work: predict on folders -------------------------------------------------------------

@pytest.fixture()
def folders(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    for folder in ("bg", "bg_fg"):
        (tmp_path / folder).mkdir()
    for name in ("a", "b", "c"):
        pixels = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
        for folder in ("bg", "bg_fg"):
            Image.fromarray(pixels).save(tmp_path / folder / f"{name}.png")
    return tmp_path


def predict_cli(capsys, folders: Path, checkpoint: Path, *extra) -> tuple[int, str, str]:
    return cli(capsys, "predict", "--bg", folders / "bg", "--bg-fg", folders / "bg_fg", "--checkpoint", checkpoint,
               "--device", "cpu", "--no-figure", *extra)


def test_inputs_that_would_fail_halfway_are_refused_before_anything_is_written(folders, checkpoint, capsys):
    long = "x" * 247                             # its outputs' names pass the 255-byte limit
    for folder in ("bg", "bg_fg"):
        (folders / folder / "a.png").rename(folders / folder / f"{long}.png")
    out = folders / "out"
    line = one_line_error(*predict_cli(capsys, folders, checkpoint, "--out", out)[:3:2])
    assert "bytes a file name may have" in line and not out.exists()
    for folder in ("bg", "bg_fg"):
        (folders / folder / f"{long}.png").rename(folders / folder / "a.png")
    gray = np.linspace(0, 4, 64 * 64, dtype=np.float32).reshape(64, 64)   # float pixels up to 4
    for folder in ("bg", "bg_fg"):
        Image.fromarray(gray, mode="F").save(folders / folder / "b.tif")
        (folders / folder / "b.png").unlink()
    line = one_line_error(*predict_cli(capsys, folders, checkpoint, "--out", out)[:3:2])
    assert "b.tif" in line and "[0, 1]" in line and not out.exists()


def test_a_bad_size_or_an_input_folder_as_output_writes_nothing(folders, checkpoint, capsys):
    out = folders / "out"
    line = one_line_error(*predict_cli(capsys, folders, checkpoint, "--out", out, "--size", "100")[:3:2])
    assert "100" in line and not out.exists()
    line = one_line_error(*predict_cli(capsys, folders, checkpoint, "--out", out, "--size", "2048")[:3:2])
    assert "above 1024" in line and not out.exists()
    before = sorted(p.name for p in (folders / "bg").iterdir())
    line = one_line_error(*predict_cli(capsys, folders, checkpoint, "--out", folders / "bg")[:3:2])
    assert "is the --bg folder" in line and sorted(p.name for p in (folders / "bg").iterdir()) == before
    line = one_line_error(*cli(capsys, "predict", "--bg", folders / "bg", "--bg-fg", folders / "bg", "--out",
                               out)[:3:2])
    assert "same folder" in line and not out.exists()


def test_a_pair_is_written_whole_or_not_at_all_and_a_folder_can_be_continued(folders, checkpoint, capsys,
                                                                                monkeypatch):
    import dsnet.inference

    out = folders / "out"
    calls = {"n": 0}
    real = dsnet.inference.plot_result

    def fail_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(dsnet.inference, "plot_result", fail_on_second)
    code, _, err = cli(capsys, "predict", "--bg", folders / "bg", "--bg-fg", folders / "bg_fg", "--checkpoint",
                       checkpoint, "--device", "cpu", "--out", out)
    assert "1 of 3 pair(s) written" in one_line_error(code, err)
    assert sorted(p.name for p in out.iterdir()) == ["a_depth.png", "a_figure.png", "a_mask.png"]  # b: none
    monkeypatch.setattr(dsnet.inference, "plot_result", real)
    stamp = (out / "a_mask.png").stat().st_mtime_ns
    code, stdout, err = cli(capsys, "predict", "--bg", folders / "bg", "--bg-fg", folders / "bg_fg",
                            "--checkpoint", checkpoint, "--device", "cpu", "--out", out, "--skip-existing")
    assert code == 0, err
    assert "wrote 6 files for 2 pair(s)" in stdout and "1 pair(s) done before" in stdout
    assert len(list(out.iterdir())) == 9 and (out / "a_mask.png").stat().st_mtime_ns == stamp
    line = one_line_error(*cli(capsys, "predict", "--bg", folders / "bg", "--bg-fg", folders / "bg_fg", "--out",
                               out, "--overwrite", "--skip-existing")[:3:2])
    assert "contradict" in line


# --- small ones: each one sentence of the right type ------------------------------------------------

def test_predict_ignores_a_float64_default_dtype(checkpoint):
    rng = np.random.default_rng(2)
    bg, fg = (rng.random((64, 64, 3), dtype=np.float32) for _ in range(2))
    want = predict(bg, fg, model=checkpoint, device="cpu").mask_prob
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got = predict(bg, fg, model=checkpoint, device="cpu").mask_prob
    finally:
        torch.set_default_dtype(previous)
    assert np.allclose(got, want, atol=1e-5)


def test_unusual_tensors_are_read_or_refused_in_one_sentence():
    wide = torch.full((3, 64, 64), 65535, dtype=torch.uint16)
    assert float(as_images(wide)[0].min()) == 1.0
    with pytest.raises(ValueError, match="meta device"):
        as_images(torch.empty(3, 64, 64, device="meta"))
    model = DSResNet().eval()
    for dtype, expected in ((torch.uint8, "uint8 tensor"), (torch.float64, "float64 but the model's weights")):
        x = torch.zeros(1, 3, 64, 64, dtype=dtype)
        with pytest.raises(TypeError, match=expected):
            model(x, x)


def test_names_for_the_shipped_weights_and_missing_devices():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available"):
            load_pretrained("cuda")
        with pytest.raises(ValueError, match="not available"):
            load_model("pretrained", "cuda:3")
    assert load_model("pretrained").train_size == load_pretrained().train_size
    assert load_predictor("pretrained", "cpu").source == "pretrained"


def test_weights_files_are_recognised_by_their_content(tmp_path):
    path = save_weights(DSResNet(), tmp_path / "W.SAFETENSORS")
    assert load_weights(path)[0] is not None
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    with pytest.raises(CheckpointError, match="neither a dsnet checkpoint .* nor a .safetensors weights file"):
        load_weights(notes)
    empty = tmp_path / "weights.bin"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="neither"):
        load_weights(empty)


def test_negative_seeds_and_odd_file_maps_are_one_line(museum, tmp_path, capsys):
    line = one_line_error(*cli(capsys, "train", "--seed", "-1", "--out-dir", tmp_path / "r")[:3:2])
    assert "seed must be at least 0, got -1" in line
    root = copy_of(museum, tmp_path)
    (root / "file_map.txt").write_text((root / "file_map.txt").read_text(), encoding="utf-16")
    with pytest.raises(ModestError, match=r"file_map.txt: not UTF-8 text"):
        read_file_map(root)
    line = one_line_error(*cli(capsys, "train", "--data", root, "--out-dir", tmp_path / "r")[:3:2])
    assert "file_map.txt" in line


def test_control_characters_in_file_names_are_escaped(tmp_path, capsys):
    odd = tmp_path / "bad\nname\x1b[31m.png"
    odd.write_bytes(b"not a png")
    code, _, err = cli(capsys, "predict", "--bg", odd, "--bg-fg", odd, "--out", tmp_path / "out")
    line = one_line_error(code, err)
    assert "bad\\nname\\x1b[31m.png" in line and "\x1b" not in err

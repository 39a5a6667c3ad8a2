"""dsnet.inference (dsnet.predict): every input type, the resize policy, bad inputs, checkpoint round trips."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import dsnet.images
import dsnet.io
import dsnet.inference
from dsnet.data import SyntheticMuseum
from dsnet.io import CheckpointError, load_model, save_checkpoint, save_weights
from dsnet.model import DSResNet
from dsnet.images import as_images, oriented_size
from dsnet.inference import PredictionResult, load_predictor, model_size, plan_sizes, predict, save_prediction
from dsnet.io import training_size
from dsnet.train import model_inputs


@pytest.fixture(scope="session")
def predictor(checkpoint):
    return load_predictor(checkpoint, "cpu")


@pytest.fixture(scope="session")
def scene():
    """One synthetic pair at 64 x 80 (crop of a 80 x 80 render) as uint8 H x W x 3 arrays."""
    batch = SyntheticMuseum(80, length=2, split="test").batch([0, 1])
    to_u8 = lambda x: (x[:, 8:72].permute(1, 2, 0) * 255).round().byte().numpy()  # noqa: E731
    return [(to_u8(batch["bg"][i]), to_u8(batch["bg_fg"][i])) for i in range(2)]


def test_the_result_is_at_the_input_size(predictor, scene):
    bg, bg_fg = scene[0]
    result = predictor(bg, bg_fg)
    assert isinstance(result, PredictionResult)
    assert result.mask.shape == result.mask_prob.shape == result.depth.shape == (64, 80)
    assert result.mask.dtype == np.bool_ and result.mask_prob.dtype == np.float32
    assert 0 <= result.mask_prob.min() and result.mask_prob.max() <= 1
    assert 0 <= result.depth.min() and result.depth.max() <= 1
    assert np.array_equal(result.mask, result.mask_prob > 0.5)
    assert result.mask_size == result.depth_size == (64, 64)  # 64 x 80: 80 rounds (half to even) to 64
    odd = predictor(np.zeros((50, 70, 3), np.uint8), np.zeros((50, 70, 3), np.uint8))
    assert odd.mask.shape == (50, 70)


def test_every_input_type_gives_the_same_prediction(predictor, scene, tmp_path):
    bg, bg_fg = scene[0]
    want = predictor(bg, bg_fg).mask_prob
    for i, (a, b) in enumerate(scene[:1]):
        Image.fromarray(a).save(tmp_path / f"bg{i}.png")
        Image.fromarray(b).save(tmp_path / f"fg{i}.png")
    chw = lambda x: torch.from_numpy(x).permute(2, 0, 1)  # noqa: E731
    inputs = {
        "str paths": (str(tmp_path / "bg0.png"), str(tmp_path / "fg0.png")),
        "Path paths": (tmp_path / "bg0.png", tmp_path / "fg0.png"),
        "PIL": (Image.fromarray(bg), Image.fromarray(bg_fg)),
        "numpy uint8 HWC": (bg, bg_fg),
        "numpy float HWC": (bg / 255.0, (bg_fg / 255.0).astype(np.float32)),
        "numpy uint16 HWC": (bg.astype(np.uint16) * 257, bg_fg.astype(np.uint16) * 257),
        "tensor uint8 CHW": (chw(bg), chw(bg_fg)),
        "tensor float CHW": (chw(bg).float() / 255, chw(bg_fg).double() / 255),
        "mixed": (tmp_path / "bg0.png", chw(bg_fg).float() / 255),
    }
    for name, (a, b) in inputs.items():
        got = predictor(a, b).mask_prob
        assert got.shape == (64, 80), name
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)


def test_batches_come_back_as_n_by_h_by_w(predictor, scene, tmp_path):
    singles = [predictor(a, b) for a, b in scene]
    bgs, fgs = np.stack([a for a, _ in scene]), np.stack([b for _, b in scene])
    batches = {
        "numpy NHWC": (bgs, fgs),
        "tensor NCHW": (torch.from_numpy(bgs).permute(0, 3, 1, 2).float() / 255,
                        torch.from_numpy(fgs).permute(0, 3, 1, 2).float() / 255),
        "list of arrays": (list(bgs), list(fgs)),
        "list of PIL": ([Image.fromarray(x) for x in bgs], tuple(Image.fromarray(x) for x in fgs)),
    }
    for name, (a, b) in batches.items():
        for batch_size in (1, 16):
            result = predictor(a, b, batch_size=batch_size)
            assert result.mask.shape == result.depth.shape == (2, 64, 80), name
            for i, single in enumerate(singles):
                np.testing.assert_allclose(result.mask_prob[i], single.mask_prob, atol=1e-5, err_msg=name)
                np.testing.assert_allclose(result.depth[i], single.depth, atol=1e-5, err_msg=name)


def test_predict_matches_the_training_path(checkpoint):
    """Same normalization and the same numbers as the trainer's own forward pass."""
    model = load_model(checkpoint)
    batch = SyntheticMuseum(64, length=3, split="val").batch(range(3))
    with torch.no_grad():
        depth, mask = model(*model_inputs(batch, channels_last=False))
    result = predict(batch["bg"], batch["bg_fg"], model=checkpoint, device="cpu")
    np.testing.assert_allclose(result.mask_prob, torch.sigmoid(mask)[:, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(result.depth, torch.sigmoid(depth)[:, 0].numpy(), atol=1e-5)


def test_gray_rgba_and_sixteen_bit_images_are_converted(predictor, scene, tmp_path):
    bg, bg_fg = scene[0]
    gray_bg, gray_fg = (np.asarray(Image.fromarray(x).convert("L")) for x in (bg, bg_fg))
    want = predictor(np.repeat(gray_bg[..., None], 3, 2), np.repeat(gray_fg[..., None], 3, 2)).mask_prob
    np.testing.assert_allclose(predictor(gray_bg, gray_fg).mask_prob, want, atol=1e-5)  # H x W
    np.testing.assert_allclose(predictor(Image.fromarray(gray_bg), Image.fromarray(gray_fg)).mask_prob, want, atol=1e-5)
    np.testing.assert_allclose(predictor(torch.tensor(gray_bg), torch.tensor(gray_fg)).mask_prob, want,
                               atol=1e-5)
    for name, x in (("bg", gray_bg), ("fg", gray_fg)):
        Image.fromarray(x.astype(np.uint16) * 257).save(tmp_path / f"{name}16.png")
    assert Image.open(tmp_path / "bg16.png").mode.startswith("I")
    np.testing.assert_allclose(predictor(tmp_path / "bg16.png", tmp_path / "fg16.png").mask_prob, want, atol=1e-4)

    rgb = predictor(bg, bg_fg).mask_prob
    alpha = np.full((*bg.shape[:2], 1), 7, np.uint8)
    rgba_bg, rgba_fg = np.concatenate([bg, alpha], 2), np.concatenate([bg_fg, alpha], 2)
    np.testing.assert_allclose(predictor(rgba_bg, rgba_fg).mask_prob, rgb, atol=1e-5)
    Image.fromarray(rgba_bg, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_allclose(predictor(tmp_path / "rgba.png", rgba_fg).mask_prob, rgb, atol=1e-5)


def test_exif_orientation_is_honoured(predictor, scene, tmp_path):
    bg, bg_fg = scene[0]                         # upright: 64 x 80
    upright = predictor(bg, bg_fg)
    for name, x in (("bg", bg), ("fg", bg_fg)):
        stored = Image.fromarray(np.ascontiguousarray(np.rot90(x, 1)))   # the camera's pixels: 80 x 64
        exif = Image.Exif()
        exif[0x0112] = 6                         # "rotate 90 degrees clockwise to display"
        stored.save(tmp_path / f"{name}.png", exif=exif)
    assert Image.open(tmp_path / "bg.png").size == (64, 80)          # PIL: width x height of the stored pixels
    assert oriented_size(tmp_path / "bg.png") == (64, 80)
    rotated = predictor(tmp_path / "bg.png", tmp_path / "fg.png")
    assert rotated.mask.shape == (64, 80)
    np.testing.assert_allclose(rotated.mask_prob, upright.mask_prob, atol=1e-5)


def test_size_policies():
    assert model_size(200, 300, "native") == (192, 288)
    assert model_size(200, 300, None) == (192, 288)                  # no training size known
    assert model_size(200, 300, None, train_size=64) == (64, 64)     # the area of 64 x 64; 32-pixel steps are coarse
    assert model_size(200, 400, None, train_size=64) == (64, 96)     # aspect kept as far as 32-pixel steps allow
    assert model_size(200, 300, "trained", train_size=224) == (192, 288)
    assert model_size(300, 300, "trained", train_size=224) == (224, 224)
    assert model_size(20, 30, "native") == (64, 64)                  # never below the minimum
    assert model_size(200, 300, 96) == (96, 96)
    assert model_size(200, 300, (128, 192)) == (128, 192)
    with pytest.raises(ValueError, match="input height 100 is not divisible by 32; use 96 or 128"):
        model_size(200, 300, (100, 128))
    with pytest.raises(ValueError, match="size='trained' needs a model whose training size is known"):
        model_size(200, 300, "trained")
    with pytest.raises(ValueError, match="size must be None, 'native', 'trained'"):
        model_size(200, 300, "big")


def test_the_default_takes_the_mask_native_and_the_depth_at_the_training_scale(predictor, scene):
    bg, bg_fg = (np.asarray(Image.fromarray(x).resize((192, 160))) for x in scene[0])   # 160 x 192
    default = predictor(bg, bg_fg)
    assert default.mask_size == (160, 192) and default.depth_size == (64, 64)
    native, trained = predictor(bg, bg_fg, size="native"), predictor(bg, bg_fg, size="trained")
    assert native.mask_size == native.depth_size == (160, 192)
    assert trained.mask_size == trained.depth_size == (64, 64)
    np.testing.assert_allclose(default.mask_prob, native.mask_prob, atol=1e-5)
    np.testing.assert_allclose(default.depth, trained.depth, atol=1e-5)
    exact = predictor(bg, bg_fg, size=(96, 128))
    assert exact.mask_size == exact.depth_size == (96, 128) and exact.mask.shape == (160, 192)


def test_plan_sizes():
    assert plan_sizes(200, 300, None, train_size=224) == ((192, 288), (192, 288))
    assert plan_sizes(200, 300, None, train_size=64) == ((192, 288), (64, 64))
    assert plan_sizes(64, 64, None, train_size=128) == ((128, 128), (128, 128))   # small: mask scaled up too
    assert plan_sizes(200, 300) == ((192, 288), (192, 288))                  # a bare module: native
    assert plan_sizes(3000, 4000, None, train_size=224) == ((768, 1024), (192, 256))   # the native pass is capped
    assert plan_sizes(3000, 4000, "native") == ((768, 1024), (768, 1024))  # every path: at most 1024 a side
    assert plan_sizes(200, 300, 96, train_size=64) == ((96, 96), (96, 96))


def test_training_size_from_metadata(checkpoint, predictor):
    assert predictor.train_size == 64
    assert training_size({"config": {"stages": [[96, 2], [160, 3]]}}) == 160
    assert training_size({"config": json.dumps({"stages": [[96, 2]]})}) == 96
    assert training_size({"image_size": "224"}) == 224
    assert training_size({"train_size": 128, "config": {"stages": [[64, 1]]}}) == 128
    assert training_size({}) is None and training_size({"config": "not json"}) is None
    assert load_predictor(DSResNet()).train_size is None


def test_bad_inputs_say_what_is_wrong(predictor, scene, tmp_path):
    bg, bg_fg = scene[0]
    (tmp_path / "notes.png").write_text("not an image")
    cases = [
        ((bg, bg_fg[:, :64]), ValueError, "bg is 64x80 pixels but bg_fg is 64x64: BG and BG-FG must show the same view"),
        ((np.stack([bg, bg]), bg_fg), ValueError, "bg has 2 images but bg_fg has 1"),
        ((bg, 3), TypeError, "bg_fg must be a file path, PIL image, numpy array or torch tensor"),
        ((tmp_path / "missing.jpg", bg_fg), FileNotFoundError, "missing.jpg does not exist"),
        ((tmp_path, bg_fg), FileNotFoundError, "is not a file"),
        ((tmp_path / "notes.png", bg_fg), ValueError, "notes.png is not an image that PIL can read"),
        ((bg.transpose(2, 0, 1).copy(), bg_fg), ValueError, r"channels last.*use x.transpose\(1, 2, 0\)"),
        ((bg * 1.0, bg_fg), ValueError, r"float pixels must be in \[0, 1\], got values from 0 to 255 \(divide 0-255"),
        ((np.zeros((64, 80, 5)), bg_fg), ValueError, "numpy images are H x W x C"),
        ((torch.zeros(1, 5, 64, 80), bg_fg), ValueError, "expected 1 to 4 channels"),
        ((torch.zeros(5, 64, 80), bg_fg), ValueError, "tensor images are C x H x W"),
        ((torch.zeros(1, 1, 1, 64, 80), bg_fg), ValueError, "expected a 2-, 3- or 4-D tensor"),
        ((bg.astype(np.int32) * 10, bg_fg), ValueError, "integer pixels must be 0-255"),
        ((np.array(["a"]), bg_fg), TypeError, "not an image type"),
        (([], bg_fg), ValueError, "bg is an empty list"),
        (([bg, bg[:32]], [bg_fg, bg_fg]), ValueError, "the images of a list must have one size"),
        ((np.full((64, 80, 3), np.nan, np.float32), bg_fg), ValueError, "float pixels must be in"),
    ]
    for (a, b), error, message in cases:
        with pytest.raises(error, match=message):
            predictor(a, b)
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        predictor(bg, bg_fg, threshold=1.5)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        predictor(bg, bg_fg, batch_size=0)


def test_checkpoint_round_trips(checkpoint, scene, tmp_path):
    bg, bg_fg = scene[0]
    want = predict(bg, bg_fg, model=checkpoint, device="cpu")
    from_folder = predict(bg, bg_fg, model=checkpoint.parent, device="cpu")
    from_module = predict(bg, bg_fg, model=load_model(checkpoint), size=(64, 64))
    np.testing.assert_array_equal(from_folder.mask_prob, want.mask_prob)
    np.testing.assert_allclose(from_module.mask_prob, want.mask_prob, atol=1e-6)

    state = dsnet.io.load_checkpoint(checkpoint)
    assert state["config"]["stages"] == [[64, 2]] and state["dsnet_version"] == dsnet.__version__
    weights = save_weights(load_model(checkpoint), tmp_path / "tiny.safetensors",
                           metadata={"config": state["config"], "dsnet_version": state["dsnet_version"]})
    half = load_predictor(weights, "cpu")
    assert half.train_size == 64
    np.testing.assert_allclose(half(bg, bg_fg).mask_prob, want.mask_prob, atol=2e-2)  # fp16 weights


def test_corrupt_and_foreign_checkpoints_give_one_clear_error(checkpoint, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated.pt is not a readable dsnet checkpoint"):
        load_predictor(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="garbage.safetensors is not a readable safetensors file"):
        load_predictor(garbage)
    other = save_checkpoint({"model": nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).state_dict()}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt holds another architecture than DSResNet"):
        load_predictor(other)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(CheckpointError, match="plain.pt is not a dsnet checkpoint"):
        load_predictor(plain)
    no_model = save_checkpoint({"epoch": 3}, tmp_path / "no_model.pt")
    with pytest.raises(CheckpointError, match="without model weights"):
        load_predictor(no_model)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_predictor(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="is a folder without best.pt"):
        load_predictor(tmp_path)                                 # a folder without best.pt
    with pytest.raises(TypeError, match="model must be a checkpoint path"):
        load_predictor(42)


def test_no_model_means_the_shipped_weights(checkpoint, scene, tmp_path, monkeypatch):
    bg, bg_fg = scene[0]
    real = dsnet.io.pretrained_files()
    if real["weights"].is_file():                                # shipped: they load and predict
        shipped = predict(bg, bg_fg, device="cpu")
        assert shipped.mask.shape == (64, 80) and load_predictor(None, "cpu").train_size is not None
    else:
        with pytest.raises(CheckpointError, match="this dsnet has no pretrained weights"):
            predict(bg, bg_fg, device="cpu")

    # a package with weights in place: predict() must load exactly them, with their training size
    files = ship_as_pretrained(checkpoint, tmp_path, monkeypatch, manifest_size=96)
    pretrained = load_predictor(None, "cpu")
    assert pretrained.source == "pretrained" and pretrained.train_size == 64    # the weights' metadata wins
    np.testing.assert_array_equal(predict(bg, bg_fg, device="cpu").mask_prob,
                                  predict(bg, bg_fg, model=files["weights"], device="cpu").mask_prob)


def test_a_module_is_used_in_eval_mode_and_left_as_it_was(checkpoint, scene):
    bg, bg_fg = scene[0]
    model = load_model(checkpoint).train()
    want = predict(bg, bg_fg, model=load_model(checkpoint), size=(64, 64))
    got = predict(bg, bg_fg, model=model, size=(64, 64))
    assert model.training
    np.testing.assert_allclose(got.mask_prob, want.mask_prob, atol=1e-6)
    assert as_images(bg)[0].shape == (1, 3, 64, 80)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_and_cpu_agree(checkpoint, scene):
    bg, bg_fg = scene[0]
    assert load_predictor(checkpoint).device.type == "cuda"                # the default when there is one
    gpu, cpu = predict(bg, bg_fg, model=checkpoint), predict(bg, bg_fg, model=checkpoint, device="cpu")
    np.testing.assert_allclose(gpu.mask_prob, cpu.mask_prob, atol=1e-3)


def test_save_prediction_writes_whole_files(predictor, scene, tmp_path):
    bg, bg_fg = scene[0]
    result = predictor(bg, bg_fg)
    written = save_prediction(result, tmp_path / "out", "pair", bg_fg=bg_fg)
    assert sorted(written) == ["depth", "figure", "mask"]
    mask, depth = Image.open(written["mask"]), Image.open(written["depth"])
    assert mask.size == depth.size == (80, 64)
    assert np.array_equal(np.asarray(mask) > 127, result.mask)
    assert np.abs(np.asarray(depth).astype(np.float64) / 65535 - result.depth).max() < 1e-4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pair_depth.png", "pair_figure.png", "pair_mask.png"]


def test_a_model_from_load_pretrained_plans_like_the_default():
    assert dsnet.io.pretrained_files()["weights"].is_file()           # this repository ships weights
    pair = np.zeros((96, 128, 3), np.uint8)
    default = predict(pair, pair, device="cpu")
    passed = predict(pair, pair, model=dsnet.load_pretrained())
    want = plan_sizes(96, 128, None, dsnet.io.pretrained_manifest()["image_size"])
    assert want != plan_sizes(96, 128)                                 # the training size changes the plan
    assert (default.mask_size, default.depth_size) == (passed.mask_size, passed.depth_size) == want
    np.testing.assert_allclose(passed.mask_prob, default.mask_prob, atol=1e-6)


def test_predict_loads_the_shipped_weights_once_per_device(checkpoint, scene, tmp_path, monkeypatch):
    bg, bg_fg = scene[0]
    ship_as_pretrained(checkpoint, tmp_path, monkeypatch, manifest_size=64)
    loads = []
    real = dsnet.inference.load_model
    monkeypatch.setattr(dsnet.inference, "load_model",
                        lambda source=None, device=None: loads.append(device) or real(source, device))
    dsnet.inference._shipped.cache_clear()
    results = [predict(bg, bg_fg, device=device) for device in ("cpu", torch.device("cpu"), "cpu")]
    assert loads == [torch.device("cpu")]                              # read and built once, then kept
    np.testing.assert_array_equal(results[0].mask_prob, results[2].mask_prob)
    mine, again = load_predictor(None, "cpu"), load_predictor(None, "cpu")
    assert len(loads) == 3 and mine.model is not again.model           # load_predictor: a fresh copy each time


def test_huge_and_empty_images_are_refused_before_any_work(predictor, tmp_path, monkeypatch):
    huge = np.broadcast_to(np.uint8(0), (20000, 20000, 3))                # a view: no memory behind it
    with pytest.raises(ValueError, match=r"^bg is 20000x20000 pixels, more than dsnet takes \(67,108,864 pixels"):
        predictor(huge, huge)
    with pytest.raises(ValueError, match=r"^bg_fg is 20000x20000 pixels"):
        predict(np.zeros((64, 64, 3), np.uint8), torch.zeros(1, 1, 1).expand(3, 20000, 20000), model=predictor)
    empty = np.zeros((0, 0, 3), np.uint8)
    with pytest.raises(ValueError, match=r"^bg is 0x0 pixels: an image needs at least one pixel$"):
        predictor(empty, empty)
    Image.new("RGB", (400, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(dsnet.images, "MAX_PIXELS", 200 * 200)
    monkeypatch.setattr(predictor, "model", None)                         # nothing may run
    with pytest.raises(ValueError, match=r"big.png is 300x400 pixels, more than dsnet takes \(40,000 pixels"):
        predictor(tmp_path / "big.png", tmp_path / "big.png")


def test_cpu_inputs_go_in_channels_last(predictor, scene, monkeypatch):
    bg, bg_fg = scene[0]
    seen = []
    model = predictor.model
    hook = model.register_forward_pre_hook(lambda _m, args: seen.append(
        all(x.is_contiguous(memory_format=torch.channels_last) for x in args)))
    try:
        predictor(bg, bg_fg)
    finally:
        hook.remove()
    assert seen == [True]


def test_a_module_in_a_mixed_mode_predicts_in_eval_mode_and_keeps_its_modes(checkpoint, scene):
    bg, bg_fg = scene[0]
    want = predict(bg, bg_fg, model=load_model(checkpoint), size=(64, 64))
    model = load_model(checkpoint)
    norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    norm.train()                                                         # one module left in training mode
    got = predict(bg, bg_fg, model=model, size=(64, 64))
    np.testing.assert_allclose(got.mask_prob, want.mask_prob, atol=1e-6)
    assert [m for m in model.modules() if m.training] == [norm]


def ship_as_pretrained(checkpoint, folder, monkeypatch, manifest_size: int) -> dict:
    """The checkpoint's weights in ``folder``, standing in for the package's shipped files."""
    state = dsnet.io.load_checkpoint(checkpoint)
    files = {"weights": folder / "dsresnet.safetensors", "manifest": folder / "manifest.json",
             "history": folder / "history.json"}
    save_weights(load_model(checkpoint), files["weights"], metadata={"config": state["config"]})
    files["manifest"].write_text(json.dumps({"image_size": manifest_size}))
    monkeypatch.setattr(dsnet.io, "pretrained_files", lambda: files)
    monkeypatch.setattr(dsnet.inference, "pretrained_files", lambda: files)
    return files

"""dsnet.images: checked before converted, refused when too large or empty, decoded small and early."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import dsnet.images
from dsnet.images import MAX_PIXELS, as_images, check_image, open_images, oriented_size, read_image


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image (JPEG-friendly), uint8 H x W x 3."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rng = np.random.default_rng(seed)
    channels = [np.sin(2 * np.pi * (a * x + b * y)) for a, b in rng.uniform(0.5, 3, (3, 2))]
    return ((np.stack(channels, axis=2) + 1) * 127.5).round().astype(np.uint8)


def test_the_limit_is_8192_squared_and_stated_in_one_sentence():
    assert MAX_PIXELS == 8192 * 8192
    huge = np.broadcast_to(np.uint8(0), (20000, 20000, 3))                 # a view: no memory behind it
    with pytest.raises(ValueError, match=r"^bg is 20000x20000 pixels, more than dsnet takes "
                                         r"\(67,108,864 pixels, e.g. 8192x8192\); scale it down first$"):
        open_images(huge, "bg")
    with pytest.raises(ValueError, match="bg_fg is 20000x20000 pixels, more than dsnet takes"):
        open_images(torch.zeros(1, 1, 1).expand(3, 20000, 20000), "bg_fg")
    with pytest.raises(ValueError, match=r"bg\[1\] is 20000x20000 pixels"):
        open_images([np.zeros((8, 8, 3), np.uint8), huge], "bg")
    assert len(open_images(np.broadcast_to(np.uint8(0), (8192, 8192, 3)))) == 1     # the limit itself is fine


def test_an_image_without_pixels_is_one_clear_error():
    for empty in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 5)), torch.zeros(3, 4, 0)):
        with pytest.raises(ValueError, match=r"^bg is \d+x\d+ pixels: an image needs at least one pixel$"):
            open_images(empty, "bg")
    with pytest.raises(ValueError, match="bg is an empty batch"):
        open_images(np.zeros((0, 8, 8, 3), np.uint8), "bg")


def test_a_file_over_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    Image.fromarray(photo(300, 400)).save(tmp_path / "big.png")
    monkeypatch.setattr(dsnet.images, "MAX_PIXELS", 200 * 200)

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(dsnet.images, "pil_to_array", no_decoding)
    monkeypatch.setattr(dsnet.images, "_decoded", no_decoding)
    for call in (open_images, check_image, read_image):
        with pytest.raises(ValueError, match=r"big.png is 300x400 pixels, more than dsnet takes \(40,000 pixels, "
                                             r"e.g. 200x200\)"):
            call(tmp_path / "big.png")


def test_what_pil_calls_a_decompression_bomb_is_refused_without_a_warning(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "bomb.png")
    Image.new("RGB", (40, 40)).save(tmp_path / "warned.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)   # PIL: warn above 1000 pixels, refuse above 2000
    monkeypatch.setattr(dsnet.images, "MAX_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"bomb.png has 10,000 pixels, more than dsnet takes \(1,000\)"):
            oriented_size(tmp_path / "bomb.png")
        with pytest.raises(ValueError, match=r"warned.png is 40x40 pixels, more than dsnet takes"):
            open_images(tmp_path / "warned.png")


def test_check_image_finds_a_truncated_jpeg_that_the_header_hides(tmp_path):
    Image.fromarray(photo(480, 640)).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 2])
    assert oriented_size(tmp_path / "cut.jpg") == (480, 640)              # the header is intact
    assert check_image(tmp_path / "whole.jpg") == (480, 640)
    with pytest.raises(ValueError, match=r"cut.jpg is not an image that PIL can read \(OSError: image file is "
                                         r"truncated"):
        check_image(tmp_path / "cut.jpg")


def test_large_files_are_decoded_small_and_still_show_the_same_picture(tmp_path):
    pixels = photo(768, 1024)
    Image.fromarray(pixels).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(pixels).save(tmp_path / "big.png")
    Image.fromarray(pixels[:767, :1021]).save(tmp_path / "odd.png")
    assert read_image(tmp_path / "big.jpg").shape == (768, 1024, 3)
    assert read_image(tmp_path / "big.jpg", at_least=(64, 64)).shape == (96, 128, 3)   # decoded at 1/8 scale
    assert read_image(tmp_path / "big.png", at_least=(64, 64)).shape == (96, 128, 3)   # box-reduced by 8
    assert read_image(tmp_path / "big.png", at_least=(200, 200)).shape == (384, 512, 3)  # by 2: 3 leaves a rest
    assert read_image(tmp_path / "odd.png", at_least=(64, 64)).shape == (767, 1021, 3)  # no exact factor: whole
    want = open_images(pixels).load(0, [(64, 64)])[0]                       # from the full-size array
    for path in ("big.jpg", "big.png"):
        got = open_images(tmp_path / path).load(0, [(64, 64)])[0]
        assert got.shape == want.shape == (1, 3, 64, 64)
        assert (got - want).abs().mean() < 0.01, path


def test_images_are_converted_one_at_a_time_and_inputs_are_left_alone():
    batch = torch.rand(3, 3, 40, 50) * 1.0005                              # within the tolerance above 1
    before = batch.clone()
    images = open_images(batch, "bg")
    assert (len(images), images.height, images.width, images.batched) == (3, 40, 50, True)
    one = images.load(1, [(64, 64), (32, 32)])
    assert [tuple(t.shape) for t in one] == [(1, 3, 64, 64), (1, 3, 32, 32)]
    assert float(one[0].max()) <= 1
    assert torch.equal(batch, before)                                      # clamped in a copy
    tensor, batched = as_images(batch)
    assert batched and torch.equal(tensor, batch.clamp(0, 1))
    gray, _ = as_images(np.full((5, 6), 255, np.uint8))
    assert gray.shape == (1, 3, 5, 6) and bool((gray == 1).all())


def test_a_file_damaged_in_its_metadata_is_named_everywhere(tmp_path):
    import numpy as np
    from PIL import Image

    from dsnet.images import check_image, oriented_size

    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(good)
    cut = tmp_path / "cut.jpg"                       # a PNG cut short, under another suffix
    cut.write_bytes(good.read_bytes()[:200])
    for read in (check_image, oriented_size):
        with pytest.raises(ValueError, match=f"{cut} is not an image that PIL can read"):
            read(cut)

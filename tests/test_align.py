"""Alignment (``align=True``, the default): the global shift and exposure correction for two hand-held shots."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dsnet import proxy
from dsnet.cli import main
from dsnet.data import SyntheticMuseum
from dsnet.inference import align_to, estimate_shift, exposure_gain, predict, shift_image


@pytest.fixture(scope="module")
def pair():
    return proxy.proxy_pairs(2, 96, seed=4, shots=False)


def test_shift_image_moves_content_and_repeats_the_edge():
    x = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 1, 5, 7)
    moved = shift_image(x, 2, -1)
    assert moved.shape == x.shape
    assert torch.equal(moved[..., 2:, :-1], x[..., :-2, 1:])          # down 2, left 1
    assert torch.equal(moved[..., :2, :-1], x[..., :1, 1:].expand(-1, -1, 2, -1))   # top strip: row 0 again
    assert torch.equal(shift_image(x, 0, 0), x)


@pytest.mark.parametrize("dy, dx", [(3, -5), (-2, 4), (0, 1), (0, 0)])
def test_estimate_shift_finds_the_camera_movement(pair, dy, dx):
    bg = pair["bg"][:1]
    assert estimate_shift(bg[0], shift_image(bg, dy, dx)[0]) == (dy, dx)


def test_align_to_undoes_a_shift_and_an_exposure_change(pair):
    bg, bg_fg, mask = pair["bg"], pair["bg_fg"], pair["mask"]
    moved = (shift_image(bg, -3, 2) * 0.8).clamp(0, 1)
    aligned = align_to(moved, bg_fg)
    inner = (mask == 0).expand_as(bg).clone()
    inner[..., :4, :] = inner[..., -4:, :] = inner[..., :, :4] = inner[..., :, -4:] = False  # the uncovered strip
    before = (moved - bg_fg).abs()[inner].mean()
    after = (aligned - bg_fg).abs()[inner].mean()
    assert after < 0.01 < before


def test_align_to_ignores_a_shift_beyond_max_shift(pair):
    bg = pair["bg"][:1]
    far = shift_image(bg, 30, 0)                        # a third of the frame: not a small camera movement
    aligned = align_to(bg, far, max_shift=0.1)
    kept = (bg > 0.1) & (aligned < 0.99)                # not moved: only a gain per channel, maybe
    ratio = torch.where(kept, aligned / bg.clamp(min=1e-3), torch.nan)
    spread = ratio.flatten(2).nanquantile(0.99, dim=2) - ratio.flatten(2).nanquantile(0.01, dim=2)
    assert (spread < 0.02).all()


def test_a_pair_that_lines_up_comes_back_unchanged(pair):
    assert torch.equal(align_to(pair["bg"], pair["bg_fg"]), pair["bg"])
    rendered = SyntheticMuseum(64, length=4, split="test").batch(range(4))    # flat colours: no texture to lock on
    assert torch.equal(align_to(rendered["bg"], rendered["bg_fg"]), rendered["bg"])


def test_exposure_gain_is_the_backgrounds_ratio_even_under_a_large_foreground(pair):
    bg = pair["bg"][0]
    covered = bg * torch.tensor([0.9, 0.8, 1.1])[:, None, None]
    covered[:, :, :60] = torch.rand(3, 96, 60, generator=torch.Generator().manual_seed(0))   # 60 % new content
    gain = exposure_gain(bg, covered)
    assert torch.allclose(gain, torch.tensor([0.9, 0.8, 1.1]), atol=0.01)


def test_predict_aligns_by_default_and_the_cli_can_skip_it(pair, checkpoint, tmp_path, capsys):
    to_uint8 = lambda x: (x.permute(0, 2, 3, 1) * 255).round().byte().numpy()   # noqa: E731
    bg, bg_fg = to_uint8(shift_image(pair["bg"], 2, 1)), to_uint8(pair["bg_fg"])
    aligned = predict(bg, bg_fg, checkpoint, device="cpu")
    raw = predict(bg, bg_fg, checkpoint, device="cpu", align=False)
    assert not np.allclose(raw.mask_prob, aligned.mask_prob)
    for name, image in (("bg", bg[0]), ("bg_fg", bg_fg[0])):
        Image.fromarray(image).save(tmp_path / f"{name}.png")
    for flags, want in (([], aligned), (["--no-align"], raw)):
        out = tmp_path / ("out" + "".join(flags))
        code = main(["predict", "--bg", str(tmp_path / "bg.png"), "--bg-fg", str(tmp_path / "bg_fg.png"),
                     "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu", *flags])
        assert code == 0, capsys.readouterr().err
        assert np.array_equal(np.asarray(Image.open(out / "bg_fg_mask.png")) > 0, want.mask[0])

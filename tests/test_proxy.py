"""The real-photograph proxy: deterministic pairs with exact masks and small figures, a baseline
that picks its best threshold, and scores computed through dsnet.predict."""
import numpy as np
import pytest
import torch

from dsnet import proxy
from dsnet.inference import predict
from dsnet.model import DSResNet

SIZE = 64


@pytest.fixture(scope="module")
def pairs():
    return proxy.proxy_pairs(6, SIZE, seed=1)


def test_shapes_and_values(pairs):
    assert pairs["bg"].shape == pairs["bg_fg"].shape == (6, 3, SIZE, SIZE)
    assert pairs["mask"].shape == pairs["alpha"].shape == (6, 1, SIZE, SIZE)
    assert pairs["camouflage"].shape == pairs["background"].shape == (6,)
    for key in ("bg", "bg_fg"):   # 8-bit photos: every value a multiple of 1/255
        pixels = pairs[key] * 255
        assert pixels.min() >= 0 and pixels.max() <= 255 and torch.allclose(pixels, pixels.round(), atol=1e-3)
    assert ((pairs["camouflage"] >= 0) & (pairs["camouflage"] <= 1)).all()


def test_same_seed_same_pairs_and_a_longer_set_starts_with_the_shorter(pairs):
    again = proxy.proxy_pairs(6, SIZE, seed=1)
    shorter = proxy.proxy_pairs(3, SIZE, seed=1)
    for key in pairs:
        assert torch.equal(pairs[key], again[key]), key
        assert torch.equal(pairs[key][:3], shorter[key]), key
    assert not torch.equal(pairs["bg"], proxy.proxy_pairs(6, SIZE, seed=2)["bg"])


def test_mask_is_alpha_above_one_half_with_soft_edges(pairs):
    alpha = pairs["alpha"]
    assert torch.equal(pairs["mask"], (alpha > 0.5).float())
    assert ((alpha > 0) & (alpha < 1)).sum() > 0          # an anti-aliased rim, not a hard cut


def test_without_shot_differences_the_photos_differ_only_under_the_figures():
    clean = proxy.proxy_pairs(4, SIZE, seed=3, shots=False)
    outside = (clean["alpha"] == 0).expand_as(clean["bg"])
    assert torch.equal(clean["bg"][outside], clean["bg_fg"][outside])
    shot = proxy.proxy_pairs(4, SIZE, seed=3)
    assert not torch.equal(shot["bg"][outside], shot["bg_fg"][outside])  # exposure and noise per photo
    assert torch.equal(shot["mask"], clean["mask"])


def test_jpeg_keeps_the_masks_and_changes_the_pixels_a_little(pairs):
    jpeg = proxy.proxy_pairs(6, SIZE, seed=1, jpeg_quality=75)
    assert torch.equal(jpeg["mask"], pairs["mask"])
    error = (jpeg["bg"] - pairs["bg"]).abs().mean().item()
    assert 0 < error < 0.05


def test_figures_cover_the_stated_share_of_the_frame():
    coverage = proxy.proxy_pairs(24, 224, seed=0)["mask"].mean((1, 2, 3))
    low, high = proxy.COVERAGE
    assert ((coverage >= low) & (coverage <= high)).all(), coverage


def test_baseline_picks_the_threshold_with_the_best_iou():
    bg = torch.zeros(1, 3, 8, 8)
    bg_fg = bg.clone()
    bg_fg[0, :, 2:5, 2:5] = 0.3          # the figure: a 3 x 3 square, differing by 0.3
    bg_fg[0, 1, 7, 7] = 0.1              # noise in one channel of one pixel
    mask = torch.zeros(1, 1, 8, 8)
    mask[0, 0, 2:5, 2:5] = 1
    low = proxy.difference_baseline(bg, bg_fg, mask, thresholds=[0.05])
    assert low.iou == pytest.approx(9 / 10)                 # the noise pixel is taken too
    best = proxy.difference_baseline(bg, bg_fg, mask, thresholds=[0.05, 0.2, 0.4])
    assert best.threshold == 0.2 and best.iou == 1.0 and best.worst == 0
    assert np.array_equal(best.masks[0], mask[0, 0].bool().numpy())
    assert proxy.difference_baseline(bg, bg_fg, mask, thresholds=[0.4]).iou == 0.0
    with pytest.raises(ValueError, match="thresholds is empty"):
        proxy.difference_baseline(bg, bg_fg, mask, thresholds=[])


def test_clean_up_fills_a_pinhole_removes_specks_and_keeps_shapes_at_the_edge():
    masks = torch.zeros(1, 1, 14, 14)
    masks[0, 0, 2:7, 2:7] = 1
    masks[0, 0, 10:14, 9:14] = 1         # a figure cut off by the bottom-right corner
    expected = masks.clone()
    masks[0, 0, 4, 4] = 0                # a pinhole in the square
    masks[0, 0, 10, 3] = 1               # a speck
    masks[0, 0, 13, 0] = 1               # a speck in the corner
    assert torch.equal(proxy.clean_up(masks), expected)


def test_evaluate_proxy_scores_a_function_by_its_masks(pairs):
    truth = pairs["mask"][:, 0].bool().numpy()
    perfect = proxy.evaluate_proxy(lambda bg, bg_fg: truth, pairs)
    assert perfect.iou == 1.0 and perfect.per_pair.shape == (6,)
    blank = proxy.evaluate_proxy(lambda bg, bg_fg: np.zeros_like(truth), pairs)
    assert blank.iou == 0.0
    # without pairs it makes them: the same as proxy_pairs with the same options
    own = proxy.evaluate_proxy(lambda bg, bg_fg: truth[:2], count=2, size=SIZE, seed=1)
    assert own.iou == 1.0 and own.per_pair.shape == (2,)
    with pytest.raises(TypeError, match="model must be"):
        proxy.evaluate_proxy(3, pairs)


def test_evaluate_proxy_calls_predict_as_a_user_does(pairs):
    torch.manual_seed(0)
    model = DSResNet().eval()
    score = proxy.evaluate_proxy(model, pairs, batch_size=4)
    # by hand: the photos as uint8 arrays, dsnet.predict, IoU per pair
    bg, bg_fg = ((pairs[k].permute(0, 2, 3, 1) * 255).round().byte().numpy() for k in ("bg", "bg_fg"))
    masks = predict(bg, bg_fg, model).mask
    truth = pairs["mask"][:, 0].bool().numpy()
    both, either = (masks & truth).sum((1, 2)), (masks | truth).sum((1, 2))
    expected = np.where(either == 0, 1.0, both / np.maximum(either, 1))
    assert np.array_equal(score.masks, masks)
    np.testing.assert_allclose(score.per_pair, expected)
    assert score.iou == pytest.approx(expected.mean()) and score.worst == int(np.argmin(expected))


@pytest.mark.parametrize("options, message", [
    (dict(count=0), "count must be an integer of at least 1"),
    (dict(size=32), "size must be an integer of at least 64"),
    (dict(jpeg_quality=0), "jpeg_quality must be None"),
    (dict(jpeg_quality=75.0), "jpeg_quality must be None"),
])
def test_bad_options_are_refused_in_one_sentence(options, message):
    with pytest.raises(ValueError, match=message):
        proxy.proxy_pairs(**options)


def test_evaluate_proxy_refuses_pairs_without_masks(pairs):
    with pytest.raises(ValueError, match="pairs lacks"):
        proxy.evaluate_proxy(lambda bg, bg_fg: None, {"bg": pairs["bg"], "bg_fg": pairs["bg_fg"]})


def test_proxy_and_renderer_draw_on_different_pictures(monkeypatch):
    """The proxy must stay unseen by a model trained with Realism: its pictures come from
    scikit-image, the renderer's (paintings and textures) from matplotlib, and neither reads the other."""
    import sys

    from matplotlib import cbook

    from dsnet import scene_assets

    def no_matplotlib_samples(*args, **kwargs):
        raise AssertionError("the proxy read matplotlib's sample data")

    monkeypatch.setattr(cbook, "get_sample_data", no_matplotlib_samples)
    proxy.source_images.cache_clear()
    try:
        assert set(proxy.source_images()) == {*proxy.BACKGROUNDS, *proxy.CLOTHES}
    finally:
        proxy.source_images.cache_clear()
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "skimage", None)          # import skimage now fails
    for loader in (scene_assets.texture_images, scene_assets.painting_images):
        scene_assets.clear_caches()
        try:
            assert len(loader()) > 0
        finally:
            scene_assets.clear_caches()


def test_a_missing_scikit_image_is_one_clear_message(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "skimage", None)
    proxy.source_images.cache_clear()
    try:
        with pytest.raises(ModuleNotFoundError, match=r"pip install scikit-image \(or dsnet\[proxy\]\)"):
            proxy.source_images()
    finally:
        proxy.source_images.cache_clear()


def test_clean_up_is_a_closing_then_an_opening_with_max_pooling():
    masks = (torch.rand(3, 1, 37, 29, generator=torch.Generator().manual_seed(0)) > 0.6).float()
    pool = torch.nn.functional.max_pool2d

    for size in (3, 5, 7):
        def dilate(x):
            return pool(x, size, stride=1, padding=size // 2)

        def erode(x):
            return -pool(-x, size, stride=1, padding=size // 2)

        pad = 4 * (size // 2)
        x = torch.nn.functional.pad(masks, (pad, pad, pad, pad))
        assert torch.equal(proxy.clean_up(masks, size), dilate(erode(erode(dilate(x))))[..., pad:-pad, pad:-pad]), size
    assert torch.equal(proxy.clean_up(masks, size=1), masks)
    with pytest.raises(ValueError, match="odd number of pixels"):
        proxy.clean_up(masks, size=4)


def test_the_proxy_scores_the_mask_that_predict_returns_by_default():
    pairs = proxy.proxy_pairs(4, 224, seed=0)
    bg, bg_fg = ((pairs[k].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy() for k in ("bg", "bg_fg"))
    # one pass at the mask's planned size instead of predict's two: the same masks
    assert np.array_equal(proxy.evaluate_proxy(None, pairs).masks, predict(bg, bg_fg).mask)

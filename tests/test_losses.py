"""dsnet.losses by value against hand-computed numbers, gradients, and errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsnet.losses import (LOSSES, PRESETS, CombinedLoss, LossTerm, bce_loss, build_loss, dice_loss,
                          gaussian_window, parse_loss_spec, rmse_loss, ssim, ssim_loss, ssim_map)
from dsnet.model import Prediction


def test_bce_by_hand():
    logits = torch.tensor([0.0, 2.0, -1.0])
    target = torch.tensor([1.0, 1.0, 0.0])
    by_hand = (math.log(2) + math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 3
    assert bce_loss(logits, target).item() == pytest.approx(by_hand, abs=1e-6)
    # Stable for huge logits: a confident right answer costs ~0, a confident wrong one ~|z|.
    assert bce_loss(torch.tensor([100.0]), torch.tensor([1.0])).item() == pytest.approx(0, abs=1e-6)
    assert bce_loss(torch.tensor([-100.0]), torch.tensor([1.0])).item() == pytest.approx(100, rel=1e-6)


def test_dice_by_hand():
    probs = torch.tensor([0.9, 0.8, 0.1, 0.2])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert dice_loss(probs, target).item() == pytest.approx(0.12, abs=1e-6)
    # Both empty: the smoothing makes it 0, not nan.
    assert dice_loss(torch.zeros(4), torch.zeros(4)).item() == 0
    # Sums run over the whole batch, not per image.
    p = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert dice_loss(p, t).item() == pytest.approx(1 - (2 * 1 + 1) / (1 + 2 + 1), abs=1e-7)


def test_rmse_by_hand_and_finite_gradient_at_zero():
    pred = torch.tensor([0.5, 0.2])
    target = torch.tensor([0.4, 0.2])
    assert rmse_loss(pred, target).item() == pytest.approx(math.sqrt(0.005 + 1e-6), rel=1e-6)
    perfect = target.clone().requires_grad_(True)
    value = rmse_loss(perfect, target)
    assert value.item() == pytest.approx(1e-3, rel=1e-5)
    value.backward()
    assert torch.isfinite(perfect.grad).all()


def test_gaussian_window():
    w = gaussian_window()
    assert w.shape == (11, 11) and w.dtype == torch.float32
    assert w.sum().item() == pytest.approx(1, abs=1e-6)
    assert w[5, 5] == w.max() and torch.equal(w, w.T) and torch.equal(w, w.flip(0))
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(w.numpy(), np.outer(g, g) / g.sum() ** 2, rtol=1e-6)


def test_ssim_constant_images_by_hand():
    a, b = torch.full((1, 1, 16, 16), 0.5), torch.full((1, 1, 16, 16), 0.4)
    by_hand = (2 * 0.5 * 0.4 + 1e-4) / (0.25 + 0.16 + 1e-4)
    assert ssim(a, b).item() == pytest.approx(by_hand, abs=1e-6)
    assert ssim_loss(a, b).item() == pytest.approx(1 - by_hand, abs=1e-6)
    assert ssim_map(a, b).shape == (1, 1, 6, 6)


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM by its definition, window by window, in float64 (one 2-D image)."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / g.sum() ** 2
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_definition():
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 14, 13))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    expected = np.mean([_ssim_reference(x[i, 0], y[i, 0]) for i in range(2)])
    got = ssim(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)).item()
    assert got == pytest.approx(expected, abs=1e-5)
    same = torch.tensor(x, dtype=torch.float32)
    assert ssim(same, same).item() == pytest.approx(1, abs=1e-5)


def test_ssim_under_autocast_is_float32():
    x = torch.rand(1, 1, 24, 24)
    y = (x + 0.05 * torch.randn(1, 1, 24, 24)).clamp(0, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = ssim(x.bfloat16(), y.bfloat16())
    assert under.dtype == torch.float32
    assert under.item() == pytest.approx(ssim(x.bfloat16().float(), y.bfloat16().float()).item(), abs=1e-6)


def test_ssim_errors():
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(torch.rand(1, 1, 10, 32), torch.rand(1, 1, 10, 32))
    with pytest.raises(ValueError, match=r"expected \(B, C, H, W\)"):
        ssim(torch.rand(16, 16), torch.rand(16, 16))


@pytest.mark.parametrize("fn", [bce_loss, dice_loss, rmse_loss, ssim_loss])
def test_mismatched_shapes_are_named(fn):
    with pytest.raises(ValueError, match=r"prediction shape \(2, 1, 16, 16\) does not match target shape \(2, 16, 16\)"):
        fn(torch.rand(2, 1, 16, 16), torch.rand(2, 16, 16))


def _one_pixel():
    prediction = Prediction(depth=torch.zeros(1, 1, 1, 1), mask=torch.zeros(1, 1, 1, 1))
    batch = {"depth": torch.full((1, 1, 1, 1), 0.4), "mask": torch.ones(1, 1, 1, 1)}
    return prediction, batch


def test_seed_combination_by_hand():
    prediction, batch = _one_pixel()
    out = build_loss("seed")(prediction, batch)
    rmse, bce, dice = math.sqrt(0.01 + 1e-6), math.log(2), 1 - 2 / 2.5
    assert out.total.item() == pytest.approx(2 * rmse + bce + 2 * dice, abs=1e-6)
    assert list(out.terms) == ["rmse:depth", "bce:mask", "dice:mask"]
    assert out.terms["rmse:depth"].item() == pytest.approx(rmse, abs=1e-6)
    assert out.terms["bce:mask"].item() == pytest.approx(bce, abs=1e-6)
    assert out.terms["dice:mask"].item() == pytest.approx(dice, abs=1e-6)
    assert not any(v.requires_grad for v in out.terms.values())


def test_seed_ssim_combination_by_hand():
    prediction = Prediction(depth=torch.zeros(1, 1, 16, 16), mask=torch.zeros(1, 1, 16, 16))
    batch = {"depth": torch.full((1, 1, 16, 16), 0.4), "mask": torch.ones(1, 1, 16, 16)}
    out = build_loss("seed_ssim")(prediction, batch)
    ssim_value = (2 * 0.5 * 0.4 + 1e-4) / (0.25 + 0.16 + 1e-4)
    dice = 1 - (2 * 128 + 1) / (128 + 256 + 1)
    assert out.total.item() == pytest.approx(2 * (1 - ssim_value) + dice, abs=1e-5)
    assert list(out.terms) == ["ssim:depth", "dice:mask"]


def test_spec_forms_agree():
    prediction, batch = _one_pixel()
    a = CombinedLoss("2*rmse:depth + bce:mask + 2*dice:mask")(prediction, batch)
    b = CombinedLoss([("rmse", "depth", 2), ("bce", "mask", 1), LossTerm("dice", "mask", 2)])(prediction, batch)
    c = CombinedLoss(" 2.0 * RMSE : depth+bce:mask+ 2e0*dice:mask ")(prediction, batch)
    assert a.total.item() == b.total.item() == c.total.item()
    assert str(CombinedLoss("seed")) == "CombinedLoss('2*rmse:depth + bce:mask + 2*dice:mask')"
    assert [str(t) for t in parse_loss_spec("0.5*ssim:depth")] == ["0.5*ssim:depth"]
    assert set(PRESETS) == {"seed", "seed_ssim"}


@pytest.mark.parametrize("spec, message", [
    ("2*rmse:depth + bce:mask + 2*dise:mask", "unknown loss 'dise'; known losses: bce, dice, rmse, ssim"),
    ("ssim:edges", "unknown target 'edges' for loss 'ssim'; targets: depth, mask"),
    ("2 x dice:mask", "cannot read '2 x dice:mask'"),
    ("dice", "cannot read 'dice'"),
    ("", "cannot read ''"),
    ("bce:mask + 2*bce:mask", "appears twice"),
])
def test_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        build_loss(spec)


def test_unknown_loss_in_tuple_form():
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        CombinedLoss([("l1", "depth", 1.0)])
    with pytest.raises(ValueError, match="at least one term"):
        CombinedLoss([])


def test_combined_loss_errors():
    prediction, batch = _one_pixel()
    with pytest.raises(KeyError, match="needs batch\\['depth'\\]"):
        build_loss("seed")(prediction, {"mask": batch["mask"]})
    with pytest.raises(ValueError, match="rmse: prediction shape"):
        build_loss("seed")(prediction, {"depth": torch.zeros(1, 1, 2, 2), "mask": batch["mask"]})


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("target", ["depth", "mask"])
def test_gradients_flow_through_every_loss(name, target):
    torch.manual_seed(0)
    depth = torch.randn(2, 1, 16, 16, requires_grad=True)
    mask = torch.randn(2, 1, 16, 16, requires_grad=True)
    batch = {"depth": torch.rand(2, 1, 16, 16), "mask": (torch.rand(2, 1, 16, 16) > 0.7).float()}
    out = CombinedLoss(f"3*{name}:{target}")(Prediction(depth, mask), batch)
    assert out.total.item() == pytest.approx(3 * out.terms[f"{name}:{target}"].item(), rel=1e-6)
    out.total.backward()
    used, unused = (depth, mask) if target == "depth" else (mask, depth)
    assert used.grad is not None and torch.isfinite(used.grad).all() and used.grad.abs().sum() > 0
    assert unused.grad is None


def test_combined_loss_under_autocast_returns_float32():
    depth = torch.randn(2, 1, 16, 16).bfloat16()
    mask = torch.randn(2, 1, 16, 16).bfloat16()
    batch = {"depth": torch.rand(2, 1, 16, 16), "mask": (torch.rand(2, 1, 16, 16) > 0.7).float()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = CombinedLoss("rmse:depth + ssim:depth + bce:mask + dice:mask")(Prediction(depth, mask), batch)
    assert out.total.dtype == torch.float32 and torch.isfinite(out.total)

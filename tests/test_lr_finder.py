"""The LR range test: exact schedule, smoothing, divergence stop, suggestion, and no trace left."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dsnet.data import SyntheticMuseum
from dsnet.losses import build_loss
from dsnet.lr_finder import LRRangeResult, lr_range_test, lr_schedule, plot_lr_range, smooth_losses, suggest_lr
from dsnet.model import DSResNet


class Tiny(nn.Module):
    """A two-input model with a batch norm (so buffers change while training) and one output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, bg, bg_fg):
        return self.head(torch.relu(self.norm(self.conv(torch.cat([bg, bg_fg], 1)))))


def mse(prediction, batch):
    return ((prediction - batch["mask"]) ** 2).mean()


def batches(count: int, size: int = 16, batch: int = 4, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        x = torch.rand(batch, 3, size, size, generator=g)
        out.append({"bg": x, "bg_fg": x.flip(-1), "mask": (x[:, :1] > 0.5).float(), "depth": x[:, 1:2]})
    return out


def snapshot(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_schedule_is_exactly_geometric():
    lrs = lr_schedule(1e-6, 1.0, 7)
    assert lrs == [1e-6 * 1e6 ** (i / 6) for i in range(7)]
    assert lrs[0] == 1e-6 and math.isclose(lrs[-1], 1.0)
    assert np.allclose(np.diff(np.log10(lrs)), 1.0)
    with pytest.raises(ValueError):
        lr_schedule(1.0, 0.1, 10)
    with pytest.raises(ValueError):
        lr_schedule(1e-3, 1.0, 1)


def test_test_uses_the_schedule_in_order():
    torch.manual_seed(0)
    result = lr_range_test(Tiny(), batches(3), mse, start_lr=1e-5, end_lr=1e-3, steps=12, optimizer="adamw",
                           diverge=1e9)
    assert result.lrs == lr_schedule(1e-5, 1e-3, 12)          # a list of 3 batches is cycled
    assert len(result.losses) == len(result.smoothed) == 12 and not result.diverged


def test_smoothing_is_the_bias_corrected_moving_average():
    assert smooth_losses([2.0, 4.0], 0.5) == [2.0, (0.25 * 2 + 0.5 * 4) / 0.75]
    assert smooth_losses([3.0] * 5, 0.05) == pytest.approx([3.0] * 5)


def test_weights_buffers_mode_and_optimizer_are_restored():
    torch.manual_seed(0)
    model = Tiny().eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.9)
    first = batches(1, seed=1)[0]
    mse(model(first["bg"], first["bg_fg"]), first).backward()
    optimizer.step()                                          # momentum state exists before the test
    weights, opt_state = snapshot(model), optimizer.state_dict()
    grads = [p.grad.clone() for p in model.parameters()]
    momentum = {k: v["momentum_buffer"].clone() for k, v in opt_state["state"].items()}
    result = lr_range_test(model, batches(5), mse, optimizer=optimizer, start_lr=1e-3, end_lr=1.0, steps=5,
                           diverge=1e9)
    assert len(result.lrs) == 5
    after = model.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)
    assert not model.training
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    restored = optimizer.state_dict()
    assert restored["param_groups"][0]["lr"] == 0.123
    assert all(torch.equal(momentum[k], restored["state"][k]["momentum_buffer"]) for k in momentum)


def test_dsresnet_is_unchanged_after_the_test():
    torch.manual_seed(0)
    model = DSResNet()
    data = SyntheticMuseum(64, length=4, seed=0)
    before = snapshot(model)
    result = lr_range_test(model, [data.batch([0, 1]), data.batch([2, 3])], build_loss("seed"), steps=3,
                           start_lr=1e-3, end_lr=1e-1, optimizer="sgd")
    assert len(result.lrs) == 3 and all(math.isfinite(v) for v in result.losses)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # weights and batch-norm statistics


def test_stops_when_the_smoothed_loss_diverges():
    torch.manual_seed(0)
    model = Tiny()
    before = snapshot(model)
    result = lr_range_test(model, batches(4), mse, optimizer="sgd", start_lr=1e-3, end_lr=1e4, steps=60,
                           smooth=0.3, diverge=4.0)
    assert result.diverged and len(result.lrs) < 60
    assert result.lrs == lr_schedule(1e-3, 1e4, 60)[:len(result.lrs)]
    last = result.smoothed[-1]
    assert not math.isfinite(result.losses[-1]) or last > 4.0 * min(result.smoothed)
    assert all(s <= 4.0 * min(result.smoothed[:i + 1]) for i, s in enumerate(result.smoothed[:-1]))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_iterator_that_runs_out_ends_the_test():
    result = lr_range_test(Tiny(), iter(batches(3)), mse, steps=10, diverge=1e9)
    assert len(result.lrs) == 3


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = lr_schedule(1e-6, 1.0, 61)
    x = np.log10(lrs)
    # falls like a tanh centred at 1e-3 (steepest there), bottoms out at 1e-1, then explodes
    loss = 2 - np.tanh(1.5 * (x + 3)) + np.where(x > -1, 10 * (x + 1) ** 2, 0)
    assert suggest_lr(lrs, loss) == pytest.approx(1e-3)
    # a steeper rise after the minimum is ignored
    spiky = loss.copy()
    spiky[-5:] = [1e2, 1e3, 1e6, 1e9, 1e12]
    assert suggest_lr(lrs, spiky) == pytest.approx(1e-3)
    # a curve that never falls suggests the smallest rate
    assert suggest_lr(lrs, np.linspace(1, 2, 61)) == lrs[0]
    assert suggest_lr([1e-3], [1.0]) == 1e-3


def test_plot_marks_the_suggestion():
    import matplotlib

    matplotlib.use("Agg")
    lrs = lr_schedule(1e-5, 1.0, 21)
    smoothed = [2 - math.tanh(math.log10(lr) + 3) for lr in lrs]
    result = LRRangeResult(lrs, smoothed, smoothed, suggest_lr(lrs, smoothed))
    ax = plot_lr_range(result, label="x")
    assert ax.get_xscale() == "log"
    assert any("steepest" in t.get_text() for t in ax.get_legend().get_texts())


def test_the_lr_chapters_table_of_profiles_matches_the_profiles():
    """book/lr_range.md writes the profiles' settings out by hand (the Training chapter comes later):
    each row must say what make_config(profile) holds."""
    from pathlib import Path

    from dsnet.train import make_config

    text = (Path(__file__).resolve().parent.parent / "book" / "lr_range.md").read_text()
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ") and "|---" not in line]
    table = {cells[0].strip(): [c.strip() for c in cells] for cells in rows[1:]}
    assert set(table) == {"quick", "medium", "cpu-long", "full", "seed"}
    for profile, (_, optimizer, batch, sizes, lr, *_) in table.items():
        config = make_config(profile)
        assert optimizer.split(",")[0].lower() == config.optimizer.lower(), profile
        assert int(batch) == config.batch_size, profile
        assert [int(s) for s in sizes.replace("then", ",").replace(" ", "").split(",") if s] == \
            [size for size, _ in config.stages], profile
        assert float(lr.split()[0]) == config.lr, profile

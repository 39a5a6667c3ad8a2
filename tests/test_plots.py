"""dsnet.plots: the figures of training and prediction draw what they say, and big photos small; the
blocks and arrows of the network diagrams land where they are asked to."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import dsnet.plots  # noqa: E402
from dsnet.inference import PredictionResult  # noqa: E402
from dsnet.model import Prediction  # noqa: E402
from dsnet.plots import (  # noqa: E402
    BLOCK_COLORS, BOX_PAD, DISPLAY_SIDE, block_arrow, block_box, block_edge, block_note, plot_history,
    plot_result, plot_batch)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def result_for(height: int, width: int, count: int | None = None) -> PredictionResult:
    shape = (height, width) if count is None else (count, height, width)
    prob = np.linspace(0, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    return PredictionResult(mask=prob > 0.5, mask_prob=prob, depth=1 - prob, mask_size=(64, 64), depth_size=(64, 64))


def test_plot_history_draws_one_point_per_epoch():
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_mask_iou": 0.5 + e / 10,
                "val_mask_soft_iou": 0.4 + e / 10, "val_depth_rmse": 0.2 / e} for e in (1, 2, 3)]
    axes = plot_history(history, label="run")
    assert [ax.get_title() for ax in axes] == ["loss", "mask IoU (validation)", "depth RMSE (validation)"]
    assert [len(line.get_xdata()) for line in axes[0].get_lines()] == [3, 3]
    assert list(axes[2].get_lines()[0].get_ydata()) == [h["val_depth_rmse"] for h in history]
    assert axes[1].get_legend().get_texts()[0].get_text() == "run IoU"


def test_plot_batch_shows_truth_next_to_the_sigmoid_of_the_logits():
    batch = {"bg": torch.rand(3, 3, 32, 32), "bg_fg": torch.rand(3, 3, 32, 32),
             "mask": torch.zeros(3, 1, 32, 32), "depth": torch.full((3, 1, 32, 32), 0.25)}
    prediction = Prediction(depth=torch.zeros(3, 1, 32, 32), mask=torch.full((3, 1, 32, 32), 100.0))
    fig = plot_batch(batch, prediction, count=2)
    axes = np.array(fig.axes).reshape(2, 5)
    assert [ax.get_title() for ax in axes[0]] == ["BG-FG", "mask", "predicted mask", "depth", "predicted depth"]
    assert np.allclose(axes[1, 2].get_images()[0].get_array(), 1.0)       # sigmoid(100)
    assert np.allclose(axes[1, 4].get_images()[0].get_array(), 0.5)       # sigmoid(0)


def test_plot_result_draws_photo_mask_depth_and_truth(tmp_path):
    Image.fromarray(np.full((40, 60, 3), 255, np.uint8)).save(tmp_path / "fg.png")
    result = result_for(40, 60, count=2)
    axes = plot_result(tmp_path / "fg.png", result, index=1,
                           truth={"mask": np.ones((40, 60), bool), "depth": np.zeros((40, 60))})
    assert [ax.get_title() for ax in axes] == ["BG-FG", "mask probability", "depth (near = dark)", "true mask",
                                              "true depth"]
    photo, mask_prob, depth, true_mask, _ = (ax.get_images()[0].get_array() for ax in axes)
    assert photo.shape == (40, 60, 3) and np.allclose(photo, 1)
    np.testing.assert_allclose(mask_prob, result.mask_prob[1])
    np.testing.assert_allclose(depth, result.depth[1])
    assert np.all(true_mask == 1)


def test_a_large_photo_is_drawn_small(monkeypatch):
    monkeypatch.setattr(dsnet.plots, "DISPLAY_SIDE", 50)
    assert DISPLAY_SIDE == 1024
    axes = plot_result(np.zeros((100, 200, 3), np.uint8), result_for(100, 200))
    assert [ax.get_images()[0].get_array().shape[:2] for ax in axes] == [(25, 50)] * 3


def test_a_diagram_draws_one_box_per_block_and_one_arrow_per_link():
    _, ax = plt.subplots()
    p1 = block_box(ax, 0, 2, "P1", "224×224×16", "prep")
    p2 = block_box(ax, 0, 1, "P2", "112×112×32", "prep", w=1.5, h=1.0)
    out = block_box(ax, 2, 1, "out", "", "out")
    arrows = [block_arrow(ax, p1, p2), block_arrow(ax, p2, out, dashed=True)]
    block_note(ax, 2, 0.4, "logits", ha="center")
    assert (p1, p2) == ((0, 2, 1.25, 0.66), (0, 1, 1.5, 1.0))
    assert len(ax.patches) == 5
    assert [patch.get_facecolor() for patch in ax.patches[:3]] == [
        matplotlib.colors.to_rgba(BLOCK_COLORS[kind]) for kind in ("prep", "prep", "out")]
    assert [t.get_text() for t in ax.texts] == ["P1", "224×224×16", "P2", "112×112×32", "out", "logits"]
    assert [a.get_linestyle() for a in arrows] == ["-", "--"]
    plt.gcf().canvas.draw()      # renders with the Agg backend


def test_an_arrow_leaves_a_block_at_its_border():
    assert block_edge((1, 2), (5, 2)) == (1, 2)                                  # a point: at once
    assert block_edge((0, 0, 2.0, 1.0), (4, 0)) == (1.0, 0)                      # sideways: the side
    assert block_edge((0, 0, 2.0, 1.0), (0, -3)) == (0, -(0.5 + BOX_PAD))        # down: the border
    assert block_edge((0, 0, 1.25), (0, 1)) == (0, 0.33 + BOX_PAD)              # default height 0.66

"""Figures of training and prediction: a run's history, predicted against true masks and depths,
and one prediction on your own photo; and the boxes and arrows that the book's diagrams of the
network are drawn with.

Hand-written infrastructure below the chapters: it imports no chapter module (the objects it
draws are taken by their attributes), only :mod:`dsnet.images`. matplotlib is imported when a
figure is drawn, so importing this module stays cheap.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from dsnet.images import ImageInput, open_images, resize

DISPLAY_SIDE = 1024
"""A photo is drawn with at most this many pixels on its longer side (a figure panel is about 300)."""

BLOCK_COLORS = {"prep": "#d9ead3", "merge": "#fff2cc", "enc": "#cfe2f3", "dec": "#f4cccc", "out": "#ead1dc"}
"""The fill of each kind of block in the diagrams of DSResNet: preparation branch, merge, shared
encoder, decoder head, and the 1x1 convolution that ends a head."""

BOX_PAD = 0.04
"""How far (in data units) a block's rounded border reaches beyond the rectangle it is drawn around."""

Block = tuple[float, float, float, float]
"""A block as drawn: centre ``x``, ``y``, width and height in data units (without the border's pad)."""


def plot_history(history: list[dict[str, Any]], label: str = "", axes=None):
    """Loss, mask IoU and depth RMSE per epoch; draws into ``axes`` (three Axes) if given."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    epochs = [h["epoch"] for h in history]
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o--", label=f"{label} train".strip())
    axes[0].plot(epochs, [h["val_loss"] for h in history], "o-", label=f"{label} val".strip())
    axes[1].plot(epochs, [h["val_mask_iou"] for h in history], "o-", label=f"{label} IoU".strip())
    axes[1].plot(epochs, [h["val_mask_soft_iou"] for h in history], "x:", label=f"{label} soft IoU".strip())
    axes[2].plot(epochs, [h["val_depth_rmse"] for h in history], "o-", label=label or "val")
    for ax, title in zip(axes, ("loss", "mask IoU (validation)", "depth RMSE (validation)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return axes


def plot_batch(batch: dict[str, Tensor], prediction, count: int = 4):
    """BG-FG, true and predicted mask, true and predicted depth for ``count`` samples of ``batch``
    (``(B, C, H, W)`` tensors); ``prediction`` holds the model's ``mask`` and ``depth`` logits."""
    import matplotlib.pyplot as plt

    count = min(count, len(batch["bg"]))
    mask, depth = (torch.sigmoid(p.float()).detach().cpu() for p in (prediction.mask, prediction.depth))
    columns = [("BG-FG", batch["bg_fg"].cpu().permute(0, 2, 3, 1), None),
               ("mask", batch["mask"].cpu()[:, 0], "gray"), ("predicted mask", mask[:, 0], "gray"),
               ("depth", batch["depth"].cpu()[:, 0], "magma"), ("predicted depth", depth[:, 0], "magma")]
    fig, axes = plt.subplots(count, len(columns), figsize=(2.2 * len(columns), 2.2 * count), squeeze=False)
    for row in range(count):
        for ax, (title, images, cmap) in zip(axes[row], columns):
            ax.imshow(images[row].clamp(0, 1).numpy(), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _display_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, DISPLAY_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _shown(pixels, size: tuple[int, int]) -> np.ndarray:
    """An ``H x W`` map (numpy or tensor, any dtype) as float32, resized to ``size`` for drawing."""
    x = torch.as_tensor(np.asarray(pixels), dtype=torch.float32)
    return resize(x[None, None], size)[0, 0].numpy()


def plot_result(bg_fg: ImageInput, result, index: int = 0, axes=None, truth=None):
    """BG-FG, the mask probability and the depth side by side (and the true mask and depth when
    ``truth`` has them); draws into ``axes`` if given. ``result``: a
    :class:`dsnet.inference.PredictionResult`, ``index``: which pair of a batch. A large photo
    is drawn at most :data:`DISPLAY_SIDE` pixels a side. Returns the axes."""
    images = open_images(bg_fg, "bg_fg")
    size = _display_size(images.height, images.width)
    image = images.load(min(index, len(images) - 1), [size])[0][0].permute(1, 2, 0).cpu().numpy()
    pick = (lambda a: a[index]) if result.mask.ndim == 3 else (lambda a: a)
    panels = [("BG-FG", image, None), ("mask probability", _shown(pick(result.mask_prob), size), "gray"),
              ("depth (near = dark)", _shown(pick(result.depth), size), "magma")]
    if truth is not None:
        panels += [("true mask", _shown(truth["mask"], size), "gray"),
                   ("true depth", _shown(truth["depth"], size), "magma")]
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
    for ax, (title, pixels, cmap) in zip(axes, panels):
        ax.imshow(pixels, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def block_box(ax, x: float, y: float, name: str, detail: str, kind: str, w: float = 1.25, h: float = 0.66,
              fontsize: float = 12) -> Block:
    """One block of a network diagram: a rounded box centred at ``(x, y)``, filled with the
    colour of ``kind`` (a key of :data:`BLOCK_COLORS`), with ``name`` in bold over ``detail``
    (its channels or its shape; ``""`` for none) one point smaller. Returns the block for
    :func:`block_arrow`."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad={BOX_PAD}",
                                fc=BLOCK_COLORS[kind], ec="0.25", lw=1))
    lines = [(name, fontsize, "bold", 0.45 * fontsize), (detail, fontsize - 1, "normal", -0.55 * fontsize)]
    for text, size, weight, rise in lines if detail else lines[:1]:
        ax.annotate(text, (x, y), xytext=(0, rise if detail else 0), textcoords="offset points",
                    ha="center", va="center", fontsize=size, weight=weight)
    return x, y, w, h


def block_edge(a, b) -> tuple[float, float]:
    """Where the line from the centre of ``a`` towards the centre of ``b`` leaves ``a``'s border.
    Each is a point ``(x, y)`` (which the line leaves at once) or a block ``(x, y, w[, h])``
    (``h`` is 0.66 when left out)."""
    (x, y, *size), (u, v, *_) = a, b
    if not size:
        return x, y
    w, h = (*size, 0.66)[:2]
    dx, dy = u - x, v - y
    t = min(w / 2 / abs(dx) if dx else 1e9, (h / 2 + BOX_PAD) / abs(dy) if dy else 1e9)
    return x + t * dx, y + t * dy


def block_arrow(ax, a, b, dashed: bool = False, **style):
    """An arrow from block (or point) ``a`` to ``b``, from border to border: solid and dark for
    the data's main path, dashed and grey for a skip. ``style`` goes to matplotlib's
    ``FancyArrowPatch`` (``connectionstyle="angle,angleA=0,angleB=90"`` bends it once, for
    example). Returns the patch."""
    from matplotlib.patches import FancyArrowPatch

    style = {"arrowstyle": "-|>", "mutation_scale": 14, "lw": 1.2, "color": "0.45" if dashed else "0.15",
             "ls": "--" if dashed else "-", "shrinkA": 2, "shrinkB": 2} | style
    return ax.add_patch(FancyArrowPatch(block_edge(a, b), block_edge(b, a), **style))


def block_note(ax, x: float, y: float, text: str, **kw):
    """A grey note at ``(x, y)``, centred vertically; ``kw`` goes to ``ax.text`` (``ha``,
    ``fontsize``: 11 unless given). Returns the text."""
    return ax.text(x, y, text, **({"fontsize": 11, "color": "0.35", "va": "center"} | kw))

# Generated from book/model.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/model.md, line 37
"""DSResNet: two preparation branches, a shared residual encoder, and two decoder heads."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from dsnet.blocks import ResDecoderBlock, ResEncoderBlock
from dsnet.shapes import DECODER_CHANNELS, ENCODER_CHANNELS, PREP_CHANNELS, Stage, check_input_size


# book/model.md, line 186
class Prediction(NamedTuple):
    """The model's two outputs, each ``(B, 1, H, W)`` logits."""

    depth: Tensor
    mask: Tensor


def _autocast(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:                  # torch before 2.4 asks per device kind
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def check_inputs(bg: Tensor, bg_fg: Tensor, weights: torch.dtype | None = None) -> None:
    """Raise ``ValueError`` (``TypeError`` for non-tensors or the wrong dtype) unless ``bg`` and
    ``bg_fg`` are ``(B, 3, H, W)`` float batches of one shape with H and W valid for DSResNet, of
    the ``weights``' dtype when given (outside autocast, which converts them itself)."""
    for name, x in (("bg", bg), ("bg_fg", bg_fg)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} is a {str(x.dtype).replace('torch.', '')} tensor; DSResNet takes normalized "
                            "float images (dsnet.data.normalize), and dsnet.predict takes images of any type")
        if weights is not None and x.dtype != weights and not _autocast(x.device.type):
            raise TypeError(f"{name} is {str(x.dtype).replace('torch.', '')} but the model's weights are "
                            f"{str(weights).replace('torch.', '')}; convert one to the other, e.g. {name}.to(dtype)")
        if x.dim() != 4:
            raise ValueError(f"{name} must be a 4-D batch (B, 3, H, W), got shape {tuple(x.shape)}"
                             + ("; add a batch dimension with x.unsqueeze(0)" if x.dim() == 3 else ""))
        if x.shape[1] != 3:
            raise ValueError(f"{name} must have 3 channels (RGB), got {x.shape[1]} in shape {tuple(x.shape)}")
    if bg.shape != bg_fg.shape:
        raise ValueError(f"bg and bg_fg must have the same shape, got {tuple(bg.shape)} and {tuple(bg_fg.shape)}")
    check_input_size(bg.shape[2], bg.shape[3])


# book/model.md, line 227
class PrepBranch(nn.Module):
    """Two encoder blocks for one input image.

    ``(B, 3, H, W) -> (B, 32, H/4, W/4), [(B, 16, H, W), (B, 32, H/2, W/2)]``
    """

    def __init__(self) -> None:
        super().__init__()
        self.block1 = ResEncoderBlock(3, PREP_CHANNELS[0])
        self.block2 = ResEncoderBlock(PREP_CHANNELS[0], PREP_CHANNELS[1])

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        x, skip1 = self.block1(x)
        x, skip2 = self.block2(x)
        return x, [skip1, skip2]


# book/model.md, line 248
class Encoder(nn.Module):
    """Four encoder blocks, 32 -> 64 -> 128 -> 256 -> 512 channels.

    ``(B, 32, h, w) -> bottom (B, 512, h/8, w/8), skips [(B, 64, h, w), (B, 128, h/2, w/2),
    (B, 256, h/4, w/4)]``. The last block's pooled output is computed (it is part of the
    specified layer table) but not used: the decoder starts from the features before it.
    """

    def __init__(self) -> None:
        super().__init__()
        widths = (PREP_CHANNELS[-1],) + ENCODER_CHANNELS
        self.block1, self.block2, self.block3, self.block4 = (
            ResEncoderBlock(c_in, c_out) for c_in, c_out in zip(widths, widths[1:]))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = []
        for block in (self.block1, self.block2, self.block3, self.block4):
            x, skip = block(x)
            skips.append(skip)
        return skips[-1], skips[:-1]


# book/model.md, line 275
class DecoderHead(nn.Module):
    """Five decoder blocks and a 1x1 convolution to one channel of logits.

    ``bottom (B, 512, H/32, W/32) -> (B, 1, H, W)``, given the encoder skips and the two
    preparation branches' skips.
    """

    def __init__(self) -> None:
        super().__init__()
        widths = (ENCODER_CHANNELS[-1],) + DECODER_CHANNELS
        self.block1, self.block2, self.block3, self.block4, self.block5 = (
            ResDecoderBlock(c_in, c_out, fuse_pair=i >= 3)
            for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])))
        self.out = nn.Conv2d(DECODER_CHANNELS[-1], 1, kernel_size=1)

    def forward(self, bottom: Tensor, encoder_skips: list[Tensor], bg_skips: list[Tensor],
                bg_fg_skips: list[Tensor]) -> Tensor:
        x = self.block1(bottom, encoder_skips[2])
        x = self.block2(x, encoder_skips[1])
        x = self.block3(x, encoder_skips[0])
        x = self.block4(x, (bg_skips[1], bg_fg_skips[1]))
        x = self.block5(x, (bg_skips[0], bg_fg_skips[0]))
        return self.out(x)


# book/model.md, line 304
class DSResNet(nn.Module):
    """Depth and mask of the foreground from a background and the same scene with it.

    ``model(bg, bg_fg)`` with two ``(B, 3, H, W)`` tensors (H, W divisible by 32, at least 64)
    returns ``Prediction(depth, mask)``, two ``(B, 1, H, W)`` logit maps. ``model(**batch)``
    works on a dict with keys ``bg`` and ``bg_fg``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bg_prep = PrepBranch()
        self.bg_fg_prep = PrepBranch()
        self.merge = nn.Conv2d(2 * PREP_CHANNELS[-1], PREP_CHANNELS[-1], kernel_size=1)
        self.encoder = Encoder()
        self.depth_head = DecoderHead()
        self.mask_head = DecoderHead()

    def forward(self, bg: Tensor, bg_fg: Tensor) -> Prediction:
        check_inputs(bg, bg_fg, self.merge.weight.dtype)
        bg, bg_skips = self.bg_prep(bg)
        bg_fg, bg_fg_skips = self.bg_fg_prep(bg_fg)
        bottom, encoder_skips = self.encoder(self.merge(torch.cat([bg, bg_fg], dim=1)))
        return Prediction(
            depth=self.depth_head(bottom, encoder_skips, bg_skips, bg_fg_skips),
            mask=self.mask_head(bottom, encoder_skips, bg_skips, bg_fg_skips),
        )


# book/model.md, line 587
def traced_shapes(model: DSResNet, height: int, width: int) -> list[Stage]:
    """Every stage's shape as the model really produces it for a ``height x width`` input,
    recorded by forward hooks, in the rows and order of ``dsnet.shapes.shape_table``."""
    rows = [Stage("input", "bg, bg_fg", 3, height, width)]

    def recorder(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            if isinstance(module, ResEncoderBlock):
                pooled, skip = output
                rows.append(Stage(name, "skip", *skip.shape[1:]))
                rows.append(Stage(name, "pooled", *pooled.shape[1:]))
            else:
                rows.append(Stage(name, "logits" if name.endswith(".out") else "features", *output.shape[1:]))
        return hook

    watched = [(name, module) for name, module in model.named_modules()
               if isinstance(module, (ResEncoderBlock, ResDecoderBlock)) or name == "merge"
               or name.endswith("_head.out")]
    handles = [module.register_forward_hook(recorder(name)) for name, module in watched]
    was_training = model.training
    try:
        model.eval()  # no batch-norm statistics are updated by this probe
        x = torch.rand(1, 3, height, width, device=next(model.parameters()).device)
        with torch.no_grad():
            model(x, x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return rows

# Generated from book/blocks.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/blocks.md, line 46
"""The three building blocks of DSResNet: a double convolution, and residual
encoder and decoder blocks built from it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# book/blocks.md, line 128
class DoubleConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by ReLU and batch norm.

    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(out_channels),
        )


# book/blocks.md, line 196
def conv_params(c_in: int, c_out: int, k: int = 1) -> int:
    """Parameters of a ``k x k`` Conv2d with bias: ``k*k*c_in*c_out`` weights and ``c_out`` biases."""
    return k * k * c_in * c_out + c_out


def double_conv_params(c_in: int, c_out: int) -> int:
    """Parameters of :class:`DoubleConvBlock`: two 3x3 convs and two batch norms (2 per channel)."""
    return conv_params(c_in, c_out, 3) + conv_params(c_out, c_out, 3) + 2 * (2 * c_out)


def count_parameters(module: nn.Module) -> int:
    """The parameters ``module`` owns, counted by PyTorch (buffers such as running means excluded)."""
    return sum(p.numel() for p in module.parameters())


# book/blocks.md, line 290
class ResEncoderBlock(nn.Module):
    """Double convolution with a 1x1 shortcut, then 2x2 max pooling.

    ``(B, in_channels, H, W) -> (pooled, skip)`` with
    ``pooled: (B, out_channels, H // 2, W // 2)`` and ``skip: (B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.double_conv = DoubleConvBlock(in_channels, out_channels)
        self.pool = nn.MaxPool2d(kernel_size=2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shortcut = self.shortcut(x)
        skip = self.double_conv(x) + shortcut
        return self.pool(skip), skip


# book/blocks.md, line 322
def encoder_params(c_in: int, c_out: int) -> int:
    """Parameters of :class:`ResEncoderBlock`: the double convolution and the 1x1 shortcut."""
    return double_conv_params(c_in, c_out) + conv_params(c_in, c_out, 1)


# book/blocks.md, line 531
class ResDecoderBlock(nn.Module):
    """1x1 transition, bilinear x2 upsampling, concatenation with the skip, then a
    double convolution with a 1x1 shortcut.

    ``(B, in_channels, H, W), skip -> (B, out_channels, 2H, 2W)`` where ``skip`` is a
    ``(B, out_channels, 2H, 2W)`` tensor, or, for a block built with ``fuse_pair=True``,
    a pair of them (BG, BG-FG) that a 1x1 convolution fuses into one first.
    """

    def __init__(self, in_channels: int, out_channels: int, *, fuse_pair: bool = False) -> None:
        super().__init__()
        self.transition = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.fuse = nn.Conv2d(2 * out_channels, out_channels, kernel_size=1) if fuse_pair else None
        self.shortcut = nn.Conv2d(2 * out_channels, out_channels, kernel_size=1)
        self.double_conv = DoubleConvBlock(2 * out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        x = F.interpolate(self.transition(x), scale_factor=2, mode="bilinear", align_corners=False)
        if self.fuse is not None:
            skip = self.fuse(torch.cat(skip, dim=1))
        x = torch.cat([x, skip], dim=1)
        shortcut = self.shortcut(x)
        return self.double_conv(x) + shortcut


# book/blocks.md, line 577
def decoder_params(c_in: int, c_out: int, fuse_pair: bool = False) -> int:
    """Parameters of :class:`ResDecoderBlock`: transition, optional pair fusion, shortcut and
    double convolution, all on ``2 * c_out`` channels after the skip is concatenated."""
    fuse = conv_params(2 * c_out, c_out, 1) if fuse_pair else 0
    return (conv_params(c_in, c_out, 1) + fuse + conv_params(2 * c_out, c_out, 1)
            + double_conv_params(2 * c_out, c_out))

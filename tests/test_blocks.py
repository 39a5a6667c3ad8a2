"""The three building blocks: shapes, parameter counts and the residual wiring."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dsnet import DoubleConvBlock, ResDecoderBlock, ResEncoderBlock


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv(c_in: int, c_out: int, k: int) -> int:
    return k * k * c_in * c_out + c_out


def test_double_conv_is_conv_relu_bn_twice_and_keeps_the_size():
    block = DoubleConvBlock(3, 16)
    assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d] * 2
    assert block(torch.rand(2, 3, 64, 96)).shape == (2, 16, 64, 96)
    assert n_params(block) == conv(3, 16, 3) + conv(16, 16, 3) + 4 * 16


def test_encoder_block_returns_pooled_features_and_the_skip():
    block = ResEncoderBlock(16, 32)
    pooled, skip = block(torch.rand(2, 16, 64, 64))
    assert pooled.shape == (2, 32, 32, 32) and skip.shape == (2, 32, 64, 64)
    assert torch.equal(pooled, nn.functional.max_pool2d(skip, 2))
    assert n_params(block) == n_params(DoubleConvBlock(16, 32)) + conv(16, 32, 1)


def test_encoder_block_is_residual():
    block = ResEncoderBlock(4, 8).eval()
    x = torch.rand(1, 4, 8, 8)
    with torch.no_grad():
        _, skip = block(x)
        assert torch.allclose(skip, block.double_conv(x) + block.shortcut(x))


@pytest.mark.parametrize("fuse_pair", [False, True])
def test_decoder_block_doubles_the_size(fuse_pair):
    block = ResDecoderBlock(64, 32, fuse_pair=fuse_pair)
    skip = torch.rand(2, 32, 16, 16)
    out = block(torch.rand(2, 64, 8, 8), (skip, skip) if fuse_pair else skip)
    assert out.shape == (2, 32, 16, 16)
    fuse = conv(64, 32, 1) if fuse_pair else 0
    assert n_params(block) == conv(64, 32, 1) + fuse + conv(64, 32, 1) + n_params(DoubleConvBlock(64, 32))
    assert (block.fuse is not None) == fuse_pair


def test_fusing_block_uses_both_skips():
    block = ResDecoderBlock(8, 4, fuse_pair=True).eval()
    x, bg, bg_fg = torch.rand(1, 8, 4, 4), torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8)
    with torch.no_grad():
        base = block(x, (bg, bg_fg))
        assert not torch.allclose(base, block(x, (bg, torch.zeros_like(bg_fg))))
        assert not torch.allclose(base, block(x, (torch.zeros_like(bg), bg_fg)))

"""The shape arithmetic against the real model, and the rule for valid input sizes."""
from __future__ import annotations

import pytest
import torch

from dsnet import DSResNet, shape_table, traced_shapes
from dsnet.shapes import check_input_size, conv_out, nearest_valid_sizes, pool_out, upsample_out


@pytest.fixture(scope="module")
def model() -> DSResNet:
    torch.manual_seed(0)
    return DSResNet()


@pytest.mark.parametrize("height, width", [(64, 64), (96, 96), (160, 160), (224, 224), (256, 256), (96, 160)])
def test_arithmetic_matches_the_forward_hooks(model, height, width):
    assert traced_shapes(model, height, width) == shape_table(height, width)


def test_the_224_walk_goes_down_to_7_and_back():
    table = shape_table(224)
    skips = [s.height for s in table if s.output == "skip" and not s.module.startswith("bg_fg")]
    assert skips == [224, 112, 56, 28, 14, 7]
    depth_head = [(s.channels, s.height) for s in table if s.module.startswith("depth_head")]
    assert depth_head == [(256, 14), (128, 28), (64, 56), (32, 112), (16, 224), (1, 224)]


def test_tracing_leaves_the_model_as_it_was(model):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    traced_shapes(model, 64, 64)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_formulas():
    assert conv_out(224, kernel=3, stride=1, padding=1) == 224
    assert conv_out(224, kernel=7, stride=2, padding=3) == 112
    assert conv_out(7, kernel=1) == 7
    assert [pool_out(n) for n in (224, 7, 3, 2)] == [112, 3, 1, 1]
    assert upsample_out(7) == 14


@pytest.mark.parametrize("n, expected", [(100, [96, 128]), (224, [224, 256]), (65, [64, 96]), (10, [64]), (63, [64])])
def test_nearest_valid_sizes(n, expected):
    assert nearest_valid_sizes(n) == expected


def test_check_names_every_bad_dimension():
    check_input_size(64, 512)
    with pytest.raises(ValueError) as error:
        check_input_size(100, 50)
    assert str(error.value) == ("input height 100 is not divisible by 32; use 96 or 128; "
                                "input width 50 is too small (the minimum is 64); use 64")
    with pytest.raises(ValueError, match="input height 100"):
        shape_table(100)

"""DSResNet against its specification: parameter count, the layer table, outputs, input errors."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torchinfo import summary

from dsnet import DSResNet, Prediction

SPEC_TABLE = Path(__file__).parent / "data" / "dsresnet_summary.txt"
# Containers that the specification's table does not list.
NOT_IN_SPEC = {"PrepBranch", "Encoder", "DecoderHead"}


def spec_rows() -> list[tuple[str, list[int], int]]:
    """(layer type, first output shape without batch, parameters) for each row of the spec."""
    rows = []
    for line in SPEC_TABLE.read_text().splitlines():
        match = re.match(r"\s*(\w+)-\d+\s+(\[.*\])\s+([\d,]+)$", line)
        if match:
            first_shape = [int(n) for n in re.findall(r"-?\d+", match.group(2).split("]")[0])]
            rows.append((match.group(1), first_shape[1:], int(match.group(3).replace(",", ""))))
    return rows


def torchinfo_rows(model: DSResNet, size: int = 224) -> list[tuple[str, list[int], int]]:
    """The same rows from torchinfo, in the spec's order: a layer is listed when its forward
    pass ends (children before their container)."""
    x = torch.rand(1, 3, size, size)
    layers = summary(model, input_data=[x, x], depth=10, verbose=0).summary_list
    ordered, open_layers = [], []
    for layer in layers:
        while open_layers and open_layers[-1].depth >= layer.depth:
            ordered.append(open_layers.pop())
        open_layers.append(layer)
    ordered += reversed(open_layers)
    return [(layer.class_name, list(layer.output_size[1:]),
             sum(p.numel() for p in layer.module.parameters(recurse=False)))
            for layer in ordered if layer.class_name not in NOT_IN_SPEC]


@pytest.fixture(scope="module")
def model() -> DSResNet:
    torch.manual_seed(0)
    return DSResNet().eval()


def test_parameter_count_is_the_specified_total(model):
    assert sum(p.numel() for p in model.parameters()) == 10_343_490
    assert all(p.requires_grad for p in model.parameters())


def test_torchinfo_summary_matches_the_specification_row_by_row(model):
    expected = spec_rows()
    assert len(expected) == 188
    actual = torchinfo_rows(model)
    assert len(actual) == len(expected)
    for i, (row, spec) in enumerate(zip(actual, expected), start=1):
        assert row == spec, f"row {i}: model {row} != spec {spec}"


def test_only_the_last_two_decoder_blocks_of_each_head_fuse_a_pair(model):
    for head in (model.depth_head, model.mask_head):
        fuses = [block.fuse is not None for block in (head.block1, head.block2, head.block3, head.block4, head.block5)]
        assert fuses == [False, False, False, True, True]


def test_forward_returns_a_named_depth_mask_pair(model):
    bg, bg_fg = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        out = model(bg, bg_fg)
    assert isinstance(out, Prediction)
    assert out.depth.shape == out.mask.shape == (2, 1, 64, 96)
    depth, mask = out
    assert depth is out.depth and mask is out.mask
    assert not torch.equal(out.depth, out.mask)  # two heads, separate weights


def test_forward_accepts_a_batch_dict(model):
    batch = {"bg": torch.rand(1, 3, 64, 64), "bg_fg": torch.rand(1, 3, 64, 64)}
    with torch.no_grad():
        by_name = model(**batch)
        by_position = model(batch["bg"], batch["bg_fg"])
    assert torch.equal(by_name.depth, by_position.depth)
    assert torch.equal(by_name.mask, by_position.mask)


def test_every_part_learns(model):
    model.train()
    try:
        out = model(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
        (out.depth.mean() + out.mask.mean()).backward()
        missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
        assert missing == []
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


@pytest.mark.parametrize("bg_shape, bg_fg_shape, message", [
    ((1, 3, 100, 100), (1, 3, 100, 100), "input height 100 is not divisible by 32; use 96 or 128"),
    ((1, 3, 224, 150), (1, 3, 224, 150), "input width 150 is not divisible by 32; use 128 or 160"),
    ((1, 3, 32, 64), (1, 3, 32, 64), "input height 32 is too small (the minimum is 64); use 64"),
    ((3, 224, 224), (3, 224, 224), "bg must be a 4-D batch (B, 3, H, W), got shape (3, 224, 224)"),
    ((1, 1, 64, 64), (1, 1, 64, 64), "bg must have 3 channels (RGB), got 1"),
    ((1, 3, 64, 64), (1, 4, 64, 64), "bg_fg must have 3 channels (RGB), got 4"),
    ((1, 3, 64, 64), (1, 3, 96, 64), "bg and bg_fg must have the same shape, got (1, 3, 64, 64) and (1, 3, 96, 64)"),
    ((2, 3, 64, 64), (1, 3, 64, 64), "bg and bg_fg must have the same shape"),
])
def test_bad_inputs_get_one_clear_message(model, bg_shape, bg_fg_shape, message):
    with pytest.raises(ValueError) as error:
        model(torch.rand(bg_shape), torch.rand(bg_fg_shape))
    assert message in str(error.value)
    # Raised by the input check, before any layer ran.
    assert error.traceback[-1].name == "check_input_size" or error.traceback[-1].name == "check_inputs"


def test_non_tensor_input_is_a_type_error(model):
    with pytest.raises(TypeError, match="bg must be a torch.Tensor, got list"):
        model([[0.0]], torch.rand(1, 3, 64, 64))

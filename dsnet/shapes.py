# Generated from book/shapes.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/shapes.md, line 36
"""Shape arithmetic for DSResNet: every stage's (channels, height, width) for an input
size, and the rule for which input sizes are valid."""
from __future__ import annotations

from typing import NamedTuple


# book/shapes.md, line 63
def conv_out(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution (or pooling) over an input of length ``n``."""
    return (n + 2 * padding - kernel) // stride + 1


def pool_out(n: int) -> int:
    """Output length of DSResNet's 2x2 max pooling with stride 2."""
    return conv_out(n, kernel=2, stride=2)


def upsample_out(n: int) -> int:
    """Output length of x2 upsampling."""
    return 2 * n


# book/shapes.md, line 99
PREP_CHANNELS = (16, 32)
ENCODER_CHANNELS = (64, 128, 256, 512)
DECODER_CHANNELS = (256, 128, 64, 32, 16)
DIVISOR = 2 ** 5  # five halvings between the input and the decoder's 7x7 start
MIN_SIZE = 2 * DIVISOR  # the encoder's last (discarded) pooling needs at least 2x2 to pool


class Stage(NamedTuple):
    """One tensor in the forward pass: the module that makes it and its (C, H, W)."""

    module: str
    output: str
    channels: int
    height: int
    width: int


# book/shapes.md, line 129
def _encoder_block(name: str, channels: int, h: int, w: int) -> list[Stage]:
    # The double conv (3x3, padding 1) and the 1x1 shortcut keep the size; pooling halves it.
    h, w = conv_out(h, 3, 1, 1), conv_out(w, 3, 1, 1)
    return [Stage(name, "skip", channels, h, w), Stage(name, "pooled", channels, pool_out(h), pool_out(w))]


def shape_table(height: int, width: int | None = None) -> list[Stage]:
    """Every stage of DSResNet for a ``height x width`` input (square when ``width`` is None).

    Raises ``ValueError`` for sizes the network cannot take (see ``check_input_size``).
    """
    width = height if width is None else width
    check_input_size(height, width)
    rows = [Stage("input", "bg, bg_fg", 3, height, width)]
    for branch in ("bg_prep", "bg_fg_prep"):
        h, w = height, width
        for i, channels in enumerate(PREP_CHANNELS, start=1):
            skip, pooled = _encoder_block(f"{branch}.block{i}", channels, h, w)
            rows += [skip, pooled]
            h, w = pooled.height, pooled.width
    rows.append(Stage("merge", "features", PREP_CHANNELS[-1], h, w))
    for i, channels in enumerate(ENCODER_CHANNELS, start=1):
        skip, pooled = _encoder_block(f"encoder.block{i}", channels, h, w)
        rows += [skip, pooled]
        h, w = pooled.height, pooled.width
    bottom = skip  # the decoder starts before the last pooling
    for head in ("depth_head", "mask_head"):
        h, w = bottom.height, bottom.width
        for i, channels in enumerate(DECODER_CHANNELS, start=1):
            h, w = upsample_out(h), upsample_out(w)  # check_input_size made this meet the skip
            rows.append(Stage(f"{head}.block{i}", "features", channels, h, w))
        rows.append(Stage(f"{head}.out", "logits", 1, h, w))
    return rows


# book/shapes.md, line 192
def nearest_valid_sizes(n: int) -> list[int]:
    """The valid sizes just below and above ``n`` (one size when ``n`` is below the minimum)."""
    below = n // DIVISOR * DIVISOR
    candidates = [s for s in (below, below + DIVISOR) if s >= MIN_SIZE]
    return candidates or [MIN_SIZE]


def size_problem(name: str, n: int) -> str | None:
    """Why ``n`` is not a valid input height/width, or None when it is."""
    if n >= MIN_SIZE and n % DIVISOR == 0:
        return None
    hint = " or ".join(str(s) for s in nearest_valid_sizes(n))
    if n < MIN_SIZE:
        return f"input {name} {n} is too small (the minimum is {MIN_SIZE}); use {hint}"
    return f"input {name} {n} is not divisible by {DIVISOR}; use {hint}"


def check_input_size(height: int, width: int) -> None:
    """Raise ``ValueError`` naming every invalid dimension and the nearest valid sizes."""
    problems = [p for p in (size_problem("height", height), size_problem("width", width)) if p]
    if problems:
        raise ValueError("; ".join(problems))

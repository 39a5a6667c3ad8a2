"""dsnet: DSResNet, a two-input encoder-decoder that predicts the foreground's mask and the
scene's depth from a background image (BG) and the same scene with a foreground (BG-FG).

>>> import dsnet
>>> model = dsnet.DSResNet()
>>> depth_logits, mask_logits = model(bg, bg_fg)   # (B, 3, H, W) each -> (B, 1, H, W) each
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dsnet._version import __version__

# Public name -> module. Imported on first use, so that `python -m dsnet.sync` can run
# (and repair) a checkout whose generated modules are missing or stale, and so that
# `import dsnet` stays cheap.
_EXPORTS = {
    "DoubleConvBlock": "dsnet.blocks",
    "ResEncoderBlock": "dsnet.blocks",
    "ResDecoderBlock": "dsnet.blocks",
    "DSResNet": "dsnet.model",
    "Prediction": "dsnet.model",
    "check_inputs": "dsnet.model",
    "traced_shapes": "dsnet.model",
    "SyntheticMuseum": "dsnet.data",
    "InputStats": "dsnet.data",
    "museum_batch": "dsnet.scene",
    "Realism": "dsnet.scene",
    "clear_caches": "dsnet.scene_assets",
    "ModestMuseum": "dsnet.modest",
    "write_modest": "dsnet.modest",
    "build_loss": "dsnet.losses",
    "SegDepthMetrics": "dsnet.metrics",
    "TrainConfig": "dsnet.train",
    "make_config": "dsnet.train",
    "train": "dsnet.train",
    "predict": "dsnet.inference",
    "load_predictor": "dsnet.inference",
    "PredictOptions": "dsnet.inference",
    "PredictionResult": "dsnet.inference",
    "export_model": "dsnet.export",
    "load_exported": "dsnet.export",
    "lr_range_test": "dsnet.lr_finder",
    "load_model": "dsnet.io",
    "load_pretrained": "dsnet.io",
    "Stage": "dsnet.shapes",
    "check_input_size": "dsnet.shapes",
    "shape_table": "dsnet.shapes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dsnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


if TYPE_CHECKING:
    from dsnet.blocks import DoubleConvBlock, ResDecoderBlock, ResEncoderBlock
    from dsnet.data import InputStats, SyntheticMuseum
    from dsnet.export import export_model, load_exported
    from dsnet.inference import PredictionResult, PredictOptions, load_predictor, predict
    from dsnet.io import load_model, load_pretrained
    from dsnet.lr_finder import lr_range_test
    from dsnet.losses import build_loss
    from dsnet.metrics import SegDepthMetrics
    from dsnet.modest import ModestMuseum, write_modest
    from dsnet.scene import Realism, museum_batch
    from dsnet.scene_assets import clear_caches
    from dsnet.train import TrainConfig, make_config, train
    from dsnet.model import DSResNet, Prediction, check_inputs, traced_shapes
    from dsnet.shapes import Stage, check_input_size, shape_table

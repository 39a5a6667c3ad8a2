"""The weights shipped inside the package: complete, and as good as their manifest says."""
import json

import pytest
import torch

from dsnet.io import file_sha256, load_pretrained, pretrained_files, pretrained_manifest
from dsnet.losses import build_loss
from dsnet.train import Ranks, eval_batches, evaluate, make_config

files = pretrained_files()


def test_the_manifest_says_how_the_weights_were_made():
    manifest = pretrained_manifest()
    for key in ("command", "machine", "wall_seconds", "image_size", "stages", "epochs", "config", "test",
                "test_split", "dsnet_version", "weights_sha256"):
        assert key in manifest, key
    assert manifest["weights_sha256"] == file_sha256(files["weights"])  # what load_pretrained checks
    history = json.loads(files["history"].read_text())
    assert len(history) == manifest["epochs"] and history[-1]["size"] == manifest["image_size"]
    assert manifest["wall_seconds"] == round(sum(h["seconds"] for h in history))


def test_the_shipped_weights_reproduce_the_manifests_test_metrics():
    manifest = pretrained_manifest()
    config = make_config(**{k: tuple(map(tuple, v)) if k == "stages" else v
                            for k, v in manifest["config"].items()} | {"device": "cpu"})
    model = load_pretrained("cpu")
    batches = eval_batches(config, "test", manifest["image_size"], torch.device("cpu"), Ranks())
    test = evaluate(model, batches, build_loss(config.loss), config)
    for name in ("mask_iou", "mask_soft_iou", "depth_rmse"):
        assert test[name] == pytest.approx(manifest["test"][name], abs=2e-3), name

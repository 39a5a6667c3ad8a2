"""The weights shipped inside the package: complete, and as good as their manifest says."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

import dsnet.io
from dsnet.io import file_sha256, load_pretrained, pretrained_files, pretrained_manifest, save_checkpoint
from dsnet.losses import build_loss
from dsnet.train import Ranks, TrainConfig, data_source, evaluate

files = pretrained_files()
TOOLS = Path(__file__).resolve().parent.parent / "tools"


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
    config = TrainConfig.from_dict({**manifest["config"], "device": "cpu", "realism": "none"})  # the plain split
    model = load_pretrained("cpu")
    batches = data_source(config).eval_batches("test", manifest["image_size"], torch.device("cpu"), Ranks())
    test = evaluate(model, batches, build_loss(config.loss), config)
    for name in ("mask_iou", "mask_soft_iou", "depth_rmse"):
        assert test[name] == pytest.approx(manifest["test"][name], abs=2e-3), name


def test_shipping_writes_the_hash_that_load_pretrained_checks(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ship_pretrained", TOOLS / "ship_pretrained.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    manifest = pretrained_manifest()
    config = manifest["config"] | {"stages": [[64, 1]], "test_samples": 4, "device": "cpu"}
    run = tmp_path / "run"
    save_checkpoint({"model": load_pretrained().state_dict(), "config": config, "dsnet_version": "0.0.test",
                     "history": [{"size": 64, "seconds": 1.0}]}, run / "best.pt")
    package = {name: tmp_path / "package" / path.name for name, path in files.items()}
    monkeypatch.setattr(ship, "pretrained_files", lambda: package)
    monkeypatch.setattr(ship, "PROXY", dict(count=2, size=64, seed=0))          # a short proxy: this tests the files
    monkeypatch.setattr(dsnet.io, "pretrained_files", lambda: package)
    assert ship.main([str(run), "--command", "test", "--machine", "test"]) == 0
    shipped = json.loads(package["manifest"].read_text())
    assert shipped["weights_sha256"] == file_sha256(package["weights"])
    assert set(shipped["proxy"]) == {"lossless", "jpeg75", "pairs", "size"} and shipped["proxy"]["pairs"] == 2
    assert load_pretrained().train_size == 64                      # the hash matches: it loads
    package["weights"].write_bytes(package["weights"].read_bytes()[:-2] + b"\x00\x00")
    with pytest.raises(dsnet.io.CheckpointError, match="SHA-256 differs .*; reinstall dsnet"):
        load_pretrained()


def test_new_weights_ship_only_when_synthetic_holds_and_the_proxy_improves_or_the_reverse():
    spec = importlib.util.spec_from_file_location("ship_pretrained", TOOLS / "ship_pretrained.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    old, old_proxy = {"mask_iou": 0.950, "depth_rmse": 0.060}, {"lossless": 0.90, "jpeg75": 0.88}
    slightly_worse = {"mask_iou": 0.949, "depth_rmse": 0.0605}       # within the noise: it holds
    clearly_worse = {"mask_iou": 0.940, "depth_rmse": 0.060}
    better_proxy, worse_proxy = {"lossless": 0.93, "jpeg75": 0.92}, {"lossless": 0.93, "jpeg75": 0.85}
    assert ship.better(slightly_worse, old, better_proxy, old_proxy)
    assert not ship.better(clearly_worse, old, better_proxy, old_proxy)
    assert not ship.better(slightly_worse, old, worse_proxy, old_proxy)
    assert ship.better({"mask_iou": 0.96, "depth_rmse": 0.05}, old, {"lossless": 0.899, "jpeg75": 0.88}, old_proxy)
    assert not ship.better(old, old, old_proxy, old_proxy)            # nothing gained
    results = (TOOLS.parent / "book" / "training_results.md").read_text()   # the book states the rule
    assert (f"(mask IoU at most {ship.SYNTHETIC_SLACK['mask_iou']} lower, depth RMSE at most "
            f"{ship.SYNTHETIC_SLACK['depth_rmse']} higher)") in " ".join(results.split())

"""The prepared GPU run (tools/gpu_run.sh) cannot rot: its CPU dry run makes every step and every
file the real run makes, at tiny settings (smoke profile, 64 px, two timed steps)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_dry_run_makes_every_output(tmp_path):
    env = {**os.environ, "DSNET_GPU_RUN": "dry"}
    result = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh"), str(tmp_path)], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 failed step(s)" in result.stdout
    bench = json.loads((tmp_path / "benchmarks" / "dry-run-cpu.json").read_text())
    assert [row["size"] for row in bench["rows"]] == [64] and bench["rows"][0]["speedup"]["train"] > 0
    assert set(json.loads((tmp_path / "runs" / "smoke" / "test.json").read_text())) >= {"mask_iou", "depth_rmse"}
    assert json.loads((tmp_path / "train_wall.json").read_text())["profile"] == "smoke"
    manifest = json.loads((tmp_path / "shipped" / "manifest.json").read_text())
    assert manifest["image_size"] == 64 and len(manifest["weights_sha256"]) == 64
    assert (tmp_path / "export" / "dsresnet.pt2").is_file()
    log = (tmp_path / "log.txt").read_text()
    assert '"check": "fp16"' in log and '"scaler_enabled": true' in log
    assert "the shipped weights: mask IoU" in log  # the comparison with what ships is printed


def test_the_script_never_starts_itself_again(tmp_path):
    env = {**os.environ, "DSNET_GPU_RUN": "dry", "DSNET_GPU_RUN_ACTIVE": "1"}
    result = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh"), str(tmp_path)], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 2 and "already running" in result.stderr
    assert not any(tmp_path.iterdir())

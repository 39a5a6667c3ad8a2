"""``dsnet bench`` and the renderer bench of ``dsnet data bench``: a tiny run has the promised
structure (no timing assertions)."""
from __future__ import annotations

import argparse
import json
import math

import pytest

from dsnet import scene
from dsnet.bench import bench_renderer, format_renderer, forward_flops, format_table, run_bench
from dsnet.commands import bench as bench_command
from dsnet.cli import UsageError


def positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def report():
    return run_bench([64], steps=2, warmup=1, batch_size=2, device="cpu", workers=0)


def test_tiny_run_has_sane_structure(report):
    assert report["device_type"] == "cpu" and report["batch_size"] == 2 and report["steps"] == 2
    (row,) = report["rows"]
    assert row["size"] == 64 and row["amp_dtype"] == "float32"            # CPU trains in float32
    assert row["forward_gflops_per_image"] == pytest.approx(forward_flops(64) / 1e9)
    for path in ("plain", "fast"):
        assert all(positive(row[path][k]) for k in ("train_ips", "infer_ips", "train_tflops", "infer_tflops"))
        # a training step counts three forward passes
        assert row[path]["train_tflops"] == pytest.approx(3 * forward_flops(64) * row[path]["train_ips"] / 1e12)
    assert positive(row["speedup"]["train"]) and positive(row["speedup"]["infer"])
    assert row["speedup"]["train"] == pytest.approx(row["fast"]["train_ips"] / row["plain"]["train_ips"])
    assert positive(row["generator_ips"]) and positive(row["generator_over_trainer"])
    json.dumps(report)                                                      # JSON-able as it is
    table = format_table(report)
    assert "fast / plain" in table and "generator" in table and "plain (fp32, JPEG)" in table


def test_flops_grow_with_the_area():
    assert forward_flops(128) == pytest.approx(4 * forward_flops(64), rel=0.01)


def parse(argv):
    parser = argparse.ArgumentParser()
    bench_command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


def test_command_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = parse(["--sizes", "64", "--steps", "1", "--warmup", "0", "--batch-size", "2", "--device", "cpu",
                  "--workers", "0", "--quiet", "--json", str(out)])
    assert args.func(args) == 0
    assert "fast / plain" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["rows"][0]["size"] == 64 and saved["rows"][0]["speedup"]["train"] > 0
    assert saved["command"] == ("dsnet bench --sizes 64 --steps 1 --warmup 0 --batch-size 2 --device cpu "
                                "--workers 0")


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "100"], "not divisible by 32"),
    (["--steps", "0"], "steps >= 1"),
    (["--device", "nonsense"], "device 'nonsense' is not available"),
])
def test_bad_input_is_a_usage_error(argv, message):
    args = parse(["--device", "cpu", *argv] if "--device" not in argv else argv)
    with pytest.raises(UsageError, match=message):
        args.func(args)


def test_renderer_bench_is_json_and_prints_one_line_per_size():
    report = bench_renderer([16, 8], batch_size=2, repeats=2, device="cpu", realism="camera")
    assert json.loads(json.dumps(report)) == report
    assert report["device"] == "cpu" and report["realism"] == "camera" and report["repeats"] == 2
    assert [row["size"] for row in report["rows"]] == [16, 8]
    assert all(positive(row["samples_per_s"]) for row in report["rows"])
    lines = format_renderer(report).splitlines()
    assert lines[0] == f"device cpu, {report['threads']} CPU threads, batch 2, median of 2, realism camera"
    assert lines[1] == f"   16 x 16    {report['rows'][0]['samples_per_s']:8.1f} samples/s" and len(lines) == 3


@pytest.mark.parametrize("settings, message", [
    ({"sizes": [4]}, f"size must be from 8 to {scene.MAX_SIZE} pixels, not 4"),
    ({"sizes": [16, scene.MAX_SIZE + 1]}, f"size must be from 8 to {scene.MAX_SIZE} pixels, not {scene.MAX_SIZE + 1}"),
    ({"batch_size": 0}, "batch_size >= 1"),
    ({"repeats": 0}, "repeats >= 1"),
    ({"device": "tpu"}, "device 'tpu' is not available"),
    ({"realism": "glossy"}, "unknown realism 'glossy'"),
])
def test_renderer_bench_refuses_bad_settings_before_rendering(monkeypatch, settings, message):
    def museum_batch(*args, **kwargs):
        raise AssertionError("the renderer ran although a setting was refused")

    monkeypatch.setattr(scene, "museum_batch", museum_batch)
    with pytest.raises(ValueError, match=message):
        bench_renderer(**{"sizes": [16], "batch_size": 2, "repeats": 1, "device": "cpu", **settings})

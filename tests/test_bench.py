"""``dsnet bench``: a tiny run has the promised structure (no timing assertions)."""
from __future__ import annotations

import argparse
import json
import math

import pytest

from dsnet.bench import forward_flops, format_table, run_bench
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

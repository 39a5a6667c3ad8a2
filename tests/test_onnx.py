"""dsnet.onnx_export and ``dsnet export --format onnx``: one self-contained file that ONNX Runtime
runs like PyTorch, a comparison that catches a wrong graph, and refusals that happen before any work.

The shipped weights are exported once, as the book's build exports them for the page "Try it in
your browser" (:func:`dsnet.site_assets.make_page_data`, into ``_build/try_data``, like the
chapters' runs go into the book's cache: the build then reuses the file instead of exporting again),
and the tests share that file; the command's own test reuses its graph instead of tracing again.
Tolerance: 1e-4 absolute on outputs in [0, 1] (float32 arithmetic in both; the differences seen
are about 1e-6).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import dsnet.onnx_export
from dsnet.cli import main
from dsnet.data import MODEST_STATS
from dsnet.export import Deployable, contract_path
from dsnet.io import load_pretrained
from dsnet.onnx_export import TOLERANCE, export_onnx, max_onnx_difference, onnx_runner
from dsnet.site_assets import make_page_data

SIZES = ((1, 3, 64, 96), (2, 3, 128, 128))   # two sizes (and two batch sizes), neither the traced one


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def onnx_file() -> Path:
    """The shipped weights exported to ONNX by :func:`dsnet.onnx_export.export_onnx`, where the
    book's build keeps the data of the page "Try it in your browser" (made now unless it is current)."""
    folder = ROOT / "_build" / "try_data"
    make_page_data(folder)
    return folder / "dsresnet.onnx"


@pytest.fixture(scope="module")
def pytorch() -> Deployable:
    """What the file was exported from: the shipped weights with normalization and sigmoids."""
    return Deployable(load_pretrained("cpu").float()).eval()


def _inputs(shape: tuple[int, ...], seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(*shape, generator=generator).numpy() for _ in range(2))


def test_onnx_runtime_matches_pytorch_at_two_sizes(onnx_file, pytorch):
    run, name = onnx_runner(onnx_file)
    assert name.startswith("onnxruntime ")
    for shape in SIZES:
        bg, bg_fg = _inputs(shape)
        depth, mask = run(bg, bg_fg)
        with torch.inference_mode():
            want_depth, want_mask = pytorch(torch.from_numpy(bg), torch.from_numpy(bg_fg))
        assert depth.shape == mask.shape == (shape[0], 1, *shape[2:])
        np.testing.assert_allclose(depth, want_depth.numpy(), atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(mask, want_mask.numpy(), atol=TOLERANCE, rtol=0)
        assert 0 <= mask.min() and mask.max() <= 1 and 0 <= depth.min() and depth.max() <= 1


def test_one_file_with_float16_weights_free_axes_and_its_contract(onnx_file):
    assert 18e6 < onnx_file.stat().st_size < 24e6                    # 10.3 M weights at 2 bytes
    model = onnx.load(str(onnx_file), load_external_data=False)
    assert not [i.name for i in model.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    halves = sum(numpy_helper.to_array(i).size for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16)
    assert halves > 10_300_000
    assert {n.op_type for n in model.graph.node} >= {"Cast", "Conv", "Sigmoid"}
    axes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*model.graph.input, *model.graph.output]}
    assert axes == {"bg": ["batch", 3, "height", "width"], "bg_fg": ["batch", 3, "height", "width"],
                    "depth": ["batch", 1, "height", "width"], "mask_prob": ["batch", 1, "height", "width"]}
    contract = json.loads(contract_path(onnx_file).read_text())
    assert contract["format"] == "onnx" and contract["artifact"] == "dsresnet.onnx"
    assert contract["input_names"] == ["bg", "bg_fg"]
    assert contract["output_names"] == ["depth", "mask_prob"] == [o["name"] for o in contract["outputs"]]
    assert contract["value_range"] == {"inputs": [0.0, 1.0], "outputs": [0.0, 1.0]}
    assert contract["normalization"]["applied_inside"] is True
    assert contract["normalization"]["bg_fg"]["std"] == list(MODEST_STATS["bg_fg"][1])
    assert contract["train_size"] == load_pretrained().train_size
    assert contract["max_abs_difference_vs_pytorch"] <= TOLERANCE
    assert contract["max_abs_difference_float16_weights_vs_source"] == 0.0   # the shipped weights are float16


def test_the_command_writes_the_file_and_its_contract(onnx_file, tmp_path, monkeypatch, capsys):
    traced = onnx.load(str(onnx_file))
    monkeypatch.setattr(dsnet.onnx_export, "to_onnx", lambda module: traced)    # traced once, by the fixture
    path = tmp_path / "dsresnet.onnx"
    for extra in ([], ["--overwrite"]):                 # the second replaces the first
        assert main(["export", "--format", "onnx", "--out", str(path), *extra]) == 0
        printed = json.loads(capsys.readouterr().out)
    contract = json.loads(contract_path(path).read_text())
    assert printed == {k: contract[k] for k in ("artifact", "format", "checked_with", "max_abs_difference_vs_pytorch")}
    assert contract["checked_with"].startswith("onnxruntime ") and contract["source"] == "pretrained"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dsresnet.onnx", "dsresnet.onnx.json"]
    assert path.read_bytes() == traced.SerializeToString()


def _perturbed(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with one weight of its first convolution changed by 0.05 (a float16 initializer)."""
    wrong = onnx.ModelProto()
    wrong.CopyFrom(model)
    first_conv = next(n for n in wrong.graph.node if n.op_type == "Conv")
    name = next(n.input[0] for n in wrong.graph.node if n.op_type == "Cast" and n.output[0] == first_conv.input[1])
    initializer = next(i for i in wrong.graph.initializer if i.name == name)
    values = numpy_helper.to_array(initializer).copy()
    values.flat[0] += np.float16(0.05)
    initializer.CopyFrom(numpy_helper.from_array(values, name))
    return wrong


def test_a_wrong_graph_fails_the_comparison(onnx_file, pytorch, tmp_path):
    run, _ = onnx_runner(onnx_file)
    assert max_onnx_difference(run, pytorch, SIZES) <= TOLERANCE
    wrong = tmp_path / "wrong.onnx"
    onnx.save(_perturbed(onnx.load(str(onnx_file))), str(wrong))
    assert max_onnx_difference(onnx_runner(wrong)[0], pytorch, SIZES) > TOLERANCE
    raw = load_pretrained("cpu").float().eval()                  # the network without the normalization
    assert max_onnx_difference(run, lambda bg, bg_fg: tuple(torch.sigmoid(o) for o in raw(bg, bg_fg)), SIZES) > 0.01


def test_without_onnx_runtime_the_reference_evaluator_checks(onnx_file, pytorch, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)    # import onnxruntime fails
    run, name = onnx_runner(onnx_file)
    assert name == "onnx reference evaluator"
    assert max_onnx_difference(run, pytorch, SIZES[:1]) <= TOLERANCE


def test_an_export_that_fails_its_check_leaves_nothing(onnx_file, tmp_path, monkeypatch):
    broken = _perturbed(onnx.load(str(onnx_file)))
    monkeypatch.setattr(dsnet.onnx_export, "to_onnx", lambda module: broken)
    with pytest.raises(RuntimeError, match="the ONNX model differs from the PyTorch one by"):
        export_onnx(None, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture()
def no_export(monkeypatch):
    def export(*args, **kwargs):
        raise AssertionError("exported although the command was refused")

    monkeypatch.setattr(dsnet.onnx_export, "to_onnx", export)


def _refused(capsys, *args: str) -> str:
    code = main(["export", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cli_refusals_come_before_any_work(tmp_path, capsys, monkeypatch, no_export):
    existing = tmp_path / "m.onnx"
    existing.write_text("mine")
    err = _refused(capsys, "--format", "onnx", "--out", str(existing))
    assert "m.onnx exists already" in err and "--overwrite" in err and existing.read_text() == "mine"
    err = _refused(capsys, "--out", str(tmp_path / "n.onnx"), "--size", "64")
    assert "--size is for a torch.export program" in err
    err = _refused(capsys, "--out", str(tmp_path / "n.bin"))
    assert "cannot tell the format from 'n.bin': use a .pt2, .ts or .onnx file" in err
    monkeypatch.setattr(dsnet.onnx_export, "_importable", lambda name: name != "onnxscript")
    err = _refused(capsys, "--out", str(tmp_path / "n.onnx"))
    assert "ONNX export needs onnxscript: pip install 'dsnet[onnx]'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_cli_refuses_an_unknown_format(tmp_path, capsys, no_export):
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--format", "onyx", "--out", str(tmp_path / "m.onnx")])
    _, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert "argument --format: invalid choice: 'onyx'" in err
    assert all(name in err.splitlines()[-1] for name in ("export", "torchscript", "onnx"))
    assert list(tmp_path.iterdir()) == []

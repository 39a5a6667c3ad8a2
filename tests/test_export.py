"""dsnet.export: artifacts that match the eager model, their input contract, and clean failures."""
from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import dsnet.export
from dsnet.cli import main
from dsnet.data import MODEST_STATS
from dsnet.export import Deployable, contract_path, export_model, format_of, load_exported
from dsnet.io import CheckpointError, load_model
from dsnet.inference import predict


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> tuple[Path, list[str]]:
    """A torch.export program, and every Python warning and torch log warning its export gave."""
    path = tmp_path_factory.mktemp("export") / "dsresnet.pt2"
    logs, loggers = Collect(), [logging.getLogger(name) for name in ("torch", "torch.export")]  # the second
    for logger in loggers:                                                      # does not propagate
        logger.addHandler(logs)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            export_model(checkpoint, path)
    finally:
        for logger in loggers:
            logger.removeHandler(logs)
    return path, [str(w.message) for w in caught] + logs.messages


@pytest.fixture(scope="module")
def program(exported) -> Path:
    return exported[0]


def test_a_successful_export_warns_about_nothing(exported):
    assert exported[1] == []


def inputs(batch: int, height: int, width: int, seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, height, width, generator=g), torch.rand(batch, 3, height, width, generator=g)


def test_torch_export_matches_eager_and_predict(program, checkpoint):
    artifact = load_exported(program)
    eager = Deployable(load_model(checkpoint)).eval()
    for batch in (1, 4):
        bg, bg_fg = inputs(batch, 64, 64)
        with torch.inference_mode():
            got, want = artifact(bg, bg_fg), eager(bg, bg_fg)
        for a, b in zip(got, want):
            assert a.shape == (batch, 1, 64, 64)
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    reference = predict(bg, bg_fg, model=checkpoint, device="cpu", align=False)   # the artifact does not align
    np.testing.assert_allclose(got[0][:, 0].numpy(), reference.depth, atol=1e-5)
    np.testing.assert_allclose(got[1][:, 0].numpy(), reference.mask_prob, atol=1e-5)
    with pytest.raises(Exception):
        artifact(*inputs(1, 96, 64))                      # one image size, as the contract says


def test_the_contract_is_written_next_to_the_artifact(program):
    contract = json.loads(contract_path(program).read_text())
    assert contract_path(program).name == "dsresnet.pt2.json"
    assert contract["format"] == "export" and contract["artifact"] == "dsresnet.pt2"
    assert contract["image_size"] == [64, 64] and contract["train_size"] == 64
    assert "exactly 64 x 64" in contract["inputs"]["sizes"] and "[0, 1]" in contract["inputs"]["bg"]
    assert contract["normalization"]["applied_inside"] is True
    assert contract["inputs"]["alignment"].startswith("not inside")
    assert contract["normalization"]["bg"]["mean"] == list(MODEST_STATS["bg"][0])
    assert contract["normalization"]["bg_fg"]["std"] == list(MODEST_STATS["bg_fg"][1])
    assert [o["name"] for o in contract["outputs"]] == ["depth", "mask_prob"]
    assert contract["max_abs_difference_vs_eager"] <= 1e-4
    assert not [p.name for p in program.parent.iterdir() if p.name.startswith(".")]   # no temporary files left


@pytest.fixture(scope="module")
def script(checkpoint, tmp_path_factory) -> Path:
    """A TorchScript export made by the ``dsnet export`` command."""
    path = tmp_path_factory.mktemp("script") / "m.ts"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(path)]) == 0
    return path


def test_torchscript_takes_any_valid_size(script, checkpoint):
    contract = json.loads(contract_path(script).read_text())
    assert contract["format"] == "torchscript" and "divisible by 32" in contract["inputs"]["sizes"]
    artifact, eager = load_exported(script), Deployable(load_model(checkpoint)).eval()
    for shape in ((2, 64, 64), (1, 96, 128)):
        bg, bg_fg = inputs(*shape)
        with torch.inference_mode():
            for a, b in zip(artifact(bg, bg_fg), eager(bg, bg_fg)):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert sorted(p.name for p in script.parent.iterdir()) == ["m.ts", "m.ts.json"]


def test_format_errors_and_failed_checks_leave_nothing(checkpoint, tmp_path, monkeypatch):
    assert format_of("a.pt2") == "export" and format_of("a.ts") == "torchscript"
    assert format_of("a.bin", "torchscript") == "torchscript"
    with pytest.raises(ValueError, match="cannot tell the format from 'a.onnx'"):
        format_of("a.onnx")
    with pytest.raises(ValueError, match="format must be one of export, torchscript"):
        format_of("a.pt2", "onnx")
    with pytest.raises(ValueError, match="input height 100 is not divisible by 32"):
        export_model(checkpoint, tmp_path / "x.pt2", size=100)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt.pt is not a readable dsnet checkpoint"):
        export_model(corrupt, tmp_path / "y.ts")
    monkeypatch.setattr(dsnet.export, "TOLERANCE", -1.0)  # no artifact can pass: the export must fail cleanly
    with pytest.raises(RuntimeError, match="differs from the eager one"):
        export_model(checkpoint, tmp_path / "z.ts")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt"]
    with pytest.raises(FileNotFoundError):
        load_exported(tmp_path / "z.ts")
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt2 is not a readable export artifact"):
        load_exported(tmp_path / "junk.pt2")


def test_cli_export_errors(checkpoint, tmp_path, capsys):
    for args, message in ((["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "a.pt2")], "does not exist"),
                          (["--checkpoint", str(checkpoint), "--out", str(tmp_path / "a.bin")], "cannot tell the format"),
                          (["--checkpoint", str(checkpoint), "--out", str(tmp_path)], "is a folder"),
                          (["--checkpoint", str(checkpoint), "--out", str(tmp_path / "b.pt2"), "--size", "1", "2", "3"],
                           "--size takes N or H W")):
        code = main(["export", *args])
        out, err = capsys.readouterr()
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_destination_fails_before_any_export_work(checkpoint, tmp_path, monkeypatch, capsys):
    (tmp_path / "a_file").write_text("")

    def no_export(*args, **kwargs):
        raise AssertionError("exported before checking the destination")

    monkeypatch.setattr(dsnet.export, "_write", no_export)
    start = time.perf_counter()
    with pytest.raises(NotADirectoryError, match=r"cannot write .*a_file/sub/m.pt2: .*a_file is a file, not a folder"):
        export_model(checkpoint, tmp_path / "a_file" / "sub" / "m.pt2")
    with pytest.raises(ValueError, match="is a folder; name the file to write"):
        export_model(checkpoint, tmp_path)
    code = main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "a_file" / "m.pt2")])
    _, err = capsys.readouterr()
    assert code == 2 and err.strip() == (f"dsnet export: error: cannot write {tmp_path / 'a_file' / 'm.pt2'}: "
                                         f"{tmp_path / 'a_file'} is a file, not a folder")
    assert time.perf_counter() - start < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]

"""Loading refuses damaged, foreign and unsafe files with one sentence each, and loads intact ones."""
from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dsnet.io
from dsnet.io import (CHECKPOINT_FORMAT, CheckpointError, file_sha256, load_checkpoint, load_model,
                      load_pretrained, pretrained_files, pretrained_manifest, read_weights, save_checkpoint)

SHIPPED = pretrained_files()
pytestmark = pytest.mark.skipif(not SHIPPED["weights"].is_file(), reason="this dsnet ships no weights")


def one_line(error: pytest.ExceptionInfo) -> str:
    """The error's message, asserted to be a single line of plain text (no terminal colour codes)."""
    message = str(error.value)
    assert "\n" not in message and "\x1b" not in message, message
    return message


def damage(path: Path) -> str:
    """Overwrite 4,096 bytes in the middle of the largest tensor's data with 0xFF (NaN in fp16), as a
    disk or transfer error would; the name of that tensor."""
    data = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    name, entry = max(((k, v) for k, v in header.items() if k != "__metadata__"),
                      key=lambda item: item[1]["data_offsets"][1] - item[1]["data_offsets"][0])
    begin, end = entry["data_offsets"]
    at = 8 + length + (begin + end) // 2
    data[at:at + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))
    return name


@pytest.fixture
def package(tmp_path, monkeypatch) -> dict[str, Path]:
    """A copy of the shipped weights, manifest and history that load_pretrained reads instead."""
    files = {name: Path(shutil.copy(path, tmp_path / path.name)) for name, path in SHIPPED.items()}
    monkeypatch.setattr(dsnet.io, "pretrained_files", lambda: files)
    return files


def test_flipped_bytes_in_weights_are_refused_naming_the_file_and_tensor(tmp_path):
    weights = Path(shutil.copy(SHIPPED["weights"], tmp_path / "flipped.safetensors"))
    name = damage(weights)
    assert not torch.isfinite(load_file(str(weights))[name]).all()   # the damage is there, the header intact
    for load in (read_weights, load_model):
        with pytest.raises(CheckpointError) as error:
            load(weights)
        message = one_line(error)
        assert f"{weights} is damaged: " in message and name in message and "inf or NaN" in message


def test_shipped_weights_that_differ_from_the_manifest_hash_are_refused(package):
    manifest = json.loads(package["manifest"].read_text())
    assert manifest["weights_sha256"] == file_sha256(package["weights"])
    damage(package["weights"])
    with pytest.raises(CheckpointError) as error:
        load_pretrained()
    assert one_line(error) == (f"{package['weights']} is damaged (its SHA-256 differs from the one in "
                               "manifest.json); reinstall dsnet")

    # without a hash in the manifest, the damaged values themselves are still refused
    package["manifest"].write_text(json.dumps({k: v for k, v in manifest.items() if k != "weights_sha256"}))
    with pytest.raises(CheckpointError, match="dsresnet.safetensors is damaged: .* inf or NaN"):
        load_pretrained()
    package["manifest"].write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json is missing or unreadable; reinstall dsnet"):
        load_pretrained()


def test_the_hash_is_computed_once_per_file_version(package, monkeypatch):
    calls = []
    monkeypatch.setattr(dsnet.io, "file_sha256", lambda path: calls.append(path) or file_sha256(path))
    first, second = load_pretrained(), load_pretrained()
    assert len(calls) == 1 and first.train_size == second.train_size == pretrained_manifest()["image_size"]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))

    damage(package["weights"])                     # changed in place after a good load: checked again
    info = package["weights"].stat()
    os.utime(package["weights"], ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_pretrained()
    assert len(calls) == 2


def test_checkpoints_with_nan_or_inf_weights_are_refused(tmp_path):
    state = load_pretrained().state_dict()
    first, second = [k for k, v in state.items() if v.is_floating_point()][:2]
    for bad, names, verb in (({first: float("nan")}, first, "holds"),
                             ({first: float("nan"), second: float("-inf")}, f"{first}, {second}", "hold")):
        damaged = dict(state)
        for name, value in bad.items():
            damaged[name] = state[name].clone()
            damaged[name].view(-1)[-1] = value
        path = save_checkpoint({"model": damaged, "epoch": 3}, tmp_path / f"bad{len(bad)}.pt")
        for load in (load_checkpoint, load_model):     # load_checkpoint is what train --resume uses
            with pytest.raises(CheckpointError) as error:
                load(path)
            assert one_line(error) == (f"{path} is damaged: {names} {verb} inf or NaN values; "
                                       "replace it with an intact copy")


def test_load_model_takes_a_run_folder_and_says_when_it_has_no_best_checkpoint(tmp_path):
    shipped = load_pretrained()
    run = tmp_path / "run"
    save_checkpoint({"model": shipped.state_dict(), "config": {"stages": [[64, 2], [96, 1]]}}, run / "best.pt")
    model = load_model(run)
    assert not model.training and model.train_size == 96
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values()))

    (run / "best.pt").rename(run / "last.pt")
    with pytest.raises(CheckpointError) as error:
        load_model(run)
    message = one_line(error)
    assert message.startswith(f"{run} is a folder without best.pt") and "does not exist" not in message


def test_a_checkpoint_whose_model_is_not_a_state_dict_is_refused(tmp_path):
    path = save_checkpoint({"model": [torch.zeros(3)], "epoch": 1}, tmp_path / "list.pt")
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    assert one_line(error) == f"{path} is a dsnet checkpoint without model weights"


class Payload:
    """Unpickling this would run a shell command: what a malicious .pt looks like."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Opaque:
    """A plain class: loading it would import and run this module's code."""


def test_files_that_need_code_to_load_are_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    for name, value, needs in (("payload.pt", Payload(marker), f"{os.system.__module__}.system"),
                               ("opaque.pt", Opaque(), f"{__name__}.Opaque")):
        path = tmp_path / name
        torch.save({"format": CHECKPOINT_FORMAT, "model": value}, path)
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(path)
        assert one_line(error) == (f"{path} is not a readable dsnet checkpoint: it needs code to load ({needs}), "
                                   "and dsnet never runs code from a file")
    assert not marker.exists()


def test_files_resume_cannot_use_give_one_line_each(tmp_path):
    good = save_checkpoint({"model": {"w": torch.randn(256, 256)}, "epoch": 1}, tmp_path / "last.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(truncated)
    message = one_line(error)
    assert message.startswith(f"{truncated} is not a readable dsnet checkpoint (") and message.endswith(")")
    assert len(message) < len(str(truncated)) + 260
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"garbage")                       # not a payload: no claim that it needs code
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(garbage)
    message = one_line(error)
    assert message.startswith(f"{garbage} is not a readable dsnet checkpoint (") and "code" not in message

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(foreign)
    assert one_line(error) == f"{foreign} is not a dsnet checkpoint (no '{CHECKPOINT_FORMAT}' format tag)"

    payload = tmp_path / "payload.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": Payload(tmp_path / "ran")}, payload)
    with pytest.raises(CheckpointError, match="it needs code to load") as error:
        load_checkpoint(payload)
    one_line(error)
    assert load_checkpoint(good)["epoch"] == 1

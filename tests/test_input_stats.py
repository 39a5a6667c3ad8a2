"""How inputs are standardized travels with the weights (dsnet.data.InputStats): in the shipped
manifest, in the metadata of every weights file and in every checkpoint; loading attaches it to
the model, prediction and export use it, and files without it mean the MODEST statistics.
The options of a prediction are one frozen PredictOptions, and one loader places every model."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import dsnet
import dsnet.io
from dsnet.data import MODEST_INPUTS, MODEST_STATS, InputStats, model_inputs, normalize
from dsnet.export import Deployable, export_model
from dsnet.inference import PredictOptions, Predictor, load_predictor, predict
from dsnet.io import (CHECKPOINT_FORMAT, CheckpointError, load_model, load_pretrained, load_weights,
                      pretrained_files, pretrained_manifest, save_checkpoint, save_weights, target_device)
from dsnet.model import DSResNet

OTHER = InputStats(((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), ((0.4, 0.45, 0.5), (0.2, 0.3, 0.4)))


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(3)
    return [(torch.rand(2, 64, 96, 3, generator=g) * 255).round().to(torch.uint8).numpy() for _ in range(2)]


def test_the_statistics_round_trip_and_apply_exactly_as_training_normalizes():
    assert MODEST_INPUTS == InputStats(MODEST_STATS["bg"], MODEST_STATS["bg_fg"])
    assert InputStats.from_dict(MODEST_INPUTS.to_dict()) == MODEST_INPUTS
    assert InputStats.from_dict(json.dumps(OTHER.to_dict())) == OTHER        # safetensors stores JSON text
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODEST_INPUTS.bg = OTHER.bg
    batch = {"bg": torch.rand(2, 3, 8, 8), "bg_fg": torch.rand(2, 3, 8, 8)}
    bg, bg_fg = MODEST_INPUTS.apply(batch["bg"], batch["bg_fg"])
    want = normalize(batch)
    assert torch.equal(bg, want["bg"]) and torch.equal(bg_fg, want["bg_fg"])
    assert all(torch.equal(a, b) for a, b in zip(model_inputs(batch, False), (bg, bg_fg)))
    assert InputStats.of(DSResNet()) == MODEST_INPUTS                         # a model that carries none


@pytest.mark.parametrize("value", [
    {"bg": {"mean": [0.5, 0.5], "std": [1, 1, 1]}, "bg_fg": MODEST_INPUTS.to_dict()["bg_fg"]},
    {"bg": {"mean": [0.5] * 3, "std": [0, 1, 1]}, "bg_fg": MODEST_INPUTS.to_dict()["bg_fg"]},
    {"bg": {"mean": [float("nan")] * 3, "std": [1] * 3}, "bg_fg": MODEST_INPUTS.to_dict()["bg_fg"]},
    {"bg": MODEST_INPUTS.to_dict()["bg"]},
    "{not json", [1, 2, 3]])
def test_damaged_statistics_are_one_sentence_naming_the_fix(value):
    with pytest.raises(ValueError) as error:
        InputStats.from_dict(value)
    message = str(error.value)
    assert message.startswith("input statistics") and "InputStats.to_dict" in message and "\n" not in message


def test_the_shipped_weights_carry_the_statistics_of_the_manifest():
    manifest = pretrained_manifest()
    assert manifest["input_stats"] == MODEST_INPUTS.to_dict()
    with safe_open(str(pretrained_files()["weights"]), framework="pt") as f:
        assert "input_stats" not in f.metadata()             # written before the field: the manifest says
    assert load_pretrained().input_stats == MODEST_INPUTS
    assert load_predictor(None, "cpu").input_stats == MODEST_INPUTS


def test_weights_files_store_the_statistics_and_loading_attaches_them(checkpoint, tmp_path, pair):
    model = load_model(checkpoint, "cpu")
    assert model.input_stats == MODEST_INPUTS                     # training standardizes with these
    model.input_stats = OTHER
    path = save_weights(model, tmp_path / "other.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["input_stats"]) == OTHER.to_dict()
    loaded, _ = load_weights(path)
    assert loaded.input_stats == OTHER
    predictor = load_predictor(path, "cpu")
    assert predictor.input_stats == OTHER
    # predict standardizes with them: the same as handing the model inputs standardized by hand
    other = predict(*pair, model=predictor, size=(64, 96), align=False)
    modest = predict(*pair, model=load_predictor(checkpoint, "cpu"), size=(64, 96), align=False)
    assert not np.array_equal(other.mask_prob, modest.mask_prob)
    net = loaded.eval()
    with torch.inference_mode():
        x = [torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255 for a in pair]
        depth = torch.sigmoid(net(*(t.contiguous(memory_format=torch.channels_last)
                                    for t in OTHER.apply(*x))).depth)[:, 0]
    np.testing.assert_allclose(other.depth, depth.numpy(), atol=1e-6)


def test_exports_standardize_with_the_models_statistics(checkpoint, tmp_path):
    model, _ = load_weights(checkpoint)
    model.input_stats = OTHER
    contract = export_model(model, tmp_path / "other.ts")
    assert {k: contract["normalization"][k] for k in ("bg", "bg_fg")} == OTHER.to_dict()
    deployable = Deployable(model.eval())
    assert torch.equal(deployable.bg_fg_std.flatten(), torch.tensor(OTHER.bg_fg[1]))
    bg, bg_fg = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        want = torch.sigmoid(model(*OTHER.apply(bg, bg_fg)).mask)
        assert torch.equal(deployable(bg, bg_fg)[1], want)


def test_checkpoints_store_the_statistics_and_older_ones_mean_modest(checkpoint, tmp_path):
    state = dsnet.io.load_checkpoint(checkpoint)
    assert state["input_stats"] == MODEST_INPUTS.to_dict()                 # what save_checkpoint adds
    mine = save_checkpoint({**state, "input_stats": OTHER.to_dict()}, tmp_path / "mine.pt")
    assert load_weights(mine)[0].input_stats == OTHER
    older = tmp_path / "older.pt"                                         # written before the field existed
    torch.save({"format": CHECKPOINT_FORMAT, "model": state["model"], "config": state["config"]}, older)
    assert load_model(older, "cpu").input_stats == MODEST_INPUTS
    old_weights = tmp_path / "older.safetensors"
    save_file({k: v.contiguous() for k, v in state["model"].items()}, str(old_weights), metadata={"train_size": "64"})
    assert load_weights(old_weights)[0].input_stats == MODEST_INPUTS
    damaged = save_checkpoint({**state, "input_stats": {"bg": [1, 2]}}, tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match="damaged.pt holds damaged input statistics: input statistics"):
        load_model(damaged)


def test_options_are_checked_once_and_every_way_to_pass_them_predicts_alike(checkpoint, pair):
    with pytest.raises(ValueError, match="threshold must be between 0 and 1, got 1.5"):
        PredictOptions(threshold=1.5)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        PredictOptions(batch_size=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PredictOptions().size = 64
    options = PredictOptions(size=(64, 64), batch_size=1, threshold=0.3, align=False, device="cpu")
    predictor = load_predictor(checkpoint, options.device)
    results = [predictor(*pair, options), predictor(*pair, size=(64, 64), batch_size=1, threshold=0.3, align=False),
               predict(*pair, model=checkpoint, size=(64, 64), batch_size=1, threshold=0.3, align=False, device="cpu")]
    for result in results[1:]:
        assert np.array_equal(result.mask_prob, results[0].mask_prob) and np.array_equal(result.mask, results[0].mask)
    with pytest.raises(TypeError):
        predictor(*pair, sizes=64)                                      # a misspelt option is no silent default


def test_one_loader_places_every_model_by_one_rule(checkpoint):
    model = load_model(checkpoint)
    assert next(model.parameters()).device == target_device(None) == dsnet.device.pick_device(None)
    assert not model.training and model.train_size == 64
    assert load_model(model) is model                                    # ready already: itself, where it is
    training = DSResNet()
    assert load_model(training) is not training and training.training   # a model passed is never changed
    assert target_device(training) == torch.device("cpu")
    assert load_pretrained("cpu").train_size == load_model("pretrained", "cpu").train_size
    assert isinstance(load_predictor(model), Predictor) and load_predictor(model).model is model
    with pytest.raises(TypeError, match="model must be a checkpoint path"):
        load_model(42)
    assert dsnet.PredictOptions is PredictOptions and dsnet.InputStats is InputStats

"""The experiments' variants, the rerun command, and the replay that proves a stored run real."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from dsnet import experiments
from dsnet.blocks import conv_params, count_parameters, encoder_params
from dsnet.cli import main as cli_main
from dsnet.commands.experiments import ARM_NAMES, EXPERIMENT_NAMES
from dsnet.model import DSResNet
from dsnet.shapes import PREP_CHANNELS

STORED = experiments.stored_runs()
SPEC_PARAMETERS = 10_343_490


def test_the_default_variant_is_the_spec_itself():
    torch.manual_seed(0)
    spec = DSResNet().eval()
    variant = experiments.VariantDSResNet().eval()
    variant.load_state_dict(spec.state_dict())
    x, y = torch.rand(2, 2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(spec(x, y), variant(x, y)):
            assert torch.equal(a, b)
    assert count_parameters(variant) == SPEC_PARAMETERS


def test_parameter_counts_of_the_variants_follow_from_the_blocks():
    prep = count_parameters(DSResNet().bg_prep)
    merge = conv_params(2 * PREP_CHANNELS[-1], PREP_CHANNELS[-1], 1)
    wider_first_block = encoder_params(6, PREP_CHANNELS[0]) - encoder_params(3, PREP_CHANNELS[0])
    counts = {name: count_parameters(experiments.VariantDSResNet(**kwargs)) for name, kwargs in
              [("siamese", dict(fusion="siamese")), ("early", dict(fusion="early")),
               ("no_p_skips", dict(p_skips=False)), ("norm_before", dict(norm="before"))]}
    assert counts == {"siamese": SPEC_PARAMETERS - prep,
                      "early": SPEC_PARAMETERS - prep - merge + wider_first_block,
                      "no_p_skips": SPEC_PARAMETERS, "norm_before": SPEC_PARAMETERS}


def test_each_variant_changes_what_it_says():
    siamese = experiments.VariantDSResNet(fusion="siamese")
    assert siamese.bg_prep is siamese.bg_fg_prep
    early = experiments.VariantDSResNet(fusion="early")
    assert not hasattr(early, "bg_fg_prep") and early.bg_prep.block1.shortcut.in_channels == 6
    before = experiments.VariantDSResNet(norm="before")
    kinds = [type(m).__name__ for m in before.encoder.block1.double_conv]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"] * 2
    no_skips, seen = experiments.VariantDSResNet(p_skips=False), []
    no_skips.mask_head.block5.fuse.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    no_skips(*torch.rand(2, 1, 3, 64, 64))
    assert len(seen) == 1 and not seen[0].any()
    for variant in (siamese, early, before, no_skips):
        depth, mask = variant(*torch.rand(2, 2, 3, 64, 64))
        assert depth.shape == mask.shape == (2, 1, 64, 64)


def test_a_bad_variant_is_named():
    with pytest.raises(ValueError, match="fusion must be one of separate, siamese, early"):
        experiments.VariantDSResNet(fusion="late")


def test_the_command_knows_every_arm_and_experiment():
    assert ARM_NAMES == tuple(experiments.ARMS) and EXPERIMENT_NAMES == tuple(experiments.EXPERIMENTS)
    for arms in experiments.EXPERIMENTS.values():
        assert set(arms) <= set(experiments.ARMS)
    assert {arm.experiment for arm in experiments.ARMS.values()} == {"baseline", *experiments.EXPERIMENTS}


def test_the_rerun_command_trains_stores_and_keeps(tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli_main(["experiments", "--arms", "spec", "progressive", "--seeds", "0", "--budget", "tiny",
                     "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["lr_range.json", "progressive-seed0.json", "spec-seed0.json"]
    record = json.loads((out / "progressive-seed0.json").read_text())
    for key in ("experiment", "arm", "seed", "config", "history", "machine", "torch", "command"):
        assert key in record
    assert record["experiment"] == "resizing" and [h["size"] for h in record["history"]] == [64, 96]
    assert record["test"]["mask_iou"] >= 0 and len(record["step_losses"]) == 16
    assert record["config"]["lr"] == json.loads((out / "lr_range.json").read_text())["pick"]
    assert experiments.replay_problems(record, steps=2) == []
    before = (out / "spec-seed0.json").read_text()
    assert cli_main(["experiments", "--arms", "spec", "--seeds", "0", "--budget", "tiny", "--out", str(out)]) == 0
    assert (out / "spec-seed0.json").read_text() == before
    assert "0 run(s) written" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--arms", "spec", "--experiment", "lr"], "give --arms or --experiment, not both"),
    (["--seeds", "-1"], "seeds must be 0 or more"),
])
def test_bad_options_are_one_line(argv, message, capsys):
    assert cli_main(["experiments", *argv, "--budget", "tiny"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def stored_run() -> dict:
    return json.loads((STORED / "spec-seed0.json").read_text())


def test_the_stored_runs_are_complete():
    runs = experiments.load_runs(STORED)
    seen = {(run["arm"], run["seed"]) for run in runs}
    assert seen == {(arm, seed) for arm in experiments.ARMS for seed in experiments.SEEDS}
    lr = json.loads((STORED / "lr_range.json").read_text())["pick"]
    for run in runs:
        arm = experiments.ARMS[run["arm"]]
        assert run["config"] == experiments.arm_config(arm, run["seed"], lr).to_dict()
        assert run["budget"] == "cpu" and run["machine"] and run["torch"] and run["command"]


def test_the_stored_baseline_replays():
    assert experiments.replay_problems(stored_run()) == []


@pytest.mark.parametrize("tamper", ["step loss", "epoch mean", "learning rate"])
def test_a_tampered_run_fails_the_replay(tamper):
    record = copy.deepcopy(stored_run())
    if tamper == "step loss":
        record["step_losses"][2] *= 1.01
    elif tamper == "epoch mean":
        record["history"][1]["train_loss"] -= 0.01
    else:
        record["config"]["lr"] *= 2
    assert experiments.replay_problems(record) != []


def test_an_unknown_device_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli_main(["experiments", "--arms", "spec", "--budget", "tiny", "--device", "tpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "device 'tpu'" in err and err.count("\n") == 1 and not out.exists()

"""The trainer: config errors, realism, init, profiles, the non-finite guard, the CLI (the pieces of a
run it composes, resume and DDP among them, are tested in test_runs.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import dsnet.train as training
from dsnet.train import NonFiniteLoss, make_config, train
from helpers import quiet, tiny


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown profile 'fast'; choose one of quick, medium, cpu-long, full"):
        make_config("fast")
    with pytest.raises(ValueError, match="unknown config field"):
        make_config("quick", batchsize=3)
    with pytest.raises(ValueError, match="stages: input size 100 is not divisible by 32; use 96 or 128"):
        make_config("quick", stages=((100, 2),))
    with pytest.raises(ValueError, match="one-cycle schedule needs at least 8 optimizer steps; this config makes 4"):
        make_config("quick", stages=((64, 1),), train_samples=32, batch_size=8)


def test_realism_is_checked_and_reaches_every_split(tmp_path):
    with pytest.raises(ValueError, match="unknown realism 'photos': use all, none, or some of textures"):
        make_config("quick", realism="photos")
    with pytest.raises(ValueError, match="applies to synthetic data only"):
        make_config("quick", realism="all", data=str(tmp_path))
    config = tiny(tmp_path, realism="textures,camera")
    device, ranks = torch.device("cpu"), training.Ranks()
    plain = next(training.data_source(tiny(tmp_path)).train_batches(0, device, ranks))
    real = next(training.data_source(config).train_batches(0, device, ranks))
    test = next(training.data_source(config).eval_batches("test", 64, device, ranks))
    from dsnet.data import SyntheticMuseum
    expected = SyntheticMuseum(64, length=8, seed=0, split="test", realism="textures,camera").batch(range(8))
    assert torch.equal(test["bg_fg"], expected["bg_fg"]) and torch.equal(test["mask"], expected["mask"])
    assert not torch.equal(plain["bg"], real["bg"])  # the photographs are in the training images


def test_realism_share_mixes_plain_and_realistic_scenes(tmp_path):
    device, ranks = torch.device("cpu"), training.Ranks()
    sources = {share: training.data_source(tiny(tmp_path, realism="textures", realism_share=share))
               for share in (0.0, 0.5, 1.0)}
    batches = {share: next(source.train_batches(0, device, ranks)) for share, source in sources.items()}
    plain, real, mixed = batches[0.0], batches[1.0], batches[0.5]
    assert torch.equal(plain["bg"], next(training.data_source(tiny(tmp_path)).train_batches(0, device, ranks))["bg"])
    as_plain = [any(torch.equal(x, y) for y in plain["bg"]) for x in mixed["bg"]]
    as_real = [any(torch.equal(x, y) for y in real["bg"]) for x in mixed["bg"]]
    assert all(p != r for p, r in zip(as_plain, as_real))     # each scene rendered one way or the other
    assert 0 < sum(as_real) < len(as_real)
    with pytest.raises(ValueError, match="realism_share must be between 0 and 1, got 1.5"):
        make_config("quick", realism_share=1.5)


def test_init_starts_from_the_weights_it_names(tmp_path):
    from dsnet.io import load_pretrained

    first = train(tiny(tmp_path / "first"), log=quiet)
    run = training.build_run(tiny(tmp_path / "second", init=str(first.best_checkpoint), device="cpu"))
    start = torch.load(first.best_checkpoint, weights_only=True)["model"]
    assert all(torch.equal(v, start[k]) for k, v in run.model.state_dict().items())
    shipped = training.build_run(tiny(tmp_path / "third", init="pretrained", device="cpu")).model.state_dict()
    assert all(torch.equal(v, w) for v, w in zip(shipped.values(), load_pretrained("cpu").state_dict().values()))
    with pytest.raises(ValueError, match="init 'nowhere.pt' does not exist; pass 'pretrained'"):
        make_config("quick", init="nowhere.pt")


def test_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DSNET_PROFILE", "medium")
    assert make_config().profile == "medium"
    monkeypatch.delenv("DSNET_PROFILE")
    assert make_config().profile == ("full" if torch.cuda.is_available() else "quick")


def test_progressive_resizing_schedule():
    config = make_config("full")
    assert [config.size_at(e) for e in range(config.epochs)] == [96] * 4 + [160] * 4 + [224] * 4


def test_a_non_finite_loss_stops_training_and_names_the_step(tmp_path, monkeypatch):
    real_build = training.build_loss

    class PoisonedAfter:
        def __init__(self, good_steps: int):
            self.loss, self.calls, self.good_steps = real_build("seed"), 0, good_steps

        def __call__(self, prediction, batch):
            out = self.loss(prediction, batch)
            self.calls += prediction.mask.requires_grad  # count training steps, not evaluation
            if prediction.mask.requires_grad and self.calls > self.good_steps:
                return out._replace(total=out.total * float("nan"))
            return out

    monkeypatch.setattr(training, "build_loss", lambda spec: PoisonedAfter(good_steps=5))
    with pytest.raises(NonFiniteLoss, match=r"NaN or infinite at step 6; training stopped; the last good "
                                            r"checkpoint is .*last\.pt"):
        train(tiny(tmp_path), log=quiet)


def test_cli_rejects_bad_options_with_exit_2():
    result = subprocess.run([sys.executable, "-m", "dsnet", "train", "--stages", "100:2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == ("dsnet train: error: stages: input size 100 is not divisible by 32; "
                                     "use 96 or 128")
    result = subprocess.run([sys.executable, "-m", "dsnet", "train", "--stages", "96x3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "must look like 96:3,160:3" in result.stderr


def test_dsnet_train_stays_callable_after_its_module_is_imported():
    import dsnet

    dsnet.make_config                      # imports the module dsnet.train, which Python binds to dsnet.train
    assert callable(dsnet.train)
    import dsnet.train as module           # the module itself is still reachable
    assert module.make_config is dsnet.make_config

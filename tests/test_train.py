"""The trainer: config errors, exact resume, the non-finite guard, DDP on two CPU processes, CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import dsnet.train as training
from dsnet.io import load_checkpoint
from dsnet.train import NonFiniteLoss, make_config, train

TINY = dict(stages=((64, 2),), train_samples=32, val_samples=8, test_samples=8, batch_size=8, log_every=2)


def tiny(tmp_path: Path, **overrides) -> training.TrainConfig:
    return make_config("quick", **{**TINY, "out_dir": str(tmp_path / "run"), **overrides})


def quiet(_message: str) -> None:
    pass


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
    plain = next(training.train_batches(tiny(tmp_path), 0, device, ranks))
    real = next(training.train_batches(config, 0, device, ranks))
    test = next(training.eval_batches(config, "test", 64, device, ranks))
    from dsnet.data import SyntheticMuseum
    expected = SyntheticMuseum(64, length=8, seed=0, split="test", realism="textures,camera").batch(range(8))
    assert torch.equal(test["bg_fg"], expected["bg_fg"]) and torch.equal(test["mask"], expected["mask"])
    assert not torch.equal(plain["bg"], real["bg"])  # the photographs are in the training images


def test_realism_share_mixes_plain_and_realistic_scenes(tmp_path):
    device, ranks = torch.device("cpu"), training.Ranks()
    batches = {share: next(training.train_batches(tiny(tmp_path, realism="textures", realism_share=share), 0,
                                                  device, ranks)) for share in (0.0, 0.5, 1.0)}
    plain, real, mixed = batches[0.0], batches[1.0], batches[0.5]
    assert torch.equal(plain["bg"], next(training.train_batches(tiny(tmp_path), 0, device, ranks))["bg"])
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
    assert all(torch.equal(v, w) for v, w in zip(shipped.values(), load_pretrained().state_dict().values()))
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


def test_resume_continues_exactly(tmp_path, monkeypatch):
    straight = train(tiny(tmp_path / "a", augment=True, jpeg=True), log=quiet)

    calls = []
    real_save = training.save_checkpoint

    def save_then_crash(state, path):
        real_save(state, path)
        calls.append(path)
        if state["epoch"] == 0 and Path(path).name == "best.pt":
            raise KeyboardInterrupt  # the machine went away after epoch 1 was saved

    monkeypatch.setattr(training, "save_checkpoint", save_then_crash)
    config = tiny(tmp_path / "b", augment=True, jpeg=True)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=quiet)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    messages = []
    resumed = train(config, resume=True, log=messages.append)

    assert messages[0].startswith("resumed from") and "after epoch 1 of 2" in messages[0]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    keep = ("epoch", "step", "lr", "train_loss", "val_loss", "val_mask_iou", "val_depth_rmse")
    assert [{k: pytest.approx(h[k], rel=1e-4) for k in keep} for h in straight.history] == \
        [{k: h[k] for k in keep} for h in resumed.history]


def test_checkpoints_load_safely_and_leave_no_temporary_files(tmp_path):
    config = tiny(tmp_path)
    result = train(config, log=quiet)
    run = Path(config.out_dir)
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "history.json", "last.pt", "test.json"]
    state = load_checkpoint(run / "last.pt")  # weights_only=True inside
    assert state["epoch"] == 1 and state["step"] == 8 and state["config"]["stages"] == [[64, 2]]
    assert result.best_checkpoint == run / "best.pt"
    assert set(result.test) >= {"loss", "mask_iou", "mask_soft_iou", "depth_rmse", "depth_abs_rel", "depth_delta1"}


def test_resume_refuses_another_config(tmp_path):
    train(tiny(tmp_path), log=quiet)
    with pytest.raises(ValueError, match="written with another config"):
        train(tiny(tmp_path, lr=1e-4), resume=True, log=quiet)


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


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = make_config("quick", **{**TINY, "out_dir": out, "device": "cpu"})
    result = train(config, log=lambda message: None)
    torch.save(result.model.state_dict(), Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_on_two_cpu_processes_ends_with_identical_weights(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    fresh = training.DSResNet().state_dict()
    assert not torch.equal(rank0["merge.weight"], fresh["merge.weight"])  # it did train


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

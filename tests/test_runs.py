"""The pieces of a run (dsnet.runs): exact resume, checkpoints that load safely, a resume refused
for another config, and DDP on two CPU processes ending with identical weights."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import dsnet.runs as runs
import dsnet.train as training
from dsnet.io import load_checkpoint
from dsnet.train import make_config, train
from helpers import TINY, quiet, tiny


def test_resume_continues_exactly(tmp_path, monkeypatch):
    straight = train(tiny(tmp_path / "a", augment=True, jpeg=True), log=quiet)

    calls = []
    real_save = runs.save_checkpoint    # save_run, in dsnet.runs, writes through it

    def save_then_crash(state, path):
        real_save(state, path)
        calls.append(path)
        if state["epoch"] == 0 and Path(path).name == "best.pt":
            raise KeyboardInterrupt  # the machine went away after epoch 1 was saved

    monkeypatch.setattr(runs, "save_checkpoint", save_then_crash)
    config = tiny(tmp_path / "b", augment=True, jpeg=True)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=quiet)
    monkeypatch.setattr(runs, "save_checkpoint", real_save)
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


def _reductions_in_one_step(tmp_path: Path, accumulate: int) -> int:
    """How many gradient buckets DDP all-reduces in one optimizer step of ``accumulate`` micro-batches."""
    from dsnet.data import SyntheticMuseum

    calls = []

    def counting_hook(state, bucket):
        calls.append(bucket.index())
        done = torch.futures.Future()
        done.set_result(bucket.buffer())
        return done

    run = training.build_run(tiny(tmp_path, accumulate=accumulate, device="cpu"), ranks=runs.Ranks(world=2),
                             device=torch.device("cpu"))
    run.net.register_comm_hook(None, counting_hook)
    training.train_step(run, SyntheticMuseum(64, length=8, split="train").batch(range(8)))
    return len(calls)


def test_accumulated_micro_batches_all_reduce_once_per_step(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        once = _reductions_in_one_step(tmp_path / "one", accumulate=1)
        assert once > 0 and _reductions_in_one_step(tmp_path / "four", accumulate=4) == once
    finally:
        dist.destroy_process_group()


def test_the_data_source_is_picked_once_from_config_data(tmp_path):
    from dsnet.modest import write_modest

    folder = write_modest(tmp_path / "m", count=12, size=64, fg_per_bg=4, progress=False)
    synthetic = runs.data_source(tiny(tmp_path))
    assert isinstance(synthetic, runs.SyntheticSource) and synthetic.steps_per_epoch() == 32 // 8
    with pytest.raises(ValueError, match="needs at least 8 optimizer steps; this config makes 4 "):
        tiny(tmp_path, data=str(folder), batch_size=2, stages=((64, 1),))   # was a ZeroDivisionError in torch
    config = tiny(tmp_path, data=str(folder), batch_size=2, stages=((64, 2),))
    source = runs.data_source(config)
    assert isinstance(source, runs.ModestSource) and source.problem() is None
    run = training.build_run(config, device=torch.device("cpu"), data=source)
    assert run.data is source
    batches = list(source.train_batches(0, torch.device("cpu"), runs.Ranks()))
    assert len(batches) == source.steps_per_epoch() == len(source.split("train", 64)) // 2
    assert batches[0]["bg"].shape == (2, 3, 64, 64) and batches[0]["mask"].shape == (2, 1, 64, 64)
    list(source.eval_batches("val", 64, torch.device("cpu"), runs.Ranks()))
    assert source.split("train", 64) is source.split("train", 64)   # each split opened once, then kept
    assert set(source._opened) == {("train", 64), ("val", 64)}


def test_a_schedule_moves_the_rate_when_its_policy_says(tmp_path):
    for name, per_step in (("onecycle", True), ("step", False), ("plateau", False)):
        run = training.build_run(tiny(tmp_path, scheduler=name, step_every=1, lr=1e-3), device=torch.device("cpu"))
        start = run.optimizer.param_groups[0]["lr"]
        run.optimizer.step()
        run.schedule.after_step()
        assert (run.optimizer.param_groups[0]["lr"] != start) == per_step, name
        for _ in range(4):                      # a plateau: the same validation loss epoch after epoch
            run.schedule.after_epoch(1.0)
        moved = run.optimizer.param_groups[0]["lr"]
        assert (moved < start) == (not per_step), name
        state = run.schedule.state_dict()
        fresh = training.build_run(tiny(tmp_path, scheduler=name, step_every=1, lr=1e-3), device=torch.device("cpu"))
        fresh.schedule.load_state_dict(state)
        assert fresh.schedule.state_dict() == state

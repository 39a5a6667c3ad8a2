"""`dsnet train` refuses every bad option, folder and checkpoint with one line and exit 2, before
any work; the config knows its own help and round-trips through JSON."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

import dsnet.train as training
from dsnet.cli import main
from dsnet.data import SyntheticMuseum
from dsnet.train import TrainConfig, make_config, train

TINY = ["--stages", "64:1", "--train-samples", "64", "--val-samples", "8", "--test-samples", "8",
        "--batch-size", "8", "--log-every", "2", "--device", "cpu"]


def dsnet_train(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv: str) -> str:
    code, _, err = dsnet_train(capsys, *argv)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("dsnet train: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, message", [
    (["--loss", ""], "loss spec '': cannot read ''; write terms as WEIGHT*NAME:TARGET"),
    (["--loss", "3*psnr:depth"], "loss '3*psnr:depth': "),
    (["--optimizer", "adam"], "unknown optimizer 'adam'; choose adamw or sgd"),
    (["--scheduler", "cosine"], "unknown scheduler 'cosine'; choose onecycle, plateau or step"),
    (["--lr", "-1"], "lr must be a positive number, got -1.0"),
    (["--lr", "nan"], "lr must be a positive number, got nan"),
    (["--lr", "0"], "at 0 nothing is learnt"),
    (["--device", "gpu9"], "device 'gpu9' is not available"),
    (["--log-every", "0"], "log_every must be at least 1, got 0"),
    (["--val-samples", "0"], "val_samples must be at least 1, got 0"),
    (["--data", "."], "has no file_map.txt"),
])
def test_a_bad_option_is_one_line_before_any_work(capsys, tmp_path, argv, message):
    err = one_line_error(capsys, *TINY, "--out-dir", str(tmp_path / "run"), *argv)
    assert message in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_only_machine_is_refused(capsys, tmp_path):
    assert "device 'cuda' is not available" in one_line_error(capsys, *TINY, "--device", "cuda")


def test_an_unwritable_out_dir_is_refused_first(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert "cannot write to out_dir" in one_line_error(capsys, *TINY, "--out-dir", str(blocker / "run"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    config = make_config("quick", stages=((64, 1),), train_samples=64, val_samples=8, test_samples=8,
                         batch_size=8, log_every=2, device="cpu", out_dir=str(out))
    train(config, log=lambda message: None)
    return out


def copy_run(finished_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    for name in ("last.pt", "best.pt", "history.json", "test.json"):
        (out / name).write_bytes((finished_run / name).read_bytes())
    return out


def test_an_existing_run_is_never_replaced_silently(capsys, tmp_path, finished_run):
    out = copy_run(finished_run, tmp_path)
    before = (out / "best.pt").read_bytes()
    err = one_line_error(capsys, *TINY, "--out-dir", str(out))
    assert "already holds a run (last.pt, best.pt); pass resume to continue it, overwrite to start again" in err
    assert (out / "best.pt").read_bytes() == before
    code, out_text, _ = dsnet_train(capsys, *TINY, "--out-dir", str(out), "--overwrite", "--seed", "3")
    assert code == 0 and json.loads(out_text[out_text.index("{"):])["best_checkpoint"] == str(out / "best.pt")
    assert (out / "best.pt").read_bytes() != before


def test_resume_with_a_changed_option_names_the_fields(capsys, tmp_path, finished_run):
    out = copy_run(finished_run, tmp_path)
    err = one_line_error(capsys, *TINY, "--out-dir", str(out), "--resume", "--lr", "1e-3", "--seed", "4")
    assert "was written with another config (differs in lr, seed)" in err


@pytest.mark.parametrize("damage", ["cut", "foreign", "payload"])
def test_resume_from_a_damaged_checkpoint_is_one_line(capsys, tmp_path, finished_run, damage):
    out = copy_run(finished_run, tmp_path)
    last = out / "last.pt"
    if damage == "cut":
        last.write_bytes(last.read_bytes()[:5000])
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, last)
    else:
        last.write_bytes(pickle.dumps(PickleBomb()))
    err = one_line_error(capsys, *TINY, "--out-dir", str(out), "--resume")
    assert str(last) in err


class PickleBomb:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_resume_without_a_checkpoint_says_so_and_cleans_stale_temporaries(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".last.pt.12345.tmp"
    stale.write_bytes(b"half a checkpoint")
    messages = []
    config = make_config("quick", stages=((64, 1),), train_samples=64, val_samples=8, test_samples=8,
                         batch_size=8, log_every=2, device="cpu", out_dir=str(out))
    training.start_run(config, resume=True, log=messages.append)
    assert messages[0] == f"nothing to resume in {out} (no last.pt): starting from scratch"
    assert not stale.exists()


def test_the_config_round_trips_and_carries_its_help():
    config = make_config("medium", lr=1e-3)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown config field"):
        TrainConfig.from_dict({**config.to_dict(), "lr_max": 1})


def test_the_help_of_every_option_is_the_fields_own(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in training.fields(TrainConfig):
        if field.name != "profile":
            assert " ".join(field.metadata["help"].split()) in text, field.name


@pytest.mark.parametrize("argv", [["--help"], ["data", "--help"], ["data", "generate", "--help"],
                                  ["predict", "--help"], ["bench", "--help"], ["export", "--help"],
                                  ["experiments", "--help"]])
def test_the_help_of_dsnet_and_its_other_commands_imports_no_torch(argv):
    import subprocess
    import sys

    # train's options are TrainConfig's fields, added when `dsnet train` is used (CommandParser)
    code = ("import sys\nfrom dsnet.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nassert 'dsnet.train' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: dsnet" in result.stdout


def test_the_seed_profile_is_the_seed_recipe():
    config = make_config("seed")
    assert config.stages == ((96, 3), (160, 3)) and config.batch_size == 256
    assert (config.optimizer, config.lr, config.scheduler, config.step_every) == ("sgd", 0.1, "step", 3)
    assert not config.augment and not config.jpeg and config.train_samples == 280_000
    run = training.build_run(make_config("seed", device="cpu", train_samples=512, val_samples=8, test_samples=8))
    rates = []
    for _ in range(config.epochs):
        rates.append(run.optimizer.param_groups[0]["lr"])
        run.schedule.after_step()                 # not a per-step schedule: leaves the rate alone
        run.schedule.after_epoch(val_loss=1.0)    # once per epoch, as train_epoch does
    assert rates == pytest.approx([0.1] * 3 + [0.01] * 3)
    assert run.optimizer.param_groups[0]["momentum"] == 0.9


def test_gradient_accumulation_splits_the_batch_into_micro_batches(monkeypatch):
    seen = []
    config = make_config("quick", device="cpu", accumulate=4, batch_size=16, channels_last=False)
    run = training.build_run(config)
    real = run.loss_fn

    def spy(prediction, batch):
        seen.append(len(batch["bg"]))
        return real(prediction, batch)

    run.loss_fn = spy
    batch = SyntheticMuseum(64, length=16, seed=0).batch(range(16))
    loss = training.train_step(run, batch)
    assert seen == [4, 4, 4, 4] and run.step == 1 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="batch_size 16 does not split into accumulate=3"):
        make_config("quick", accumulate=3)


def test_find_runs_sees_the_readers_runs_here_and_on_drive_best_profile_first(tmp_path):
    here, drive = tmp_path / "here", tmp_path / "drive"
    for root, name in ((here, "quick"), (here, "smoke"), (drive, "full"), (here, "mine")):
        (root / "runs" / name).mkdir(parents=True)
        (root / "runs" / name / "history.json").write_text("[]")
    (here / "runs" / "empty").mkdir()  # no history: not a run
    found = training.find_runs((here, drive))
    assert found == [drive / "runs" / "full", here / "runs" / "quick", here / "runs" / "smoke", here / "runs" / "mine"]
    assert training.find_runs((tmp_path / "nowhere",)) == []

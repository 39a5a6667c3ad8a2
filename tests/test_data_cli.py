"""`dsnet data` and `python -m dsnet.data`: bad input is one line and exit status 2, found
before anything is written, and a refused or failed run leaves nothing that refuses the next."""
import dataclasses
import json
import subprocess
import sys

import pytest

from dsnet import bench as bench_module, modest, scene
from dsnet.cli import main
from dsnet.commands import data as data_command


def _generate(out, *options):
    return main(["data", "generate", "--out", str(out), "--count", "2", "--size", "16", "--quiet", *options])


def _one_line(capsys, *words):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def _files(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_out_under_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    assert _generate(blocker / "museum") == 2               # as root too: no folder can be made there
    _one_line(capsys, "notes.txt is a file, not a folder")
    assert _generate(blocker) == 2
    _one_line(capsys, "notes.txt is a file, not a folder")
    assert list(tmp_path.iterdir()) == [blocker] and blocker.read_text() == "mine"


def test_unwritable_out_is_refused_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def read_only(path, text):                              # what a read-only disk answers
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(modest, "atomic_write_text", read_only)
    assert _generate(tmp_path / "m") == 2
    _one_line(capsys, "cannot write to", "Permission denied")
    assert not (tmp_path / "m").exists()
    monkeypatch.undo()
    assert _generate(tmp_path / "m") == 0                   # the folder is not refused afterwards


def test_a_folder_that_refuses_files_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    def refuse(folder):                                     # what a read-only mount answers, even to root
        raise OSError(30, "Read-only file system", str(folder))

    monkeypatch.setattr(modest, "probe_writable", refuse)
    assert _generate(tmp_path / "m") == 2
    _one_line(capsys, "cannot write to", "not writable", "Read-only file system")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("damage", ['{"generator": "dsnet.sc', "[1, 2]", "\xff\xfe"])
def test_damaged_marker_is_refused(tmp_path, capsys, damage):
    out = tmp_path / "m"
    assert _generate(out) == 0
    (out / modest.MARKER).write_bytes(damage.encode("latin-1"))
    before = _files(out)
    assert _generate(out) == 2
    _one_line(capsys, modest.MARKER, "damaged", "new folder")
    assert _files(out) == before


def test_oversized_images_are_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["data", "generate", "--out", str(out), "--count", "1", "--size", "100000"]) == 2
    _one_line(capsys, "size must be from 8 to", str(scene.MAX_SIZE), "not 100000")
    assert not out.exists()
    with pytest.raises(modest.ModestError, match=str(scene.MAX_SIZE)):
        modest.write_modest(out, count=1, size=scene.MAX_SIZE + 1, progress=False)
    assert not out.exists()
    assert _generate(out) == 0
    assert main(["data", "bench", "--sizes", "16", "100000"]) == 2
    _one_line(capsys, "size must be from 8 to", str(scene.MAX_SIZE), "not 100000")


def test_failed_render_leaves_nothing_behind(tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory")

    monkeypatch.setattr(scene, "museum_batch", out_of_memory)
    with pytest.raises(RuntimeError):
        modest.write_modest(tmp_path / "m", count=2, size=16, progress=False)
    assert not (tmp_path / "m").exists()
    monkeypatch.undo()
    assert len(modest.read_file_map(modest.write_modest(tmp_path / "m", count=2, size=16, progress=False))) == 2


def test_help_states_the_size_limit(capsys):
    assert data_command.MAX_SIZE == scene.MAX_SIZE
    with pytest.raises(SystemExit):
        main(["data", "generate", "--help"])
    assert f"at most {scene.MAX_SIZE}" in " ".join(capsys.readouterr().out.split())


def test_realism_option(tmp_path, capsys):
    assert data_command.REALISM == tuple(f.name for f in dataclasses.fields(scene.Realism))
    assert _generate(tmp_path / "m", "--realism", "glossy") == 2
    _one_line(capsys, "--realism", "glossy", "soft_edges")
    assert not (tmp_path / "m").exists()
    assert _generate(tmp_path / "m", "--realism") == 0                    # alone: all of it
    assert json.loads((tmp_path / "m" / modest.MARKER).read_text())["realism"] == "all"
    assert _generate(tmp_path / "n", "--realism", "soft-edges,camera") == 0
    assert json.loads((tmp_path / "n" / modest.MARKER).read_text())["realism"] == "soft_edges,camera"
    assert _generate(tmp_path / "n") == 2                                   # resumed without it: refused
    _one_line(capsys, "other settings", "realism='soft_edges,camera'")
    assert main(["data", "bench", "--sizes", "16", "--batch-size", "2", "--repeats", "1", "--realism", "camera"]) == 0
    assert "realism camera" in capsys.readouterr().out
    assert main(["data", "bench", "--sizes", "16", "--realism", "x"]) == 2
    _one_line(capsys, "--realism", "'x'")


def test_unavailable_device_is_one_line(tmp_path, capsys):
    assert _generate(tmp_path / "m", "--device", "cuda:99") == 2
    _one_line(capsys, "cuda:99")
    assert main(["data", "bench", "--sizes", "16", "--device", "tpu"]) == 2
    _one_line(capsys, "tpu")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("module", ["dsnet.data", "dsnet.scene", "dsnet.modest"])
def test_running_a_module_points_to_the_command(tmp_path, module):
    run = subprocess.run([sys.executable, "-m", module, "generate", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "dsnet data generate" in run.stderr and run.stdout == ""
    assert not (tmp_path / "x").exists()


def _no_writing(monkeypatch):
    def write_modest(*args, **kwargs):
        raise AssertionError("write_modest ran although an option was out of range")

    monkeypatch.setattr(modest, "write_modest", write_modest)


@pytest.mark.parametrize("options, words", [
    (["--count", "1000000000000"], ["--count 1000000000000 is more than the 1,000,000 samples", "at most 1,000,000"]),
    (["--count", "1000001"], ["--count 1000001 is more than the 1,000,000 samples", "at most 1,000,000"]),
    (["--seed", "-1"], ["--seed must be 0 or more, not -1"]),
    (["--seed", "-5"], ["--seed must be 0 or more, not -5"]),
])
def test_out_of_range_count_or_seed_is_refused_before_any_work(tmp_path, capsys, monkeypatch, options, words):
    _no_writing(monkeypatch)
    assert _generate(tmp_path / "m", *options) == 2
    _one_line(capsys, *words)
    assert list(tmp_path.iterdir()) == []


def test_the_largest_count_is_accepted_and_stated_in_the_help(tmp_path, capsys, monkeypatch):
    asked = {}
    monkeypatch.setattr(modest, "write_modest", lambda out, count, **kwargs: asked.update(count=count) or out)
    assert _generate(tmp_path / "m", "--count", "1000000") == 0
    assert asked == {"count": data_command.MAX_COUNT} and data_command.MAX_COUNT == 1_000_000
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["data", "generate", "--help"])
    assert "1 to 1,000,000" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("threads", ["-1", "0"])
def test_bench_threads_below_one_are_refused_before_any_work(capsys, monkeypatch, threads):
    def bench_renderer(*args, **kwargs):
        raise AssertionError("the renderer was timed although --threads was out of range")

    monkeypatch.setattr(bench_module, "bench_renderer", bench_renderer)
    assert main(["data", "bench", "--sizes", "16", "--threads", threads]) == 2
    _one_line(capsys, f"--threads must be 1 or more, not {threads}")

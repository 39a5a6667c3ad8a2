"""`dsnet bench --json FILE`: a report that cannot be written is one line and exit status 2,
found before any measuring, and leaves nothing behind."""
import pathlib

import pytest

from dsnet import bench
from dsnet.cli import main


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture()
def no_measuring(monkeypatch):
    def measured(*args, **kwargs):
        raise AssertionError("the benchmark ran although --json cannot be written")

    monkeypatch.setattr(bench, "run_bench", measured)
    monkeypatch.setattr(bench, "bench_predict", measured)


def _refused(capsys, folder, json, *options):
    before = _files(folder)
    code = main(["bench", "--device", "cpu", "--sizes", "64", "--steps", "1", "--warmup", "0",
                 "--batch-size", "2", "--workers", "0", "--quiet", *options, "--json", str(json)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", out
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert _files(folder) == before
    return err


@pytest.mark.parametrize("options", [[], ["--predict"]])
def test_json_naming_a_folder_is_refused(tmp_path, capsys, no_measuring, options):
    err = _refused(capsys, tmp_path, tmp_path, *options)
    assert f"--json {tmp_path} is a folder" in err and "bench.json" in err


@pytest.mark.parametrize("below", ["bench.json", "deeper/bench.json"])
def test_json_under_a_file_is_refused(tmp_path, capsys, no_measuring, below):
    (tmp_path / "notes.txt").write_text("mine")
    err = _refused(capsys, tmp_path, tmp_path / "notes.txt" / below)
    assert "--json: cannot write" in err and "notes.txt is a file, not a folder" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_json_in_a_folder_that_cannot_be_made_is_refused(tmp_path, capsys, no_measuring, monkeypatch):
    def read_only(self, *args, **kwargs):                     # what a read-only disk answers
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    err = _refused(capsys, tmp_path, tmp_path / "new" / "bench.json")
    assert f"--json: cannot write {tmp_path / 'new' / 'bench.json'}: Permission denied" in err

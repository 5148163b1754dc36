"""Inputs that once slipped through (issue 32): each is one ``eenas: error:`` line and exit code 2, before anything
is trained or written."""

from __future__ import annotations

import json
import sys

import pytest

from eenas.cli import main
from eenas.errors import EenasError
from eenas.search.rundir import CHECKPOINT, CHECKPOINT_VERSION, RunDir
from eenas.search.space import SearchSpace
from eenas.train.cache import Cache
from tests.conftest import search_config_from_command_line


def one_line_error(monkeypatch, capsys, tmp_path, *args: str) -> str:
    """``eenas ARGS`` on the tiny synthetic budget, run in ``tmp_path``: the one error line it prints."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["eenas", *args, "--dataset", "synthetic", "--budget", "tiny", "--device", "cpu",
                                      "--cache-dir", str(tmp_path / "cache"), "--data-dir", str(tmp_path / "data")])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("eenas: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("command", [["search"], ["pretrain"], ["study", "mounts"]])
@pytest.mark.parametrize("width", ["0", "-1", "5", "nan"])
def test_width_mult_outside_the_arch_files_range_is_refused(tmp_path, monkeypatch, capsys, command, width):
    """0 became the budget's width, -1 and 5 started training and wrote archs that evaluate rejects."""
    err = one_line_error(monkeypatch, capsys, tmp_path, *command, "--width-mult", width)
    assert f"--width-mult: {float(width)} is outside 0.1..2.0" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no cache, no data, no run directory


@pytest.mark.parametrize("width", ["0.1", "2.0"])
def test_the_widths_at_the_ends_of_the_range_are_searched_as_given(monkeypatch, width):
    assert search_config_from_command_line(monkeypatch, "--width-mult", width).resolved_width == float(width)


@pytest.mark.parametrize("bits, message", [("8,8", "--bits 8,8: give each bit-width once"),
                                           ("8,3", "--bits 3: must be one of 32, 8, 4, 2"),
                                           (",", "--bits: empty")])
def test_search_bits_are_supported_widths_each_once(tmp_path, monkeypatch, capsys, bits, message):
    assert message in one_line_error(monkeypatch, capsys, tmp_path, "search", "--bits", bits)


@pytest.mark.parametrize("files, message", [
    ({CHECKPOINT: '{"version": 2}'}, "cannot resume: cannot read file {out}/config.json: No such file"),
    ({CHECKPOINT: '{"version": 2, "iteration": 3, "archive": [{"genome": [0, ', "config.json": '{"search": {}}'},
     "cannot resume: {out}/checkpoint.json: not valid JSON"),
    ({"events.jsonl": "{}\n"}, "{out} has no checkpoint.json to resume from; pass --force"),
])
def test_resume_from_a_broken_or_foreign_run_directory_is_refused(tmp_path, monkeypatch, capsys, files, message):
    """A checkpoint without config.json and a truncated checkpoint were tracebacks; a non-empty folder without a
    checkpoint had a new run written into it."""
    out = tmp_path / "run"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    err = one_line_error(monkeypatch, capsys, tmp_path, "search", "--out", str(out), "--resume")
    assert message.format(out=out) in err
    assert sorted(p.name for p in out.iterdir()) == sorted(files)  # left as it was


def test_a_checkpoint_of_valid_json_but_missing_fields_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"search": {"seed": 0}}))
    (tmp_path / CHECKPOINT).write_text(json.dumps({"version": CHECKPOINT_VERSION, "iteration": 1}))
    with pytest.raises(EenasError, match=r"checkpoint.json is not a complete checkpoint \(KeyError: 'archive'\)"):
        RunDir(tmp_path, {"seed": 0}).open(SearchSpace("synthetic", 0.25), Cache(tmp_path / "cache"), resume=True)

"""Atomic writes: all or nothing, and files as readable as open() would have made them."""

from __future__ import annotations

import os
import stat

import pytest

from eenas.io import atomic_write, write_json


def test_written_file_has_the_mode_open_would_give(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = write_json(tmp_path / "out" / "result.json", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    with open(tmp_path / "plain", "w"):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_json(tmp_path / "result.json", {"old": True})

    def fail(fh):
        fh.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == '{\n  "old": true\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]

"""Atomic writes: a finished file appears under its name at once, with the permissions a plain
open() would give it, and a failed write leaves nothing behind."""
import json
import os
import stat

import pytest

from chipsim.io.atomic import atomic_path, write_json


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_finished_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "summary.json", {"a": 1})
    finally:
        os.umask(old)
    path = tmp_path / "summary.json"
    assert json.loads(path.read_text()) == {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "w.h5") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_whole(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"v": 1})
    write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]

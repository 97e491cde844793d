"""Crash-safe writes: unique temporary files, fsync of file and folder, nothing left behind on failure."""
from __future__ import annotations

import os

import pytest

from netpress import fileio
from netpress.errors import ConfigError


def test_two_writers_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "out.txt"
    with fileio.atomic_path(target) as a, fileio.atomic_path(target) as b:
        assert a != b and a.parent == b.parent == tmp_path
        a.write_text("first")
        b.write_text("second")
    assert target.read_text() == "first"  # the outer writer finished last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    fileio.atomic_write_text(target, "old")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        fileio.atomic_write(target, boom)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_file_and_folder_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
                        or real_fsync(fd))
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: events.append(("replace", str(b))) or real_replace(a, b))
    target = tmp_path / "m.pt"
    fileio.atomic_torch_save({"x": 1}, target)
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(str(tmp_path / ".m.pt.")) and events[2][1] == str(tmp_path)


@pytest.mark.parametrize("make,folder,match", [
    (lambda t: t / "missing" / "x.netp", False, "folder .*missing does not exist"),
    (lambda t: t, False, "is a folder; give a file name"),
    (lambda t: (t / "f").write_text("") or t / "f" / "x.netp", False, "is not a folder"),
    (lambda t: (t / "f").write_text("") or t / "f", True, "is a file; give a folder"),
])
def test_check_out_path_refuses_unwritable_targets(tmp_path, make, folder, match):
    with pytest.raises(ConfigError, match=match):
        fileio.check_out_path(make(tmp_path), folder=folder)


def test_check_out_path_accepts_new_and_existing_files(tmp_path):
    assert fileio.check_out_path(tmp_path / "new.netp") == tmp_path / "new.netp"
    (tmp_path / "old.netp").write_text("")
    assert fileio.check_out_path(tmp_path / "old.netp") == tmp_path / "old.netp"
    assert fileio.check_out_path(tmp_path / "report", folder=True) == tmp_path / "report"


def test_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        fileio.atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600

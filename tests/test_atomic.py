"""Atomic writes leave either the old content or the new, never a partial one."""

import pytest

from sgvalues.atomic import atomic_dir, atomic_path, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "old.bin").write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "new.bin").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as tmp:
            (tmp / "partial.bin").write_text("z")
            raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_text_round_trips_with_unix_line_ends(tmp_path):
    atomic_write_text(tmp_path / "a" / "b.txt", "x\ny\n")
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"x\ny\n"

"""learnkit.utils: atomic writes leave no orphans after a kill, and make the rename durable."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

from learnkit import utils
from learnkit.utils import atomic_save, atomic_write_bytes, is_stale, owner_tag, safe_load

ROOT = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temp_file_of_a_killed_writer_is_removed_on_the_next_write(tmp_path):
    target = tmp_path / "model.pth"
    # a real writer, killed with SIGKILL in the middle of its atomic write
    code = textwrap.dedent(
        f"""
        import time
        from learnkit.utils import atomic_write_bytes, _atomic_write
        def slow(f):
            f.write(b"half")
            f.flush()
            time.sleep(60)
        _atomic_write({str(target)!r}, slow)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.time() + 60
        while not list(tmp_path.glob(".model.pth.*.tmp")) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    orphans = list(tmp_path.glob(".model.pth.*.tmp"))
    assert len(orphans) == 1 and not target.exists()  # the kill left an orphan (and no half file)
    atomic_save({"w": torch.ones(3)}, target)
    assert list(tmp_path.glob("*.tmp")) == []
    assert torch.equal(safe_load(target)["w"], torch.ones(3))


def test_a_live_writers_temp_file_is_kept(tmp_path):
    target = tmp_path / "ckpt.pth"
    host = owner_tag().split("-")[1]
    live = tmp_path / f".ckpt.pth.lk-{host}-{os.getppid()}.abc.tmp"  # another process on this host, alive
    mine = tmp_path / f".ckpt.pth.{owner_tag()}.def.tmp"  # a concurrent writer in this process
    dead = tmp_path / f".ckpt.pth.lk-{host}-{_dead_pid()}.ghi.tmp"
    old_untagged = tmp_path / ".ckpt.pth.jkl.tmp"  # written by an older version, two hours ago
    new_untagged = tmp_path / ".ckpt.pth.mno.tmp"
    other_host = tmp_path / ".ckpt.pth.lk-otherhost-1.pqr.tmp"  # a shared folder: cannot check its pid
    other_file = tmp_path / ".notes.txt.lk-{host}-1.tmp"
    for p in (live, mine, dead, old_untagged, new_untagged, other_host, other_file):
        p.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old_untagged, (two_hours_ago, two_hours_ago))
    assert is_stale(dead) and is_stale(old_untagged) and not is_stale(live) and not is_stale(mine)
    assert not is_stale(other_host) and not is_stale(new_untagged)

    atomic_write_bytes(b"new", target)
    assert target.read_bytes() == b"new"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(p.name for p in (target, live, mine, new_untagged, other_host, other_file))


def test_atomic_write_fsyncs_the_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(utils.os, "fsync", spy)
    atomic_write_bytes(b"data", tmp_path / "f.bin")
    assert synced == [False, True]  # the file's bytes, then the folder holding the rename

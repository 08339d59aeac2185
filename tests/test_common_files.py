"""``rdesk.common.files``: files that are whole or absent, and no temporary left by a kill.

Real files in ``tmp_path`` and a real child process killed with SIGKILL in the middle of its
writes; the named fallback (file systems without ``O_TMPFILE``) is run by switching the unnamed
path off.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdesk.common import files
from rdesk.common.files import atomic_write, create_exclusive

_CHILD = """
import sys
from pathlib import Path
from rdesk.common.files import create_exclusive, atomic_write
directory = Path(sys.argv[1])
print("ready", flush=True)
n = 0
while True:
    n += 1
    fd = create_exclusive(directory / f"r{n}.bin", b"H" * 65536)
    import os; os.close(fd)
    atomic_write(directory / "state", str(n).encode() * 4096, 0o600)
"""


@pytest.fixture(params=["unnamed", "named"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "named":
        monkeypatch.setattr(files, "open_unnamed", lambda directory, mode: None)
    return str(request.param)


def test_create_exclusive_holds_the_header_appends_and_refuses_a_taken_name(
    tmp_path: Path, way: str
) -> None:
    path = tmp_path / "one.rdrec"
    fd = create_exclusive(path, b"header", 0o600)
    try:
        os.write(fd, b"+more")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"header+more"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_exclusive(path, b"other")
    assert path.read_bytes() == b"header+more"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.rdrec"], way


def test_create_exclusive_in_a_missing_directory_fails_cleanly(tmp_path: Path, way: str) -> None:
    with pytest.raises(FileNotFoundError):
        create_exclusive(tmp_path / "absent" / "x", b"h")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_whole_with_its_mode(tmp_path: Path, way: str) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    atomic_write(path, b"new secret", 0o600)
    assert path.read_bytes() == b"new secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"], way


def _has_unnamed_files(directory: Path) -> bool:
    fd = files.open_unnamed(directory, 0o600)
    if fd is None:
        return False
    os.close(fd)
    return True


def test_an_unnamed_file_leaves_no_name(tmp_path: Path) -> None:
    if not _has_unnamed_files(tmp_path):
        pytest.skip("this file system has no unnamed files (O_TMPFILE)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(120)
def test_a_writer_killed_at_random_moments_leaves_whole_files_and_no_temporary(
    tmp_path: Path,
) -> None:
    """Twenty SIGKILLs, each at a different moment of a loop of creates and replaces.

    A created file never leaves a temporary. A replaced one can, for the two system calls
    between its link and its rename; the next write of that file (here the parent's, as a
    restarted host's) removes it, and leaves a live writer's alone.
    """
    if not _has_unnamed_files(tmp_path):
        pytest.skip("this file system has no unnamed files (O_TMPFILE): a kill can leave one")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for round_ in range(20):
        directory = tmp_path / f"round{round_}"
        directory.mkdir()
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(directory)], env=env, stdout=subprocess.PIPE
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            time.sleep(0.02 + 0.013 * round_)  # a different point of the loop each round
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        names = sorted(p.name for p in directory.iterdir())
        hidden = [name for name in names if name.startswith(".")]
        created = [name for name in names if name.startswith("r")]
        assert all(name.startswith(f".state.{child.pid}-") for name in hidden), (round_, hidden)
        assert created, round_
        for name in created:
            assert (directory / name).read_bytes() == b"H" * 65536, (round_, name)
        if "state" in names:
            data = (directory / "state").read_bytes()
            assert len(data) % 4096 == 0 and data == data[: len(data) // 4096] * 4096
        atomic_write(directory / "state", b"after", 0o600)
        assert not [p.name for p in directory.iterdir() if p.name.startswith(".")], round_
        assert (directory / "state").read_bytes() == b"after"


def test_a_sweep_leaves_a_live_writers_temporary_and_takes_a_dead_ones(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".state.{sleeper.pid}-{'a' * 16}.tmp"
        dead_pid = _dead_pid()
        dead = tmp_path / f".state.{dead_pid}-{'b' * 16}.tmp"
        mine_stale = tmp_path / f".state.{os.getpid()}-{'c' * 16}.tmp"
        other = tmp_path / f".other.{dead_pid}-{'d' * 16}.tmp"
        for path in (live, dead, mine_stale, other):
            path.write_bytes(b"x")
        atomic_write(tmp_path / "state", b"new", 0o600)
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted([live.name, other.name, "state"])
    finally:
        sleeper.kill()
        sleeper.wait()


def _dead_pid() -> int:
    """The pid of a child that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid

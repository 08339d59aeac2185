"""Tests for rdesk.host.security.passwords: scrypt hashes, password files and the PasswordStore."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest

from rdesk.host.security.passwords import (
    ONE_TIME_ALPHABET,
    PasswordError,
    PasswordFileError,
    PasswordStore,
    hash_password,
    read_secret_file,
    verify_password,
    write_password_hash,
)

HASH_RE = re.compile(r"^scrypt\$32768\$8\$1\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password("correct horse")


def test_hash_format(stored: str) -> None:
    m = HASH_RE.match(stored)
    assert m, stored
    assert len(base64.b64decode(m.group(1))) == 16
    assert len(base64.b64decode(m.group(2))) == 32


def test_salted(stored: str) -> None:
    assert hash_password("correct horse") != stored


def test_verify(stored: str) -> None:
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horse ")
    assert not verify_password(stored, "")
    assert not verify_password(stored, "x" * 100_000)  # too long: refused without hashing


def test_unicode_normalized() -> None:
    h = hash_password("caf\u00e9")  # precomposed
    assert verify_password(h, "cafe\u0301")  # decomposed


@pytest.mark.parametrize("password", ["", "x" * 1025])
def test_hash_refuses_unusable(password: str) -> None:
    with pytest.raises(PasswordError) as err:
        hash_password(password)
    assert "\n" not in str(err.value)


def _with(stored: str, index: int, value: str) -> str:
    parts = stored.split("$")
    parts[index] = value
    return "$".join(parts)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, "bcrypt"),
        (1, "1048577"),  # not a power of two
        (1, str(2**30)),  # absurd n: would be a DoS
        (1, "16"),  # too weak
        (1, "-32768"),
        (1, "0x8000"),
        (2, "0"),
        (2, "1000"),
        (3, "99"),
        (4, "!!!"),
        (4, "AAAA"),  # salt too short
        (5, "not base64"),
        (5, ""),
    ],
)
def test_malformed_hash_raises(stored: str, index: int, value: str) -> None:
    with pytest.raises(PasswordFileError) as err:
        verify_password(_with(stored, index, value), "correct horse")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", ["", "garbage", "scrypt$1$2$3", "scrypt$$$$$", "$" * 100])
def test_malformed_shapes(bad: str) -> None:
    with pytest.raises(PasswordFileError):
        verify_password(bad, "x")


def test_write_and_load_hash_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "password"
    write_password_hash(path, "s3cret pass")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["password"]  # no temp files left
    store = PasswordStore.from_hash_file(path)
    assert store.check("s3cret pass")
    assert not store.check("s3cret")
    assert store.one_time_password is None
    # overwriting is atomic and replaces the old hash
    write_password_hash(path, "other")
    assert PasswordStore.from_hash_file(path).check("other")


def test_write_hash_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(PasswordFileError) as err:
        write_password_hash(blocker / "password", "pw")
    assert "\n" not in str(err.value) and str(blocker) in str(err.value)


def test_hash_file_with_bad_content(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("hunter2\n")
    with pytest.raises(PasswordFileError) as err:
        PasswordStore.from_hash_file(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_plain_file(tmp_path: Path) -> None:
    path = tmp_path / "pw.txt"
    path.write_text("  hunter2 \nsecond line ignored\n")
    store = PasswordStore.from_plain_file(path)
    assert store.check("hunter2")
    assert not store.check("second line ignored")
    assert "hunter2" not in repr(store)


def test_one_time() -> None:
    store = PasswordStore.one_time()
    pw = store.one_time_password
    assert pw is not None
    assert re.fullmatch(rf"[{ONE_TIME_ALPHABET}]{{4}}(-[{ONE_TIME_ALPHABET}]{{4}}){{3}}", pw)
    assert not set("ilo01") & set(pw)
    assert store.check(pw)
    assert not store.check(pw.upper())
    assert PasswordStore.one_time().one_time_password != pw


def test_read_secret_file_errors(tmp_path: Path) -> None:
    cases = {
        "missing": (tmp_path / "missing", "does not exist"),
        "dir": (tmp_path, "directory"),
    }
    empty = tmp_path / "empty"
    empty.write_text("\n  \nsecond")
    cases["empty"] = (empty, "is empty")
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00")
    cases["binary"] = (binary, "UTF-8")
    big = tmp_path / "big"
    big.write_bytes(b"a" * (65 * 1024))
    cases["big"] = (big, "too large")
    for path, needle in cases.values():
        with pytest.raises(PasswordFileError) as err:
            read_secret_file(path)
        msg = str(err.value)
        assert needle in msg and str(path) in msg and "\n" not in msg


def test_read_secret_file_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PasswordFileError, match="not a regular file"):
        read_secret_file(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_read_secret_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("x")
    path.chmod(0)
    with pytest.raises(PasswordFileError, match="Permission denied"):
        read_secret_file(path)


def test_plain_file_empty_refused(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("")
    with pytest.raises(PasswordFileError, match="empty"):
        PasswordStore.from_plain_file(path)

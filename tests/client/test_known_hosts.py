"""Tests for rdesk.client.known_hosts: the TOFU file and verify_host_key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rdesk.client.known_hosts import (
    HostKeyError,
    HostKeyMismatch,
    KnownHosts,
    KnownHostsError,
    UnknownHostKey,
    fingerprint,
    format_host_port,
    normalize_fingerprint,
    verify_host_key,
)

FP_A = fingerprint(b"a")
FP_B = fingerprint(b"b")
FP_C = fingerprint(b"c")


@pytest.fixture
def known(tmp_path: Path) -> KnownHosts:
    return KnownHosts(tmp_path / "cfg" / "rdesk" / "known_hosts")


def test_missing_file_is_empty(known: KnownHosts) -> None:
    assert known.lookup("example.org", 7000) is None


def test_add_and_lookup(known: KnownHosts) -> None:
    known.add("Example.ORG", 7000, FP_A)
    known.add("::1", 7000, FP_B)
    assert known.lookup("example.org", 7000) == FP_A
    assert known.lookup("example.org", 7001) is None
    assert known.lookup("[::1]", 7000) == FP_B
    assert known.lookup("0:0:0:0:0:0:0:1", 7000) == FP_B
    text = known.path.read_text()
    assert text == f"example.org:7000 {FP_A}\n[::1]:7000 {FP_B}\n"
    assert stat.S_IMODE(known.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(known.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in known.path.parent.iterdir()] == ["known_hosts"]


def test_add_same_is_noop_and_different_raises(known: KnownHosts) -> None:
    known.add("h", 1, FP_A)
    known.add("h", 1, FP_A)
    assert known.path.read_text().count("\n") == 1
    with pytest.raises(HostKeyMismatch) as err:
        known.add("h", 1, FP_B)
    assert (err.value.expected, err.value.actual) == (FP_A, FP_B)
    assert known.lookup("h", 1) == FP_A


def test_replace(known: KnownHosts) -> None:
    known.path.parent.mkdir(parents=True)
    known.path.write_text(f"# mine\nh:1 {FP_A}\nother:2 {FP_C}\nh:1 {FP_C}\n")
    known.replace("h", 1, FP_B)
    assert known.path.read_text() == f"# mine\nh:1 {FP_B}\nother:2 {FP_C}\n"
    known.replace("new", 3, FP_A)
    assert known.lookup("new", 3) == FP_A


def test_remove(known: KnownHosts) -> None:
    known.add("h", 1, FP_A)
    assert known.remove("h", 1)
    assert not known.remove("h", 1)
    assert known.lookup("h", 1) is None


def test_malformed_lines_skipped_and_kept(known: KnownHosts) -> None:
    junk = [
        "# a comment",
        "",
        "   ",
        "no-fingerprint:7000",
        "h:notaport SHA256:" + "A" * 43,
        "h:70000 " + FP_A,
        "::1:7000 " + FP_A,  # IPv6 must be bracketed
        "h:7 MD5:aa:bb",
        "h:7 " + FP_A + " extra",
        "\tweird \x01 line",
    ]
    known.path.parent.mkdir(parents=True)
    known.path.write_text("\n".join([*junk, f"good:1 {FP_A}"]) + "\n")
    assert known.lookup("good", 1) == FP_A
    assert known.lookup("h", 7) is None
    assert known.lookup("::1", 7000) is None
    known.add("another", 2, FP_B)
    lines = known.path.read_text().split("\n")
    assert lines[: len(junk)] == junk
    assert lines[-3:] == [f"good:1 {FP_A}", f"another:2 {FP_B}", ""]


def test_non_utf8_lines_survive(known: KnownHosts) -> None:
    known.path.parent.mkdir(parents=True)
    known.path.write_bytes(b"# caf\xe9\n")
    known.add("h", 1, FP_A)
    assert known.path.read_bytes() == b"# caf\xe9\n" + f"h:1 {FP_A}\n".encode()


def test_unreadable_file(tmp_path: Path) -> None:
    kh = KnownHosts(tmp_path)  # a directory
    with pytest.raises(KnownHostsError) as err:
        kh.lookup("h", 1)
    assert "\n" not in str(err.value)


def test_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(KnownHostsError) as err:
        KnownHosts(blocker / "known_hosts").add("h", 1, FP_A)
    assert "\n" not in str(err.value)


def test_verify_added_then_known(known: KnownHosts) -> None:
    assert verify_host_key(known, "h", 1, FP_A, pinned=None, accept_new=True) == "added"
    assert verify_host_key(known, "h", 1, FP_A, pinned=None, accept_new=False) == "known"
    assert verify_host_key(known, "h", 1, FP_A, pinned=None, accept_new=True) == "known"


def test_verify_unknown(known: KnownHosts) -> None:
    with pytest.raises(UnknownHostKey) as err:
        verify_host_key(known, "127.0.0.1", 7000, FP_A, pinned=None, accept_new=False)
    e = err.value
    assert (e.host, e.port, e.fingerprint) == ("127.0.0.1", 7000, FP_A)
    assert FP_A in str(e) and "\n" not in str(e)
    assert known.lookup("127.0.0.1", 7000) is None  # nothing was written
    # the face asks the user, then:
    known.add(e.host, e.port, e.fingerprint)
    assert verify_host_key(known, "127.0.0.1", 7000, FP_A, pinned=None, accept_new=False) == "known"


def test_verify_changed_key_is_hard_failure(known: KnownHosts) -> None:
    known.add("127.0.0.1", 7000, FP_A)
    for accept_new in (False, True):
        with pytest.raises(HostKeyMismatch) as err:
            verify_host_key(known, "127.0.0.1", 7000, FP_B, pinned=None, accept_new=accept_new)
        e = err.value
        assert (e.host, e.port, e.expected, e.actual) == ("127.0.0.1", 7000, FP_A, FP_B)
        msg = str(e)
        assert "\n" not in msg
        assert "127.0.0.1:7000" in msg and "CHANGED" in msg and FP_A in msg and FP_B in msg
        assert "known_hosts" in msg
    assert known.lookup("127.0.0.1", 7000) == FP_A  # untouched


def test_verify_pinned(known: KnownHosts) -> None:
    assert verify_host_key(known, "h", 1, FP_A, pinned=FP_A, accept_new=False) == "pinned"
    # lenient pin spelling
    pin = FP_A.lower()[:7] + FP_A[7:] + "="
    assert verify_host_key(known, "h", 1, FP_A, pinned=pin, accept_new=False) == "pinned"
    assert verify_host_key(known, "h", 1, FP_A, pinned=FP_A[7:], accept_new=False) == "pinned"
    assert not known.path.exists()  # a pin does not write the file
    with pytest.raises(HostKeyMismatch) as err:
        verify_host_key(known, "h", 1, FP_B, pinned=FP_A, accept_new=True)
    assert err.value.pinned and "pinned" in str(err.value)
    # an explicit pin overrides a stale known_hosts entry
    known.add("h", 1, FP_C)
    assert verify_host_key(known, "h", 1, FP_A, pinned=FP_A, accept_new=False) == "pinned"


def test_bad_pin(known: KnownHosts) -> None:
    with pytest.raises(KnownHostsError) as err:
        verify_host_key(known, "h", 1, FP_A, pinned="SHA256:short", accept_new=False)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, HostKeyError)


def test_format_and_normalize() -> None:
    assert format_host_port("::1", 7000) == "[::1]:7000"
    assert format_host_port("[::1]", 7000) == "[::1]:7000"
    assert format_host_port("LocalHost.", 1) == "localhost:1"
    assert normalize_fingerprint(" " + FP_A + "= ") == FP_A
    for bad in ("", "SHA256:", "MD5:" + FP_A[7:], FP_A + "x", FP_A[:-1] + "!"):
        with pytest.raises(KnownHostsError):
            normalize_fingerprint(bad)


def test_a_certificate_entry_is_migrated_to_the_key_pin_on_first_match(known: KnownHosts) -> None:
    """Entries written before key pins hold certificate fingerprints: the first connection
    whose certificate matches rewrites that line (only it) with the key fingerprint."""
    known.path.parent.mkdir(parents=True)
    known.path.write_text(f"# mine\nother:1 {FP_C}\nh:7000 {FP_B}\n")
    result = verify_host_key(known, "h", 7000, FP_A, pinned=None, accept_new=False, legacy=FP_B)
    assert result == "migrated"
    assert known.path.read_text() == f"# mine\nother:1 {FP_C}\nh:7000 {FP_A}\n"
    assert known.path.stat().st_mode & 0o777 == 0o600
    assert verify_host_key(known, "h", 7000, FP_A, pinned=None, accept_new=False,
                           legacy=FP_B) == "known"
    # A certificate fingerprint that is not the offered certificate's is still a change.
    known.path.write_text(f"h:7000 {FP_B}\n")
    with pytest.raises(HostKeyMismatch):
        verify_host_key(known, "h", 7000, FP_A, pinned=None, accept_new=True, legacy=FP_C)
    assert known.path.read_text() == f"h:7000 {FP_B}\n"


def test_an_old_certificate_pin_is_still_honoured(known: KnownHosts) -> None:
    assert verify_host_key(known, "h", 1, FP_A, pinned=FP_B, accept_new=False,
                           legacy=FP_B) == "pinned"
    with pytest.raises(HostKeyMismatch):
        verify_host_key(known, "h", 1, FP_A, pinned=FP_C, accept_new=False, legacy=FP_B)


def test_host_ids_are_port_less_entries_and_old_id_lines_are_read(known: KnownHosts) -> None:
    host_id = "ABCD-EFGH-JKMNP"
    known.add("abcd efgh jkmnp", None, FP_A)  # typed loosely, stored canonical
    assert known.path.read_text() == f"{host_id} {FP_A}\n"
    assert known.lookup(host_id.lower(), None) == FP_A
    assert known.lookup(host_id, 1) is None  # a port-less entry is no HOST:PORT one
    # Earlier versions wrote ID:1 (lower-cased): found, and replaced port-less when rewritten.
    known.path.write_text(f"abcd-efgh-jkmnp:1 {FP_B}\nx:2 {FP_C}\n")
    assert known.lookup(host_id, None) == FP_B
    known.replace(host_id, None, FP_A)
    assert known.path.read_text() == f"{host_id} {FP_A}\nx:2 {FP_C}\n"
    assert known.remove(host_id, None) and known.lookup(host_id, None) is None
    known.path.write_text(f"NOT-AN-ID {FP_A}\n")  # kept verbatim, never matched
    assert known.lookup("NOT-AN-ID", 1) is None

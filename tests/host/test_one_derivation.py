"""Issue 20: a login attempt costs one scrypt derivation, not one per password."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import pytest

from rdesk.cli.host import _cmd_passwd
from rdesk.host.credentials import HostCredentials
from rdesk.host.security.passwords import PasswordStore, hash_password


class _Counter:
    """Wraps the real ``hashlib.scrypt`` and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = hashlib.scrypt

    def __call__(self, *args: Any, **kwargs: Any) -> bytes:
        self.calls += 1
        return self._real(*args, **kwargs)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> _Counter:
    counter = _Counter()
    monkeypatch.setattr(hashlib, "scrypt", counter)
    return counter


def _attempts(creds: HostCredentials, counter: _Counter) -> list[tuple[str | None, int]]:
    out = []
    for guess in ("control-pw", "view-pw", "wrong"):
        before = counter.calls
        out.append((creds.check(guess), counter.calls - before))
    return out


def _settings(tmp_path: Path, **extra: Any) -> Any:
    from rdesk.host.credentials import load_credentials

    class S:
        config_dir = tmp_path
        password_file = None
        view_password_file = None
        password_hash_file = None
        view_password_hash_file = None

    for key, value in extra.items():
        setattr(S, key, value)
    return load_credentials(S)[0]  # type: ignore[arg-type]


def test_plain_files_share_a_salt_and_cost_one_derivation(
    tmp_path: Path, scrypt_calls: _Counter
) -> None:
    (tmp_path / "c").write_text("control-pw\n")
    (tmp_path / "v").write_text("view-pw\n")
    creds = _settings(tmp_path, password_file=tmp_path / "c", view_password_file=tmp_path / "v")
    assert _attempts(creds, scrypt_calls) == [("control", 1), ("view", 1), (None, 1)]


def test_one_time_password_with_a_stored_view_hash_costs_one_derivation(
    tmp_path: Path, scrypt_calls: _Counter
) -> None:
    (tmp_path / "view-password").write_text(hash_password("view-pw") + "\n")
    creds = _settings(tmp_path)
    otp = creds.control.one_time_password
    assert otp is not None
    before = scrypt_calls.calls
    assert creds.check(otp) == "control"
    assert creds.check("view-pw") == "view"
    assert creds.check("wrong") is None
    assert scrypt_calls.calls - before == 3
    creds.rotate()  # the rotated one-time password keeps sharing the view hash's salt
    before = scrypt_calls.calls
    assert creds.check("view-pw") == "view"
    assert scrypt_calls.calls - before == 1


def test_rdesk_passwd_writes_the_second_hash_with_the_firsts_salt(
    tmp_path: Path, scrypt_calls: _Counter, capsys: pytest.CaptureFixture[str]
) -> None:
    for view, secret in ((False, "control-pw"), (True, "view-pw")):
        (tmp_path / "secret").write_text(secret + "\n")
        args = argparse.Namespace(password_file=tmp_path / "secret", view=view, config_dir=tmp_path)
        assert _cmd_passwd(args) == 0
    control_fields = (tmp_path / "password").read_text().split("$")
    view_fields = (tmp_path / "view-password").read_text().split("$")
    assert control_fields[:5] == view_fields[:5] and control_fields[5] != view_fields[5]
    creds = _settings(tmp_path)
    assert _attempts(creds, scrypt_calls) == [("control", 1), ("view", 1), (None, 1)]


def test_old_files_with_different_salts_still_check_both(scrypt_calls: _Counter) -> None:
    creds = HostCredentials(
        PasswordStore(hash_password("control-pw")), PasswordStore(hash_password("view-pw"))
    )
    assert _attempts(creds, scrypt_calls) == [("control", 2), ("view", 2), (None, 2)]
    from rdesk.host.security.passwords import verify_pair

    assert verify_pair(hash_password("a"), hash_password("b"), "x" * 2000) == (False, False)

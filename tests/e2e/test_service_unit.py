"""``rdesk service install``: the unit systemd would run, checked without a running systemd.

``systemd-analyze verify`` (the Debian package systemd) parses the unit as systemd does and
checks its command is executable; ``systemd-analyze security --offline`` scores its hardening.
Then the unit's own ``ExecStart=`` line, split the way systemd splits it, runs for real against
Xvfb, and a real viewer logs in with the stored password hash.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import PASSWORD
from tests.xserver import Xvfb

Cli = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="needs systemd-analyze (Debian package systemd)")


def _exec_start(unit: str) -> list[str]:
    """The ExecStart= words as systemd reads them: quotes and backslashes as a shell's,
    then ``%%`` and ``$$`` (escaped specifiers and variables) back to ``%`` and ``$``."""
    (line,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(line)]


def _environment(unit: str) -> dict[str, str]:
    pairs = (shlex.split(v)[0] for v in re.findall(r"^Environment=(.*)$", unit, re.M))
    return dict(p.split("=", 1) for p in pairs)


def _verify(unit_file: Path, *options: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(["systemd-analyze", *options, "verify", str(unit_file)],
                          capture_output=True, text=True, timeout=60, env=env)
    # Unknown or malformed settings are only warnings: nothing may be printed at all.
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_system_unit_verifies_is_hardened_and_its_command_runs(
    xvfb: Xvfb, tmp_path: Path, rdesk_cli: Cli
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    # Unattended access: a stored password hash, nothing secret on the command line.
    assert rdesk_cli("passwd", "--password-file", str(tmp_path / "pw")).returncode == 0
    (tmp_path / "pw").unlink()
    made = rdesk_cli("service", "install", "--print", "--", "--display", xvfb.display,
                     "--bind", "127.0.0.1", "--port", "0", "--name", "50% of $HOME",
                     "--transfer", "off")
    assert made.returncode == 0, made.stderr
    unit = made.stdout
    for setting in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                    "PrivateTmp=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                    "BindReadOnlyPaths=-/tmp/.X11-unix", "WantedBy=multi-user.target"):
        assert setting in unit.splitlines(), setting
    unit_file = tmp_path / "rdesk-host.service"
    unit_file.write_text(unit)
    _verify(unit_file)
    # Exposure 0 (best) .. 10; an unhardened service scores 9.6. Threshold is in tenths.
    scored = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=30",
                             str(unit_file)], capture_output=True, text=True, timeout=60)
    assert scored.returncode == 0, scored.stdout[-400:]

    argv = _exec_start(unit)
    assert argv[argv.index("--name") + 1] == "50% of $HOME"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"} | _environment(unit)
    host = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert host.stdout is not None
        lines = []
        while not any("Ctrl+C stops the host" in line for line in lines):
            line = host.stdout.readline()
            assert line, lines
            lines.append(line)
        url = next(line.split()[1] for line in lines if "connect:" in line)
        fingerprint = next(line.split()[-1] for line in lines if "fingerprint:" in line)
        shot = rdesk_cli("snapshot", url, "--fingerprint", fingerprint, "-o",
                         str(tmp_path / "s.png"), env={**os.environ, "RDESK_PASSWORD": PASSWORD})
        assert shot.returncode == 0, shot.stderr
    finally:
        host.send_signal(signal.SIGTERM)
        out, _ = host.communicate(timeout=30)
    assert host.returncode == 0, out
    journal = "".join(lines) + out
    assert "password: the one set with `rdesk passwd`" in journal
    assert PASSWORD not in journal and "one-time" not in journal


def test_the_user_unit_is_written_and_verifies(tmp_path: Path, rdesk_cli: Cli) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    assert rdesk_cli("passwd", "--password-file", str(tmp_path / "pw")).returncode == 0
    units = tmp_path / "units"
    made = rdesk_cli("service", "install", "--user", "--unit-dir", str(units), "--",
                     "--virtual", "1280x720", "--consent", "ask")
    assert made.returncode == 0, made.stderr
    unit_file = units / "rdesk-host.service"
    assert stat.S_IMODE(unit_file.stat().st_mode) == 0o644
    unit = unit_file.read_text()
    printed = rdesk_cli("service", "install", "--user", "--print", "--", "--virtual",
                        "1280x720", "--consent", "ask")
    assert printed.stdout == unit
    assert "WantedBy=default.target" in unit and "NoNewPrivileges=yes" in unit
    assert "User=" not in unit and "--consent-socket" not in unit  # the session's runtime dir
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    _verify(unit_file, "--user", env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})


def test_a_system_unit_with_consent_ask_gets_a_private_runtime_directory(
    tmp_path: Path, rdesk_cli: Cli
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    assert rdesk_cli("passwd", "--password-file", str(tmp_path / "pw")).returncode == 0
    made = rdesk_cli("service", "install", "--print", "--", "--virtual", "800x600",
                     "--consent", "ask")
    assert made.returncode == 0, made.stderr
    assert "RuntimeDirectory=rdesk" in made.stdout.splitlines()
    assert "BindReadOnlyPaths" not in made.stdout  # its own Xvfb makes its socket in /tmp
    assert _exec_start(made.stdout)[-2:] == ["--consent-socket", "/run/rdesk/consent.sock"]


def test_what_would_leak_a_secret_or_fail_later_is_refused_now(
    tmp_path: Path, rdesk_cli: Cli
) -> None:
    # No stored password: the host would print a one-time password to the journal.
    bare = rdesk_cli("service", "install", "--print", "--", "--virtual", "800x600")
    assert bare.returncode == 1 and bare.stdout == ""
    assert bare.stderr.strip().splitlines() == [
        "rdesk: error: the service would print a one-time password to the journal: set one "
        f"first with `rdesk passwd` (a hash in {tmp_path / 'viewer-config'}), or give "
        "--password-hash-file"]
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    assert rdesk_cli("passwd", "--password-file", str(tmp_path / "pw")).returncode == 0
    invites = rdesk_cli("service", "install", "--print", "--", "--invite", "view:30")
    assert invites.returncode == 1 and "--invite prints one-time codes" in invites.stderr
    bad = rdesk_cli("service", "install", "--print", "--", "--no-such-flag")
    assert bad.returncode == 2 and "--no-such-flag" in bad.stderr


def test_without_flags_the_unit_runs_the_config_files_host_settings(
    tmp_path: Path, rdesk_cli: Cli
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    assert rdesk_cli("passwd", "--password-file", str(tmp_path / "pw")).returncode == 0
    config = tmp_path / "viewer-config" / "config.toml"
    config.write_text('[host]\nvirtual = "800x600"\nconsent = "ask"\n')
    made = rdesk_cli("service", "install", "--print")
    assert made.returncode == 0, made.stderr
    argv = _exec_start(made.stdout)
    # The host reads the same file when it starts, named in the unit (the service's HOME and
    # XDG_* need not be yours); what it says shaped the unit (consent ask: the runtime dir).
    assert argv[argv.index("--config") + 1] == str(config)
    assert argv[argv.index("host") + 1:] == ["--consent-socket", "/run/rdesk/consent.sock"]
    assert "RuntimeDirectory=rdesk" in made.stdout.splitlines()

"""The viewer verbs by ID, their one-line failures and exit statuses, and pinning under an ID:
a real ``rdesk relay`` and a real ``rdesk host --relay --no-listen`` on Xvfb, the CLI as
subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from tests.e2e.relaysite import Site, site
from tests.xserver import Xvfb

pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rdesk: error: "), err
    return lines[0]


def _auth_attempts(s: Site) -> list[dict[str, object]]:
    log = s.tmp / "host-audit.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [e for e in events if str(e.get("kind", "")).startswith("auth")]


async def test_failures_by_id_are_one_line_with_their_own_status(
    xvfb: Xvfb, tmp_path: Path,
) -> None:
    async with site(tmp_path, xvfb.display) as s:
        shot = str(tmp_path / "x.png")
        unknown = "ZZZZ-ZZZZ-ZZZZZ" if s.host_id != "ZZZZ-ZZZZ-ZZZZZ" else "0000-0000-00000"
        code, out, err = await s.cli(s.port, "snapshot", unknown, "-o", shot)
        assert code == 9 and out == "" and "unknown or offline ID" in _one_line(err)

        code, _, err = await s.cli(_free_port(), "snapshot", s.host_id, "-o", shot)
        assert code == 6 and "cannot reach the relay" in _one_line(err)

        # No relay anywhere: the ID is recognised as one, and the user told how to give one.
        env = {k: v for k, v in os.environ.items() if k != "RDESK_RELAY"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "empty"), "snapshot",
            s.host_id, "-o", shot, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        _, raw = await proc.communicate()
        assert proc.returncode not in (0, None) and "--relay" in _one_line(raw.decode())
        assert not Path(shot).exists()
        assert _auth_attempts(s) == []


async def test_a_changed_key_under_an_id_is_refused_before_any_credential(
    xvfb: Xvfb, tmp_path: Path,
) -> None:
    async with site(tmp_path, xvfb.display) as s:
        shot = tmp_path / "x.png"
        code, _, err = await s.cli(s.port, "snapshot", s.host_id, "-o", str(shot))
        assert code == 0, err
        known = tmp_path / "viewer" / "known_hosts"
        entry = f"{s.host_id} "
        assert entry in known.read_text()  # pinned at first contact, under the ID (no port)
        assert f"127.0.0.1:{s.port} {s.pin}" in known.read_text()  # the relay, on first use
        before = len(_auth_attempts(s))
        assert before == 1
        # The window checks the relay by that entry: a pin contradicting it is refused before
        # any window opens.
        code, _, err = await s.cli(s.port, "connect", s.host_id,
                                   "--relay-fingerprint", f"SHA256:{'C' * 43}")
        assert code != 0 and "relay pin" in _one_line(err)

        stranger = "SHA256:" + "A" * 43
        lines = [line if not line.startswith(entry) else entry + stranger
                 for line in known.read_text().splitlines()]
        known.write_text("\n".join(lines) + "\n")
        shot.unlink()
        code, _, err = await s.cli(s.port, "snapshot", s.host_id, "-o", str(shot))
        assert code != 0 and "refusing to connect" in _one_line(err)
        assert not shot.exists() and len(_auth_attempts(s)) == before  # nothing reached login

        # The relay's own key changed: refused as well (its known_hosts entry says otherwise).
        relay_entry = f"127.0.0.1:{s.port} "
        lines = [line if not line.startswith(relay_entry) else relay_entry + stranger
                 for line in known.read_text().splitlines() if not line.startswith(entry)]
        known.write_text("\n".join(lines) + "\n")
        code, _, err = await s.cli(s.port, "snapshot", s.host_id, "-o", str(shot))
        assert code != 0 and "CHANGED" in _one_line(err)
        assert len(_auth_attempts(s)) == before


async def test_saved_relay_and_each_relayed_viewer_its_own_source(
    xvfb: Xvfb, tmp_path: Path,
) -> None:
    async with site(tmp_path, xvfb.display) as s:
        config = str(tmp_path / "viewer")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rdesk", "--config-dir", config, "relay", "use",
            f"wss://127.0.0.1:{s.port}", "--fingerprint", s.pin,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        env = {k: v for k, v in os.environ.items() if k != "RDESK_RELAY"}
        for _ in range(2):  # the saved relay: the ID is enough
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rdesk", "--config-dir", config, "snapshot",
                s.host_id.replace("-", "").lower(), "-o", str(tmp_path / "y.png"),
                "--password-file", str(s.password_file), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            assert proc.returncode == 0, err
            assert s.host_id in out.decode()
        # A wrong relay pin saved: refused.
        (tmp_path / "viewer" / "viewer-relay").write_text(
            f"wss://127.0.0.1:{s.port}\nSHA256:{'B' * 43}\n")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rdesk", "--config-dir", config, "snapshot", s.host_id,
            "-o", str(tmp_path / "z.png"), "--password-file", str(s.password_file), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        assert proc.returncode != 0 and "pinned" in _one_line(err.decode())
        sessions = [str(e["session"]) for e in s.relay_events("rendezvous")]
    sources = [e["source"] for e in _auth_attempts(s) if e["kind"] == "auth_success"]
    # Each relayed viewer is the relay's session it came by (one throttle bucket each, not
    # one for all), the same id as in the relay's own audit log.
    assert len(sessions) == 2 and len(set(sessions)) == 2
    assert sources == [f"relay:{session}" for session in sessions]

"""A saved host named by its relay ID (``[hosts.NAME] id = ... relay = ...``): ``rdesk snapshot
NAME`` reaches it through a real ``rdesk relay`` and pins its key under the ID, port-less, in
known_hosts; an entry written by an earlier version (``id:1``, a certificate fingerprint) is
honoured and rewritten."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from rdesk.host.security.tls import certificate_fingerprint, host_key_fingerprint
from tests.e2e.relaysite import site
from tests.xserver import Xvfb

pytestmark = pytest.mark.timeout(240)


async def _rdesk(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RDESK_RELAY"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rdesk", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_saved_host_by_relay_id(xvfb: Xvfb, tmp_path: Path) -> None:
    async with site(tmp_path, xvfb.display) as s:
        data = tmp_path / "viewer-data"
        config = tmp_path / "rdesk.toml"
        config.write_text(
            f'[hosts.home]\nid = "{s.host_id.lower().replace("-", " ")}"\n'
            f'relay = "wss://127.0.0.1:{s.port}"\nrelay-fingerprint = "{s.pin}"\n'
            f'password-file = "{s.password_file}"\n')
        shot = tmp_path / "home.png"
        code, out, err = await _rdesk("--config-dir", str(data), "--config", str(config),
                                      "snapshot", "home", "-o", str(shot), "--json")
        assert code == 0, err
        assert s.host_id in out and shot.exists()
        pin = host_key_fingerprint(tmp_path / "host" / "host.crt")
        known = data / "known_hosts"
        lines = known.read_text().splitlines()
        assert f"{s.host_id} {pin}" in lines  # the ID, port-less, with the key's pin
        assert len(lines) == 1  # the relay was pinned by the saved relay-fingerprint

        # An entry an earlier version wrote: `id:1` and the certificate's fingerprint.
        old = certificate_fingerprint(tmp_path / "host" / "host.crt")
        kept = [line for line in lines if not line.startswith(s.host_id)]
        known.write_text("\n".join([f"{s.host_id.lower()}:1 {old}", *kept]) + "\n")
        shot.unlink()
        code, _, err = await _rdesk("--config-dir", str(data), "--config", str(config),
                                    "snapshot", "home", "-o", str(shot))
        assert code == 0, err
        assert known.read_text().splitlines() == [f"{s.host_id} {pin}", *kept]

        # A wrong pin under the ID: refused before any credential (exit 4, key changed).
        known.write_text("\n".join([f"{s.host_id} SHA256:{'A' * 43}", *kept]) + "\n")
        code, _, err = await _rdesk("--config-dir", str(data), "--config", str(config),
                                    "snapshot", "home", "-o", str(shot))
        assert code == 4 and len(err.strip().splitlines()) == 1, err

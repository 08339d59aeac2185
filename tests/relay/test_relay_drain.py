"""Draining: in-process with ``drain()``, and a real ``python -m rdesk relay`` on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from rdesk.cli.relayd import add_parsers as add_relay_parser
from rdesk.cli.relayd import run_relay_verb
from tests.relay.harness import (
    Relay,
    host_identity,
    linked,
    make_link,
    other_tasks,
    quiet,
    running_relay,
    viewer,
)


async def test_drain_moves_hosts_and_lets_running_splices_finish(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        link = make_link(relay, host_identity(tmp_path / "host"), backoff=(30.0, 30.0))
        async with linked(link):
            ws, answer = await viewer(relay, link.host_id)
            assert answer == {"t": "spliced"}
            drain = asyncio.ensure_future(relay.server.drain(grace=30))
            while not link.moves:
                await asyncio.sleep(0.02)
            assert link.last_error == "moved: relay is shutting down"
            assert relay.server.draining and not relay.server.hosts.live
            await ws.send(b"still here")  # the running splice goes on
            assert await ws.recv() == b"host:still here"
            with pytest.raises(OSError):  # no new connections
                await viewer(relay, link.host_id)
            await ws.close()
            await asyncio.wait_for(drain, 10)  # the last splice ended: done before the grace
        assert relay.last("relay_drain") == {"hosts": 1, "splices": 1, "raw": 0, "grace": 30}
        assert relay.kinds()[-1] == "relay_stop"
        await quiet(relay)
    assert not other_tasks()


async def test_drain_closes_splices_still_running_after_the_grace(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        link = make_link(relay, host_identity(tmp_path / "host"), backoff=(30.0, 30.0))
        async with linked(link):
            ws, _ = await viewer(relay, link.host_id)
            await relay.server.drain(grace=0.2)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert (ws.close_code, ws.close_reason) == (1001, "relay is shutting down")
        await quiet(relay)
    assert not other_tasks()


def test_token_verbs_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_relay_parser(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> list[str]:
        args = parser.parse_args(["relay", "--data-dir", str(tmp_path), *argv])
        assert args.handler is run_relay_verb
        lines: list[str] = []
        assert run_relay_verb(args, out=lines.append) == 0
        return lines

    token, created = run("token", "create", "--label", "office pc")
    token_id = created.split()[3]
    assert token.startswith("rdt_")
    (listed,) = run("token", "list")
    assert listed.startswith(token_id) and listed.endswith("office pc") and token not in listed
    assert run("token", "revoke", "office pc") == [f"rdesk relay: token {token_id} revoked"]
    assert run("token", "list") == []
    args = parser.parse_args(["relay", "--data-dir", str(tmp_path), "token", "revoke", "nope"])
    assert run_relay_verb(args, out=lambda line: None) == 1
    assert capsys.readouterr().err == (
        "rdesk: error: no enrolment token 'nope' (see rdesk relay token list)\n")


async def _line(proc: asyncio.subprocess.Process, pattern: str) -> re.Match[str]:
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            raise AssertionError(f"relay exited before printing {pattern!r}")
        match = re.search(pattern, line)
        if match:
            return match


async def test_a_relay_process_drains_on_sigterm(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rdesk", "relay", "--bind", "127.0.0.1", "--port", "0",
        "--data-dir", str(tmp_path / "relay"), "--open", "--grace", "20",
        "--audit-log", str(audit),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        port = int((await _line(proc, r"listening on wss://127\.0\.0\.1:(\d+)"))[1])
        printed = (await _line(proc, r"fingerprint (SHA256:\S+)"))[1]
        relay = Relay.remote(port, printed)
        link = make_link(relay, host_identity(tmp_path / "host"), token=None,
                         backoff=(30.0, 30.0))
        async with linked(link):
            ws, answer = await viewer(relay, link.host_id)
            assert answer == {"t": "spliced"}
            proc.send_signal(signal.SIGTERM)
            await _line(proc, r"draining \(up to 20 s\)")
            while not link.moves:
                await asyncio.sleep(0.02)
            await ws.send(b"secret payload")
            assert await ws.recv() == b"host:secret payload"
            await ws.close()
            await _line(proc, r"rdesk relay: stopped")
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stderr is not None
    assert (await proc.stderr.read()) == b""
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    kinds = [event["kind"] for event in events]
    for kind in ("relay_start", "register", "rendezvous", "relay_drain", "splice_end",
                 "relay_stop"):
        assert kind in kinds, kinds
    assert events[0]["fingerprint"] == printed
    assert b"secret payload" not in audit.read_bytes()
    assert not other_tasks()


async def test_a_second_sigterm_stops_at_once_and_a_busy_port_is_one_line(
    tmp_path: Path,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rdesk", "relay", "--bind", "127.0.0.1", "--port", "0",
        "--data-dir", str(tmp_path / "relay"), "--open", "--grace", "600",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        port = int((await _line(proc, r"listening on wss://127\.0\.0\.1:(\d+)"))[1])
        printed = (await _line(proc, r"fingerprint (SHA256:\S+)"))[1]
        # The port is taken: a second relay says so in one line.
        busy = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rdesk", "relay", "--bind", "127.0.0.1", "--port", str(port),
            "--data-dir", str(tmp_path / "relay"), "--open",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = await asyncio.wait_for(busy.communicate(), 60)
        assert busy.returncode == 1
        assert err.decode() == (f"rdesk: error: cannot listen on 127.0.0.1:{port}: "
                                "Address already in use\n")
        relay = Relay.remote(port, printed)
        link = make_link(relay, host_identity(tmp_path / "host"), token=None,
                         backoff=(30.0, 30.0))
        async with linked(link):
            ws, answer = await viewer(relay, link.host_id)
            assert answer == {"t": "spliced"}
            proc.send_signal(signal.SIGTERM)
            await _line(proc, r"draining \(up to 600 s\)")
            proc.send_signal(signal.SIGTERM)  # do not wait for the splice
            await _line(proc, r"rdesk relay: stopping now")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)
            assert (ws.close_code, ws.close_reason) == (1001, "relay is shutting down")
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not other_tasks()

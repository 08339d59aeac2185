"""The relay's page and its Origin rules (``rdesk/relay/page.py``), on websockets' own request
objects and on a real relay (``--allow-origin``); the page working for real is
``tests/e2e/test_relay_browser.py``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request

from rdesk.cli.relayd import add_parsers as add_relay_parser
from rdesk.relay.messages import Connect, encode
from rdesk.relay.page import RELAY_INFO_PATH, judge
from rdesk.site.static import CONTENT_SECURITY_POLICY
from tests.relay.harness import open_ws, quiet, running_relay

HOST = "relay.example:8443"


def request(path: str, origin: str | None = None, host: str = HOST) -> Request:
    headers = Headers([("Host", host)])
    if origin is not None:
        headers["Origin"] = origin
    return Request(path, headers)


def test_the_page_is_served_with_the_hosts_policy() -> None:
    for path in ("/", "/index.html", "/core/tunnel.js", "/core/relaysocket.js", "/app/relay.js"):
        response = judge(request(path))
        assert response is not None and response.status_code == 200, path
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["Cache-Control"] == "no-store"


def test_relay_json_tells_the_page_it_is_on_a_relay() -> None:
    response = judge(request(RELAY_INFO_PATH))
    assert response is not None and response.status_code == 200
    assert json.loads(response.body) == {"relay": True, "tunnel": 1}


def test_unknown_paths_are_404_and_nothing_reaches_the_file_system() -> None:
    for path in ("/other", "/../pyproject.toml", "/core/../../rdesk/relay/server.py",
                 "/__init__.py", "/app/", "/relay.json/x"):
        response = judge(request(path))
        assert response is not None and response.status_code == 404, path


def test_connect_takes_no_origin_or_the_relays_own() -> None:
    assert judge(request("/connect")) is None  # the CLI, the desktop viewer
    assert judge(request("/connect", f"https://{HOST}")) is None  # the page it served
    assert judge(request("/connect", "https://relay.example", "relay.example:443")) is None


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://relay.example:8443",
                                    "https://relay.example:8444"])
def test_connect_refuses_another_sites_page(origin: str) -> None:
    response = judge(request("/connect", origin))
    assert response is not None and response.status_code == 403


@pytest.mark.parametrize("path", ["/host", "/data"])
def test_host_endpoints_refuse_any_page_even_the_relays_own(path: str) -> None:
    assert judge(request(path)) is None
    response = judge(request(path, f"https://{HOST}"))
    assert response is not None and response.status_code == 403


def test_two_origins_are_refused() -> None:
    req = request("/connect", f"https://{HOST}")
    req.headers["Origin"] = "https://evil.example"
    response = judge(req)
    assert response is not None and response.status_code == 403


def test_an_allowed_origin_may_open_connect_but_not_the_host_endpoints() -> None:
    allowed = ("https://viewer.example", "https://pages.example:8000")
    assert judge(request("/connect", "https://viewer.example"), allowed) is None
    assert judge(request("/connect", "https://Pages.example:8000/"), allowed) is None
    for origin in ("https://viewer.example:444", "http://viewer.example", "https://evil.example"):
        response = judge(request("/connect", origin), allowed)
        assert response is not None and response.status_code == 403, origin
    for path in ("/host", "/data"):
        response = judge(request(path, "https://viewer.example"), allowed)
        assert response is not None and response.status_code == 403


async def test_a_real_relay_takes_only_the_origins_it_was_told(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay",
                             allowed_origins=("https://viewer.example",)) as relay:
        ws = await open_ws(relay, "/connect", origin="https://viewer.example")
        await ws.send(encode(Connect("0000-0000-00000", 1)))
        assert json.loads(await ws.recv()) == {"t": "refused",
                                               "reason": "unknown or offline ID"}
        await ws.close()
        for origin in ("https://evil.example", f"https://127.0.0.1:{relay.port + 1}"):
            with pytest.raises(InvalidStatus) as refused:
                await open_ws(relay, "/connect", origin=origin)
            assert refused.value.response.status_code == 403
        await quiet(relay)
    async with running_relay(tmp_path / "relay") as relay:  # the default: its own pages only
        with pytest.raises(InvalidStatus):
            await open_ws(relay, "/connect", origin="https://viewer.example")
        await quiet(relay)


def test_the_allow_origin_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_relay_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["relay", "--allow-origin", "https://viewer.example/",
                              "--allow-origin", "https://b.example:8000"])
    assert args.allow_origin == ["https://viewer.example", "https://b.example:8000"]
    with pytest.raises(SystemExit):
        parser.parse_args(["relay", "--allow-origin", "ftp://viewer.example"])
    assert "not an origin (https://NAME[:PORT]): 'ftp://viewer.example'" in (
        capsys.readouterr().err)

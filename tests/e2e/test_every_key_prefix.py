"""Issue 15: the browser page under a URL path prefix, as behind a gateway.

A small TLS gateway in the test serves the host under ``/desk/`` only: it strips the prefix
from each request's path before passing it (and the rest of the byte stream) to the host, and
answers 404 to anything outside the prefix — so a page that reached for ``/app/main.js`` or
``wss://…/rdesk`` at the root would never log in. The gateway keeps the browser's ``Host``
header, as a reverse proxy that preserves it does, so the host's Origin rule still applies.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from tests.e2e import test_browser as pages
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.e2e.test_browser import CHROMIUM, _wait_active, _wait_canvas_equals
from tests.xserver import Painter, Xvfb

browser = pages.browser
page_and_log = pages.page_and_log
page = pages.page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing")

PREFIX = b"/desk"
MAX_HEAD = 16 * 1024
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# The browser's own request, made for any page at the root of its origin, not the page's.
BROWSER_OWN = {"/favicon.ico"}


class PrefixGateway:
    """TLS on 127.0.0.1:port → the host, for request paths under PREFIX + "/" only."""

    def __init__(self, upstream_port: int, config_dir: Path) -> None:
        self.upstream_port = upstream_port
        cert, key = ensure_host_certificate(config_dir)
        self.server_ssl = server_ssl_context(cert, key)
        self.client_ssl = ssl.create_default_context()
        self.client_ssl.check_hostname = False
        self.client_ssl.verify_mode = ssl.CERT_NONE  # the host's self-signed test certificate
        self.paths: list[str] = []  # request paths as the browser sent them
        self.refused: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> PrefixGateway:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.server_ssl)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line, _, rest = head.partition(b"\r\n")
        method, _, tail = line.partition(b" ")
        path, _, version = tail.partition(b" ")
        self.paths.append(path.decode("latin-1"))
        if len(head) > MAX_HEAD or not path.startswith(PREFIX + b"/"):
            self.refused.append(path.decode("latin-1"))
            writer.write(NOT_FOUND)
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", self.upstream_port, ssl=self.client_ssl
        )
        up_writer.write(b" ".join((method, path[len(PREFIX):], version)) + b"\r\n" + rest)
        # One request per upstream connection: the host answers plain HTTP and closes, and
        # the browser opens a new connection (through the prefix check) for the next one.
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def gateway(host: RunningHost, tmp_path: Path) -> Iterator[PrefixGateway]:
    g = PrefixGateway(host.port, tmp_path / "gateway").start()
    try:
        yield g
    finally:
        g.stop()


def test_page_works_under_a_path_prefix(
    xvfb: Xvfb, host: RunningHost, gateway: PrefixGateway, page: Any
) -> None:
    with Painter(xvfb.display) as painter:
        painter.rect(40, 30, 200, 120, (200, 60, 20))
        page.goto(f"https://127.0.0.1:{gateway.port}/desk/")
        page.fill("#password", PASSWORD)
        page.click("#connect")
        _wait_active(page)
        _wait_canvas_equals(page, xvfb.display)
    assert "/desk/rdesk" in gateway.paths, gateway.paths
    assert "/desk/app/main.js" in gateway.paths, gateway.paths
    assert set(gateway.refused) <= BROWSER_OWN, gateway.refused


def test_gateway_refuses_the_root(host: RunningHost, gateway: PrefixGateway, page: Any) -> None:
    # The check above can fail: what a root-bound page would ask for is refused by the gateway,
    # and the same files under the prefix are served.
    base = f"https://127.0.0.1:{gateway.port}"
    for path in ("/", "/app/main.js", "/style.css", "/rdesk"):
        assert page.request.get(base + path).status == 404, path
    assert gateway.refused == ["/", "/app/main.js", "/style.css", "/rdesk"]
    assert page.request.get(base + "/desk/app/main.js").status == 200

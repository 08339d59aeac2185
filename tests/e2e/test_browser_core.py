"""The browser viewer's core in Debian's headless Chromium, and its session timers on a real page.

- ``core/framebuffer.js`` paints updates encoded by the Python codec into an
  ``OffscreenCanvas`` it is handed (no page element), pixel-exact, COPY included;
- a page whose host stops answering pings is closed by the page's own session timer
  (UNRESPONSIVE) and shown as reconnecting, then reconnects by itself;
- a host that never finishes the handshake is given up on by the handshake deadline.

Time in the page is Playwright's fake clock (``page.clock``): it flows as usual until the test
pauses it, then moves only when the test jumps it forward (instead of waiting 35 s); the host,
the TLS websocket and Chromium are real.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from rdesk.protocol import codec
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.updates import Rect, Update
from tests.e2e import test_browser as tb
from tests.e2e.conftest import RunningHost

pytestmark = tb.pytestmark

# The Chromium fixtures of test_browser.py, shared rather than copied.
browser = tb.browser
page_and_log = tb.page_and_log
page = tb.page


def _encoded(image: np.ndarray, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image, "RGB").save(out, fmt, **options)
    return out.getvalue()


def _copy_payload(src_x: int, src_y: int) -> bytes:
    return src_x.to_bytes(2, "big") + src_y.to_bytes(2, "big")


_PAINT = """
async ([width, height, updates]) => {
  const P = await import("/core/protocol.js");
  const { FrameBuffer } = await import("/core/framebuffer.js");
  const ctx = new OffscreenCanvas(1, 1).getContext("2d", { alpha: false });
  const fb = new FrameBuffer(ctx);
  fb.resize(width, height);
  const outcomes = [];
  for (const b64 of updates) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    try {
      await fb.paint(P.decodeUpdate(bytes.buffer));
      outcomes.push("painted");
    } catch (e) {
      outcomes.push(e instanceof P.ProtocolError ? `refused: ${e.reason}` : `error: ${e}`);
    }
  }
  const px = ctx.getImageData(0, 0, fb.width, fb.height).data;
  let s = "";
  for (let i = 0; i < px.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, px.subarray(i, i + 0x8000));
  }
  return [fb.width, fb.height, outcomes, btoa(s)];
}
"""


def test_framebuffer_paints_python_encoded_updates_into_an_offscreen_canvas(
    host: RunningHost, page: Any
) -> None:
    width, height = 24, 16
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    patch = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = np.zeros((height, width, 3), np.uint8)  # a resize paints black
    expected[:, :] = noise
    # COPY reads the source before it writes, even where they overlap.
    expected[3:9, 4:14] = noise[2:8, 2:12].copy()
    expected[9:14, 15:22] = patch

    full = Rect(0, 0, width, height, Encoding.PNG, _encoded(noise, "PNG"))
    copy = Rect(4, 3, 10, 6, Encoding.COPY, _copy_payload(2, 2))
    webp = Rect(15, 9, 7, 5, Encoding.WEBP, _encoded(patch, "WEBP", lossless=True))
    # Refused before decoding: the PNG says 24x16 for an 8x8 rect; then a PNG header on garbage.
    too_big = Rect(0, 0, 8, 8, Encoding.PNG, _encoded(noise, "PNG"))
    garbage = Rect(0, 0, 8, 8, Encoding.PNG, _encoded(patch, "PNG")[:33] + b"\0" * 40)
    updates = [
        Update(1, 0, (full, copy)),
        Update(2, 0, (webp,)),
        Update(3, 0, (too_big,)),
        Update(4, 0, (garbage,)),
    ]
    wire = [base64.b64encode(codec.encode(u)).decode() for u in updates]  # type: ignore[arg-type]

    page.goto(tb._https(host))
    got_w, got_h, outcomes, b64 = page.evaluate(_PAINT, [width, height, wire])
    assert (got_w, got_h) == (width, height)
    assert outcomes == [
        "painted",
        "painted",
        "refused: image declares 24x16 for a 8x8 rect",
        "refused: cannot decode an image",
    ]
    rgba = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(height, width, 4)
    assert (rgba[:, :, 3] == 255).all()
    assert np.array_equal(rgba[:, :, :3], expected)


_TIMERS = """
async () => {
  const P = await import("/core/protocol.js");
  const nonce = btoa(String.fromCharCode(...Array.from({length: 16}, (_, i) => i)));
  const hello = JSON.stringify({t: "hello", protocol: "rdesk", version: 1, nonce,
                                methods: "password", server: "timers"});
  const welcome = JSON.stringify({t: "welcome", role: "control", viewer_id: 1, width: 8,
                                  height: 8, name: "timers"});
  const code = (fn) => { try { fn(); return "none"; } catch (e) { return e.code; } };
  const out = {};
  const late = new P.ViewerSession(500);
  late.receive(hello, 600);
  late.auth("secret", "timers");
  out.handshake = [late.nextDeadline(), late.handleTimer(10499).length,
                   code(() => late.handleTimer(10500))];
  const s = new P.ViewerSession(0);
  s.receive(hello, 0);
  s.auth("secret", "timers");
  s.receive(welcome, 2000);
  out.active = [s.nextDeadline(), s.handleTimer(16999).length];
  out.keepalive = s.handleTimer(17000);
  out.pending = [s.ping(17001), s.nextDeadline()];
  s.receive(JSON.stringify({t: "pong", id: 1}), 17120);
  out.rtt = [s.rtt, s.minRtt, s.nextDeadline()];
  out.onDemand = s.ping(20000);
  // The keepalive falls due at 35000 but the on-demand ping holds the slot; its pong is due
  // at 40000.
  out.unresponsive = [s.handleTimer(35000).length, s.nextDeadline(),
                      code(() => s.handleTimer(39999)), code(() => s.handleTimer(40000))];
  return out;
}
"""


def test_session_timers_in_chromium(host: RunningHost, page: Any) -> None:
    """The session's timers, driven with fake ``now`` in the browser's own engine."""
    page.goto(tb._https(host))
    got = page.evaluate(_TIMERS)
    assert got["handshake"] == [10500, 0, 4003]
    assert got["active"] == [17000, 0]
    assert got["keepalive"] == ['{"t":"ping","id":1}']
    assert got["pending"] == [None, 32000]
    assert got["rtt"] == [120, 120, 32000]
    assert got["onDemand"] == '{"t":"ping","id":2}'
    assert got["unresponsive"] == [0, 40000, "none", 4005]


def _until(page: Any, condition: Callable[[], bool]) -> None:
    """Wait (in real time, letting the page run) until ``condition()`` holds on this side."""
    until = time.monotonic() + tb.TIMEOUT_MS / 1000
    while not condition():
        assert time.monotonic() < until, "condition not met in time"
        page.wait_for_timeout(100)


def _pause_clock(page: Any) -> None:
    """Stop the page's fake clock where it is: its time then moves only by fast_forward."""
    # Playwright's Python API takes a float as seconds since the epoch. The page's time moves
    # on between reading it and pausing; a pause in its past is refused ("Cannot fast-forward
    # to the past": 1 ms ahead failed once in CI on a busy machine), so aim 200 ms ahead —
    # far below every timer these tests drive — and read again if even that was overtaken.
    from playwright.sync_api import Error as PlaywrightError

    for _ in range(5):
        try:
            page.clock.pause_at((page.evaluate("Date.now()") + 200) / 1000)
            return
        except PlaywrightError as exc:
            if "past" not in str(exc):
                raise
    raise AssertionError("the page's clock could not be paused: it ran past every aim")


def _host_stops_reading(host: RunningHost) -> int:
    """Make the host deaf to every open viewer connection (it keeps them open): no pongs."""

    async def pause() -> int:
        server = host.server._server
        assert server is not None
        connections = list(server.connections)
        for connection in connections:
            connection.transport.pause_reading()
        return len(connections)

    return host.call(pause())


def test_a_host_that_stops_answering_pings_is_shown_reconnecting_by_the_session_timer(
    host: RunningHost, page_and_log: tuple[Any, tb.PageLog]
) -> None:
    page, log = page_and_log
    page.clock.install()
    tb._login(page, host)
    tb._wait_active(page)
    tb._wait_js(page, "!!document.body.dataset.seq")
    first = set(host.server.viewers)
    _pause_clock(page)  # from here on, page time moves only when the test says so
    assert _host_stops_reading(host) == 1
    # The page's pings now go unanswered: one goes out at the latest by the 15 s keepalive,
    # and 20 s later the session gives up on the host.
    page.clock.fast_forward(16_000)
    assert page.evaluate("document.body.dataset.state") == "active"
    page.clock.fast_forward(21_000)
    page.wait_for_selector("body[data-state=reconnecting]", state="attached")
    # The page's own verdict (the host's would say "peer did not answer a ping").
    banner = page.inner_text("#banner")
    assert banner.startswith(
        "The connection stopped responding. (host did not answer a ping) Reconnecting in 1 s"
    ), banner
    assert page.evaluate("document.body.dataset.exact") == "false"
    # The page comes back by itself on a new connection (the deaf one is never read again).
    page.clock.fast_forward(1_000)
    tb._wait_active(page)
    tb._wait_js(page, "document.body.dataset.exact === 'true'")
    assert set(host.server.viewers) - first
    assert page.is_hidden("#banner")
    assert not log.errors(), log.lines
    assert not log.csp_violations(), log.lines


def test_a_host_that_never_welcomes_is_given_up_by_the_handshake_deadline(
    host: RunningHost, page_and_log: tuple[Any, tb.PageLog]
) -> None:
    page, log = page_and_log
    page.clock.install()
    seen: list[str] = []

    def swallow_welcome(ws: Any) -> None:
        # Between the page and the real host: the hello passes, the host's welcome and all
        # that follows it (the first update...) do not. The page sees a host gone silent.
        server = ws.connect_to_server()

        def from_host(message: str | bytes) -> None:
            if isinstance(message, str) and '"t":"welcome"' in message.replace(" ", ""):
                seen.append("welcome")
            if not seen:
                ws.send(message)

        server.on_message(from_host)

    page.route_web_socket("**/rdesk", swallow_welcome)
    tb._login(page, host)
    # The host lets the page in; the page never hears of it.
    _until(page, lambda: bool(seen) and bool(host.server.viewers))
    assert seen == ["welcome"]
    assert page.evaluate("document.body.dataset.state") == "connecting"
    _pause_clock(page)
    page.clock.fast_forward(11_000)
    tb._wait_js(page, "document.getElementById('message').textContent.length > 0")
    assert page.inner_text("#message") == (
        "The host did not answer in time. (handshake not completed in time)"
    )
    assert page.evaluate("document.body.dataset.state") == "login"
    assert page.is_hidden("#desktop")
    assert not log.errors(), log.lines

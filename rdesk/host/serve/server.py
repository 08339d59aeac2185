"""The host's listening edge: accepts viewers, admits them, and routes what they share.

It does nothing clever itself: :mod:`~rdesk.host.serve.admission` decides who gets in,
:class:`~rdesk.host.serve.connection.ViewerConnection` serves each admitted viewer, and this
module holds what viewers share — the control board, the injector, the encode cache, the
login throttle — and closes every connection with a code and a one-line reason, never
exception text, when anything goes wrong. A failure in one connection never affects another.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import time
from collections.abc import Callable
from typing import Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from rdesk.common.transport import Transport, TransportClosed
from rdesk.host.clipboard.hub import ClipboardHub
from rdesk.host.encoding.encode import EncodeCache
from rdesk.host.screen.cursor import CursorHub
from rdesk.host.screen.monitors import MonitorHub
from rdesk.host.screen.resize import ResizeHub
from rdesk.host.screen.source import ScreenSource
from rdesk.host.security.accept import AcceptGate, GatedSocket, record_tls_failures
from rdesk.host.security.authpool import AuthPool
from rdesk.host.security.clientcerts import ClientCertPolicy
from rdesk.host.security.text import shown
from rdesk.host.security.throttle import AuthThrottle, UnauthenticatedLimiter
from rdesk.host.serve.admission import (
    Attempt,
    Refuse,
    decide,
)
from rdesk.host.serve.connection import ViewerConnection, close_session
from rdesk.host.serve.control import EVERYONE, ControlBoard, Delivery, holder_label
from rdesk.host.serve.login import Login
from rdesk.host.serve.transport import WebsocketTransport, wait_handlers, websocket_refusal
from rdesk.host.serve.viewerinput import InputSink
from rdesk.host.settings import HostSettings
from rdesk.host.video import encoder as video_encoder
from rdesk.host.video.shared import SharedEncoders
from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode, ProtocolError
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role
from rdesk.site.static import StaticSite, forbidden, origin_allowed

__all__ = ["WS_PATH", "Consent", "Credentials", "HostServer", "InputSink"]

log = logging.getLogger(__name__)

#: Ended handshakes that make a burst worth a cyclic collection (see ``_collect_soon``).
COLLECT_AFTER = 32
#: The websocket endpoint's path; everything else on the port is the browser page.
WS_PATH = "/rdesk"


class Credentials(Protocol):
    """Checks a secret; returns the access it grants ("control" or "view") or ``None``."""

    def check(self, secret: str) -> str | None: ...


class Consent(Protocol):
    """Asks the host's local user whether to admit a viewer; ``True`` admits it."""

    async def __call__(self, viewer_id: int, name: str, role: str, source: str) -> bool: ...


class HostServer:
    """Serves the screen of one :class:`ScreenSource` to authenticated viewers."""

    def __init__(
        self,
        settings: HostSettings,
        source: ScreenSource,
        credentials: Credentials,
        ssl_context: ssl.SSLContext,
        *,
        injector: InputSink | None = None,
        on_event: Callable[[str, dict[str, object]], None] | None = None,
        consent: Consent | None = None,
        say: Callable[[str], None] | None = None,
        cert_policy: ClientCertPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.credentials = credentials
        self.ssl_context = ssl_context
        self.injector = injector
        # The injector's rate limit (rdesk/host/input/inject.py) reports its drops for the
        # audit log; a sink without one (a test's) has nothing to report.
        report_drops_to = getattr(injector, "report_drops_to", None)
        if report_drops_to is not None:
            report_drops_to(self.input_rate_dropped)
        self.cache = EncodeCache()
        #: The video encoders of this screen, shared by viewers at similar rates.
        self.video_encoders = SharedEncoders(video_encoder.H264Encoder)
        self.site = StaticSite()
        self.throttle = AuthThrottle()
        #: Checks credentials (scrypt) in its own threads, never the encoders'.
        self.auth_pool = AuthPool(settings.auth_workers)
        #: Caps connections still in the TLS/websocket handshake, at accept time.
        self.gate = AcceptGate(settings.max_handshakes_per_source, settings.max_handshakes,
                               on_refused=self._refused_at_accept)
        #: Caps connections that have not authenticated yet, per source and overall.
        self.unauth = UnauthenticatedLimiter()
        self._collect_pending = False
        self._ended_since_collect = 0
        #: Cyclic collections run after bursts of ended handshakes (tests wait for one).
        self.collections = 0
        #: With ``--require-client-cert``: the CA whose certificates are admitted, with roles.
        self.cert_policy = cert_policy
        #: What the wiring (app.py) adds when the display has them: the X selections, the
        #: cursor watcher, the monitors. Each viewer's connection finds them here.
        self.clipboard: ClipboardHub | None = None
        self.cursor: CursorHub | None = None
        self.monitors: MonitorHub | None = None
        self.resizer: ResizeHub | None = None
        #: Who could send input after the last :meth:`deliver` (to release who loses it).
        self._input_holders: set[int] = set()
        #: The admitted viewers, by id.
        self.viewers: dict[int, ViewerConnection] = {}
        #: Who is connected and who holds control (rdesk/host/serve/control.py).
        self.board = ControlBoard(shared=settings.shared_control)
        #: The holder the last ``control_change`` audit line named.
        self._audited_holder = self.board.holder
        #: Asks the local user to admit each viewer when ``settings.consent == "ask"``.
        self.consent = consent
        #: Where lines for the host's local user go (the host console).
        self.say = say or (lambda line: log.info("%s", line))
        self._next_id = 1
        self._on_event = on_event
        self._server: Server | None = None
        #: Credentials received since the host started (the console's ``viewers`` shows it).
        self.auth_attempts = 0

    @property
    def stall_timeout(self) -> float:
        """Seconds without acknowledgement before a viewer counts as stalled."""
        return self.settings.stall_timeout

    def event(self, kind: str, **fields: object) -> None:
        """Log a security-relevant event (and hand it to the audit log, if any)."""
        # Values may come from a peer (a name, a certificate's subject): escaped for the log.
        log.info("%s %s", kind, " ".join(f"{k}={shown(str(v))}" for k, v in fields.items()))
        if self._on_event is not None:
            self._on_event(kind, fields)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the configured address; raises ``OSError`` if the port is unavailable."""
        # Load PyAV and libx264 now, off the loop, before any viewer: imported on the loop at
        # the first viewer's ``video``, test_adaptation's prefs test lost that viewer's
        # updates in 4 of 7 runs (cause not found; 0 of 5 with the import here).
        if await asyncio.to_thread(video_encoder.available) and not await asyncio.to_thread(
                video_encoder.libyuv):
            # Said once, at start: video still works, at about five times the conversion CPU.
            log.warning("video: libyuv (Debian's libyuv0) is not installed; frames are "
                        "converted with swscale, at about 5x the CPU")
        sock = GatedSocket.listen_on(self.settings.bind, self.settings.port, self.gate)
        self.gate.on_released = self._collect_soon
        self.gate.on_unfinished = self._unfinished_handshake
        record_tls_failures(self.ssl_context)
        try:
            self._server = await serve(
                self._handle,
                sock=sock,
                ssl=self.ssl_context,
                process_request=self.process_request,
                # Explicit limits (docs/protocol.md, "Limits"): viewers send control messages
                # and transfer chunks; the codec holds each kind to its own limit.
                max_size=limits.MAX_VIEWER_MESSAGE,
                max_queue=16,
                compression=None,
                # Bounds the websocket handshake, and (websockets passes it on) the TLS one.
                open_timeout=self.settings.handshake_timeout,
                close_timeout=5,
                # One keepalive, not two: the rdesk session pings each viewer itself.
                ping_interval=None,
                server_header=None,
            )
        except BaseException:
            sock.close()
            raise

    def _refused_at_accept(self, source: str, count: int) -> None:
        # One audit line for the 1st, 10th, 100th... refusal of a source, not one per socket:
        # a flood must not turn into a flood of fsynced lines.
        if count == 1 or str(count).strip("0") == "1":
            self.event("rejected", source=source, reason="too many connections in handshake",
                       count=count)

    def _unfinished_handshake(self, source: str, count: int, tls_error: str | None) -> None:
        # Plaintext, garbage, a refused TLS version, an alert or a silent socket on the TLS
        # port: one line for the 1st, 10th, 100th... of a source, with OpenSSL's reason when
        # the TLS layer gave one (rdesk/host/security/accept.py).
        if count == 1 or str(count).strip("0") == "1":
            reason = (f"TLS handshake failed: {tls_error}" if tls_error is not None
                      else "handshake not completed")
            self.event("rejected", source=source, reason=reason, count=count)

    def _collect_soon(self) -> None:
        """After a burst of ended handshakes (:data:`COLLECT_AFTER`), run the cyclic collector
        once, soon.

        CPython 3.11.7's asyncio TLS protocol allocates a 256 KiB buffer per connection and
        keeps it in reference cycles (python/cpython#109534, fixed by allocating lazily in
        later releases); without a collection that memory stays until the collector happens
        to run, so a flood's memory would not come back."""
        self._ended_since_collect += 1
        if self._collect_pending or self._ended_since_collect < COLLECT_AFTER:
            return
        self._collect_pending = True
        self._ended_since_collect = 0

        def collect() -> None:
            self._collect_pending = False
            gc.collect()
            self.collections += 1

        try:
            asyncio.get_running_loop().call_later(0.5, collect)
        except RuntimeError:  # not on the loop (a socket collected elsewhere): collect later
            self._collect_pending = False

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Close every viewer with ``SHUTDOWN`` and stop listening. Returns whatever the
        viewers do: each close is bounded, and so is the wait for the connections' handlers
        (:func:`~rdesk.host.serve.transport.wait_handlers`: cut, then abandoned and logged)."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        # All at once: a viewer that does not take its close delays the others by nothing.
        await asyncio.gather(*(
            close_session(conn.transport, conn.session, CloseCode.SHUTDOWN,
                          "host is shutting down")
            for conn in list(self.viewers.values())
        ), return_exceptions=True)
        await wait_handlers(self._server)
        self.auth_pool.close()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """The HTTP step of every websocket handshake: the page, or the Origin rule."""
        sock = connection.transport.get_extra_info("socket")
        if sock is not None:
            self.gate.spoke(sock.fileno())  # TLS done, an HTTP request came: not a failure
        # Everything but the websocket endpoint is the browser page (rdesk/site/static.py).
        if request.path.split("?", 1)[0] != WS_PATH:
            return self.site.respond(request)
        # Refuse other sites' pages before the websocket opens (cross-site hijacking).
        if not origin_allowed(request.headers, self.settings.allowed_origins):
            addr = connection.remote_address
            self.event("rejected", source=str(addr[0]) if addr else "?", reason="origin")
            return forbidden()
        return None

    # --- one connection ------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        # The handshakes are over: from here the unauthenticated limiter and the session's
        # deadlines apply, and the accept-time slot is free for the next connection.
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            self.gate.handed_over(sock.fileno())
        await self.serve_transport(WebsocketTransport(ws))

    async def serve_transport(self, transport: Transport) -> None:
        """Serve one viewer over ``transport`` from its first message to its close.

        Never raises: whatever ends the viewer closes only that transport, with a code and a
        one-line reason, and everything it held is given back.
        """
        source_addr = transport.remote
        self.event("connect", source=source_addr)
        if not self.unauth.try_acquire(source_addr):
            refusal = decide(Attempt(unauthenticated_full=True))
            assert isinstance(refusal, Refuse)
            self.event(refusal.event, source=source_addr, reason=refusal.detail)
            await transport.close(refusal.code, refusal.reason)
            return
        session = Session(Role.HOST, time.monotonic(), window=self.settings.window)
        conn: ViewerConnection | None = None
        close_reason = "viewer left"
        try:
            try:
                conn = await Login(self, transport, session).run()
            finally:
                self.unauth.release(source_addr)
            if conn is not None:
                await conn.serve()
        except ProtocolError as exc:
            self.event("protocol_error", source=source_addr, code=int(exc.code),
                       reason=exc.reason)
            close_reason = exc.reason
            await close_session(transport, session, exc.code, exc.reason)
        except TransportClosed:
            refused = websocket_refusal(transport)
            if refused is not None:  # the websocket layer refused a frame: not "viewer left"
                code, close_reason = refused
                self.event("protocol_error", source=source_addr, code=code, reason=close_reason)
        except Exception:  # a bug in one handler must not take the host down
            log.exception("internal error serving %s", source_addr)
            await close_session(transport, session, CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if conn is not None:
                self._forget(conn, close_reason)

    def _forget(self, conn: ViewerConnection, reason: str) -> None:
        """Give back what a leaving viewer held of what all viewers share."""
        if self.injector is not None:
            # Before forgetting the viewer: its last count of rate-limited input is audited
            # with its source.
            self.injector.release_all(conn.viewer_id)
        self.viewers.pop(conn.viewer_id, None)
        self.deliver(self.board.leave(conn.viewer_id))
        conn.finish(reason)
        self.event("disconnect", source=conn.transport.remote, viewer=conn.viewer_id,
                   name=conn.name, reason=reason,
                   duration=round(time.monotonic() - conn.guard.started, 1))

    def input_rate_dropped(self, viewer_id: int, count: int) -> None:
        """Audit input the injector's rate limit dropped (it reports at most once a second
        per viewer while a flood lasts, and once when it ends)."""
        conn = self.viewers.get(viewer_id)
        self.event("input_dropped", source=conn.transport.remote if conn else None,
                   viewer=viewer_id, reason="rate limit", count=count)

    def take_id(self) -> int:
        """A viewer id never used before on this host."""
        viewer_id = self._next_id
        self._next_id += 1
        return viewer_id

    # --- several viewers -----------------------------------------------------------------------

    def kick(self, viewer_id: int) -> bool:
        """Disconnect a viewer (the local user's decision); False if there is no such viewer."""
        conn = self.viewers.get(viewer_id)
        if conn is None:
            return False
        self.event("kicked", viewer=viewer_id)
        conn.close_later(CloseCode.POLICY, "disconnected by the host's user")
        return True

    def deliver(self, deliveries: list[Delivery]) -> None:
        """Post control messages to viewers' outboxes (never blocking on a slow viewer).

        Called after each change of :attr:`board`; when its holder changed, audits one
        ``control_change`` line (the new and old holder, who made the change and how).
        """
        if self.board.holder != self._audited_holder:
            by, reason = self.board.last_change
            self.event("control_change", holder=holder_label(self.board.holder),
                       old_holder=holder_label(self._audited_holder), by=by, reason=reason)
            self._audited_holder = self.board.holder
        for target, message in deliveries:
            if isinstance(message, str):
                self.say(shown(message))  # names in it were escaped at login; this is the net
                continue
            targets = list(self.viewers) if target == EVERYONE else [target]
            for viewer_id in targets:
                conn = self.viewers.get(viewer_id)
                if conn is not None:
                    conn.post(message)
        # Whoever lost control lets go of every key and button it held. Compared with the
        # holders after the last delivery: callers change the board before calling this.
        holders = self._holders()
        for viewer_id in self._input_holders - holders:
            if self.injector is not None:
                self.injector.release_all(viewer_id)
        self._input_holders = holders

    def _holders(self) -> set[int]:
        return {v for v in self.viewers if self.board.may_input(v)}

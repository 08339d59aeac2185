"""The host's I/O edge: drives one :class:`~rdesk.protocol.session.Session` per websocket.

It does nothing clever itself (DESIGN.md, "Layers"): it reads messages into the session,
checks credentials, hands input to the injector only for viewers that hold control, runs each
viewer's :class:`~rdesk.host.serve.viewer.ViewerLink` sender, and closes every connection with a
code and a one-line reason — never exception text — when anything goes wrong. A failure in
one connection never affects another.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rdesk import __version__
from rdesk.host.encoding.encode import EncodeCache
from rdesk.host.screen.source import ScreenSource
from rdesk.host.security.ca import ClientCertPolicy
from rdesk.host.security.throttle import AuthThrottle, UnauthenticatedLimiter
from rdesk.host.serve.control import EVERYONE, ControlBoard, Delivery, Member
from rdesk.host.serve.viewer import ViewerLink
from rdesk.host.serve.web import StaticSite, forbidden, origin_allowed
from rdesk.host.settings import HostSettings
from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode, ProtocolError, RemoteProtocolError
from rdesk.protocol.messages import (
    LOCAL_USER,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    AnswerControl,
    Auth,
    Close,
    ControlMessage,
    Hello,
    InputAck,
    Key,
    Notice,
    Ping,
    Pointer,
    Pong,
    Prefs,
    Refresh,
    ReleaseControl,
    RequestControl,
    Sync,
    Welcome,
    Wheel,
)
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role
from rdesk.recording.format import Recorder, RecordingError

__all__ = ["WS_PATH", "OUTBOX_LIMIT", "Consent", "Credentials", "HostServer", "InputSink"]

log = logging.getLogger(__name__)

#: The websocket endpoint's path; everything else on the port is the browser page.
WS_PATH = "/rdesk"


class Credentials(Protocol):
    """Checks a secret; returns the role it grants ("control" or "view") or ``None``."""

    def check(self, secret: str) -> str | None: ...


class Consent(Protocol):
    """Asks the host's local user whether to admit a viewer; ``True`` admits it."""

    async def __call__(self, viewer_id: int, name: str, role: str, source: str) -> bool: ...


#: Control messages that may wait for one viewer before it counts as not reading.
OUTBOX_LIMIT = 256


class InputSink(Protocol):
    """Injects one viewer's input into the host's display (see :mod:`rdesk.host.input.inject`)."""

    def pointer(self, owner: int, x: int, y: int, buttons: int) -> None: ...

    def wheel(self, owner: int, x: int, y: int, dx: int, dy: int) -> None: ...

    def key(self, owner: int, keysym: int, down: bool) -> None: ...

    def release_all(self, owner: int) -> None: ...


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
        self.cache = EncodeCache()
        self.site = StaticSite()
        self.throttle = AuthThrottle()
        #: Caps connections that have not authenticated yet, per source and overall.
        self.unauth = UnauthenticatedLimiter()
        #: With ``--require-client-cert``: the CA whose certificates are admitted, with roles.
        self.cert_policy = cert_policy
        self._recorders: dict[int, Recorder] = {}
        self.viewers: dict[int, ViewerLink] = {}
        #: Who is connected and who holds control (rdesk/host/serve/control.py).
        self.board = ControlBoard(shared=settings.shared_control)
        #: Asks the local user to admit each viewer when ``settings.consent == "ask"``.
        self.consent = consent
        #: Where lines for the host's local user go (the host console).
        self.say = say or (lambda line: log.info("%s", line))
        self._outboxes: dict[int, asyncio.Queue[str | bytes]] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._sockets: dict[int, ServerConnection] = {}
        self._dropped_logged: dict[int, float] = {}
        self._next_id = 1
        self._on_event = on_event
        self._server: Server | None = None
        #: Authentication attempts seen (tests assert a pinned viewer never got this far).
        self.auth_attempts = 0

    def _event(self, kind: str, **fields: object) -> None:
        log.info("%s %s", kind, " ".join(f"{k}={v}" for k, v in fields.items()))
        if self._on_event is not None:
            self._on_event(kind, fields)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the configured address; raises ``OSError`` if the port is unavailable."""
        self._server = await serve(
            self._handle,
            self.settings.bind,
            self.settings.port,
            ssl=self.ssl_context,
            process_request=self._process_request,
            # Explicit limits (docs/protocol.md, "Limits"): viewers send control messages only.
            max_size=limits.MAX_CONTROL_MESSAGE,
            max_queue=16,
            compression=None,
            open_timeout=10,
            close_timeout=5,
            ping_interval=20,
            ping_timeout=20,
            server_header=None,
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Close every viewer with ``SHUTDOWN`` and stop listening."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        for viewer_id, link in list(self.viewers.items()):
            link_ws = self._sockets.get(viewer_id)
            if link_ws is not None:
                await _close(link_ws, link.session, CloseCode.SHUTDOWN, "host is shutting down")
        await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        # Everything but the websocket endpoint is the browser page (rdesk/host/serve/web.py).
        if request.path.split("?", 1)[0] != WS_PATH:
            return self.site.respond(request)
        # Refuse other sites' pages before the websocket opens (cross-site hijacking).
        if not origin_allowed(request.headers, self.settings.allowed_origins):
            self._event("rejected", source=_peer(connection), reason="origin")
            return forbidden()
        return None

    # --- one connection ------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        source_addr = _peer(ws)
        self._event("connect", source=source_addr)
        if not self.unauth.try_acquire(source_addr):
            # Slowloris and connection floods: a bounded number may be mid-handshake.
            self._event("rejected", source=source_addr, reason="too many unauthenticated")
            with contextlib.suppress(Exception):
                await ws.close(CloseCode.POLICY, "too many unauthenticated connections")
            return
        session = Session(Role.HOST, time.monotonic(), window=self.settings.window)
        link: ViewerLink | None = None
        close_reason = "viewer left"
        try:
            try:
                link = await self._authenticate(ws, session, source_addr)
            finally:
                self.unauth.release(source_addr)
            if link is None:
                return
            await self._serve_viewer(ws, session, link)
        except ProtocolError as exc:
            self._event("protocol_error", source=source_addr, reason=exc.reason)
            close_reason = exc.reason
            await _close(ws, session, exc.code, exc.reason)
        except ConnectionClosed:
            pass
        except Exception:  # a bug in one handler must not take the host down
            log.exception("internal error serving %s", source_addr)
            await _close(ws, session, CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if link is not None:
                self.viewers.pop(link.viewer_id, None)
                self._outboxes.pop(link.viewer_id, None)
                self._sockets.pop(link.viewer_id, None)
                self._dropped_logged.pop(link.viewer_id, None)
                self.source.unsubscribe(link)
                if self.injector is not None:
                    self.injector.release_all(link.viewer_id)
                self.deliver(self.board.leave(link.viewer_id))
                recorder = self._recorders.pop(link.viewer_id, None)
                if recorder is not None:
                    recorder.close(close_reason)
                self._event("disconnect", viewer=link.viewer_id, name=link.name,
                            reason=close_reason)

    async def _authenticate(
        self, ws: ServerConnection, session: Session, source_addr: str
    ) -> ViewerLink | None:
        nonce = base64.b64encode(secrets.token_bytes(limits.NONCE_BYTES)).decode()
        methods = "certificate" if self.cert_policy is not None else "password"
        hello = Hello(PROTOCOL_NAME, PROTOCOL_VERSION, nonce, methods, f"rdesk/{__version__}")
        await ws.send(session.send(hello, time.monotonic()))
        deadline = session.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            data = await asyncio.wait_for(ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise RemoteProtocolError(
                "handshake not completed in time", CloseCode.HANDSHAKE_TIMEOUT
            ) from None
        message = session.receive(data, time.monotonic())
        if isinstance(message, Close):
            return None
        assert isinstance(message, Auth)  # the state machine allows nothing else here
        self.auth_attempts += 1
        if self.throttle.locked(time.monotonic()):
            # Distributed guessing: every source waits once the host-wide limit is reached.
            self._event("auth_locked", source=source_addr, method=message.method)
            await _close(ws, session, CloseCode.POLICY, "too many failed logins; try again later")
            return None
        wait = self.throttle.delay(source_addr, time.monotonic())
        # Checking the secret (scrypt) runs in a thread; the penalty is served regardless.
        role, _ = await asyncio.gather(self._check(ws, message), asyncio.sleep(wait))
        if role is None:
            self.throttle.failed(source_addr, time.monotonic())
            self._event("auth_failure", source=source_addr, method=message.method)
            self._maybe_rotate()
            what = "certificate" if self.cert_policy is not None else "password"
            await _close(ws, session, CloseCode.AUTH_FAILED, f"wrong {what}")
            return None
        self.throttle.succeeded(source_addr)
        if len(self.viewers) >= self.settings.max_viewers:
            self._event("rejected", source=source_addr, reason="max_viewers")
            await _close(
                ws,
                session,
                CloseCode.POLICY,
                f"host has reached its limit of {self.settings.max_viewers} viewers",
            )
            return None
        viewer_id = self._next_id
        self._next_id += 1
        if self.settings.consent == "ask" and not await self._ask_consent(
            ws, session, viewer_id, message.name, role, source_addr
        ):
            return None
        recorder = self._start_recording(viewer_id)
        send = ws.send if recorder is None else _recorded(ws.send, recorder)

        link = ViewerLink(
            viewer_id,
            message.name,
            role,
            session,
            self.source,
            self.cache,
            send,
            quality=self.settings.quality,
            lossless_delay=self.settings.lossless_delay,
            max_fps=self.settings.max_fps,
            max_bandwidth=self.settings.max_bandwidth,
        )
        host_name = self.settings.name or "rdesk host"
        welcome = Welcome(role, viewer_id, self.source.width, self.source.height, host_name)
        await send(session.send(welcome, time.monotonic()))
        self.viewers[viewer_id] = link
        self._outboxes[viewer_id] = asyncio.Queue(OUTBOX_LIMIT)
        self._sockets[viewer_id] = ws
        self._event("auth_success", source=source_addr, viewer=viewer_id, role=role)
        self.deliver(self.board.join(Member(viewer_id, message.name, role)))
        return link

    async def _check(self, ws: ServerConnection, message: Auth) -> str | None:
        """The role the connection's credential grants, or ``None``."""
        if self.cert_policy is None:
            if message.method != "password":
                return None
            return await asyncio.to_thread(self.credentials.check, message.secret)
        # The TLS layer already required a certificate chaining to our CA; the role (and
        # revocation) comes from it, and nothing the viewer typed can change that.
        ssl_object = ws.transport.get_extra_info("ssl_object") if ws.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return self.cert_policy.role_for(der)

    def _maybe_rotate(self) -> None:
        """After repeated failures, replace a one-time password (it may be being guessed)."""
        rotate = getattr(self.credentials, "rotate", None)
        if rotate is not None and self.throttle.should_rotate():
            new = rotate()
            if new is not None:
                self._event("password_rotated")
                self.say(f"one-time password changed after repeated failed logins: {new}")

    def _start_recording(self, viewer_id: int) -> Recorder | None:
        if self.settings.record_dir is None:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            recorder = Recorder(
                self.settings.record_dir,
                f"{stamp}-viewer{viewer_id}",
                record_input=self.settings.record_input,
                host_name=self.settings.name,
            )
        except RecordingError as exc:
            self._event("recording_error", viewer=viewer_id, reason=str(exc))
            return None
        self._recorders[viewer_id] = recorder
        return recorder

    async def _ask_consent(
        self,
        ws: ServerConnection,
        session: Session,
        viewer_id: int,
        name: str,
        role: str,
        source_addr: str,
    ) -> bool:
        """Ask the local user; close the connection and return False unless admitted."""
        notice = Notice("waiting for the host's user to accept this connection")
        await ws.send(session.send(notice, time.monotonic()))
        admitted = False
        if self.consent is not None:
            try:
                admitted = await asyncio.wait_for(
                    self.consent(viewer_id, name, role, source_addr),
                    self.settings.consent_timeout,
                )
            except asyncio.TimeoutError:
                reason = "the host's user did not answer in time"
            else:
                reason = "the host's user refused the connection"
        else:
            reason = "nobody at the host can accept connections"
        self._event("consent", viewer=viewer_id, source=source_addr, admitted=admitted)
        if not admitted:
            await _close(ws, session, CloseCode.POLICY, reason)
        return admitted

    # --- several viewers -----------------------------------------------------------------------

    def kick(self, viewer_id: int) -> bool:
        """Disconnect a viewer (the local user's decision); False if there is no such viewer."""
        link, ws = self.viewers.get(viewer_id), self._sockets.get(viewer_id)
        if link is None or ws is None:
            return False
        self._event("kicked", viewer=viewer_id)
        self._close_later(ws, link.session, CloseCode.POLICY, "disconnected by the host's user")
        return True

    def _close_later(self, ws: ServerConnection, session: Session, code: int, reason: str) -> None:
        """Close a viewer from outside its own tasks (they end when the socket closes)."""
        task = asyncio.ensure_future(_close(ws, session, code, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def deliver(self, deliveries: list[Delivery]) -> None:
        """Post control messages to viewers' outboxes (never blocking on a slow viewer)."""
        before = self._holders()
        for target, message in deliveries:
            if isinstance(message, str):
                self.say(message)
                continue
            targets = list(self.viewers) if target == EVERYONE else [target]
            for viewer_id in targets:
                self._post(viewer_id, message)
        for viewer_id in before - self._holders():
            # Whoever lost control lets go of every key and button it held.
            if self.injector is not None:
                self.injector.release_all(viewer_id)

    def _holders(self) -> set[int]:
        return {v for v in self.viewers if self.board.may_input(v)}

    def _post(self, viewer_id: int, message: ControlMessage) -> None:
        link, outbox = self.viewers.get(viewer_id), self._outboxes.get(viewer_id)
        if link is None or outbox is None:
            return
        try:
            frame = link.session.send(message, time.monotonic())
        except ProtocolError:
            return  # closing already
        try:
            outbox.put_nowait(frame)
        except asyncio.QueueFull:
            # It has not read hundreds of messages: treat it as gone, bounding memory.
            self._event("protocol_error", viewer=viewer_id, reason="viewer stopped reading")
            ws = self._sockets.get(viewer_id)
            if ws is not None:
                reason = "viewer stopped reading"
                self._close_later(ws, link.session, CloseCode.UNRESPONSIVE, reason)

    async def _post_office(self, ws: ServerConnection, viewer_id: int) -> None:
        outbox = self._outboxes[viewer_id]
        while True:
            await ws.send(await outbox.get())

    async def _serve_viewer(
        self, ws: ServerConnection, session: Session, link: ViewerLink
    ) -> None:
        self.source.subscribe(link)
        tag = f"viewer-{link.viewer_id}"
        tasks = [
            asyncio.create_task(link.run(), name=f"{tag}-send"),
            asyncio.create_task(self._timers(ws, session), name=f"{tag}-timers"),
            asyncio.create_task(self._receive(ws, session, link), name=f"{tag}-recv"),
            asyncio.create_task(self._post_office(ws, link.viewer_id), name=f"{tag}-post"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise the reason the viewer ends
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _timers(self, ws: ServerConnection, session: Session) -> None:
        stall = self.settings.stall_timeout
        while True:
            now = time.monotonic()
            deadline = session.next_deadline()
            wake = min(deadline, now + 1.0) if deadline is not None else now + 1.0
            await asyncio.sleep(max(0.0, wake - now))
            now = time.monotonic()
            for frame in session.handle_timer(now):
                await ws.send(frame)
            session.flow.check_stalled(now, stall)

    async def _receive(self, ws: ServerConnection, session: Session, link: ViewerLink) -> None:
        recorder = self._recorders.get(link.viewer_id)
        async for data in ws:
            message = session.receive(data, time.monotonic())
            if recorder is not None:
                recorder.received(data)
            if isinstance(message, Close):
                return
            if isinstance(message, Ack):
                link.acked()
            elif isinstance(message, Ping):
                await ws.send(session.send(Pong(message.id), time.monotonic()))
            elif isinstance(message, Refresh):
                link.refresh()
            elif isinstance(message, Prefs):
                link.set_prefs(message.quality, message.max_fps, message.max_bandwidth)
            elif isinstance(message, (Pointer, Wheel, Key, Sync)):
                await self._input(ws, session, link, message)
            elif isinstance(message, RequestControl):
                self.deliver(self.board.request(link.viewer_id))
            elif isinstance(message, ReleaseControl):
                self.deliver(self.board.release(link.viewer_id))
            elif isinstance(message, AnswerControl):
                answer = self.board.answer(link.viewer_id, message.id, message.grant)
                if answer is None:
                    self._event("policy_violation", viewer=link.viewer_id,
                                reason="answered a control request it may not answer")
                else:
                    self.deliver(answer)

    def _note_dropped(self, link: ViewerLink) -> None:
        """Log input dropped for lack of control, at most once a second per viewer."""
        now = time.monotonic()
        if now - self._dropped_logged.get(link.viewer_id, -1e9) >= 1.0:
            self._dropped_logged[link.viewer_id] = now
            self._event("input_dropped", viewer=link.viewer_id, reason="no control")

    async def _input(
        self,
        ws: ServerConnection,
        session: Session,
        link: ViewerLink,
        message: Pointer | Wheel | Key | Sync,
    ) -> None:
        may = self.board.may_input(link.viewer_id)
        allowed = may and self.injector is not None
        if isinstance(message, Sync):
            reason = "" if allowed else (
                _no_control_reason(self.board, link)
                if not may
                else "input is disabled on this host"
            )
            ack = InputAck(message.id, allowed, reason)
            await ws.send(session.send(ack, time.monotonic()))
            return
        if not allowed:
            self._note_dropped(link)
            return
        assert self.injector is not None
        if isinstance(message, Pointer):
            self.injector.pointer(link.viewer_id, message.x, message.y, message.buttons)
        elif isinstance(message, Wheel):
            self.injector.wheel(link.viewer_id, message.x, message.y, message.dx, message.dy)
        else:
            self.injector.key(link.viewer_id, message.keysym, message.down)


def _no_control_reason(board: ControlBoard, link: ViewerLink) -> str:
    if board.holder == LOCAL_USER:
        return "no control: the host's local user holds control"
    if link.role != "control" and board.holder != link.viewer_id:
        return "view-only: this viewer does not hold control"
    holder = board.members.get(board.holder)
    if holder is not None:
        return f"no control: viewer #{holder.id} {holder.name[:40]} holds control"
    return "no control: request control first"


def _recorded(
    send: Callable[[str | bytes], Awaitable[None]], recorder: Recorder
) -> Callable[[str | bytes], Awaitable[None]]:
    """``send`` that also hands every frame it sent to the session recorder."""

    async def send_and_record(frame: str | bytes) -> None:
        await send(frame)
        recorder.sent(frame)

    return send_and_record


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return str(addr[0]) if addr else "?"


async def _close(ws: ServerConnection, session: Session, code: int, reason: str) -> None:
    """Send the protocol Close (if the session is open) and close the websocket, best effort."""
    frame = session.close_frame(code, reason)
    with contextlib.suppress(Exception):
        if frame is not None:
            await asyncio.wait_for(ws.send(frame), 2)
    with contextlib.suppress(Exception):
        await ws.close(code, reason[:120])


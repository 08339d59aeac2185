"""The running connection: an admitted viewer following the host's screen.

:class:`Connection` is what :func:`rdesk.client.connection.connect` returns. One task reads
and handles the host's messages; the framebuffer's changes go to a
:class:`~rdesk.client.painter.Painter`, which paints them off the event loop, in order and
within a per-second budget, acknowledging each update once painted (so a hostile update
cannot stall pings, input or ``close()``);
the session's timers (:class:`~rdesk.client.timers.SessionTimers`) run beside it, sending the
keepalive pings and ending the connection with the session's reason when the host stops
answering them. Either way the connection ends, :attr:`Connection.closed` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rdesk.client.address import HostAddress
from rdesk.client.clipboard import ClipboardState
from rdesk.client.errors import ConnectionLost, ScreenRefused
from rdesk.client.framebuffer import DEFAULT_MAX_SCREEN_PIXELS, Framebuffer, ScreenTooLarge
from rdesk.client.inputs import InputMethods, Outgoing
from rdesk.client.painter import PaintBudget, Painter
from rdesk.client.parts import Stats, abort, cancel, lost_from_ws
from rdesk.client.requests import Requests
from rdesk.client.timers import SessionTimers
from rdesk.protocol import limits
from rdesk.protocol.clipboard import HOST_SENDS as CLIPBOARD_MESSAGES
from rdesk.protocol.cursor import CURSOR_TYPES, CursorAssembler, CursorShape
from rdesk.protocol.errors import CloseCode, ProtocolError, RemoteProtocolError
from rdesk.protocol.inputs import InputAck
from rdesk.protocol.messages import Ack, Close, Notice, Ping, Pong, Screen, Welcome
from rdesk.protocol.monitors import ALL, MonitorCurrent, MonitorInfo
from rdesk.protocol.presence import NOBODY, AnswerControl, Control, ControlRequest, Peer
from rdesk.protocol.resize import ResizeResult
from rdesk.protocol.session import Session
from rdesk.protocol.states import State
from rdesk.protocol.transfer import HOST_SENDS as TRANSFER_MESSAGES
from rdesk.protocol.updates import Update
from rdesk.protocol.video import CODEC_H264, FEATURE_HOLD, Keyframe, Video, VideoEnd

__all__ = ["Connection"]


class Connection(InputMethods, Requests):
    """An authenticated viewer connection that keeps :attr:`framebuffer` current.

    A background task applies updates and acknowledges each one after painting it. Faces
    register callbacks with :meth:`on_update`; scripts await :meth:`wait_exact`. Input methods
    send at once; :meth:`sync` waits until the host confirms everything before it.
    """

    def __init__(
        self,
        ws: ClientConnection,
        session: Session,
        address: HostAddress,
        welcome: Welcome,
        host_fingerprint: str,
        timers: SessionTimers,
        timer_task: asyncio.Task[None],
        *,
        video: bool = False,
        max_pixels: int = DEFAULT_MAX_SCREEN_PIXELS,
    ) -> None:
        super().__init__()  # Requests: the outstanding sync and resize requests
        self.ws = ws
        self.session = session
        self.address = address
        self.role = welcome.role
        self.viewer_id = welcome.viewer_id
        self.host_name = welcome.name
        self.host_fingerprint = host_fingerprint
        #: Why the welcome itself is refused (a screen over the viewer's limit): the
        #: connection then ends at once with that reason, before any pixel is allocated.
        self._refused: ProtocolError | None = None
        try:
            self.framebuffer = Framebuffer(welcome.width, welcome.height, video=video,
                                           max_pixels=max_pixels)
        except ProtocolError as exc:
            self.framebuffer, self._refused = Framebuffer(1, 1), exc
        #: Paints the framebuffer's changes off the loop (rdesk/client/painter.py).
        self.painter = Painter(self.framebuffer, PaintBudget(time.monotonic()))
        self.stats = Stats()
        self._changed = asyncio.Condition()
        self._callbacks: list[Callable[[list[tuple[int, int, int, int]]], None]] = []
        self._timers = timers
        self._timer_task = timer_task
        self._task: asyncio.Task[None] | None = None
        #: Why the reading or the painting task refused the host (whichever came first).
        self._cause: ConnectionLost | None = None
        #: Other viewers connected to the host, by id.
        self.peers: dict[int, Peer] = {}
        #: Who holds control: a viewer id, ``NOBODY`` or ``LOCAL_USER``.
        self.holder = NOBODY
        #: Control requests from other viewers this viewer may answer (it holds control).
        self.control_requests: dict[int, ControlRequest] = {}
        #: Lines the host sent for the user (most recent last, bounded).
        self.notices: list[str] = []
        #: The host's cursor to draw: its shape (size, hot spot) and PNG, once one arrived.
        self.cursor: tuple[CursorShape, bytes] | None = None
        self._cursors = CursorAssembler()
        #: The host's monitors by index, and the one shared (``ALL``: the whole screen).
        self.monitors: dict[int, MonitorInfo] = {}
        self.monitor = ALL
        #: The clipboard exchange with the host (rdesk/client/clipboard.py).
        self.clipboard = ClipboardState()
        #: Where the host's ``xfer_*`` messages go (rdesk/client/transfer.py sets it).
        self.transfer_handler: Callable[[object], Awaitable[None]] | None = None
        #: Set when the connection ends: the reason, as an exception.
        self.closed: asyncio.Future[ConnectionLost] = asyncio.get_running_loop().create_future()

    @property
    def width(self) -> int:
        return self.framebuffer.size[0]

    @property
    def height(self) -> int:
        return self.framebuffer.size[1]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rdesk-viewer-receive")

    def on_update(self, callback: Callable[[list[tuple[int, int, int, int]]], None]) -> None:
        """Call ``callback(painted_rects)`` after each update is applied (an empty list after a
        resize, meaning "everything")."""
        self._callbacks.append(callback)

    # --- receiving -----------------------------------------------------------------------------

    async def _run(self) -> None:
        receive = asyncio.ensure_future(self._receive())
        paint = asyncio.ensure_future(self._ended_by(self.painter.run()))
        try:
            # The session's timers end only by failing: the host stopped answering pings; the
            # painter only by a refused update.
            await asyncio.wait({receive, paint, self._timer_task},
                               return_when=asyncio.FIRST_COMPLETED)
            if receive.done():
                lost = receive.result()
            elif paint.done():
                lost = paint.result()
            else:
                lost = await self._timers_failed()
            lost = self._cause or lost
        finally:
            await cancel(self._timer_task)
            await cancel(receive)
            await cancel(paint)
            self._cancel_requests()
        if not self.closed.done():
            self.closed.set_result(lost)
        async with self._changed:
            self._changed.notify_all()

    async def _receive(self) -> ConnectionLost:
        """Handle messages until the connection ends; why it ended."""
        return await self._ended_by(self._read())

    async def _read(self) -> None:
        if self._refused is not None:
            raise self._refused
        if self.framebuffer.video is not None and self.session.state is not State.CLOSED:
            # The host sends H.264 only once asked (not if close() came first). Hold times in
            # acks are offered with it (a host that uses them answers with ack_hold); without
            # a decoder nothing is sent, as a host of before `video` refuses the message.
            await self.ws.send(self.session.send(Video(f"{CODEC_H264},{FEATURE_HOLD}"),
                                                 time.monotonic()))
        async for data in self.ws:
            if self.session.state is State.CLOSED:
                # We sent Close (close()): what the host sent before it saw ours is dropped,
                # but read, so the host's closing frame behind it is too. Left unread, the
                # websocket stops reading at its queue limit and the close waits out its
                # timeout (5 s).
                continue
            await self._handle(data)

    async def _ended_by(self, work: Awaitable[None]) -> ConnectionLost:
        """Await ``work`` (reading, or painting) until the connection ends; why it ended."""
        try:
            await work
            return lost_from_ws(self.ws, self.address)
        except ConnectionClosed:
            return lost_from_ws(self.ws, self.address)
        except ProtocolError as exc:
            # Kept first: the other task sees only the close this causes, not why.
            kind = ScreenRefused if isinstance(exc, ScreenTooLarge) else ConnectionLost
            self._cause = self._cause or kind(f"{self.address}: {exc.reason}", exc.code)
            # Reading on while closing (when the reading itself failed; the reader reads on
            # otherwise): unread frames would stop the websocket reading at its queue limit,
            # and the host's closing frame behind them, a 5 s wait each time.
            drain = asyncio.ensure_future(self._drain())
            try:
                await abort(self.ws, self.session, exc.code, exc.reason)
            finally:
                await cancel(drain)
            return self._cause
        except _HostClosed as exc:
            return exc.lost

    async def _drain(self) -> None:
        """Read and drop whatever still arrives until the connection closes (nothing when
        another task is reading: the websocket refuses a second reader)."""
        with contextlib.suppress(Exception):
            async for _ in self.ws:
                pass

    async def _timers_failed(self) -> ConnectionLost:
        try:
            self._timer_task.result()
        except ProtocolError as exc:  # UNRESPONSIVE: close with the session's reason
            await abort(self.ws, self.session, exc.code, exc.reason)
            return ConnectionLost(f"{self.address}: {exc.reason}", exc.code)
        except ConnectionClosed:  # a keepalive ping found the connection gone
            pass
        return lost_from_ws(self.ws, self.address)

    async def _handle(self, data: str | bytes) -> None:
        received = time.monotonic()  # the whole message is here: its last byte came
        message = self.session.receive(data, received)
        if isinstance(message, Update):
            update, nbytes = message, len(data)

            async def painted(areas: list[tuple[int, int, int, int]]) -> None:
                await self._painted(update, nbytes, areas, received)

            await self.painter.put_update(update, nbytes, painted)
            return  # painted() wakes the waiters
        elif isinstance(message, Screen):
            width, height = message.width, message.height
            await self.painter.put(lambda: self.framebuffer.resize(width, height),
                                   self._resized)
            return
        elif isinstance(message, VideoEnd):
            video, stream = self.framebuffer.video, message.stream
            if video is not None:
                await self.painter.put(lambda: video.end(stream), _nothing)
        elif isinstance(message, Ping):
            await self.ws.send(self.session.send(Pong(message.id), time.monotonic()))
        elif isinstance(message, Pong):
            # The session matched it to our outstanding ping and measured the round trip.
            self.stats.pongs += 1
            self.stats.rtt, self.stats.min_rtt = self.session.rtt, self.session.min_rtt
        elif isinstance(message, (InputAck, ResizeResult)):
            self._answered(message)
        elif isinstance(message, Peer):
            if message.present and message.id != self.viewer_id:
                self.peers[message.id] = message
            else:
                self.peers.pop(message.id, None)
                self.control_requests.pop(message.id, None)
        elif isinstance(message, Control):
            self.holder = message.holder
            if message.holder != self.viewer_id:
                self.control_requests.clear()
        elif isinstance(message, ControlRequest):
            self.control_requests[message.id] = message
        elif isinstance(message, Notice):
            self.notices = [*self.notices[-19:], message.text]
        elif isinstance(message, MonitorInfo):
            # The host sends the whole list again when monitors come or go: drop what is gone.
            self.monitors = {i: m for i, m in self.monitors.items() if i < message.count}
            self.monitors[message.index] = message
        elif isinstance(message, MonitorCurrent):
            self.monitor = message.index
        elif isinstance(message, CURSOR_TYPES):
            shown = self._cursors.receive(message)
            if shown is not None:
                self.cursor = shown
        elif isinstance(message, CLIPBOARD_MESSAGES):
            reply = self.clipboard.receive(message)
            if reply is not None:
                await self._send_frame(self.session.send(reply, time.monotonic()))
        elif isinstance(message, TRANSFER_MESSAGES):
            if self.transfer_handler is None:
                raise RemoteProtocolError(f"{message.T} but no transfer was asked for")
            await self.transfer_handler(message)
            return  # a chunk wakes no waiter: the transfer's own queue does
        elif isinstance(message, Close):
            raise _HostClosed(
                ConnectionLost(
                    f"{self.address} closed the connection: {message.reason}", message.code
                )
            )
        async with self._changed:
            self._changed.notify_all()

    async def _painted(self, update: Update, nbytes: int,
                       areas: list[tuple[int, int, int, int]], received: float) -> None:
        """``update`` (whose last byte came at ``received``) is painted (by the painter):
        acknowledge it, with how long it was held if the host asked, and tell the faces."""
        if self.session.state is State.CLOSED:
            return  # close() raced the painter: nothing more is sent
        now = time.monotonic()
        hold = None
        if self.session.hold_acks:  # the host sent ack_hold: it knows the field
            hold = min(limits.MAX_ACK_HOLD_US, max(0, round((now - received) * 1e6)))
        await self.ws.send(self.session.send(Ack(update.seq, hold), now))
        if self.framebuffer.video is not None:  # streams that lost their decoder
            for stream in self.framebuffer.video.take_requests(now):
                await self.ws.send(self.session.send(Keyframe(stream), now))
        self.stats.updates += 1
        self.stats.rects += len(update.rects)
        self.stats.bytes += nbytes
        self.stats.last_update_host_us = update.timestamp_us
        self.stats.last_update = update
        await self._notify(areas)

    async def _resized(self, _: object) -> None:
        await self._notify([])

    async def _notify(self, painted: list[tuple[int, int, int, int]]) -> None:
        for callback in self._callbacks:
            callback(painted)
        async with self._changed:
            self._changed.notify_all()

    async def wait_exact(self, timeout: float) -> None:
        """Wait until the framebuffer is pixel-exact with the host's screen.

        Raises :class:`ConnectionLost` if the connection ends first, ``TimeoutError`` after
        ``timeout`` seconds.
        """
        await self.wait_for(lambda: self.framebuffer.exact, timeout)

    # --- sending -------------------------------------------------------------------------------

    async def _send(self, message: Outgoing) -> None:
        if self.closed.done():
            raise self.closed.result()
        await self._send_frame(self.session.send(message, time.monotonic()))

    async def _send_frame(self, frame: str | bytes) -> None:
        try:
            await self.ws.send(frame)
        except ConnectionClosed:
            raise lost_from_ws(self.ws, self.address) from None

    async def answer_control(self, viewer_id: int, grant: bool) -> None:
        """As the holder, grant or refuse viewer ``viewer_id``'s request."""
        self.control_requests.pop(viewer_id, None)
        await self._send(AnswerControl(viewer_id, grant))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds after some message; ``TimeoutError`` otherwise."""

        async def _wait() -> None:
            async with self._changed:
                while not predicate():
                    if self.closed.done():
                        raise self.closed.result()
                    await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def ping(self) -> bool:
        """Measure the round trip now: the pong sets :attr:`Stats.rtt`.

        The session keeps one ping outstanding at a time (the keepalive's or this one):
        returns False, sending nothing, while one awaits its pong. A ping the host never
        answers closes the connection (``UNRESPONSIVE``) after the ping timeout.
        """
        if self.closed.done():
            raise self.closed.result()
        frame = self.session.ping(time.monotonic())
        if frame is None:
            return False
        self._timers.poke()  # its pong deadline may come before what the timers sleep to
        await self._send_frame(frame)
        return True

    async def close(self) -> None:
        """Close cleanly (idempotent) and wait for the receive task to end."""
        self.painter.stopping.set()  # a hostile update being painted stops at its next rect
        await abort(self.ws, self.session, CloseCode.NORMAL, "viewer closed")
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _nothing(_: object) -> None:
    """A painter job with nothing to do once done."""


class _HostClosed(Exception):
    def __init__(self, lost: ConnectionLost) -> None:
        super().__init__(str(lost))
        self.lost = lost

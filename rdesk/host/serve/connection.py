"""One admitted viewer on the host, from its welcome to its close: :class:`ViewerConnection`.

It owns everything that is this viewer's — the transport, the sans-I/O session, the update
sender (:class:`~rdesk.host.serve.viewer.ViewerLink`), the outbox of control messages, the
recorder, its tasks — and gives them all back in one place, :meth:`ViewerConnection.serve`'s
end: the tasks are cancelled and awaited, the sender leaves the screen source, the recorder is
closed. What is shared with other viewers (who holds control, the injector's held keys) is the
server's to release, told by :meth:`Host.forget`.

Time is read here, at the I/O edge, and passed to the session as ``now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from rdesk.common.transport import Transport
from rdesk.host.clipboard.hub import ClipboardHub
from rdesk.host.clipboard.link import ClipboardLink
from rdesk.host.screen.cursor import CursorHub, CursorLink
from rdesk.host.screen.monitors import MonitorHub
from rdesk.host.screen.resize import NOT_VIRTUAL
from rdesk.host.security.authority import SessionGuard
from rdesk.host.security.keypolicy import DEFAULT_BLOCKED
from rdesk.host.serve.consent import Request
from rdesk.host.serve.control import Delivery
from rdesk.host.serve.viewer import ViewerLink
from rdesk.host.serve.viewerinput import InputHost, ViewerInput
from rdesk.host.transfer.policy import policy_from
from rdesk.host.transfer.room import TransferRoom
from rdesk.protocol.access import Access
from rdesk.protocol.clipboard import VIEWER_SENDS as CLIPBOARD_MESSAGES
from rdesk.protocol.errors import CloseCode, ProtocolError
from rdesk.protocol.inputs import Key, Pointer, Sync, Wheel
from rdesk.protocol.messages import Ack, Close, ControlMessage, Notice, Ping, Pong, Prefs, Refresh
from rdesk.protocol.monitors import SelectMonitor
from rdesk.protocol.presence import AnswerControl, ReleaseControl, RequestControl
from rdesk.protocol.resize import Resize, ResizeResult
from rdesk.protocol.session import Session
from rdesk.protocol.transfer import VIEWER_SENDS as TRANSFER_MESSAGES
from rdesk.protocol.video import FEATURE_HOLD, AckHold, Keyframe, Video, codec_list
from rdesk.recording.format import Recorder

__all__ = ["OUTBOX_LIMIT", "Host", "ViewerConnection", "close_session"]

#: Control messages that may wait for one viewer before it counts as not reading.
OUTBOX_LIMIT = 256


class Host(InputHost, Protocol):
    """What a viewer's connection needs of the server it belongs to."""

    clipboard: ClipboardHub | None
    cursor: CursorHub | None
    monitors: MonitorHub | None

    @property
    def stall_timeout(self) -> float:
        """Seconds without acknowledgement before a viewer counts as stalled."""
        ...

    def deliver(self, deliveries: list[Delivery]) -> None: ...

    def event(self, kind: str, **fields: object) -> None: ...


class ViewerConnection:
    """One admitted viewer: create it once admitted, send the welcome, then :meth:`serve`."""

    def __init__(
        self,
        host: Host,
        transport: Transport,
        session: Session,
        viewer_id: int,
        name: str,
        access: Access,
        recorder: Recorder | None = None,
    ) -> None:
        self.host = host
        self.transport = transport
        self.session = session
        self.viewer_id = viewer_id
        self.name = name
        self.access = access
        self.recorder = recorder
        self.outbox: asyncio.Queue[str | bytes] = asyncio.Queue(OUTBOX_LIMIT)
        #: The update sender, set by :meth:`attach` (it needs :meth:`send` to exist first).
        self.link: ViewerLink | None = None
        self._closing: set[asyncio.Future[None]] = set()
        #: This viewer's clipboard (rdesk/host/clipboard/), on the host's hub if it has one.
        self.clipboard = ClipboardLink(
            host.clipboard, viewer_id, access, self._send_after_updates
        )
        #: The host's cursor shapes for this viewer (rdesk/host/screen/cursor.py).
        self.cursor = CursorLink(host.cursor, self._send_after_updates)
        #: Switching monitors (rdesk/host/screen/monitors.py), if the host offers it.
        self.monitors = host.monitors
        #: This viewer's file transfers (rdesk/host/transfer/), policy from the host settings.
        self.transfers = TransferRoom(
            policy_from(getattr(host, "settings", None)), viewer_id, name, access,
            self._send_message, self._transfer_event, ask=self._transfer_asker(),
        )
        settings = getattr(host, "settings", None)
        #: Idle and maximum session time, held input of a frozen viewer, certificate re-checks.
        self.guard = SessionGuard(
            time.monotonic(),
            idle_timeout=getattr(settings, "idle_timeout", 0.0),
            max_session=getattr(settings, "max_session", 0.0),
            release_after=getattr(settings, "held_input_timeout", 3.0),
        )
        #: This viewer's input into the host's display: control, held keys, blocked combos.
        self.inputs = ViewerInput(host, viewer_id, access,
                                  getattr(settings, "block_keys", DEFAULT_BLOCKED))

    def _transfer_asker(self) -> Callable[[str, str, int], Awaitable[str | None]] | None:
        """With ``--consent ask``, what asks the host's user about each put and get (through
        the same consent desk as logins: the terminal, ``rdesk consent``); else ``None``."""
        settings = getattr(self.host, "settings", None)
        consent = getattr(self.host, "consent", None)
        if getattr(settings, "consent", "auto") != "ask" or consent is None:
            return None
        # The consent desk asks about a Request; any other Consent callable (the server's
        # protocol: viewer id, name, role, source) is asked the same way as for a login.
        ask: Callable[[Request], Awaitable[bool]] = getattr(consent, "ask", None) or (
            lambda r: consent(r.viewer_id, r.name, r.role, r.source))
        timeout = float(getattr(settings, "consent_timeout", 30.0))

        async def asker(direction: str, file: str, size: int) -> str | None:
            request = Request(self.viewer_id, self.name, self.access.value, self.transport.remote,
                              wants=f"to {direction} {file!r} ({size} bytes)")
            reason: str | None
            try:
                granted = await asyncio.wait_for(ask(request), timeout)
            except asyncio.TimeoutError:
                answer, reason = "timed out", "the host's user did not answer in time"
            else:
                answer = "admitted" if granted else "refused"
                reason = None if granted else f"the host's user refused the {direction}"
            self.host.event("consent", viewer=self.viewer_id, source=self.transport.remote,
                            decision=answer, reason=f"{direction} {ascii(file)[1:-1][:200]}")
            return reason

        return asker

    def _transfer_event(self, kind: str, **fields: object) -> None:
        """A transfer's audit event: to the host's log, and noted in the recording (which
        holds no file's bytes: rdesk/recording/format.py leaves chunks out)."""
        self.host.event(kind, **fields)
        if self.recorder is not None and kind == "transfer" and fields.get("direction") in (
                "upload", "download"):
            self.recorder.transfer(fields)

    def attach(self, make_link: Callable[[Callable[[str | bytes], Awaitable[None]]], ViewerLink]
               ) -> ViewerLink:
        """Create this viewer's update sender, handing it :meth:`send` to write with."""
        self.link = make_link(self.send)
        return self.link

    async def send(self, frame: str | bytes) -> None:
        """Write one frame to the viewer (and to the recording, once sent)."""
        await self.transport.send(frame)
        if self.recorder is not None:
            self.recorder.sent(frame)

    async def _send_message(self, message: object) -> None:
        await self.send(self.session.send(message, time.monotonic()))  # type: ignore[arg-type]

    async def _send_after_updates(self, message: object) -> None:
        """Send a cursor or clipboard message once no update round is being encoded or sent:
        the screen and input acknowledgements go first. Such a message waits for the round
        under way at most (a refresh spanning several updates: until its last one is sent)."""
        if self.link is not None:
            await self.link.idle.wait()
        await self._send_message(message)

    # --- control messages, from outside this viewer's tasks --------------------------------------

    def post(self, message: ControlMessage) -> None:
        """Queue a control message without ever blocking on a slow viewer.

        A viewer that has left hundreds unread is treated as gone, bounding memory.
        """
        try:
            frame = self.session.send(message, time.monotonic())
        except ProtocolError:
            return  # closing already
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.host.event("protocol_error", viewer=self.viewer_id,
                            reason="viewer stopped reading")
            self.close_later(CloseCode.UNRESPONSIVE, "viewer stopped reading")

    def close_later(self, code: int, reason: str) -> None:
        """Close from outside this viewer's tasks (they end when the transport closes)."""
        task = asyncio.ensure_future(close_session(self.transport, self.session, code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # --- serving ---------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run the viewer until it leaves or fails; always gives back what it holds.

        Raises what ended it (:class:`ProtocolError`, :class:`TransportClosed`, a bug) after
        the teardown; returns normally when the viewer said Close.
        """
        link = self.link
        assert link is not None, "attach() first"
        link.source.subscribe(link)
        self.clipboard.open()
        self.cursor.open()
        if self.monitors is not None:
            self.monitors.join(self.viewer_id, self.post)
        tag = f"viewer-{self.viewer_id}"
        tasks = [
            asyncio.create_task(link.run(), name=f"{tag}-send"),
            asyncio.create_task(self._timers(), name=f"{tag}-timers"),
            asyncio.create_task(self._receive(), name=f"{tag}-recv"),
            asyncio.create_task(self._post_office(), name=f"{tag}-post"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            receive = tasks[2]
            if receive in done and not receive.cancelled() and receive.exception() is None:
                # The viewer said Close: a sender that found the session closed in the same
                # turn of the loop failed because of it, not on its own (no protocol error).
                return
            for task in done:
                task.result()  # re-raise the reason the viewer ends
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            link.source.unsubscribe(link)
            # No partial file, no open descriptor outlives the viewer, however it left.
            await self.transfers.close()
            await self.clipboard.close()
            await self.cursor.close()
            if self.monitors is not None:
                self.monitors.leave(self.viewer_id)

    def finish(self, reason: str) -> None:
        """Close the recording with ``reason``. Idempotent."""
        if self.recorder is not None:
            self.recorder.close(reason)
            self.recorder = None

    async def _post_office(self) -> None:
        while True:
            await self.send(await self.outbox.get())

    async def _timers(self) -> None:
        """The session's timers (keepalive pings, the pong timeout), the stall check and the
        session's authority (:class:`SessionGuard`)."""
        session = self.session
        while True:
            now = time.monotonic()
            deadline = session.next_deadline()
            # The stall check needs no deadline of its own: once a second is soon enough.
            wake = min(deadline, now + 1.0) if deadline is not None else now + 1.0
            await asyncio.sleep(max(0.0, wake - now))
            now = time.monotonic()
            for frame in session.handle_timer(now):
                await self.send(frame)
            session.flow.check_stalled(now, self.host.stall_timeout)
            await self._guard(now)

    async def _guard(self, now: float) -> None:
        """Act on what :class:`SessionGuard` says is due; raises to close the session."""
        due = self.guard.check(now, holds=self.inputs.holds,
                               oldest_unacked=self.session.flow.oldest_age(now))
        if due.probe:
            frame = self.session.ping(now)  # None while one is already out
            if frame is not None:
                await self.send(frame)
        if due.release:
            self.inputs.release_held("viewer stopped answering")
        if due.recheck and not self._still_authorised():
            self.host.event("revoked", viewer=self.viewer_id, name=self.name,
                            reason="certificate no longer valid")
            raise ProtocolError("your certificate is no longer valid", CloseCode.POLICY)
        if due.close:
            self.host.event("session_end", viewer=self.viewer_id, name=self.name,
                            reason=due.close)
            raise ProtocolError(due.close, CloseCode.POLICY)

    def _still_authorised(self) -> bool:
        """With client certificates: whether the viewer's still grants (not revoked, not
        expired); always ``True`` without."""
        policy = getattr(self.host, "cert_policy", None)
        if policy is None:
            return True
        return policy.role_for(self.transport.peer_certificate) is not None

    async def _receive(self) -> None:
        session, host = self.session, self.host
        link = self.link
        assert link is not None
        while True:
            data = await self.transport.recv()
            now = time.monotonic()
            message = session.receive(data, now)
            self.guard.heard(now)
            if isinstance(message, (Pointer, Wheel, Key, RequestControl, AnswerControl)):
                self.guard.active(now)
            if self.recorder is not None:
                self.recorder.received(data)
            if isinstance(message, Close):
                return
            if isinstance(message, Ack):
                link.acked()
            elif isinstance(message, Ping):
                await self.send(session.send(Pong(message.id), time.monotonic()))
            elif isinstance(message, Refresh):
                link.refresh()
            elif isinstance(message, Prefs):
                link.set_prefs(message.quality, message.max_fps, message.max_bandwidth)
            elif isinstance(message, Video):
                link.set_video(message.codecs)
                if FEATURE_HOLD in codec_list(message.codecs) and not session.hold_acks:
                    # It can say how long it paints: ask for it (its acks carry hold_us).
                    await self.send(session.send(AckHold(), time.monotonic()))
            elif isinstance(message, Keyframe):
                link.request_keyframe(message.stream)
            elif isinstance(message, (Pointer, Wheel, Key, Sync)):
                await self._input(message)
            elif isinstance(message, SelectMonitor) and self.monitors is not None:
                may = host.board.may_input(self.viewer_id)
                if reason := self.monitors.select(self.viewer_id, message.index, may):
                    self.post(Notice(reason))
            elif isinstance(message, Resize):
                self._resize(message)
            elif isinstance(message, CLIPBOARD_MESSAGES):
                await self.clipboard.handle(message)
            elif isinstance(message, TRANSFER_MESSAGES):
                await self.transfers.handle(message)  # type: ignore[arg-type]
            elif isinstance(message, RequestControl):
                host.deliver(host.board.request(self.viewer_id))
            elif isinstance(message, ReleaseControl):
                host.deliver(host.board.release(self.viewer_id))
            elif isinstance(message, AnswerControl):
                answer = host.board.answer(self.viewer_id, message.id, message.grant)
                if answer is None:
                    host.event("policy_violation", viewer=self.viewer_id,
                               reason="answered a control request it may not answer")
                else:
                    host.deliver(answer)

    def _resize(self, message: Resize) -> None:
        resizer = getattr(self.host, "resizer", None)
        if resizer is None:  # a host without the wiring (tests' bare servers)
            assert self.link is not None
            source = self.link.source
            self.post(ResizeResult(message.id, False, source.width, source.height, NOT_VIRTUAL))
            return
        resizer.request(self.viewer_id, message, self.host.board.may_input(self.viewer_id),
                        self.post)

    async def _input(self, message: Pointer | Wheel | Key | Sync) -> None:
        ack = await self.inputs.handle(message)
        if ack is not None:
            await self.send(self.session.send(ack, time.monotonic()))

async def close_session(transport: Transport, session: Session, code: int, reason: str) -> None:
    """Send the protocol Close (if the session is open) and close the transport, best effort."""
    frame = session.close_frame(code, reason)
    # Best effort: the peer may be gone or stuck; closing must never raise into the caller.
    with contextlib.suppress(Exception):
        if frame is not None:
            await asyncio.wait_for(transport.send(frame), 2)
    await transport.close(code, reason)

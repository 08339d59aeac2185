"""The relay process's server: TLS websockets on ``/host``, ``/data`` and ``/connect``.

A host keeps a control connection on ``/host`` (:class:`~rdesk.relay.protocol.RelayHostMachine`);
a viewer asks ``/connect`` for an ID; the relay sends the host ``rendezvous {session}``, the host
opens ``/data`` proving it owns the key, and the relay splices the viewer's websocket to that
data websocket (:class:`~rdesk.relay.splice.Splice`; the host's answers, matched to their
waiting viewers: :mod:`~rdesk.relay.answers`) — or, on the raw lane
(:mod:`~rdesk.relay.rawrelay`), both come to the splice port and their sockets are joined.
``/healthz`` and ``/readyz`` (not when draining) answer a balancer; anything else is 404.

Limits (:class:`RelayConfig`, :class:`~rdesk.relay.admission.Admission`): control messages of
4 KiB until a connection is spliced, then ``splice_max_message``; per-source token buckets on
``/connect``, ``/data`` and ``/host``, a per-ID bucket and a cap on viewers waiting for one ID
(all shared by the instances on one directory), so a flood against one host reaches it only at
a bounded rate; ``max_sessions`` splices and waiting viewers in all and ``max_hosts``
registrations, per instance. Every refusal is one ``refused {reason}`` line, then a close,
and an audit event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rdesk.protocol.errors import CloseCode
from rdesk.protocol.fingerprint import fingerprint, key_fingerprint
from rdesk.relay import frames
from rdesk.relay.admission import Admission, Place
from rdesk.relay.answers import Answers, Waiting
from rdesk.relay.config import RelayConfig
from rdesk.relay.conn import lanes, peer, recv, refuse
from rdesk.relay.directory import Directory, DirectoryUnavailable, MemoryDirectory
from rdesk.relay.hosts import HostControls
from rdesk.relay.messages import MAX_RELAY_MESSAGE, Connect, encode
from rdesk.relay.messages import RelayProtocolError as _Refusal
from rdesk.relay.page import judge, probe
from rdesk.relay.protocol import RelayViewerMachine
from rdesk.relay.rawrelay import RawLane
from rdesk.relay.routing import Router
from rdesk.relay.splice import Splice, SpliceResult, take_over
from rdesk.relay.tokens import Enrolment, TokenStore

__all__ = ["RelayConfig", "RelayServer", "SplicePortError"]

log = logging.getLogger(__name__)
Event = Callable[[str, dict[str, object]], None]


class SplicePortError(OSError):
    """The raw lane's splice port cannot be listened on (``errno`` says why)."""


class RelayServer:
    """One relay instance. ``start()``, then ``drain(grace)`` or ``stop()``.

    :param cert_der: the relay's own certificate (its fingerprint is bound into host proofs).
    :param tokens: the enrolment tokens (``None`` only with ``config.open_enrolment``).
    :param on_event: audit callback ``(kind, fields)``; never given payload.
    :param clock: monotonic seconds for timeouts and rate limits.
    :param wall_clock: seconds shared with other instances, for the directory.
    """

    def __init__(
        self,
        config: RelayConfig,
        ssl_context: ssl.SSLContext,
        cert_der: bytes,
        *,
        tokens: TokenStore | None,
        directory: Directory | None = None,
        on_event: Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if tokens is None and not config.open_enrolment:
            raise ValueError("a relay needs enrolment tokens unless it is open")
        self.config = config
        self.ssl_context = ssl_context
        #: The certificate's fingerprint: what host proofs bind (both ends compute it).
        self.fingerprint = fingerprint(cert_der)
        #: The key's (SPKI) fingerprint: what the relay prints and hosts and viewers pin.
        self.pin = key_fingerprint(cert_der)
        self.tokens = tokens
        self.directory: Directory = (
            directory if directory is not None else MemoryDirectory(config.max_hosts))
        self._on_event = on_event
        self.clock = clock
        self.wall_clock = wall_clock
        enrolment = Enrolment(tokens, config.open_enrolment)
        self.hosts = HostControls(config, self.directory, self.fingerprint, enrolment.refusal,
                                  enrolment.token_id, self._event, clock, wall_clock)
        self.router = Router(config, self.directory, self.hosts, self._event, clock, wall_clock)
        self.splices: dict[asyncio.Future[SpliceResult], Splice] = {}
        self.draining = False
        self.admission = Admission(config, self.directory, self._event, clock, wall_clock)
        self.answers = Answers(config, self.fingerprint, self.admission, self._event, clock)
        #: The viewers waiting for their host's answer, by session.
        self.waiting = self.answers.waiting
        #: The raw lane (``None`` with ``--no-splice``).
        self.raw: RawLane | None = (
            RawLane(config, lambda source: self.admission.limit("splice", source),
                    self.answers.raw, self._event, clock) if config.splice else None)
        self._server: Server | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._forwarded: asyncio.Task[None] | None = None
        self._stopped = False

    def _event(self, kind: str, **fields: object) -> None:
        log.info("%s %s", kind, " ".join(f"{k}={v}" for k, v in fields.items()))
        if self._on_event is not None:
            try:
                self._on_event(kind, fields)
            except Exception:  # the audit log must not take the relay down
                log.exception("audit callback failed for %s", kind)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; raises ``OSError`` if the address is unavailable."""
        self._server = await serve(
            self._handle,
            self.config.bind,
            self.config.port,
            ssl=self.ssl_context,
            process_request=self._process_request,
            max_size=MAX_RELAY_MESSAGE,  # raised per connection once it is spliced
            max_queue=4,  # frames: with the write limit, bounds what a splice buffers
            compression=None,
            open_timeout=self.config.handshake_timeout,
            close_timeout=5,
            ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_interval,
            server_header=None,
        )
        if self.raw is not None:
            try:
                await self.raw.start()
            except OSError as exc:
                self._server.close()
                await self._server.wait_closed()
                raise SplicePortError(exc.errno, exc.strerror) from None
            except BaseException:
                self._server.close()
                await self._server.wait_closed()
                raise
        self._housekeeping = asyncio.ensure_future(self._sweep_forever())
        self._forwarded = asyncio.ensure_future(self.router.serve_forwarded())
        self._event("relay_start", bind=self.config.bind, port=self.port,
                    splice_port=self.raw.port.port if self.raw is not None else None,
                    splicer=self.raw.splicer.kind if self.raw and self.raw.splicer else None,
                    fingerprint=self.pin, open=self.config.open_enrolment,
                    instance=self.config.instance)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def drain(self, grace: float) -> None:
        """Stop accepting, send every host ``move``, let splices end within ``grace`` seconds.

        Viewers still waiting for their host are refused at once (the host can no longer
        reach this instance's ``/data``); splices still running after ``grace`` are closed.
        """
        if self._server is None or self._stopped:
            return
        self.draining = True
        self._server.close(close_connections=False)  # no new TCP connections
        joined = set(self.raw.joined) if self.raw is not None else set()
        self._event("relay_drain", hosts=len(self.hosts), splices=len(self.splices),
                    raw=len(joined), grace=grace)
        if self.raw is not None:
            await self.raw.port.stop()  # no new raw sockets; the joined pairs run on
        await self.hosts.move_all("relay is shutting down")
        for waiting in list(self.waiting.values()):
            if not waiting.answer.done():
                waiting.answer.cancel()
        running: set[asyncio.Future[Any]] = {*self.splices, *joined}
        if running:
            await asyncio.wait(running, timeout=grace)
        await self.stop()

    async def stop(self) -> None:
        """Close every connection (1001) and wait for every handler to return (idempotent)."""
        if self._server is None or self._stopped:
            return
        self._stopped = self.draining = True
        for task in (self._housekeeping, self._forwarded):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._server.close(close_connections=False)
        for joined in list(self.splices.values()):  # before websockets closes the rest
            joined.end(CloseCode.GOING_AWAY, "relay is shutting down")
        if self.splices:
            await asyncio.wait(set(self.splices))
        if self.raw is not None:
            await self.raw.stop()
        await asyncio.gather(*(ws.close(CloseCode.GOING_AWAY, "relay is shutting down")
                               for ws in list(self._server.connections)))
        await self._server.wait_closed()
        self._event("relay_stop")

    async def _sweep_forever(self, period: float = 60.0) -> None:
        # Bounded memory between bursts: forget refilled buckets, expired entries and tickets.
        while True:
            await asyncio.sleep(period)
            self.admission.sweep()
            if self.raw is not None:
                self.raw.tickets.sweep(self.clock())
            if isinstance(self.directory, MemoryDirectory):
                self.directory.sweep(self.wall_clock())

    async def _process_request(self, ws: ServerConnection,
                               request: Request) -> Response | None:
        # /healthz and /readyz, the browser page (GET), or the Origin rule for the websockets.
        answer = await probe(ws, request, self.draining, self.directory)
        return answer if answer is not None else judge(request, self.config.allowed_origins)

    # --- connections ---------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path.split("?", 1)[0] if ws.request else ""
        source = peer(ws)
        handler = {"/host": self._host, "/data": self._data, "/connect": self._connect}[path]
        try:
            await handler(ws, source)
        except _Refusal as exc:
            await refuse(ws, exc.reason, exc.code)
        except DirectoryUnavailable as exc:
            log.error("%s", exc)
            await refuse(ws, "the relay's directory is unavailable", CloseCode.INTERNAL_ERROR)
        except ConnectionClosed:
            pass
        except Exception:  # one connection's bug must not take the relay down
            log.exception("internal error on %s from %s", path, source)
            await ws.close(CloseCode.INTERNAL_ERROR, "internal error")

    # --- /host ---------------------------------------------------------------------------------

    async def _host(self, ws: ServerConnection, source: str) -> None:
        if self.draining:
            raise _Refusal("relay is shutting down", CloseCode.GOING_AWAY)
        await self.admission.limit("registration", source)
        await self.hosts.serve(ws, source)

    # --- /connect ------------------------------------------------------------------------------

    async def _connect(self, ws: ServerConnection, source: str) -> None:
        if self.draining:
            raise _Refusal("relay is shutting down", CloseCode.GOING_AWAY)
        await self.admission.limit("connect", source)
        machine = RelayViewerMachine(self.clock(), handshake_timeout=self.config.handshake_timeout,
                                     rendezvous_timeout=self.config.rendezvous_timeout)
        step = machine.receive(await recv(ws, machine, self.clock), self.clock())
        assert isinstance(step.event, Connect)
        host_id = step.event.id
        try:
            place = await self.admission.admit(host_id)  # the viewer's places
        except _Refusal as exc:
            self._event("connect_refused", source=source, id=host_id, reason=exc.reason)
            raise
        raw = self.raw if "raw" in lanes(ws) else None
        try:
            session, answer = await self._rendezvous(ws, machine, place, source, raw)
            if isinstance(answer, socket.socket):
                assert raw is not None
                await raw.serve(ws, machine, answer, host_id, session)
            else:
                await self._splice(ws, answer, machine, host_id, session)
        finally:
            self.admission.leave()

    async def _rendezvous(self, ws: ServerConnection, machine: RelayViewerMachine,
                          place: Place, source: str, raw: RawLane | None,
                          ) -> tuple[str, ServerConnection | socket.socket]:
        """Ask the host to open ``/data`` (or, with ``raw``, its raw socket) for a new session;
        the session and the host's answer, once bound. Gives back the viewer's waiting place
        on the way out."""
        host_id, session = place.host_id, secrets.token_urlsafe(16)
        answer: asyncio.Future[ServerConnection | socket.socket] = (
            asyncio.get_running_loop().create_future())
        viewer_gone = asyncio.ensure_future(ws.wait_closed())
        try:
            await self.admission.take_id_token(host_id, source)
            control, entry = await self.router.find(host_id)
            self.waiting[session] = Waiting(host_id, entry.spki, answer)
            offer = raw.offer(session) if raw is not None else None
            await self.router.ask(control, entry, session, source, offer)
            deadline = machine.deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            waiters: set[asyncio.Future[Any]] = {answer, viewer_gone}
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if answer.done() and not answer.cancelled() and not viewer_gone.done():
                return session, answer.result()
            if viewer_gone.done():
                raise _Refusal("viewer left", CloseCode.GOING_AWAY)
            if self.draining:
                raise _Refusal("relay is shutting down", CloseCode.GOING_AWAY)
            raise _Refusal("the host did not answer in time", CloseCode.POLICY)
        except _Refusal as exc:
            self._event("connect_refused", source=source, id=host_id, reason=exc.reason)
            if answer.done() and not answer.cancelled():
                late = answer.result()
                if isinstance(late, socket.socket):
                    late.close()
                else:
                    await late.close(CloseCode.GOING_AWAY, "viewer left")
            raise
        finally:
            viewer_gone.cancel()
            answer.cancel()  # no-op once it has a result
            self.waiting.pop(session, None)
            if raw is not None:
                raw.tickets.forget(session)
            await self.admission.stop_waiting(place)

    async def _splice(self, ws: ServerConnection, data_ws: ServerConnection,
                      machine: RelayViewerMachine, host_id: str, session: str) -> None:
        started = self.clock()
        spliced = frames.encode(frames.TEXT, encode(machine.spliced(started)).encode())
        viewer_side, host_side = take_over(ws), take_over(data_ws)
        if viewer_side is None or host_side is None:
            early = "viewer" if viewer_side is None else "host"
            reason = f"{early} sent data before the splice"
            self._event("connect_refused", source=peer(ws), id=host_id, reason=reason)
            await asyncio.gather(ws.close(CloseCode.PROTOCOL_ERROR, reason),
                                 data_ws.close(CloseCode.PROTOCOL_ERROR, reason))
            return
        joined = Splice((ws, viewer_side), (data_ws, host_side),
                        self.config.splice_max_message, first=spliced,
                        ping_interval=self.config.ping_interval)
        task = asyncio.ensure_future(joined.run())
        self.splices[task] = joined
        try:
            result = await task  # cancelling this handler cancels the splice too
        finally:
            del self.splices[task]
        self._event("splice_end", id=host_id, session=session, reason=result.reason,
                    code=result.code, viewer_bytes=result.a_to_b, host_bytes=result.b_to_a,
                    duration=round(self.clock() - started, 3))

    # --- /data ---------------------------------------------------------------------------------

    async def _data(self, ws: ServerConnection, source: str) -> None:
        if self.draining:
            raise _Refusal("relay is shutting down", CloseCode.GOING_AWAY)
        await self.answers.data(ws, source)

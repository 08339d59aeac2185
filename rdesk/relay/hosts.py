"""The relay's registered hosts: their control connections on ``/host``.

:class:`HostControls` runs each control connection's
:class:`~rdesk.relay.protocol.RelayHostMachine` (register, challenge, prove, heartbeats),
records the ID in the :class:`~rdesk.relay.directory.Directory`, and keeps the live
connections by their connection id so a viewer's rendezvous can reach its host. A second
registration of a live ID with the same key replaces (and closes) the first.

A directory that is unavailable (Redis down) does not drop the hosts held here: a heartbeat
that cannot reach it is let pass (the connection is live, which is what a heartbeat shows),
and the first one that reaches it again and finds the entry gone (Redis restarted empty, or
the TTL ran out meanwhile) writes it back, unless another connection holds the ID by then.
New registrations are refused while it is unavailable: nothing could check the ID's key
against the other instances.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from rdesk.protocol.errors import CloseCode
from rdesk.relay.config import RelayConfig
from rdesk.relay.conn import lanes, peer, recv, refuse
from rdesk.relay.directory import Directory, DirectoryRefusal, DirectoryUnavailable
from rdesk.relay.messages import Heartbeat, Register, RelayProtocolError, encode
from rdesk.relay.protocol import HostPhase, RelayHostMachine

__all__ = ["Control", "HostControls"]

Event = Callable[..., None]
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Control:
    """One host's live control connection."""

    ws: ServerConnection
    machine: RelayHostMachine
    connection: str
    host_id: str = ""
    since: float = 0.0
    spki: bytes = b""
    #: A heartbeat could not reach the directory since the entry was last written.
    stale: bool = False
    #: The host asked for the raw lane (``/host?lanes=raw``): it understands ``rendezvous_raw``.
    raw: bool = False

    @property
    def registered(self) -> bool:
        return self.machine.phase is HostPhase.REGISTERED


class HostControls:
    """Every control connection of this relay instance, keyed by connection id.

    :param enrol: given a ``register``'s token, the reason to refuse it, or ``None``.
    :param token_id: given an accepted token, the id the audit log records for it.
    :param event: the relay's audit callback, ``event(kind, **fields)``.
    """

    def __init__(
        self,
        config: RelayConfig,
        directory: Directory,
        fingerprint: str,
        enrol: Callable[[str | None], str | None],
        token_id: Callable[[str | None], str | None],
        event: Event,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.directory = directory
        self.fingerprint = fingerprint
        self.enrol = enrol
        self.token_id = token_id
        self._event = event
        self.clock = clock
        self.wall_clock = wall_clock
        self.live: dict[str, Control] = {}

    def __len__(self) -> int:
        return len(self.live)

    def get(self, connection: str) -> Control | None:
        return self.live.get(connection)

    def holding(self, host_id: str) -> Control | None:
        """The registered control connection of ``host_id`` on this instance, if any: what
        the relay serves on its own when the directory is unavailable."""
        for control in self.live.values():
            if control.host_id == host_id and control.registered:
                return control
        return None

    async def serve(self, ws: ServerConnection, source: str) -> None:
        """Run one control connection until it ends (raises the refusal that ended it)."""
        machine = RelayHostMachine(
            self.clock(), nonce=secrets.token_bytes(32), relay_fingerprint=self.fingerprint,
            enrol=self.enrol, heartbeat=self.config.heartbeat, expiry=self.config.expiry,
            handshake_timeout=self.config.handshake_timeout,
        )
        control = Control(ws, machine, secrets.token_urlsafe(12), raw="raw" in lanes(ws))
        reason = "host left"
        try:
            while True:
                step = machine.receive(await recv(ws, machine, self.clock), self.clock())
                for message in step.send:
                    await ws.send(encode(message))
                if isinstance(step.event, Register):
                    await self._register(control, step.event, source)
                elif isinstance(step.event, Heartbeat):
                    await self._heartbeat(control, source)
        except RelayProtocolError as exc:
            reason = exc.reason
            if not control.host_id:
                self._event("register_refused", source=source, id=machine.claimed,
                            reason=reason)
            raise
        finally:
            if self.live.get(control.connection) is control:
                del self.live[control.connection]
                # An unreachable directory forgets the entry by its TTL.
                with contextlib.suppress(DirectoryUnavailable):
                    await self.directory.unregister(control.host_id, control.connection)
                self._event("unregister", source=source, id=control.host_id, reason=reason,
                            duration=round(self.clock() - control.since, 3))

    async def _heartbeat(self, control: Control, source: str) -> None:
        """Renew the entry; ride out an unavailable directory; restore a lost entry."""
        now = self.wall_clock()
        try:
            if await self.directory.heartbeat(control.host_id, control.connection, now,
                                              self.config.expiry):
                control.stale = False
                return
            if control.stale and await self.directory.lookup(control.host_id, now) is None:
                # Lost while the directory was away, not replaced: write it back.
                await self.directory.register(control.host_id, control.spki,
                                              self.config.instance, control.connection, now,
                                              self.config.expiry)
                control.stale = False
                self._event("register_restored", source=source, id=control.host_id)
                return
        except DirectoryUnavailable as exc:
            if not control.stale:
                log.warning("heartbeat of %s kept without the directory: %s",
                            control.host_id, exc)
                self._event("heartbeat_unrecorded", source=source, id=control.host_id)
            control.stale = True
            return
        except DirectoryRefusal:  # another key holds the ID now (it expired meanwhile)
            pass
        raise RelayProtocolError("the registration was replaced or expired", CloseCode.POLICY)

    async def _register(self, control: Control, register: Register, source: str) -> None:
        if len(self.live) >= self.config.max_hosts and not any(
                c.host_id == register.id for c in self.live.values()):  # a replacement fits
            raise RelayProtocolError("relay is full", CloseCode.POLICY)
        try:
            old = await self.directory.register(
                register.id, register.spki, self.config.instance, control.connection,
                self.wall_clock(), self.config.expiry)
        except DirectoryRefusal as exc:
            raise RelayProtocolError(str(exc), CloseCode.POLICY) from None
        control.host_id, control.since, control.spki = register.id, self.clock(), register.spki
        self.live[control.connection] = control
        replaced = self.live.pop(old.connection, None) if old is not None else None
        if replaced is not None:
            # The same host reconnected before its old connection timed out.
            self._event("unregister", source=peer(replaced.ws), id=register.id,
                        reason="replaced by a newer registration",
                        duration=round(self.clock() - replaced.since, 3))
            await refuse(replaced.ws, "replaced by a newer registration", CloseCode.POLICY)
        await control.ws.send(encode(control.machine.accept(self.clock())))
        self._event("register", source=source, id=register.id,
                    token=self.token_id(register.token), replaced=replaced is not None)

    async def move_all(self, reason: str) -> None:
        """Send every registered host ``move`` and close its control connection."""
        for control in list(self.live.values()):
            try:
                if control.registered:
                    move = control.machine.move(reason, self.clock(), self.config.move_url)
                    await control.ws.send(encode(move))
            except (RelayProtocolError, ConnectionClosed):
                pass  # it is going either way
            await control.ws.close(CloseCode.GOING_AWAY, reason)

"""The host's side of a rendezvous: the viewers waiting for their host's answer, by session,
and the answers — a ``/data`` websocket that proves it is the registered host, or a raw lane
socket that presented the host's ticket — each taken once, for a viewer still waiting.

:class:`~rdesk.relay.server.RelayServer` puts a :class:`Waiting` in :attr:`Answers.waiting`
when it asks a host for a session and removes it when the viewer's rendezvous ends; a second
answer for the same session, or one for a session nobody waits for, is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection

from rdesk.relay.admission import Admission
from rdesk.relay.config import RelayConfig
from rdesk.relay.conn import recv
from rdesk.relay.messages import Data, RelayProtocolError
from rdesk.relay.protocol import RelayDataMachine

__all__ = ["Answers", "Waiting"]

Event = Callable[..., None]


@dataclasses.dataclass
class Waiting:
    """A viewer waiting for its host's data connection."""

    host_id: str
    spki: bytes
    #: The host's ``/data`` websocket, or its raw lane socket.
    answer: asyncio.Future[ServerConnection | socket.socket]


class Answers:
    """The waiting viewers of one relay instance, and the hosts' answers to them.

    :param fingerprint: the relay certificate's fingerprint, bound into the host's proof.
    """

    def __init__(self, config: RelayConfig, fingerprint: str, admission: Admission,
                 event: Event, clock: Callable[[], float]) -> None:
        self.config, self.fingerprint, self.admission = config, fingerprint, admission
        self._event, self.clock = event, clock
        self.waiting: dict[str, Waiting] = {}

    def raw(self, session: str, sock: socket.socket) -> bool:
        """The host's raw socket for ``session`` came: whether its viewer still waits (it is
        then the viewer's; else the caller refuses and closes it)."""
        waiting = self.waiting.get(session)
        if waiting is None or waiting.answer.done():
            return False
        waiting.answer.set_result(sock)
        return True

    async def data(self, ws: ServerConnection, source: str) -> None:
        """Serve one ``/data`` websocket: its ``data`` message must prove the host of a
        waiting session (else :class:`RelayProtocolError`); it is then that viewer's, and
        this returns once the viewer's splice has closed it."""
        await self.admission.limit("data", source)
        machine = RelayDataMachine(self.clock(), relay_fingerprint=self.fingerprint,
                                   handshake_timeout=self.config.handshake_timeout)
        step = machine.receive(await recv(ws, machine, self.clock), self.clock())
        assert isinstance(step.event, Data)
        data = step.event
        waiting = self.waiting.get(data.session)
        if waiting is not None and waiting.answer.done():
            waiting = None  # already answered (or given up): a second answer is refused
        try:
            machine.bind(waiting.host_id if waiting else None,
                         waiting.spki if waiting else None, self.clock())
        except RelayProtocolError as exc:
            self._event("data_refused", source=source, id=data.id, session=data.session,
                        reason=exc.reason)
            raise
        assert waiting is not None  # bind refuses when there is none
        waiting.answer.set_result(ws)
        await ws.wait_closed()  # the viewer's handler runs the splice and closes this

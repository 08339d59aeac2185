"""The consent desk: viewers waiting for the local user's answer, and who may give it.

With ``--consent ask`` every login that passed its credential check waits here until the
local user accepts or refuses it (or the consent timeout, applied by the login, runs out);
so does every file transfer an admitted viewer starts (``wants`` says which: "to upload
'a.txt' (3 bytes)"), under the viewer's id — one transfer question per viewer at a time
(rdesk/host/transfer/room.py asks them in turn), and an admitted viewer has no login waiting.
Answers come from the host's terminal (:class:`~rdesk.host.serve.console.HostConsole`), from
``rdesk consent`` through the consent socket (:mod:`rdesk.host.serve.consentsock`), or both:
the first answer wins. The desk holds no policy of its own.

When no way of answering is left (the terminal's input ended and no socket listens), waiting
viewers are refused at once and later ones are refused without waiting: holding a viewer for
the whole timeout when nobody can answer helps no one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

__all__ = ["ConsentDesk", "Request"]


@dataclasses.dataclass(frozen=True)
class Request:
    """One viewer waiting to be accepted. ``name`` comes from the peer: show it escaped."""

    viewer_id: int
    name: str
    role: str
    source: str
    #: What the viewer asks for, after "wants": "to connect", or a transfer.
    wants: str = "to connect"

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


#: Called with ``("request", Request)`` when a viewer starts waiting and ``("resolved",
#: Request)`` when it stops (answered, timed out, or gone).
Listener = Callable[[str, Request], None]


class ConsentDesk:
    """The pending consent requests (the host server's ``Consent`` callable).

    :param out: where a refusal for want of anyone to ask is announced (the host console).
    """

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self.out = out
        self._pending: dict[int, tuple[Request, asyncio.Future[bool]]] = {}
        self._listeners: list[Listener] = []
        #: Ways of answering that are open now ("terminal", "socket").
        self._answerers: set[str] = set()

    # --- who can answer --------------------------------------------------------------------

    def open(self, answerer: str) -> None:
        """``answerer`` (e.g. ``"socket"``) can answer from now on."""
        self._answerers.add(answerer)

    def close(self, answerer: str) -> None:
        """``answerer`` can no longer answer; when it was the last, refuse everyone waiting."""
        self._answerers.discard(answerer)
        if not self._answerers:
            for _, future in list(self._pending.values()):
                if not future.done():
                    future.set_result(False)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on each new and each resolved request; returns the unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # --- asking (HostServer's Consent protocol) --------------------------------------------

    async def __call__(self, viewer_id: int, name: str, role: str, source: str) -> bool:
        """Whether the local user accepts viewer ``viewer_id``; ``False`` at once when no
        way of answering is open."""
        return await self.ask(Request(viewer_id, name, role, source))

    async def ask(self, request: Request) -> bool:
        """Whether the local user grants ``request`` (a login or a transfer); ``False`` at
        once when no way of answering is open, or when the viewer already waits for one."""
        viewer_id, name, source = request.viewer_id, request.name, request.source
        if not self._answerers:
            self.out(f"viewer #{viewer_id} {name!r} from {source} refused: nobody can accept "
                     "it (the host's terminal input has ended and no consent socket listens; "
                     "--consent ask)")
            return False
        if viewer_id in self._pending:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[viewer_id] = (request, future)
        self._tell("request", request)
        try:
            return await future
        finally:
            self._pending.pop(viewer_id, None)
            self._tell("resolved", request)

    def pending(self) -> list[Request]:
        """The requests waiting for an answer, oldest first."""
        return [request for request, future in self._pending.values() if not future.done()]

    def answer(self, viewer_id: int, accept: bool) -> bool:
        """Accept or refuse viewer ``viewer_id``; ``False`` if it is not waiting."""
        entry = self._pending.get(viewer_id)
        if entry is None or entry[1].done():
            return False
        entry[1].set_result(accept)
        return True

    def _tell(self, kind: str, request: Request) -> None:
        for listener in list(self._listeners):
            listener(kind, request)

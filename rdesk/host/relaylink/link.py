"""The host's control connection to a relay, and its data connections for each rendezvous.

:class:`RelayLink` keeps one outbound websocket to ``<relay>/host``: it registers the host's
ID (derived from its certificate's key), answers the relay's challenge by signing it with the
host key, sends heartbeats, and when the relay asks for a rendezvous it opens
``<relay>/data``, proves again that it is the registered host, and hands that websocket to
``on_rendezvous`` (the end-to-end tunnel and the serving are the caller's business). A lost
connection is retried with capped exponential backoff and jitter; ``move`` reconnects at once
(to the URL it names, or the same address: behind a load balancer, another instance). A
rendezvous may name another instance's URL for ``/data``: its certificate must be the same.

The relay's certificate is checked by its key's fingerprint (or, for an older pin, its own)
**before** anything is sent (the ``register`` carries the enrolment token): against ``pin``
when given; otherwise the first key fingerprint seen is printed and trusted for the rest of
this link's life (trust on first use).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import socket
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from rdesk.common.tls import pinning_client_context
from rdesk.common.waiting import raise_if_cancelled
from rdesk.host.relaylink.backoff import backoff_delay
from rdesk.protocol import limits
from rdesk.protocol.fingerprint import fingerprint, key_fingerprint, pin_matches
from rdesk.protocol.hostid import host_id
from rdesk.protocol.rawlane import RawLaneError
from rdesk.relay import proof
from rdesk.relay.messages import (
    MAX_RELAY_MESSAGE,
    Move,
    RawRendezvous,
    Registered,
    RelayProtocolError,
    Rendezvous,
    encode,
)
from rdesk.relay.peers import HostLinkMachine
from rdesk.relay.protocol import RelayRefused
from rdesk.tunnel.rawdial import dial_splice_port

__all__ = ["RelayLink", "RelayLinkError", "load_identity", "rendezvous_session"]

log = logging.getLogger(__name__)
OnRendezvous = Callable[[ClientConnection], Awaitable[None]]
OnRaw = Callable[[socket.socket], Awaitable[None]]
#: The relay's session id (22 base64url characters) of the rendezvous ``on_rendezvous`` is
#: serving: set in the task that calls it, so each handler reads its own.
rendezvous_session: contextvars.ContextVar[str] = contextvars.ContextVar("rendezvous_session")
#: Seconds to reach the splice port and be answered, before falling back to ``/data``.
RAW_TIMEOUT = 5.0
#: Largest message the host accepts on a data connection (the tunnel's largest record + room).
DATA_MAX_MESSAGE = limits.MAX_UPDATE_MESSAGE + 64 * 1024


class RelayLinkError(Exception):
    """The relay could not be used (wrong fingerprint, bad URL, refused); one-line ``str()``."""


def load_identity(cert_path: Path, key_path: Path) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """The host key and certificate DER from the host's PEM files (``ValueError`` if unusable)."""
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an ECDSA key")
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return key, cert.public_bytes(serialization.Encoding.DER)


def _base_url(url: str) -> str:
    if not url.startswith("wss://") or len(url) > 512:
        raise RelayLinkError(f"a relay address is wss://HOST[:PORT], not {url[:80]!r}")
    return url.rstrip("/")


class RelayLink:
    """One host's presence on one relay; run it with :meth:`run`, end it with :meth:`close`.

    :param relay_url: ``wss://host:port`` of the relay.
    :param private_key: the host key (``config_dir/host.key``).
    :param cert_der: the host certificate; its key must be ``private_key``'s.
    :param token: the enrolment token (``None`` for a relay in ``--open`` mode).
    :param pin: the relay's fingerprint (``SHA256:...``), or ``None`` to trust on first use.
    :param on_rendezvous: called with each data websocket, in its own task (where
        :data:`rendezvous_session` holds the relay's session id); the websocket is closed
        when it returns.
    :param say: where the link's lines for the user go (the TOFU fingerprint, registration).
    :param on_raw: with it the link asks for the raw lane (``/host?lanes=raw``): called, like
        ``on_rendezvous``, with each raw lane socket once the relay said ``GO`` (the host is
        then the TLS server on it); the socket is closed when it returns.
    """

    def __init__(
        self,
        relay_url: str,
        private_key: ec.EllipticCurvePrivateKey,
        cert_der: bytes,
        token: str | None,
        pin: str | None = None,
        *,
        on_rendezvous: OnRendezvous,
        on_raw: OnRaw | None = None,
        say: Callable[[str], None] | None = None,
        backoff: tuple[float, float] = (1.0, 60.0),
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = _base_url(relay_url)
        self.key = private_key
        self.spki = proof.spki_of_certificate(cert_der)
        if self.spki != proof.spki_of_key(private_key.public_key()):
            raise ValueError("the host certificate is not for this private key")
        self.host_id = host_id(self.spki)
        self.token = token
        self.pin = pin
        self.on_rendezvous = on_rendezvous
        self.on_raw = on_raw
        self.say = say or (lambda line: log.info("%s", line))
        self.backoff = backoff
        self.rand = rand
        self.clock = clock
        self.ssl_context = ssl_context or pinning_client_context()
        #: Set while registered; cleared when the control connection is lost.
        self.registered = asyncio.Event()
        #: The last reason the control connection ended (one line), for status displays.
        self.last_error: str | None = None
        self.moves = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[object] | None = None
        self._closing = False
        self._was_registered = False

    # --- public --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay registered until :meth:`close`: connect, serve, and reconnect when lost."""
        self._runner = asyncio.current_task()
        try:
            await self._run_forever()
        except asyncio.CancelledError:
            if not self._closing:
                raise
        finally:
            self._runner = None
            self.registered.clear()

    async def close(self) -> None:
        """Stop reconnecting, end the control connection and every data connection's task."""
        self._closing = True
        tasks = [*self._tasks, *([self._runner] if self._runner is not None else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _run_forever(self) -> None:
        attempt = 0
        while not self._closing:
            moved = self._was_registered = False
            try:
                moved = await self._control()
            except (OSError, InvalidHandshake, ConnectionClosed, asyncio.TimeoutError,
                    RelayProtocolError, RelayLinkError) as exc:
                self.last_error = " ".join(str(exc).split()) or type(exc).__name__
                level = logging.WARNING if isinstance(exc, RelayRefused) else logging.INFO
                log.log(level, "relay %s: %s", self.url, self.last_error)
            finally:
                self.registered.clear()
            if self._was_registered:
                attempt = 0  # it worked: a lost connection starts the backoff afresh
            if moved:
                await asyncio.sleep(self.backoff[0] * self.rand())  # spread a drained herd
                continue
            await asyncio.sleep(backoff_delay(attempt, self.rand(), base=self.backoff[0],
                                              cap=self.backoff[1]))
            attempt += 1

    # --- the control connection ----------------------------------------------------------------

    def _check_relay(self, ws: ClientConnection) -> str:
        """The relay's certificate fingerprint (what proofs bind), once checked against the
        pin — of that certificate, or of its key — or trusted on first use."""
        ssl_object = ws.transport.get_extra_info("ssl_object") if ws.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise RelayLinkError("the relay presented no certificate")
        seen = fingerprint(der)
        try:
            key = key_fingerprint(der)
        except ValueError as exc:
            raise RelayLinkError(f"the relay's certificate cannot be read ({exc})") from None
        if self.pin is None:
            self.say(f"rdesk: relay {self.url} presents {key}; trusting it (pin it to be sure)")
            self.pin = key
        elif pin_matches(self.pin, der) is None:
            raise RelayLinkError(f"the relay's fingerprint is {key}, not the pinned {self.pin}")
        return seen

    async def _control(self) -> bool:
        """One control connection, until it ends; ``True`` if the relay sent ``move``."""
        async with connect(
            self.url + ("/host?lanes=raw" if self.on_raw is not None else "/host"),
            ssl=self.ssl_context, max_size=MAX_RELAY_MESSAGE,
            compression=None, open_timeout=10, close_timeout=5, ping_interval=20,
            ping_timeout=20, user_agent_header=None,
        ) as ws:
            relay_fp = self._check_relay(ws)
            base = self.url
            machine = HostLinkMachine(
                self.clock(), host_id=self.host_id, spki=self.spki, token=self.token,
                relay_fingerprint=relay_fp, sign=lambda data: proof.sign(self.key, data),
            )
            await ws.send(encode(machine.start(self.clock())))
            return await self._serve_control(ws, machine, base)

    async def _serve_control(self, ws: ClientConnection, machine: HostLinkMachine,
                             base: str) -> bool:
        while True:
            deadline = machine.deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                data = await asyncio.wait_for(ws.recv(), timeout)
                raise_if_cancelled()  # wait_for may have swallowed a stop (rdesk.common.waiting)
            except asyncio.TimeoutError:
                for message in machine.check_timer(self.clock()).send:
                    await ws.send(encode(message))
                continue
            step = machine.receive(data, self.clock())
            for message in step.send:
                await ws.send(encode(message))
            event = step.event
            if isinstance(event, Registered):
                self.last_error = None
                self._was_registered = True
                self.registered.set()
                self.say(f"rdesk: registered as {self.host_id} on relay {self.url}")
            elif isinstance(event, (Rendezvous, RawRendezvous)):
                # Another instance of the relay may hold the viewer; it must present the same
                # certificate (checked in _answer), so a url cannot lead the host anywhere else.
                try:
                    target = base if event.url is None else _base_url(event.url)
                except RelayLinkError as exc:
                    log.info("rendezvous %s: %s", event.session[:6], exc)
                    continue
                self._spawn(self._answer(target, machine, event.session)
                            if isinstance(event, Rendezvous)
                            else self._answer_raw(target, machine, event))
            elif isinstance(event, Move):
                self.moves += 1
                self.last_error = f"moved: {event.reason}"
                if event.url is not None:
                    with contextlib.suppress(RelayLinkError):
                        self.url = _base_url(event.url)
                await ws.close()
                return True

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def wrapped() -> None:
            await coro

        task = asyncio.ensure_future(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- data connections ----------------------------------------------------------------------

    async def _answer(self, base: str, machine: HostLinkMachine, session: str) -> None:
        """Open ``/data`` for ``session`` and hand it to ``on_rendezvous``."""
        try:
            async with connect(
                base + "/data", ssl=self.ssl_context, max_size=DATA_MAX_MESSAGE, max_queue=4,
                compression=None, open_timeout=10, close_timeout=5, ping_interval=20,
                ping_timeout=20, user_agent_header=None,
            ) as ws:
                if self._check_relay(ws) != machine.relay_fingerprint:
                    raise RelayLinkError("the relay's data endpoint presented another certificate")
                await ws.send(encode(machine.data_message(session)))
                rendezvous_session.set(session)
                await self.on_rendezvous(ws)
        except (OSError, InvalidHandshake, ConnectionClosed, asyncio.TimeoutError,
                RelayLinkError) as exc:
            log.info("rendezvous %s on %s: %s", session[:6], base, " ".join(str(exc).split()))
        except Exception:  # the caller's handler failing must not end the control connection
            log.exception("rendezvous handler failed")

    async def _answer_raw(self, base: str, machine: HostLinkMachine,
                          event: RawRendezvous) -> None:
        """Open the raw lane for ``event`` and hand its socket to ``on_raw``; when the relay's
        splice port cannot be used (a balancer that forwards only the websocket port, a
        refusal), answer on ``/data`` instead, with one log line."""
        assert self.on_raw is not None
        name = event.address or urllib.parse.urlsplit(base).hostname or ""
        try:
            sock = await asyncio.wait_for(dial_splice_port(name, event.port, event.ticket),
                                          RAW_TIMEOUT)
        except (OSError, asyncio.TimeoutError, RawLaneError) as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            log.warning("rendezvous %s: the raw lane to %s:%d failed (%s); answering on the "
                        "websocket lane", event.session[:6], name, event.port, why)
            await self._answer(base, machine, event.session)
            return
        rendezvous_session.set(event.session)
        try:
            await self.on_raw(sock)
        except Exception:  # the caller's handler failing must not end the control connection
            log.exception("raw lane handler failed")
        finally:
            sock.close()


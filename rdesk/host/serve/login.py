"""One login, from the host's Hello to the viewer's Welcome or a refusal: :class:`Login`.

The I/O shell around :func:`~rdesk.host.serve.admission.decide`: it sends the Hello with a
fresh nonce, receives the Auth within the session's handshake deadline, then gathers what the
rules need — whether the host's brake refuses this source, what the credential grants
(checked in the host's authentication pool, after the source's failed-login penalty), how many
viewers there are, what the local user answered — and asks :func:`decide` again each time it
learns something.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import math
import secrets
import time
from typing import TYPE_CHECKING

from rdesk import __version__
from rdesk.common.transport import Transport, TransportClosed
from rdesk.host.security.text import shown
from rdesk.host.serve.admission import (
    AskConsent,
    Attempt,
    CheckCredential,
    ConsentAnswer,
    Refuse,
    decide,
)
from rdesk.host.serve.connection import ViewerConnection, close_session
from rdesk.host.serve.control import Member
from rdesk.host.serve.viewer import ViewerLink
from rdesk.protocol import limits
from rdesk.protocol.access import Access
from rdesk.protocol.messages import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Auth,
    Close,
    Hello,
    Notice,
    Welcome,
)
from rdesk.protocol.session import Session
from rdesk.recording.format import Recorder, RecordingError

if TYPE_CHECKING:
    from rdesk.host.serve.server import HostServer

__all__ = ["ANNOUNCE_DELAY_FROM", "Login", "delay_notice"]

#: Failed-login delays at least this long (seconds) are announced with :func:`delay_notice`.
#: Shorter ones are served silently: every viewer's default timeout outlasts them, and the
#: browser page of this version takes no Notice before its Welcome (it would end the login
#: with a protocol error) while its whole handshake budget is 10 s — so the page loses
#: nothing it had, and the longer delays, which it could not wait out anyway, are announced.
ANNOUNCE_DELAY_FROM = 10.0


def delay_notice(wait: float) -> str:
    """The Notice sent before serving a failed-login penalty of ``wait`` seconds.

    Its text is for people; viewers read the seconds from the Notice's ``delay`` field
    (docs/protocol.md, ``notice``)."""
    return ("the host delays logins from this address after failed attempts; "
            f"answering in {math.ceil(wait)} s")


class Login:
    """The login of one connection to ``server`` over ``transport``; :meth:`run` it once."""

    def __init__(self, server: HostServer, transport: Transport, session: Session) -> None:
        self.server = server
        self.transport = transport
        self.session = session
        self.source = transport.remote

    async def run(self) -> ViewerConnection | None:
        """The admitted viewer's connection, or ``None`` (the transport was closed with the
        reason). Raises what the peer did wrong (:class:`ProtocolError`) or the transport's
        end."""
        server, session = self.server, self.session
        nonce = base64.b64encode(secrets.token_bytes(limits.NONCE_BYTES)).decode()
        methods = "certificate" if server.cert_policy is not None else "password"
        hello = Hello(PROTOCOL_NAME, PROTOCOL_VERSION, nonce, methods, f"rdesk/{__version__}")
        await self.transport.send(session.send(hello, time.monotonic()))
        message = session.receive(await self._recv(), time.monotonic())
        if isinstance(message, Close):
            return None
        assert isinstance(message, Auth)  # the state machine allows nothing else here
        server.auth_attempts += 1
        # The name is shown on the host's terminal, in its logs and in other viewers' dialogs:
        # controls and bidi overrides are escaped once, here, for all of them.
        name = shown(message.name, limits.MAX_STRING)
        attempt = Attempt(
            locked=not server.throttle.admit(self.source, time.monotonic()),
            credential=methods,
            max_viewers=server.settings.max_viewers,
            ask_consent=server.settings.consent == "ask",
        )
        viewer_id = 0
        while True:
            attempt = dataclasses.replace(attempt, viewers=len(server.viewers))
            decision = decide(attempt)
            if isinstance(decision, Refuse):
                self._refused(decision, message.method)
                await close_session(self.transport, session, decision.code, decision.reason)
                return None
            if isinstance(decision, CheckCredential):
                access = await self._check_credential(message)
                attempt = dataclasses.replace(attempt, checked=True, access=access)
            elif isinstance(decision, AskConsent):
                viewer_id = server.take_id()
                answer = await self._ask_consent(viewer_id, name, attempt.access)
                attempt = dataclasses.replace(attempt, consent=answer)
            else:
                return await self._welcome(viewer_id or server.take_id(), name,
                                           decision.access)

    async def _recv(self) -> str | bytes:
        """The next message, within the session's handshake deadline."""
        while True:
            deadline = self.session.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await asyncio.wait_for(self.transport.recv(), timeout)
            except asyncio.TimeoutError:
                # The session decides: past its handshake deadline this raises.
                for frame in self.session.handle_timer(time.monotonic()):
                    await self.transport.send(frame)

    async def _check_credential(self, message: Auth) -> Access | None:
        """What the credential grants, after serving the source's failed-login penalty.

        The penalty is served *before* the secret is hashed (a guesser waiting out its delay
        costs no CPU), and the hash runs once, in the host's own authentication pool."""
        throttle, kind = self.server.throttle, self._kind(message)
        wait = throttle.begin(self.source, time.monotonic(), kind)
        access: Access | None = None
        try:
            if wait >= ANNOUNCE_DELAY_FROM:
                # Said before the wait, so the viewer waits for the answer instead of giving
                # up (which would count as one more failure) and its user learns why.
                notice = Notice(delay_notice(wait),
                                delay=min(math.ceil(wait), limits.MAX_LOGIN_DELAY))
                await self.transport.send(self.session.send(notice, time.monotonic()))
            await self._serve_penalty(wait)
            access = await self._check(message)
        finally:
            # An abandoned attempt counts as a failure: it ends the one begun above.
            if access is None:
                throttle.failed(self.source, time.monotonic(), kind)
            else:
                # The view password does not reset the penalty: the wrong guesses before it
                # may have aimed at the control password (penalties per credential kind).
                throttle.succeeded(self.source, time.monotonic(), kind,
                                   reset=kind != "password" or access is Access.CONTROL)
        return access

    async def _serve_penalty(self, wait: float) -> None:
        """Wait ``wait`` seconds, unless the viewer leaves first (then raises
        :class:`TransportClosed`): a viewer that gave up must not hold its handler, nor the
        host's shutdown, for the rest of its penalty. Anything else it sends meanwhile goes
        through the session (which allows only a close here)."""
        if wait <= 0:
            return
        recv = asyncio.ensure_future(self.transport.recv())
        try:
            done, _ = await asyncio.wait({recv}, timeout=wait)
        finally:
            recv.cancel()
        if done:
            self.session.receive(recv.result(), time.monotonic())
            raise TransportClosed("the viewer closed the connection during its login delay")

    def _kind(self, message: Auth) -> str:
        """The credential kind whose penalty this attempt pays (rdesk/host/security/throttle)."""
        if self.server.cert_policy is not None:
            return "certificate"
        return "invite" if message.secret.startswith("inv-") else "password"

    async def _check(self, message: Auth) -> Access | None:
        server = self.server
        if server.cert_policy is None:
            if message.method != "password":
                return None
            role = await server.auth_pool.run(server.credentials.check, message.secret)
        else:
            # The TLS layer already required a certificate chaining to our CA; the role (and
            # revocation) comes from it, and nothing the viewer typed can change that.
            role = server.cert_policy.role_for(self.transport.peer_certificate)
        return Access(role) if role is not None else None

    def _refused(self, refusal: Refuse, method: str) -> None:
        event = self.server.event
        if refusal.event in ("auth_locked", "auth_failure"):
            event(refusal.event, source=self.source, method=method)
        elif refusal.event:
            event(refusal.event, source=self.source, reason=refusal.detail)
        if refusal.event == "auth_failure":
            self._maybe_rotate()

    def _maybe_rotate(self) -> None:
        """After repeated failures, replace a one-time password (it may be being guessed)."""
        server = self.server
        rotate = getattr(server.credentials, "rotate", None)
        if rotate is not None and server.throttle.should_rotate():
            new = rotate()
            if new is not None:
                server.event("password_rotated")
                server.say(f"one-time password changed after repeated failed logins: {new}")

    async def _ask_consent(self, viewer_id: int, name: str, access: Access | None
                           ) -> ConsentAnswer:
        """Ask the local user whether to admit the viewer, within the consent timeout."""
        server = self.server
        notice = Notice("waiting for the host's user to accept this connection")
        await self.transport.send(self.session.send(notice, time.monotonic()))
        answer = ConsentAnswer.NOBODY
        if server.consent is not None:
            try:
                admitted = await asyncio.wait_for(
                    server.consent(viewer_id, name, str(access), self.source),
                    server.settings.consent_timeout,
                )
            except asyncio.TimeoutError:
                answer = ConsentAnswer.TIMED_OUT
            else:
                answer = ConsentAnswer.ADMITTED if admitted else ConsentAnswer.REFUSED
        # The audit log's whitelist knows "decision": the answer itself, not a boolean.
        server.event("consent", viewer=viewer_id, source=self.source, decision=answer.value)
        return answer

    async def _welcome(self, viewer_id: int, name: str, access: Access) -> ViewerConnection:
        server, session, settings = self.server, self.session, self.server.settings
        recorder = self._start_recording(viewer_id)
        conn = ViewerConnection(server, self.transport, session, viewer_id, name, access,
                                recorder)
        conn.attach(lambda send: ViewerLink(
            viewer_id,
            name,
            access,
            session,
            server.source,
            server.cache,
            send,
            quality=settings.quality,
            lossless_delay=settings.lossless_delay,
            max_fps=settings.max_fps,
            max_bandwidth=settings.max_bandwidth,
            video_encoders=server.video_encoders,
        ))
        host_name = settings.name or "rdesk host"
        source = server.source
        welcome = Welcome(access, viewer_id, source.width, source.height, host_name)
        # Registered before the welcome leaves: a viewer that has its welcome is one the host
        # knows (whatever the host's loop does between the send and the next line).
        server.viewers[viewer_id] = conn
        try:
            await conn.send(session.send(welcome, time.monotonic()))
        except BaseException:
            server.viewers.pop(viewer_id, None)
            conn.finish("viewer left")
            raise
        server.event("auth_success", source=self.source, viewer=viewer_id, role=access.value)
        server.deliver(server.board.join(Member(viewer_id, name, access)))
        return conn

    def _start_recording(self, viewer_id: int) -> Recorder | None:
        settings = self.server.settings
        if settings.record_dir is None:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            return Recorder(
                settings.record_dir,
                f"{stamp}-viewer{viewer_id}",
                record_input=settings.record_input,
                record_clipboard=settings.record_clipboard,
                host_name=settings.name,
                screen=(self.server.source.width, self.server.source.height),
            )
        except RecordingError as exc:
            self.server.event("recording_error", viewer=viewer_id, reason=str(exc))
            return None

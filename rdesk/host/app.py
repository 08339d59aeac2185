"""``rdesk host``: put the parts together, print how to connect, serve until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from rdesk.common.runtime import consent_socket_path
from rdesk.host.banner import print_banner, print_relay_banner
from rdesk.host.clipboard import start_clipboard
from rdesk.host.credentials import load_credentials
from rdesk.host.relayed import RelayPresence
from rdesk.host.relaylink import RelayLinkError, load_identity
from rdesk.host.screen.backends import backend_of, open_capturer
from rdesk.host.screen.capture import Capturer
from rdesk.host.screen.cursor import CursorHub
from rdesk.host.screen.damage import DamageUnavailable, watch_changes
from rdesk.host.screen.desktop import VirtualDesktop, start_virtual_desktop
from rdesk.host.screen.monitors import (
    MonitorCapturer,
    MonitorHub,
    MonitorInput,
    MonitorView,
    MonitorWatcher,
    list_monitors,
)
from rdesk.host.screen.resize import NOT_VIRTUAL, ResizeHub
from rdesk.host.screen.source import ChangeNotifier, ScreenSource
from rdesk.host.security.audit import AuditLog
from rdesk.host.security.ca import default_ca_dir
from rdesk.host.security.clientcerts import ClientCertPolicy
from rdesk.host.security.passwords import read_secret_file
from rdesk.host.security.tls import (
    ensure_host_certificate,
    server_ssl_context,
)
from rdesk.host.serve.connection import close_session
from rdesk.host.serve.consent import ConsentDesk
from rdesk.host.serve.consentsock import ConsentSocket, ConsentSocketError
from rdesk.host.serve.console import HostConsole
from rdesk.host.serve.server import HostServer, InputSink
from rdesk.host.settings import CaptureBackend, HostSettings
from rdesk.protocol.errors import CloseCode

__all__ = ["HostError", "run_host"]

log = logging.getLogger(__name__)


class HostError(Exception):
    """The host cannot start; ``str()`` is one line for the user."""


def _make_injector(display: str, stack: contextlib.ExitStack) -> InputSink | None:
    """The input injector, closed with ``stack``; ``None`` (view-only host) if it cannot start."""
    from rdesk.host.input.inject import PynputInjector

    try:
        injector = PynputInjector(display)
    except Exception as exc:  # pynput raises many kinds when X or its backend is unusable
        log.warning("input injection disabled: %s", " ".join(str(exc).split()) or exc)
        return None
    stack.callback(injector.close)
    return injector


def _change_notifier(
    display: str, capturer: Capturer, backend: CaptureBackend, stack: contextlib.ExitStack
) -> ChangeNotifier | None:
    """X DAMAGE on ``display``, closed with ``stack``; ``None`` (poll and compare frames) for
    the portable ``mss`` backend, or when the server has no DAMAGE."""
    if backend == "mss":
        log.info("capture backend mss: polling the screen and comparing frames")
        return None
    try:
        # On the capturer's own connection when it has one: no round trip per reset.
        notifier = watch_changes(display, capturer)
    except DamageUnavailable as exc:
        log.warning("no change notification (%s); polling the screen instead", exc)
        return None
    stack.callback(notifier.close)
    return notifier


def _resizer(
    desktop: VirtualDesktop | None, display: str, source: ScreenSource, server: HostServer,
    view: MonitorView,
) -> ResizeHub:
    """Viewers' ``resize``: done on a resizable virtual desktop, refused with the reason
    otherwise. After a resize the monitor list is read again and sent to every viewer."""
    if desktop is None:
        refusal: str | None = NOT_VIRTUAL
    elif not desktop.server.resizable:
        refusal = ("this virtual desktop's X server (Xvfb) cannot resize; start the host "
                   "with --virtual-server xvnc")
    else:
        refusal = None

    def resized(viewer_id: int, width: int, height: int) -> None:
        server.event("resize", viewer=viewer_id, width=width, height=height)
        assert server.monitors is not None
        server.monitors.refresh(list_monitors(display))

    return ResizeHub(display, refusal, lambda: (source.width, source.height), resized)


async def run_host(
    settings: HostSettings,
    *,
    out: Callable[[str], None] = print,
    ready: Callable[[HostServer], None] | None = None,
) -> None:
    """Run a host until SIGINT/SIGTERM (or cancellation). Raises :class:`HostError`."""
    with contextlib.ExitStack() as stack:
        display = settings.display or os.environ.get("DISPLAY")
        desktop: VirtualDesktop | None = None
        if settings.virtual is not None:
            width, height = settings.virtual
            desktop = start_virtual_desktop(
                width, height, settings.session, stack, out, settings.virtual_server
            )
            display = desktop.display
        if not display:
            raise HostError(
                "no display to share: $DISPLAY is not set; use --display :N, "
                "or --virtual 1280x720 to start a virtual one"
            )
        capturer = open_capturer(display, settings.capture)
        stack.callback(capturer.close)
        notifier = _change_notifier(display, capturer, settings.capture, stack)
        # --monitor N (and viewers' select_monitor): capture, diff and input follow the
        # shared monitor's rectangle; with the whole screen the wrappers pass frames through.
        view = MonitorView(list_monitors(display), settings.monitor)

        if settings.cert is not None or settings.key is not None:
            if settings.cert is None or settings.key is None:
                raise HostError("--tls-cert and --tls-key must be given together")
            cert, key = settings.cert, settings.key
        else:
            cert, key = ensure_host_certificate(settings.config_dir)
        ssl_context = server_ssl_context(cert, key, allow_tls12=settings.allow_tls12)
        credentials, how = load_credentials(settings)
        cert_policy: ClientCertPolicy | None = None
        if settings.require_client_cert:
            cert_policy = ClientCertPolicy(settings.ca_dir or default_ca_dir(settings.config_dir))
            cert_policy.ssl_context_hook(ssl_context)
            how = "login: a client certificate issued with `rdesk certs issue` (role from it)"
        audit: AuditLog | None = None
        if settings.audit_log is not None:
            audit = stack.enter_context(AuditLog(settings.audit_log))

        source = ScreenSource(
            MonitorCapturer(capturer, view), max_fps=settings.max_fps, notifier=notifier
        )
        injector = _make_injector(display, stack)
        if injector is not None:
            injector = MonitorInput(injector, view)
        server = HostServer(
            settings, source, credentials, ssl_context, injector=injector, say=out,
            on_event=audit, cert_policy=cert_policy,
        )
        clipboard = start_clipboard(settings, display, server.event)
        stack.callback(clipboard.close)
        # Each viewer finds the hub as `host.clipboard` (rdesk/host/serve/connection.py).
        server.clipboard = clipboard
        cursor = CursorHub().start(display)
        stack.callback(cursor.close)
        server.cursor = cursor
        monitors = server.monitors = MonitorHub(view)
        loop = asyncio.get_running_loop()
        # A monitor plugged in or made while the host runs reaches the viewers (and --monitor).
        watcher = MonitorWatcher(display, view.monitors,
                                 lambda found: loop.call_soon_threadsafe(monitors.changed, found))
        stack.callback(watcher.close)
        server.resizer = _resizer(desktop, display, source, server, view)
        stack.callback(server.resizer.close)
        desk = ConsentDesk(out)
        console = HostConsole(server, credentials.invites, out, desk)
        if settings.consent == "ask":
            server.consent = desk
        presence = _relay_presence(settings, server, cert, key, out)
        if settings.listen:
            await _listen(server, settings)
        consent_socket: ConsentSocket | None = None
        if settings.consent == "ask":
            consent_socket = await _open_consent_socket(settings, desk)
        capture = asyncio.create_task(source.run(), name="capture")
        capture_line = backend_of(capturer) + (
            ", changes from X DAMAGE" if notifier is not None else ", polling for changes"
        )
        shown = display if view.current is None else f"{display} monitor {view.current}"
        print_banner(out, shown, source, capture_line, server, cert, how, settings)
        if presence is not None:
            print_relay_banner(out, presence)
            presence.start()
        for role, minutes in settings.invites:
            out("  " + console.invite(role, minutes))
        if consent_socket is not None:
            out(f"  consent:     accept each viewer here (`accept N`; `help` for commands) or "
                f"with `rdesk consent` ({consent_socket.path})")
        console.start()
        if ready is not None:
            ready(server)
        ended = (
            asyncio.create_task(desktop.until_ended(settings.keep_running, out), name="session")
            if desktop is not None
            else None
        )
        try:
            await _until_signalled(capture, ended)
        finally:
            if ended is not None:
                ended.cancel()
            capture.cancel()
            if presence is not None:
                # Relayed viewers are told the host is going before their tunnels are dropped.
                for conn in list(server.viewers.values()):
                    await close_session(conn.transport, conn.session, CloseCode.SHUTDOWN,
                                        "host is shutting down")
                await presence.stop()
            await server.stop()
            if consent_socket is not None:
                await consent_socket.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await capture


async def _open_consent_socket(settings: HostSettings, desk: ConsentDesk) -> ConsentSocket:
    """The consent socket ``rdesk consent`` answers on (``--consent ask``), listening."""
    path = settings.consent_socket or consent_socket_path()
    if path is None:
        raise HostError("--consent ask: no runtime directory ($XDG_RUNTIME_DIR) for the consent "
                        "socket; give --consent-socket PATH")
    consent_socket = ConsentSocket(desk, path)
    try:
        await consent_socket.start()
    except ConsentSocketError as exc:
        raise HostError(str(exc)) from None
    return consent_socket


async def _listen(server: HostServer, settings: HostSettings) -> None:
    try:
        await server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise HostError(
                f"port {settings.port} on {settings.bind} is already in use; "
                "choose another with --port"
            ) from None
        raise HostError(f"cannot listen on {settings.bind}:{settings.port}: {exc}") from None


def _relay_presence(
    settings: HostSettings, server: HostServer, cert: Path, key: Path,
    out: Callable[[str], None],
) -> RelayPresence | None:
    """The host's presence on ``settings.relay_url`` (not started yet), or ``None``.

    The relay registers the key of the host's certificate: the ECDSA P-256 key rdesk makes
    (a ``--cert`` with another kind of key cannot be reached by ID).
    """
    if settings.relay_url is None:
        if not settings.listen:
            raise HostError("--no-listen needs --relay: otherwise no viewer could reach the host")
        return None
    token = (read_secret_file(settings.relay_token_file)
             if settings.relay_token_file is not None else None)
    try:
        private_key, cert_der = load_identity(cert, key)
        return RelayPresence(server, settings.relay_url, private_key, cert_der, token,
                             settings.relay_fingerprint, out, listening=settings.listen)
    except ValueError as exc:
        raise HostError(f"cannot use the host key with a relay: {exc}") from None
    except RelayLinkError as exc:
        raise HostError(str(exc)) from None


async def _until_signalled(
    capture: asyncio.Task[None], ended: asyncio.Task[None] | None = None
) -> None:
    """Return on SIGINT/SIGTERM or when ``ended`` (the virtual desktop's session) finishes;
    raise the capture loop's error if it fails."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    try:
        tasks = {waiter, capture} if ended is None else {waiter, capture, ended}
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if capture in done:
            capture.result()  # the capture loop failed: let its error end the host
    finally:
        waiter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

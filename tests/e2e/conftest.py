"""End-to-end fixtures: a real host on a real Xvfb over real TLS on 127.0.0.1.

The host runs in this process on its own event loop in a background thread, so tests can both
drive real viewers (the CLI as subprocesses, or the client library) and look inside the host
(authentication attempts, encoder counts, viewer links).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rdesk.common.tasks import awaiting
from rdesk.host.credentials import HostCredentials
from rdesk.host.screen.backends import open_capturer
from rdesk.host.screen.damage import watch_changes
from rdesk.host.screen.source import ScreenSource
from rdesk.host.security.clientcerts import ClientCertPolicy
from rdesk.host.security.passwords import PasswordStore
from rdesk.host.security.tls import (
    ensure_host_certificate,
    host_key_fingerprint,
    server_ssl_context,
)
from rdesk.host.serve.server import Credentials, HostServer, InputSink
from rdesk.host.settings import HostSettings
from tests.xserver import Xvfb

T = TypeVar("T")

PASSWORD = "correct horse battery staple"


@dataclasses.dataclass
class RunningHost:
    """A host serving ``display`` on ``127.0.0.1:port``."""

    display: str
    port: int
    fingerprint: str
    password_file: Path
    server: HostServer
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the host's loop (to touch host state safely) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def record_events(self) -> list[tuple[str, dict[str, object]]]:
        """Every event the host emits from now on (its audit hook), as ``(kind, fields)``, in
        a list that grows as they come."""
        seen: list[tuple[str, dict[str, object]]] = []

        async def install() -> None:
            self.server._on_event = lambda kind, fields: seen.append((kind, dict(fields)))

        self.call(install())
        return seen

    def viewer_args(self) -> list[str]:
        """CLI options that let a viewer in: pinned key and the password file."""
        return ["--fingerprint", self.fingerprint, "--password-file", str(self.password_file)]


#: Seconds a test host may take to stop (close its viewers, end its handlers) in teardown.
STOP_WAIT = 90


class HostThread:
    """Start and stop a :class:`HostServer` on a private event loop thread."""

    def __init__(
        self,
        display: str,
        tmp: Path,
        *,
        credentials: Credentials | None = None,
        injector: Callable[[str], InputSink | None] | None = None,
        cert_policy: ClientCertPolicy | None = None,
        **settings: Any,
    ) -> None:
        self.display = display
        self.tmp = tmp
        self.credentials = credentials
        self.injector = injector
        self.cert_policy = cert_policy
        settings.setdefault("bind", "127.0.0.1")  # a test may listen wider (network namespaces)
        self.settings = HostSettings(
            display=display, port=0, config_dir=tmp / "host-config", **settings
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._capture: asyncio.Task[None] | None = None

    def start(self) -> RunningHost:
        self.thread.start()
        password_file = self.tmp / "password.txt"
        password_file.write_text(PASSWORD + "\n")
        return asyncio.run_coroutine_threadsafe(self._start(password_file), self.loop).result(30)

    async def _start(self, password_file: Path) -> RunningHost:
        cert, key = ensure_host_certificate(self.settings.config_dir)
        credentials = self.credentials or HostCredentials(
            PasswordStore.from_plain_file(password_file)
        )
        capturer = open_capturer(self.display)
        self._closers: list[Callable[[], None]] = [capturer.close]
        notifier = watch_changes(self.display, capturer)
        self._closers.append(notifier.close)
        source = ScreenSource(capturer, max_fps=self.settings.max_fps, notifier=notifier)
        ssl_context = server_ssl_context(cert, key, allow_tls12=self.settings.allow_tls12)
        if self.cert_policy is not None:
            self.cert_policy.ssl_context_hook(ssl_context)
        injector = self.injector(self.display) if self.injector else None
        close_injector = getattr(injector, "close", None)
        if close_injector is not None:
            self._closers.append(close_injector)
        self.server = HostServer(
            self.settings,
            source,
            credentials,
            ssl_context,
            injector=injector,
            cert_policy=self.cert_policy,
        )
        await self.server.start()
        self._capture = asyncio.create_task(source.run())
        return RunningHost(
            self.display,
            self.server.port,
            host_key_fingerprint(cert),
            password_file,
            self.server,
            self.loop,
        )

    async def _stop(self) -> None:
        if self._capture is not None:
            self._capture.cancel()
            await asyncio.gather(self._capture, return_exceptions=True)
        await self.server.stop()
        for close in reversed(self._closers):  # the damage watcher before its connection
            close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        stopping = asyncio.run_coroutine_threadsafe(self._stop(), self.loop)
        try:
            stopping.result(STOP_WAIT)
        except TimeoutError:
            # Say what the host was still doing (a shutdown that hangs is a bug to find): what
            # each task awaits, and where the loop's thread is (blocked in a call, if it is).
            pending = [awaiting(t) for t in asyncio.all_tasks(self.loop)]
            frame = sys._current_frames().get(self.thread.ident or -1)
            where = "".join(traceback.format_stack(frame)[-8:]) if frame is not None else "?"
            raise AssertionError(
                f"the host did not stop within {STOP_WAIT} s; its tasks: {pending}; "
                f"its loop's thread:\n{where}") from None
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def host_factory(tmp_path: Path) -> Iterator[Callable[..., RunningHost]]:
    """Make hosts on given displays: ``host_factory(display, credentials=..., **settings)``."""
    started: list[HostThread] = []

    def make(display: str, **kwargs: Any) -> RunningHost:
        thread = HostThread(display, tmp_path / f"host{len(started)}", **kwargs)
        thread.tmp.mkdir(parents=True, exist_ok=True)
        started.append(thread)
        return thread.start()

    yield make
    for thread in reversed(started):
        thread.stop()


@pytest.fixture
def injectors() -> Iterator[Callable[[str], InputSink]]:
    """Make real injectors (``host_factory(display, injector=injectors)``).

    The host closes each when it stops (giving borrowed keycodes back); closing twice is safe.
    """
    from rdesk.host.input.inject import PynputInjector

    made: list[PynputInjector] = []

    def make(display: str) -> PynputInjector:
        injector = PynputInjector(display)
        made.append(injector)
        return injector

    yield make
    for injector in made:
        injector.close()


@pytest.fixture
def host(xvfb: Xvfb, host_factory: Callable[..., RunningHost]) -> RunningHost:
    """A host sharing a fresh 640×480 Xvfb, password :data:`PASSWORD`."""
    return host_factory(xvfb.display)


@pytest.fixture
def rdesk_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m rdesk --config-dir TMP ARGS...`` and capture its output."""
    config = tmp_path / "viewer-config"

    def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rdesk", "--config-dir", str(config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env if env is not None else os.environ.copy(),
            **kwargs,
        )

    return run

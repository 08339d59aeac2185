"""When a live session has outlived its authority: :class:`SessionGuard` (issue 20).

Pure logic, driven with ``now`` by the viewer's connection once a second. It answers what the
connection must do about four ways a session can outlast what admitted it:

- **Held input of a frozen viewer.** A controlling viewer that stops answering (SIGSTOPped,
  a dead network) would keep its keys and buttons pressed until the 30 s stall close; a held
  Ctrl turns the local user's typing into shortcuts. While it holds input and has been silent
  for ``probe_after`` seconds the host pings it (:attr:`Checks.probe`); once silent for
  ``release_after`` seconds, or with an update unacknowledged that long, everything it holds
  is released (:attr:`Checks.release`), once.
- **Idle sessions** (``--idle-timeout``): no input or control request for that long closes.
- **Long sessions** (``--max-session``): a session older than that closes, whatever it does.
- **Revoked certificates**: every ``recheck_every`` seconds the connection re-checks the
  viewer's client certificate (:attr:`Checks.recheck`) and closes if it no longer grants.

``0`` turns the idle and the maximum limit off.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Checks", "SessionGuard"]


@dataclasses.dataclass(frozen=True)
class Checks:
    """What is due now: at most one close ``reason`` (``""``: none) and the other actions."""

    close: str = ""
    probe: bool = False
    release: bool = False
    recheck: bool = False


class SessionGuard:
    """One viewer's clocks of authority; see the module docstring.

    :param now: when the session was admitted.
    """

    def __init__(self, now: float, *, idle_timeout: float = 0.0, max_session: float = 0.0,
                 probe_after: float = 1.0, release_after: float = 3.0,
                 recheck_every: float = 5.0) -> None:
        self.started = now
        self.idle_timeout = idle_timeout
        self.max_session = max_session
        self.probe_after = probe_after
        self.release_after = release_after
        self.recheck_every = recheck_every
        self._heard = now
        self._active = now
        self._next_recheck = now + recheck_every
        self._released = False

    def heard(self, now: float) -> None:
        """Anything arrived from the viewer (a pong, an ack, input)."""
        self._heard = now

    def active(self, now: float) -> None:
        """The viewer's user did something (input, a control request): not idle."""
        self._heard = self._active = now
        self._released = False

    def check(self, now: float, *, holds: bool, oldest_unacked: float = 0.0) -> Checks:
        """What to do now, given whether the viewer holds keys or buttons and the age of its
        oldest unacknowledged update (seconds, 0 when none)."""
        close = ""
        if self.max_session > 0 and now - self.started >= self.max_session:
            close = f"session time limit reached ({_minutes(self.max_session)})"
        elif self.idle_timeout > 0 and now - self._active >= self.idle_timeout:
            close = f"idle for {_minutes(self.idle_timeout)}"
        silent = now - self._heard
        release = holds and not self._released and (
            silent >= self.release_after or oldest_unacked >= self.release_after)
        if release:
            self._released = True
        recheck = now >= self._next_recheck
        if recheck:
            self._next_recheck = now + self.recheck_every
        return Checks(close=close, probe=holds and silent >= self.probe_after,
                      release=release, recheck=recheck)


def _minutes(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} s"

"""The host console's `viewers` command (rdesk/host/serve/console.py)."""

from __future__ import annotations

from rdesk.host.security.invites import InviteBook
from rdesk.host.serve.console import HostConsole
from rdesk.host.serve.control import ControlBoard, Member
from rdesk.protocol.access import Access


class _Server:
    def __init__(self) -> None:
        self.board = ControlBoard()
        self.auth_attempts = 0


def test_viewers_lists_viewers_and_login_attempts() -> None:
    server = _Server()
    server.board.join(Member(1, "alice", Access.VIEW))
    server.auth_attempts = 7
    lines: list[str] = []
    HostConsole(server, InviteBook(), lines.append).handle("viewers")
    assert any("alice" in line for line in lines)
    assert lines[-1] == "  7 login attempt(s) since the host started"

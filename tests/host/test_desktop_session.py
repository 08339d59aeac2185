"""The default desktop session chosen from what is installed (pure: ``which`` is given)."""

from __future__ import annotations

import pytest

from rdesk.host.screen.session import DesktopSession, SessionError, default_session


@pytest.mark.parametrize(
    ("installed", "argv"),
    [
        ({"openbox", "xterm"}, ["/bin/openbox", "--startup", "/bin/xterm"]),
        ({"openbox"}, ["/bin/openbox"]),
        ({"xterm"}, ["/bin/xterm"]),
        (set(), None),
    ],
)
def test_default_session_degrades_with_what_is_installed(
    installed: set[str], argv: list[str] | None
) -> None:
    assert default_session(lambda name: f"/bin/{name}" if name in installed else None) == argv


def test_session_command_is_split_without_a_shell() -> None:
    session = DesktopSession("xterm -title 'a b'", ":9", "/tmp/cookie", env={"HOME": "/x"})
    assert session.argv == ["xterm", "-title", "a b"]
    assert session.env == {"HOME": "/x", "DISPLAY": ":9", "XAUTHORITY": "/tmp/cookie"}
    with pytest.raises(SessionError, match="empty"):
        DesktopSession("  ", ":9")

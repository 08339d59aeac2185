"""Issue 3 end to end: the input verbs and viewers drive a real X client through a real host.

A :class:`~tests.xserver.Recorder` window covers the 800x600 Xvfb screen and reports every
KeyPress, ButtonPress and motion it receives; the X server itself says what is held down.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest

from rdesk.cli import exits
from rdesk.client.connection import connect
from rdesk.host.input.inject import PynputInjector
from rdesk.protocol.keysyms import parse_combo
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import (
    Event,
    Recorder,
    Xvfb,
    pointer_buttons,
    pointer_position,
    pressed_keys,
    wait_until,
)

Cli = Callable[..., subprocess.CompletedProcess[str]]

SHIFT, CONTROL = 1, 4  # X modifier state bits
W, H = 800, 600


@dataclasses.dataclass
class Desk:
    xvfb: Xvfb
    host: RunningHost
    recorder: Recorder

    @property
    def display(self) -> str:
        return self.xvfb.display


@pytest.fixture
def desk(
    xvfb_factory: Callable[..., Xvfb],
    injectors: Callable[[str], PynputInjector],
    host_factory: Callable[..., RunningHost],
) -> Iterator[Desk]:
    xvfb = xvfb_factory(W, H)
    host = host_factory(xvfb.display, injector=injectors)
    with Recorder(xvfb.display) as recorder:
        yield Desk(xvfb, host, recorder)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)


def _one_line_error(
    result: subprocess.CompletedProcess[str], needle: str, code: int = 1
) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rdesk: error: "), result.stderr
    assert needle in lines[0], lines[0]


def _presses(recorder: Recorder, kind: str = "key_press") -> list[Event]:
    return [e for e in recorder.events(timeout=2) if e["type"] == kind]


# --- typing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'Hello, World! @#$%^&*()_+{}|:"<>?~',
        "first line\nSecond Line\n\tindented [x] = `y`; 'z' \\ /",
    ],
    ids=["punctuation", "multi-line"],
)
def test_type_arrives_exactly(desk: Desk, rdesk_cli: Cli, text: str) -> None:
    _ok(rdesk_cli("type", desk.host.url, text, *desk.host.viewer_args()))
    expected = text.replace("\n", "\r")
    assert desk.recorder.wait_for_text(expected) == expected
    assert not any(e.get("synthetic") for e in desk.recorder.events())  # XTest, not SendEvent
    assert wait_until(lambda: not pressed_keys(desk.display), 5)


@pytest.mark.parametrize(
    "text",
    [
        "café €5 ✓ ñ",
        # More distinct characters than Xvfb has spare keycodes (19): bindings get reused.
        "Съешь же ещё этих мягких французских булок. Ξεσκεπάζω την ψυχοφθόρα βδελυγμία",
    ],
    ids=["few", "many"],
)
def test_type_characters_not_on_the_layout(desk: Desk, rdesk_cli: Cli, text: str) -> None:
    _ok(rdesk_cli("type", desk.host.url, text, *desk.host.viewer_args()))
    assert desk.recorder.wait_for_text(text) == text


def test_type_refuses_control_characters(desk: Desk, rdesk_cli: Cli) -> None:
    result = rdesk_cli("type", desk.host.url, "a\x07b", *desk.host.viewer_args())
    _one_line_error(result, "control character")
    assert _presses(desk.recorder) == []


# --- key combinations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("combo", "names", "mask"),
    [
        ("ctrl+a", {"a"}, CONTROL),
        ("shift+Tab", {"Tab", "ISO_Left_Tab"}, SHIFT),
        ("Return", {"Return"}, 0),
        ("F5", {"F5"}, 0),
        ("Left", {"Left"}, 0),
        ("Up", {"Up"}, 0),
        ("Right", {"Right"}, 0),
        ("Down", {"Down"}, 0),
        ("ctrl+shift+End", {"End"}, CONTROL | SHIFT),
    ],
)
def test_key_combo_arrives_with_modifiers(
    desk: Desk, rdesk_cli: Cli, combo: str, names: set[str], mask: int
) -> None:
    _ok(rdesk_cli("key", desk.host.url, combo, *desk.host.viewer_args()))
    count = len(parse_combo(combo))
    events = desk.recorder.wait_for_events(
        lambda evs: sum(e["type"] == "key_release" for e in evs) >= count
    )
    presses = [e for e in events if e["type"] == "key_press"]
    assert len(presses) == count
    last = presses[-1]
    assert last["keysym_name"] in names, presses
    assert last["state"] & (SHIFT | CONTROL) == mask, presses
    assert wait_until(lambda: not pressed_keys(desk.display), 5)


def test_several_combos_in_order(desk: Desk, rdesk_cli: Cli) -> None:
    _ok(rdesk_cli("key", desk.host.url, "h", "shift+i", "Return", *desk.host.viewer_args()))
    assert desk.recorder.wait_for_text("hI\r") == "hI\r"


def test_unknown_key_name(desk: Desk, rdesk_cli: Cli) -> None:
    _one_line_error(rdesk_cli("key", desk.host.url, "ctrl+nosuch", *desk.host.viewer_args()),
                    "unknown key")


# --- pointer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("button", "number"), [("left", 1), ("middle", 2), ("right", 3)]
)
def test_click_lands_where_asked(desk: Desk, rdesk_cli: Cli, button: str, number: int) -> None:
    _ok(rdesk_cli("click", desk.host.url, "123", "456", "--button", button,
                  *desk.host.viewer_args()))
    desk.recorder.wait_for(lambda e: e["type"] == "button_release")
    assert desk.recorder.buttons() == [(number, 123, 456)]
    assert desk.recorder.buttons("button_release") == [(number, 123, 456)]
    assert pointer_buttons(desk.display) == 0


def test_double_click(desk: Desk, rdesk_cli: Cli) -> None:
    _ok(rdesk_cli("click", desk.host.url, "10", "20", "--double", *desk.host.viewer_args()))
    desk.recorder.wait_for_events(
        lambda evs: sum(e["type"] == "button_release" for e in evs) >= 2
    )
    assert desk.recorder.buttons() == [(1, 10, 20), (1, 10, 20)]


def test_move(desk: Desk, rdesk_cli: Cli) -> None:
    _ok(rdesk_cli("move", desk.host.url, "799", "599", *desk.host.viewer_args()))
    assert pointer_position(desk.display) == (799, 599)
    desk.recorder.wait_for(lambda e: e["type"] == "motion" and (e["x"], e["y"]) == (799, 599))


@pytest.mark.parametrize("verb", [["move", "800", "10"], ["click", "5", "600"],
                                  ["scroll", "900", "900", "--dy", "1"]])
def test_coordinates_off_screen(desk: Desk, rdesk_cli: Cli, verb: list[str]) -> None:
    result = rdesk_cli(*verb[:1], desk.host.url, *verb[1:], *desk.host.viewer_args())
    _one_line_error(result, f"coordinates {verb[1]},{verb[2]} are off the 800x600 screen")
    assert desk.recorder.buttons() == []


@pytest.mark.parametrize(
    ("args", "button", "count"),
    [(["--dy", "3"], 5, 3), (["--dy", "-2"], 4, 2), (["--dx", "4"], 7, 4),
     (["--dx", "-1"], 6, 1), (["--dy", "150"], 5, 150)],
)
def test_scroll_direction_and_count(
    desk: Desk, rdesk_cli: Cli, args: list[str], button: int, count: int
) -> None:
    _ok(rdesk_cli("scroll", desk.host.url, "300", "200", *args, *desk.host.viewer_args()))
    desk.recorder.wait_for_events(
        lambda evs: sum(e["type"] == "button_release" for e in evs) >= count
    )
    assert desk.recorder.buttons() == [(button, 300, 200)] * count


# --- what a viewer holds is released when it goes ------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from rdesk.client.connection import connect

    async def main(url, fingerprint, password):
        conn = await connect(url, password, known_hosts=None, pinned=fingerprint)
        await conn.key(0xFFE3, True)  # Control_L
        await conn.key(0x61, True)    # a
        await conn.pointer(200, 100, 1 | 4)  # left and right buttons
        ack = await conn.sync()
        print("held" if ack.ok else "refused", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(*sys.argv[1:]))
    """
)


def test_viewer_killed_while_holding_keys_and_buttons(desk: Desk) -> None:
    host = desk.host
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, host.url, host.fingerprint, PASSWORD],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        assert len(pressed_keys(desk.display)) == 2
        assert pointer_buttons(desk.display) != 0
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert wait_until(
            lambda: not pressed_keys(desk.display) and pointer_buttons(desk.display) == 0, 15
        ), (pressed_keys(desk.display), pointer_buttons(desk.display))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert desk.recorder.held_keys() == set()


async def test_viewer_closing_normally_releases_too(desk: Desk) -> None:
    host = desk.host
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
    await conn.key(0xFFE1, True)
    await conn.pointer(5, 5, 2)
    assert (await conn.sync()).ok
    assert pressed_keys(desk.display) and pointer_buttons(desk.display)
    await conn.close()
    assert wait_until(
        lambda: not pressed_keys(desk.display) and pointer_buttons(desk.display) == 0, 10
    )


# --- view-only -----------------------------------------------------------------------------------


class ViewOnly:
    def check(self, secret: str) -> str | None:
        return "view" if secret == PASSWORD else None


async def test_view_only_input_never_reaches_x(
    xvfb_factory: Callable[..., Xvfb],
    injectors: Callable[[str], PynputInjector],
    host_factory: Callable[..., RunningHost],
) -> None:
    xvfb = xvfb_factory(W, H)
    host = host_factory(xvfb.display, injector=injectors, credentials=ViewOnly())
    with Recorder(xvfb.display) as recorder:
        recorder.wait_idle()
        recorder.clear()
        conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        try:
            assert conn.role == "view"
            for keysym in (0x61, 0xFF0D):
                await conn.key(keysym, True)
                await conn.key(keysym, False)
            await conn.pointer(300, 300, 1)
            await conn.pointer(300, 300, 0)
            await conn.wheel(300, 300, 0, 2)
            ack = await conn.sync()
        finally:
            await conn.close()
        assert not ack.ok and "view-only" in ack.reason
        events = recorder.events(timeout=1.0, quiet=0.5)
        assert [e for e in events if e["type"] not in ("focus_in", "focus_out")] == []
        assert pointer_position(xvfb.display) != (300, 300)


def test_view_only_cli_is_refused(
    xvfb_factory: Callable[..., Xvfb],
    injectors: Callable[[str], PynputInjector],
    host_factory: Callable[..., RunningHost],
    rdesk_cli: Cli,
) -> None:
    xvfb = xvfb_factory(W, H)
    host = host_factory(xvfb.display, injector=injectors, credentials=ViewOnly())
    result = rdesk_cli("type", host.url, "hi", *host.viewer_args())
    _one_line_error(result, "view-only", code=exits.REFUSED)

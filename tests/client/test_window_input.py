"""The viewer window's input logic on a real Tk (under Xvfb), with the network replaced.

Key events are generated with ``event generate`` exactly as X11 delivers them, autorepeat
included (a release and a press with the same timestamp).
"""

from __future__ import annotations

import tkinter
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdesk.client.tk.viewport import Viewport
from rdesk.client.tk.window import ViewerOptions, ViewerWindow

A_KEYCODE = 38


@pytest.fixture
def window(
    tk_display: str, tmp_path: Path
) -> Iterator[tuple[ViewerWindow, list[tuple[object, ...]]]]:
    root = tkinter.Tk(screenName=tk_display)
    view = ViewerWindow(root, ViewerOptions("127.0.0.1:1", tmp_path / "known_hosts"))
    sent: list[tuple[object, ...]] = []
    view.worker.send = lambda kind, *args: sent.append((kind, *args))  # type: ignore[method-assign]
    view.conn = types.SimpleNamespace(role="control")  # type: ignore[assignment]
    root.geometry("320x240+0+0")
    root.update()
    view.canvas.focus_force()
    root.update()
    yield view, sent
    root.destroy()


def _key(view: ViewerWindow, kind: str, keysym: str, time: int, keycode: int = A_KEYCODE) -> None:
    view.canvas.event_generate(kind, keysym=keysym, keycode=keycode, time=time, when="now")


def _settle(view: ViewerWindow, ms: int = 80) -> None:
    done = tkinter.BooleanVar(view.root, False)
    view.root.after(ms, lambda: done.set(True))
    view.root.wait_variable(done)


def test_press_and_release(window: tuple[ViewerWindow, list[tuple[object, ...]]]) -> None:
    view, sent = window
    _key(view, "<KeyPress>", "a", 100)
    _key(view, "<KeyRelease>", "a", 150)
    _settle(view)
    assert sent == [("key", ord("a"), 1), ("key", ord("a"), 0)]


def test_autorepeat_sends_presses_without_spurious_releases(
    window: tuple[ViewerWindow, list[tuple[object, ...]]]
) -> None:
    view, sent = window
    _key(view, "<KeyPress>", "a", 100)
    for stamp in (600, 640, 680):  # X11 autorepeat: release + press, same timestamp
        _key(view, "<KeyRelease>", "a", stamp)
        _key(view, "<KeyPress>", "a", stamp)
    _key(view, "<KeyRelease>", "a", 700)
    _settle(view)
    assert sent == [("key", ord("a"), 1)] * 4 + [("key", ord("a"), 0)]


def test_release_uses_the_keysym_of_the_press(
    window: tuple[ViewerWindow, list[tuple[object, ...]]]
) -> None:
    view, sent = window
    _key(view, "<KeyPress>", "A", 100)  # Shift held: Tk says "A"
    _key(view, "<KeyRelease>", "a", 150)  # Shift already up: Tk says "a"
    _settle(view)
    assert sent == [("key", ord("A"), 1), ("key", ord("A"), 0)]


def test_a_new_key_flushes_a_pending_release_first(
    window: tuple[ViewerWindow, list[tuple[object, ...]]]
) -> None:
    view, sent = window
    _key(view, "<KeyPress>", "a", 100)
    _key(view, "<KeyRelease>", "a", 110)
    _key(view, "<KeyPress>", "b", 111, keycode=56)
    assert sent == [("key", ord("a"), 1), ("key", ord("a"), 0), ("key", ord("b"), 1)]


def test_focus_loss_releases_everything(
    window: tuple[ViewerWindow, list[tuple[object, ...]]]
) -> None:
    view, sent = window
    _key(view, "<KeyPress>", "Control_L", 100, keycode=37)
    _key(view, "<KeyPress>", "a", 101)
    sent.clear()
    view.release_all()
    assert sorted(sent) == sorted([("key", 0xFFE3, 0), ("key", ord("a"), 0)])
    sent.clear()
    view.release_all()
    assert sent == []


def test_view_only_sends_nothing(window: tuple[ViewerWindow, list[tuple[object, ...]]]) -> None:
    view, sent = window
    view.view_only.set(True)
    _key(view, "<KeyPress>", "a", 100)
    view.canvas.event_generate("<ButtonPress-1>", x=5, y=5, when="now")
    _settle(view)
    assert sent == []


def test_motion_is_coalesced_to_one_message_per_tick(
    window: tuple[ViewerWindow, list[tuple[object, ...]]]
) -> None:
    view, sent = window
    view.viewport = Viewport(640, 480, 320, 240)  # scaled by 1/2
    for x in range(10, 60, 5):
        view.input.on_motion(types.SimpleNamespace(x=x, y=7))  # type: ignore[arg-type]
    view.pointer.flush()
    assert [m for m in sent if m[0] == "pointer"] == [
        ("pointer", 111, 15, 0)  # the centre of window pixel 55 lies on host pixel 111
    ]


def test_ctrl_alt_del(window: tuple[ViewerWindow, list[tuple[object, ...]]]) -> None:
    view, sent = window
    view.send_ctrl_alt_del()
    assert sent == [("key", 0xFFE3, 1), ("key", 0xFFE9, 1), ("key", 0xFFFF, 1),
                    ("key", 0xFFFF, 0), ("key", 0xFFE9, 0), ("key", 0xFFE3, 0)]

"""The pointer state without Tk: buttons, coalesced motion, wheel detents."""

from __future__ import annotations

from rdesk.client.tk.pointer import Pointer, wheel_steps
from rdesk.protocol import limits


class Rig:
    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []
        self.active = True
        self.pointer = Pointer(lambda *event: self.sent.append(event), lambda: self.active)


def test_motion_is_coalesced_until_flush() -> None:
    rig = Rig()
    for x in range(10):
        rig.pointer.moved((x, 7))
    assert rig.sent == []
    rig.pointer.flush()
    rig.pointer.flush()
    assert rig.sent == [("pointer", 9, 7, 0)]
    rig.pointer.moved((9, 7))  # no change: nothing to send
    rig.pointer.flush()
    assert rig.sent == [("pointer", 9, 7, 0)]


def test_buttons_accumulate_and_a_click_supersedes_pending_motion() -> None:
    rig = Rig()
    rig.pointer.moved((50, 50))
    rig.pointer.button((3, 4), 1, down=True)
    rig.pointer.button((3, 4), 3, down=True)
    rig.pointer.flush()  # the motion before the click is not sent after it
    rig.pointer.button((5, 6), 1, down=False)
    assert rig.sent == [("pointer", 3, 4, 1), ("pointer", 3, 4, 5), ("pointer", 5, 6, 4)]


def test_release_all_lets_go_where_the_pointer_was() -> None:
    rig = Rig()
    rig.pointer.button((8, 9), 2, down=True)
    rig.pointer.release_all()
    rig.pointer.release_all()
    assert rig.sent == [("pointer", 8, 9, 2), ("pointer", 8, 9, 0)]


def test_wheel_sends_pending_motion_first() -> None:
    rig = Rig()
    rig.pointer.moved((1, 2))
    rig.pointer.wheel((1, 2), 0, 3)
    rig.pointer.wheel((1, 2), 0, 0)  # no detent: nothing
    assert rig.sent == [("pointer", 1, 2, 0), ("wheel", 1, 2, 0, 3)]


def test_inactive_sends_nothing() -> None:
    rig = Rig()
    rig.active = False
    rig.pointer.moved((1, 2))
    rig.pointer.flush()
    rig.pointer.button((1, 2), 1, down=True)
    rig.pointer.wheel((1, 2), 1, 0)
    rig.pointer.release_all()
    assert rig.sent == []
    assert rig.pointer.buttons == 0


def test_wheel_steps() -> None:
    assert wheel_steps(120, shift=False) == (0, -1)  # up
    assert wheel_steps(-240, shift=False) == (0, 2)
    assert wheel_steps(3, shift=True) == (-1, 0)  # macOS counts, horizontal
    assert wheel_steps(0, shift=False) == (0, 0)
    assert wheel_steps(-120 * 1000, shift=False) == (0, limits.MAX_WHEEL_STEPS)

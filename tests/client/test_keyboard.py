"""The keyboard state machine without Tk: a fake scheduler stands in for ``root.after``.

The scheduler is a manual clock in milliseconds: :meth:`FakeScheduler.advance` runs the
timers that come due, in order, as Tk's event loop would.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rdesk.client.tk.keyboard import REPEAT_WAIT_MS, Keyboard

A, B, SHIFT = 38, 56, 50  # keycodes
KEY_A, KEY_UPPER_A, KEY_B = ord("a"), ord("A"), ord("b")


class FakeScheduler:
    def __init__(self) -> None:
        self.now = 0
        self._timers: dict[str, tuple[int, Callable[[], None]]] = {}
        self._next = 0

    def after(self, ms: int, func: Callable[[], None]) -> str:
        self._next += 1
        handle = f"after#{self._next}"
        self._timers[handle] = (self.now + ms, func)
        return handle

    def after_cancel(self, id: str) -> None:
        del self._timers[id]  # cancelling an unknown or fired timer is a bug: KeyError

    @property
    def pending(self) -> int:
        return len(self._timers)

    def advance(self, ms: int) -> None:
        end = self.now + ms
        while True:
            due = sorted((t, h) for h, (t, _) in self._timers.items() if t <= end)
            if not due:
                break
            when, handle = due[0]
            self.now = when
            _, func = self._timers.pop(handle)
            func()
        self.now = end


class Rig:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bool]] = []
        self.active = True
        self.scheduler = FakeScheduler()
        self.keyboard = Keyboard(
            lambda keysym, down: self.sent.append((keysym, down)),
            lambda: self.active,
            self.scheduler,
        )

    def press(self, keycode: int, keysym: int, stamp: int) -> None:
        if not self.keyboard.on_press(keycode, stamp):
            self.keyboard.press(keycode, keysym)

    def release(self, keycode: int, stamp: int) -> None:
        self.keyboard.on_release(keycode, stamp)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_release_waits_for_autorepeat_then_goes_out(rig: Rig) -> None:
    rig.press(A, KEY_A, 100)
    rig.release(A, 150)
    assert rig.sent == [(KEY_A, True)]
    rig.scheduler.advance(REPEAT_WAIT_MS - 1)
    assert rig.sent == [(KEY_A, True)]
    rig.scheduler.advance(1)
    assert rig.sent == [(KEY_A, True), (KEY_A, False)]
    assert rig.keyboard.held == {}
    assert rig.scheduler.pending == 0


def test_autorepeat_pairs_become_repeated_presses(rig: Rig) -> None:
    rig.press(A, KEY_A, 100)
    for stamp in (600, 640, 680):  # X11: release + press with the same timestamp
        rig.release(A, stamp)
        rig.press(A, KEY_A, stamp)
        rig.scheduler.advance(40)
    assert rig.sent == [(KEY_A, True)] * 4
    assert rig.keyboard.held == {A: KEY_A}
    rig.release(A, 700)
    rig.scheduler.advance(REPEAT_WAIT_MS)
    assert rig.sent == [(KEY_A, True)] * 4 + [(KEY_A, False)]


def test_a_press_with_another_timestamp_is_no_repeat(rig: Rig) -> None:
    rig.press(A, KEY_A, 100)
    rig.release(A, 150)
    rig.press(A, KEY_A, 151)  # a real second press, quickly
    assert rig.sent == [(KEY_A, True), (KEY_A, False), (KEY_A, True)]
    assert rig.scheduler.pending == 0


def test_another_key_flushes_the_pending_release_first(rig: Rig) -> None:
    rig.press(A, KEY_A, 100)
    rig.release(A, 110)
    rig.press(B, KEY_B, 110)  # same timestamp, other keycode: no repeat
    assert rig.sent == [(KEY_A, True), (KEY_A, False), (KEY_B, True)]
    assert rig.keyboard.held == {B: KEY_B}


def test_release_uses_the_keysym_of_the_press(rig: Rig) -> None:
    rig.press(A, KEY_UPPER_A, 100)  # pressed while Shift was down
    rig.release(A, 150)  # the keysym at release time does not matter
    rig.scheduler.advance(REPEAT_WAIT_MS)
    assert rig.sent == [(KEY_UPPER_A, True), (KEY_UPPER_A, False)]


def test_an_unknown_release_is_ignored(rig: Rig) -> None:
    rig.release(A, 100)  # pressed before the window had focus, or a hotkey
    rig.scheduler.advance(REPEAT_WAIT_MS)
    assert rig.sent == []
    assert rig.scheduler.pending == 0


def test_a_second_release_of_the_same_key_sends_one_release(rig: Rig) -> None:
    rig.press(A, KEY_A, 100)
    rig.release(A, 150)
    rig.release(A, 160)  # flushes the first; the key is no longer held
    rig.scheduler.advance(REPEAT_WAIT_MS)
    assert rig.sent == [(KEY_A, True), (KEY_A, False)]


def test_release_all_releases_each_held_key_once(rig: Rig) -> None:
    rig.press(SHIFT, 0xFFE1, 100)
    rig.press(A, KEY_UPPER_A, 101)
    rig.release(A, 120)  # pending: release_all sends it with the rest, and cancels the timer
    rig.sent.clear()
    rig.keyboard.release_all()
    assert sorted(rig.sent) == sorted([(0xFFE1, False), (KEY_UPPER_A, False)])
    assert rig.scheduler.pending == 0
    rig.sent.clear()
    rig.keyboard.release_all()
    rig.scheduler.advance(REPEAT_WAIT_MS)
    assert rig.sent == []


def test_inactive_sends_nothing_and_holds_nothing(rig: Rig) -> None:
    rig.active = False
    rig.press(A, KEY_A, 100)
    rig.release(A, 150)
    rig.scheduler.advance(REPEAT_WAIT_MS)
    rig.keyboard.release_all()
    assert rig.sent == []
    assert rig.keyboard.held == {}


def test_going_inactive_drops_the_releases(rig: Rig) -> None:
    rig.press(A, KEY_A, 100)
    rig.active = False  # view-only switched on (the window releases everything first)
    rig.keyboard.release_all()
    assert rig.sent == [(KEY_A, True)]
    assert rig.keyboard.held == {}


def test_forget_clears_without_sending(rig: Rig) -> None:
    rig.press(A, KEY_A, 100)
    rig.release(A, 150)
    rig.keyboard.forget()  # the connection ended: the host released everything itself
    rig.scheduler.advance(REPEAT_WAIT_MS)
    assert rig.sent == [(KEY_A, True)]
    assert rig.keyboard.held == {}
    assert rig.scheduler.pending == 0

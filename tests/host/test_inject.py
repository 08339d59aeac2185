"""rdesk.host.input.inject: the input policy (per-viewer tracking, rate limit, errors), with fakes.

The real XTest backend is exercised end to end in tests/e2e/test_input.py.
"""

from __future__ import annotations

import logging

import pytest

from rdesk.host.input.inject import Injector, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeBackend:
    """Records what would reach X; keycode = keysym & 0xFF."""

    size = (800, 600)

    def __init__(self) -> None:
        self.log: list[tuple[object, ...]] = []
        self.fail = False

    def _maybe_fail(self) -> None:
        if self.fail:
            raise OSError("X connection lost")

    def press_key(self, keysym: int) -> int:
        self._maybe_fail()
        self.log.append(("key", keysym & 0xFF, True))
        return keysym & 0xFF

    def release_key(self, keycode: int) -> None:
        self._maybe_fail()
        self.log.append(("key", keycode, False))

    def move(self, x: int, y: int) -> None:
        self._maybe_fail()
        self.log.append(("move", x, y))

    def button(self, button: int, down: bool) -> None:
        self._maybe_fail()
        self.log.append(("button", button, down))

    def scroll(self, dx: int, dy: int) -> None:
        self._maybe_fail()
        self.log.append(("scroll", dx, dy))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


def make(backend: FakeBackend, clock: FakeClock, rate: float = 1000, burst: float = 2000) -> (
    Injector
):
    return Injector(backend, rate=rate, burst=burst, clock=clock)


# --- the token bucket ----------------------------------------------------------------------------


def test_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert all(bucket.take(0.0) for _ in range(5))
    assert not bucket.take(0.0)
    assert bucket.take(0.1)  # one token per 0.1 s
    assert not bucket.take(0.1)
    assert sum(bucket.take(10.0) for _ in range(100)) == 5  # never more than the burst


def test_bucket_clock_going_backwards_gives_nothing() -> None:
    bucket = TokenBucket(rate=10, burst=1, now=5.0)
    assert bucket.take(5.0)
    assert not bucket.take(4.0)


# --- rate limit ----------------------------------------------------------------------------------


def test_presses_dropped_over_the_limit_releases_never(
    backend: FakeBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    inj = make(backend, clock, rate=10, burst=4)
    for _ in range(4):
        inj.key(1, 0x61, True)
    with caplog.at_level(logging.WARNING, "rdesk.host.input.inject"):
        for _ in range(50):
            inj.key(1, 0x62, True)  # dropped
        clock.now += 0.25
        for _ in range(50):
            inj.key(1, 0x63, True)  # 2 pass (2.5 tokens), 48 dropped
    presses = [entry for entry in backend.log if entry[2] is True]
    assert len(presses) == 4 + 2
    # Dropped presses are logged at most once per second.
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1
    backend.log.clear()
    inj.key(1, 0x61, False)  # no token left, still released
    assert backend.log == [("key", 0x61, False)]


def test_limit_is_per_viewer(backend: FakeBackend, clock: FakeClock) -> None:
    inj = make(backend, clock, rate=1, burst=2)
    for owner in (1, 2):
        for _ in range(5):
            inj.pointer(owner, 10, 10, 0)
    assert len([e for e in backend.log if e[0] == "move"]) == 4


def test_button_release_never_dropped(backend: FakeBackend, clock: FakeClock) -> None:
    inj = make(backend, clock, rate=1, burst=1)
    inj.pointer(1, 5, 5, 1)
    inj.pointer(1, 6, 6, 1)  # a move: dropped
    inj.pointer(1, 7, 7, 0)  # the release: injected
    assert backend.log == [("move", 5, 5), ("button", 1, True), ("move", 7, 7),
                           ("button", 1, False)]


# --- held keys and buttons -----------------------------------------------------------------------


def test_release_all_releases_exactly_what_the_viewer_holds(
    backend: FakeBackend, clock: FakeClock
) -> None:
    inj = make(backend, clock)
    inj.key(1, 0xFFE3, True)  # Control_L
    inj.key(1, 0x61, True)
    inj.key(1, 0x62, True)
    inj.key(1, 0x62, False)
    inj.pointer(1, 1, 1, 0b101)  # left + right
    backend.log.clear()
    inj.release_all(1)
    assert backend.log == [
        ("key", 0x61, False), ("key", 0xE3, False), ("button", 1, False), ("button", 3, False)
    ]
    backend.log.clear()
    inj.release_all(1)  # nothing left
    inj.release_all(99)  # never seen
    assert backend.log == []


def test_another_viewer_taking_over_releases_the_first(
    backend: FakeBackend, clock: FakeClock
) -> None:
    inj = make(backend, clock)
    inj.key(1, 0xFFE1, True)  # viewer 1 holds Shift
    inj.pointer(1, 1, 1, 1)  # and the left button
    backend.log.clear()
    inj.key(2, 0x61, True)
    assert backend.log == [("key", 0xE1, False), ("button", 1, False), ("key", 0x61, True)]
    backend.log.clear()
    inj.key(1, 0xFFE1, False)  # viewer 1's late release: already done, nothing sent
    assert ("key", 0xE1, False) not in backend.log


def test_release_of_a_key_not_held_is_ignored(backend: FakeBackend, clock: FakeClock) -> None:
    inj = make(backend, clock)
    inj.key(1, 0x61, False)
    assert backend.log == []


def test_pointer_clamped_to_screen(backend: FakeBackend, clock: FakeClock) -> None:
    inj = make(backend, clock)
    inj.pointer(1, 5000, 700, 0)
    inj.wheel(1, 900, 9000, 0, 2)
    assert backend.log == [("move", 799, 599), ("move", 799, 599), ("scroll", 0, 2)]


def test_button_mask_diffs(backend: FakeBackend, clock: FakeClock) -> None:
    inj = make(backend, clock)
    inj.pointer(1, 1, 1, 0b10)  # middle down
    inj.pointer(1, 1, 1, 0b110)  # right down too
    inj.pointer(1, 1, 1, 0b100)  # middle up
    inj.pointer(1, 1, 1, 0b10000000)  # right up, button 8 down
    buttons = [e[1:] for e in backend.log if e[0] == "button"]
    assert buttons == [(2, True), (3, True), (2, False), (3, False), (8, True)]


def test_backend_errors_are_caught_and_counted(
    backend: FakeBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    inj = make(backend, clock)
    backend.fail = True
    with caplog.at_level(logging.WARNING, "rdesk.host.input.inject"):
        inj.key(1, 0x61, True)
        inj.pointer(1, 1, 1, 1)
        inj.wheel(1, 1, 1, 1, 1)
        inj.release_all(1)
    assert inj.errors >= 3
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1  # once a second
    backend.fail = False
    inj.key(1, 0x61, True)
    assert backend.log == [("key", 0x61, True)]

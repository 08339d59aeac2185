"""The statistics overlay's text from counters and a given time, and the dirty-rect bookkeeping
the window paints from."""

from __future__ import annotations

from rdesk.client.tk.overlay import OverlayRates, human_rate
from rdesk.client.tk.paint import MAX_RECTS, Damage, bounding_box, plan
from rdesk.client.tk.viewport import ONE_TO_ONE, Viewport


def test_rates_are_over_the_time_since_the_last_refresh() -> None:
    rates = OverlayRates(now=10.0)
    text = rates.lines(
        10.5, paints=30, updates=10, nbytes=62_500, rtt=0.0123, exact=False,
        size=(1920, 1080), scale=0.5,
    )
    assert text.splitlines() == [
        " 60.0 fps (20.0 updates/s)",
        "round trip 12.3 ms",
        "1.0 Mbit/s",
        "image lossy (JPEG)",
        "1920x1080 at 50%",
    ]
    text = rates.lines(
        11.5, paints=31, updates=10, nbytes=62_500, rtt=None, exact=True,
        size=(640, 480), scale=1.0,
    )
    assert text.splitlines()[:4] == [
        "  1.0 fps (0.0 updates/s)", "round trip —", "0 bit/s", "image lossless (exact)",
    ]


def test_a_new_connection_restarts_the_counters() -> None:
    rates = OverlayRates(now=0.0)
    rates.lines(1.0, 10, 500, 10_000, rtt=None, exact=True, size=(1, 1), scale=1.0)
    assert rates.idle(2.0, paints=10) == "disconnected"
    text = rates.lines(3.0, 12, 4, 1000, rtt=None, exact=True, size=(1, 1), scale=1.0)
    assert text.startswith("  2.0 fps (4.0 updates/s)\n")
    assert "8.0 kbit/s" in text


def test_human_rate() -> None:
    assert human_rate(0) == "0 bit/s"
    assert human_rate(124) == "992 bit/s"
    assert human_rate(125) == "1.0 kbit/s"
    assert human_rate(1.25e8) == "1.0 Gbit/s"


def test_damage_merges_many_rects_and_everything_wins() -> None:
    damage = Damage()
    damage.add([(0, 0, 1, 1)])
    assert damage.take() == ([(0, 0, 1, 1)], False)
    assert damage.take() == ([], False)
    damage.add([(i, 2 * i, 1, 1) for i in range(MAX_RECTS + 1)])
    assert damage.take() == ([(0, 0, MAX_RECTS + 1, 2 * MAX_RECTS + 1)], False)
    damage.add([(0, 0, 1, 1)])
    damage.add([])  # a resize: everything
    damage.add([(5, 5, 1, 1)])
    assert damage.take() == ([(0, 0, 1, 1)], True)


def test_bounding_box() -> None:
    assert bounding_box([(10, 20, 5, 5), (0, 30, 2, 2)]) == (0, 20, 15, 12)


def test_plan_pastes_whole_when_the_damage_is_large() -> None:
    vp = Viewport(100, 100, 100, 100, ONE_TO_ONE)
    assert plan(vp, [(0, 0, 10, 10), (50, 50, 0, 0)]) == [(0, 0, 10, 10)]
    assert plan(vp, [(0, 0, 60, 60)]) is None  # 36% of the display

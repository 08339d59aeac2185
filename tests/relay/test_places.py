"""The capped sets of expiring places behind the waiting-viewer cap (pure logic, fake clock)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.relay.places import Places


def test_a_set_holds_its_cap_until_a_place_is_freed_or_lapses() -> None:
    places = Places()
    assert [places.take("A", m, 2, 0.0, 5.0) for m in "xyz"] == [True, True, False]
    places.free("A", "x")
    assert places.take("A", "z", 2, 1.0, 5.0)
    assert places.count("A", 4.9) == 2
    assert places.count("A", 5.0) == 1  # y lapsed at 5.0
    places.sweep(6.0)
    assert places.count("A", 6.0) == 0 and not places._sets


def test_the_number_of_sets_is_bounded() -> None:
    places = Places(max_sets=2)
    for name in "ABC":
        assert places.take(name, "m", 1, 0.0, 10.0)
    assert len(places._sets) == 2 and places.count("A", 0.0) == 0  # the oldest was dropped


@settings(max_examples=100)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.floats(0, 3)), max_size=200))
def test_places_follow_the_model_and_never_exceed_the_cap(
    steps: list[tuple[bool, int, float]],
) -> None:
    places = Places()
    now = 0.0
    model: dict[str, float] = {}  # member -> expiry
    for take, member, gap in steps:
        now += gap
        name = f"m{member}"
        model = {m: expires for m, expires in model.items() if now < expires}
        if take:
            expected = len(model) < 3
            assert places.take("A", name, 3, now, 2.0) == expected
            if expected:
                model[name] = now + 2.0
        else:
            places.free("A", name)
            model.pop(name, None)
        assert places.count("A", now) == len(model) <= 3

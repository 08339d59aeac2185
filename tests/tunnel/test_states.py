"""The state table is closed: every state it leads to has an entry, and every entry is reached."""

from __future__ import annotations

import pytest

from rdesk.tunnel.states import TRANSITIONS, Role, State


@pytest.mark.parametrize("role", list(Role))
def test_every_reachable_state_has_an_entry_and_every_entry_is_reachable(role: Role) -> None:
    reached, frontier = {State.START}, [State.START]
    while frontier:
        state = frontier.pop()
        assert (role, state) in TRANSITIONS, (role, state)
        for table in TRANSITIONS[(role, state)].values():
            for following in table.values():
                if following not in reached:
                    reached.add(following)
                    frontier.append(following)
    assert reached == {state for r, state in TRANSITIONS if r is role}
    assert State.OPEN in reached and State.CLOSED in reached
    assert not any(TRANSITIONS[(role, State.CLOSED)].values())

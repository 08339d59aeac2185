"""The control rules for several viewers (rdesk/host/serve/control.py), as pure logic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rdesk.host.serve.control import EVERYONE, LOCAL, ControlBoard, Member
from rdesk.protocol.access import Access
from rdesk.protocol.messages import Notice
from rdesk.protocol.presence import LOCAL_USER, NOBODY, Control, ControlRequest, Peer


def _to(deliveries, target):  # type: ignore[no-untyped-def]
    return [m for t, m in deliveries if t == target]


def test_first_controller_gets_control_and_everyone_is_introduced() -> None:
    board = ControlBoard()
    out = board.join(Member(1, "alice", Access.CONTROL))
    assert board.holder == 1 and Control(1) in _to(out, EVERYONE)
    out = board.join(Member(2, "bob", Access.VIEW))
    assert _to(out, 2) == [Peer(1, "alice", "control", True), Control(1)]
    assert Peer(2, "bob", "view", True) in _to(out, EVERYONE)
    assert board.may_input(1) and not board.may_input(2)


def test_second_controller_waits_for_a_grant() -> None:
    board = ControlBoard()
    board.join(Member(1, "a", Access.CONTROL))
    board.join(Member(2, "b", Access.CONTROL))
    assert not board.may_input(2)
    out = board.request(2)
    assert _to(out, 1) == [ControlRequest(2, "b")] and 2 in board.pending
    assert board.answer(2, 2, True) is None  # not the holder: may not answer
    out = board.answer(1, 2, True)
    assert out is not None and board.holder == 2 and Control(2) in _to(out, EVERYONE)
    assert board.may_input(2) and not board.may_input(1)


def test_refusal_and_stale_answers() -> None:
    board = ControlBoard()
    board.join(Member(1, "a", Access.CONTROL))
    board.join(Member(2, "b", Access.VIEW))
    board.request(2)
    out = board.answer(1, 2, False)
    assert out is not None and Notice("your control request was refused") in _to(out, 2)
    assert board.answer(1, 2, True) is None  # nothing pending any more
    assert board.holder == 1


def test_view_viewer_never_takes_free_control_by_itself() -> None:
    board = ControlBoard()
    board.join(Member(2, "b", Access.VIEW))
    assert board.holder == NOBODY
    out = board.request(2)
    assert board.holder == NOBODY and any(isinstance(m, str) for m in _to(out, LOCAL))
    out = board.answer(LOCAL_USER, 2, True)  # the local user may grant it
    assert out is not None and board.may_input(2)


def test_local_user_takes_and_releases() -> None:
    board = ControlBoard()
    board.join(Member(1, "a", Access.CONTROL))
    board.take_local()
    assert board.holder == LOCAL_USER and not board.may_input(1)
    board.request(1)
    assert not board.may_input(1)  # must be granted by the local user now
    board.release_local()
    assert board.holder == NOBODY


def test_holder_leaving_frees_control() -> None:
    board = ControlBoard()
    board.join(Member(1, "a", Access.CONTROL))
    board.join(Member(2, "b", Access.CONTROL))
    out = board.leave(1)
    assert board.holder == NOBODY and Control(NOBODY) in _to(out, EVERYONE)
    assert Peer(1, "a", "control", False) in _to(out, EVERYONE)
    board.request(2)
    assert board.holder == 2


def test_shared_control() -> None:
    board = ControlBoard(shared=True)
    board.join(Member(1, "a", Access.CONTROL))
    board.join(Member(2, "b", Access.CONTROL))
    board.join(Member(3, "c", Access.VIEW))
    assert board.may_input(1) and board.may_input(2) and not board.may_input(3)
    board.take_local()
    assert not board.may_input(1)


@given(st.lists(st.tuples(st.sampled_from(["join", "leave", "request", "answer", "release",
                                           "take", "untake"]),
                          st.integers(1, 4), st.integers(1, 4), st.booleans()), max_size=60),
       st.booleans())
def test_at_most_one_holder_unless_shared(ops, shared) -> None:  # type: ignore[no-untyped-def]
    board = ControlBoard(shared=shared)
    for op, a, b, flag in ops:
        if op == "join" and a not in board.members:
            board.join(Member(a, str(a), Access.CONTROL if flag else Access.VIEW))
        elif op == "leave":
            board.leave(a)
        elif op == "request":
            board.request(a)
        elif op == "answer":
            board.answer(a if not flag else LOCAL_USER, b, flag)
        elif op == "release":
            board.release(a)
        elif op == "take":
            board.take_local()
        elif op == "untake":
            board.release_local()
        inputs = [m for m in board.members if board.may_input(m)]
        if board.holder == LOCAL_USER:
            assert inputs == []
        if not shared:
            assert len(inputs) <= 1
            assert board.holder in (NOBODY, LOCAL_USER) or board.holder in board.members
        for m in inputs:  # input only for a holder or, when shared, a control credential
            assert board.holder == m or (shared and board.members[m].access == "control")

"""Records: both directions, text and binary, strictly in order; anything else closes."""

from __future__ import annotations

import pytest

from rdesk.protocol.errors import CloseCode, LocalProtocolError
from rdesk.tunnel import Closed, Message, TunnelError, TunnelInitiator
from rdesk.tunnel.states import State
from rdesk.tunnel.wire import MAX_CLOSE_REASON, MAX_RECORD_PAYLOAD, Kind
from tests.tunnel.identities import identity, pair


def test_text_and_binary_both_directions() -> None:
    viewer, host = pair()
    for message in ["{\"t\": \"hello\"}", "", "é✓ unicode", b"", b"\x00\xff" * 100]:
        assert host.receive(viewer.send(message)) == Message(message)
        assert viewer.receive(host.send(message)) == Message(message)
    # Type is preserved: text stays str, binary stays bytes, even with equal content.
    assert isinstance(host.receive(viewer.send("ab")), Message)
    event = host.receive(viewer.send(b"ab"))
    assert event == Message(b"ab") and isinstance(event.data, bytes)  # type: ignore[union-attr]


def test_largest_record_passes_and_one_byte_more_is_refused() -> None:
    viewer, host = pair()
    biggest = bytes(MAX_RECORD_PAYLOAD)
    assert host.receive(viewer.send(biggest)) == Message(biggest)
    with pytest.raises(LocalProtocolError) as info:
        viewer.send(biggest + b"x")
    assert info.value.code == CloseCode.TOO_BIG


def test_oversize_record_from_the_peer_is_refused_too_big() -> None:
    _, host = pair()
    with pytest.raises(TunnelError) as info:
        host.receive(bytes([Kind.BINARY]) + bytes(MAX_RECORD_PAYLOAD + 16 + 1))
    assert info.value.code == CloseCode.TOO_BIG
    assert host.state is State.CLOSED


def test_replayed_record_is_refused() -> None:
    viewer, host = pair()
    record = viewer.send("pointer 1 2")
    host.receive(record)
    with pytest.raises(TunnelError, match="failed authentication"):
        host.receive(record)
    assert host.state is State.CLOSED


def test_reordered_records_are_refused() -> None:
    viewer, host = pair()
    first, second = viewer.send("one"), viewer.send("two")
    with pytest.raises(TunnelError, match="failed authentication"):
        host.receive(second)
    with pytest.raises(TunnelError, match="closed"):
        host.receive(first)  # and nothing is accepted after a failure


def test_dropped_record_is_noticed_at_the_next() -> None:
    viewer, host = pair()
    viewer.send("dropped by the relay")
    with pytest.raises(TunnelError):
        host.receive(viewer.send("next"))


def test_truncated_record_is_refused() -> None:
    viewer, host = pair()
    record = viewer.send(b"x" * 100)
    with pytest.raises(TunnelError, match="failed authentication"):
        host.receive(record[:-1])
    viewer, host = pair()
    with pytest.raises(TunnelError, match="shorter than its tag"):
        host.receive(viewer.send(b"")[:16])


def test_every_flipped_bit_of_a_record_is_refused() -> None:
    size = len(pair()[0].send("secret"))
    for index in range(size):
        for bit in range(8):
            # A fresh tunnel per flip: the first refusal closes a tunnel for good.
            viewer, host = pair()
            genuine = viewer.send("secret")
            flipped = bytearray(genuine)
            flipped[index] ^= 1 << bit
            with pytest.raises(TunnelError):
                host.receive(bytes(flipped))


def test_changed_record_type_is_refused() -> None:
    viewer, host = pair()
    record = bytearray(viewer.send(b"binary"))
    record[0] = Kind.TEXT
    with pytest.raises(TunnelError, match="failed authentication"):
        host.receive(bytes(record))


def test_reflected_record_is_refused() -> None:
    """The relay sends a viewer's own record back to it: the other direction's key."""
    viewer, _ = pair()
    with pytest.raises(TunnelError, match="failed authentication"):
        viewer.receive(viewer.send("echo"))


def test_record_from_another_session_is_refused() -> None:
    viewer_1, _ = pair()
    _, host_2 = pair()
    with pytest.raises(TunnelError, match="failed authentication"):
        host_2.receive(viewer_1.send("elsewhere"))


def test_text_is_refused_on_the_wire() -> None:
    _, host = pair()
    with pytest.raises(TunnelError, match="binary; got text"):
        host.receive("plain text from the relay")  # type: ignore[arg-type]


def test_authenticated_close_handshake() -> None:
    viewer, host = pair()
    in_flight = viewer.send("sent before the viewer saw the close")
    record = host.close(4006, "host shutting down")
    assert record is not None and host.state is State.CLOSE_SENT
    assert host.close() is None and host.state is State.CLOSE_SENT
    with pytest.raises(LocalProtocolError):
        host.send("after close")
    # The host still takes what the viewer sent before it saw the close...
    assert host.receive(in_flight) == Message("sent before the viewer saw the close")
    assert viewer.receive(record) == Closed(4006, "host shutting down")
    assert viewer.state is State.CLOSE_RECEIVED
    with pytest.raises(LocalProtocolError):
        viewer.send("after the peer closed")
    # ...and the viewer answers with its own close, which ends both.
    answer = viewer.close(4006, "host shutting down")
    assert answer is not None and viewer.state is State.CLOSED
    assert host.receive(answer) == Closed(4006, "host shutting down")
    assert host.state is State.CLOSED
    assert viewer.close() is None and host.close() is None


def test_simultaneous_close() -> None:
    viewer, host = pair()
    from_viewer, from_host = viewer.close(1000, "bye"), host.close(1001, "going")
    assert from_viewer is not None and from_host is not None
    assert viewer.receive(from_host) == Closed(1001, "going")
    assert host.receive(from_viewer) == Closed(1000, "bye")
    assert viewer.state is host.state is State.CLOSED


def test_close_before_the_tunnel_is_open_sends_nothing() -> None:
    viewer = TunnelInitiator(identity("a").host_id)
    viewer.start()
    assert viewer.close(1000, "changed my mind") is None
    assert viewer.state is State.CLOSED


def test_close_reason_is_cut_to_a_websocket_close_reason() -> None:
    viewer, host = pair()
    record = viewer.close(1000, "é" * 100)
    assert record is not None
    event = host.receive(record)
    assert isinstance(event, Closed)
    assert event.reason == "é" * (MAX_CLOSE_REASON // 2)


def test_close_code_must_be_in_range() -> None:
    viewer, _ = pair()
    with pytest.raises(ValueError, match="out of range"):
        viewer.close(999, "")


def test_forged_type_byte_is_refused() -> None:
    viewer, host = pair()
    with pytest.raises(TunnelError, match="unknown tunnel message type 0x7f"):
        host.receive(b"\x7f" + bytes(40))
    viewer, host = pair()
    with pytest.raises(TunnelError, match="unexpected FINISHED while open"):
        host.receive(bytes([Kind.FINISHED]) + bytes(48))
    with pytest.raises(TunnelError, match="unexpected CLIENT_HELLO while open"):
        viewer.receive(b"\x01" + bytes(111))


def test_a_used_up_key_closes_the_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    from rdesk.tunnel import keys

    viewer, host = pair()
    monkeypatch.setattr(keys, "MAX_SEALED_BYTES", 100)
    assert host.receive(viewer.send(b"x" * 60)) == Message(b"x" * 60)
    with pytest.raises(TunnelError, match="key used up") as info:
        viewer.send(b"x" * 60)
    assert info.value.code == CloseCode.GOING_AWAY and viewer.state is State.CLOSED
    # The receiving end keeps the same count: a peer that goes on is refused too.
    viewer, host = pair()
    sealer = viewer._sealer  # the viewer→host cipher, driven past the limit by hand
    assert sealer is not None
    host.receive(viewer.send(b"y" * 60))
    sealer.bytes = 0  # a peer that ignores the limit
    with pytest.raises(TunnelError, match="key used up"):
        host.receive(viewer.send(b"y" * 60))


def test_close_with_a_used_up_key_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from rdesk.tunnel import keys

    viewer, _ = pair()
    monkeypatch.setattr(keys, "MAX_SEALED_BYTES", 0)
    assert viewer.close(1000, "bye") is None
    assert viewer.state is State.CLOSED

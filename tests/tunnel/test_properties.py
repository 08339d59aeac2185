"""Property tests: any conversation round-trips in order; any change on the way is refused;
any bytes at all get a TunnelError, never another exception."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdesk.tunnel import Established, Message, TunnelError, TunnelInitiator
from rdesk.tunnel.states import State
from tests.tunnel.identities import identity, pair

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

messages = st.one_of(st.text(max_size=300), st.binary(max_size=3000))
#: (True: viewer → host, False: host → viewer, the message)
conversations = st.lists(st.tuples(st.booleans(), messages), max_size=25)


@dataclasses.dataclass(frozen=True)
class Mutation:
    """A change a relay could make to one message: flip bits, cut, or extend."""

    kind: str
    at: int
    value: int

    def apply(self, data: bytes) -> bytes:
        at = self.at % len(data)
        if self.kind == "flip":
            changed = bytearray(data)
            changed[at] ^= self.value or 1
            return bytes(changed)
        if self.kind == "cut":
            return data[:at]
        return data + bytes([self.value]) * (1 + at % 7)


mutations = st.builds(
    Mutation, st.sampled_from(["flip", "cut", "extend"]), st.integers(0, 1 << 20),
    st.integers(0, 255),
)


@given(conversations)
@FAST
def test_any_conversation_arrives_in_order_with_its_types(conversation: list) -> None:
    viewer, host = pair()
    for upstream, message in conversation:
        sender, receiver = (viewer, host) if upstream else (host, viewer)
        event = receiver.receive(sender.send(message))
        assert event == Message(message)
        assert type(event.data) is type(message)  # type: ignore[union-attr]


@given(conversations.filter(bool), st.data(), mutations)
@FAST
def test_any_changed_record_is_refused_and_the_earlier_ones_arrived(
    conversation: list, data: st.DataObject, mutation: Mutation
) -> None:
    viewer, host = pair()
    victim = data.draw(st.integers(0, len(conversation) - 1))
    for index, (upstream, message) in enumerate(conversation):
        sender, receiver = (viewer, host) if upstream else (host, viewer)
        record = sender.send(message)
        if index < victim:
            assert receiver.receive(record) == Message(message)
            continue
        changed = mutation.apply(record)
        if changed == record:
            continue
        try:
            receiver.receive(changed)
        except TunnelError:
            assert receiver.state is State.CLOSED
            return
        raise AssertionError(f"a changed record was accepted: {mutation}")


@given(mutations)
@FAST
def test_any_changed_server_hello_is_refused_before_any_record(mutation: Mutation) -> None:
    ident = identity("a")
    viewer, host = TunnelInitiator(ident.host_id), ident.responder()
    host.receive(viewer.start())
    (genuine,) = host.data_to_send()
    changed = mutation.apply(genuine)
    if changed == genuine:
        return
    try:
        viewer.receive(changed)
    except TunnelError:
        assert viewer.data_to_send() == [] and viewer.state is State.CLOSED
        return
    raise AssertionError(f"a changed ServerHello was accepted: {mutation}")


@given(mutations)
@FAST
def test_a_changed_client_hello_never_completes_a_tunnel(mutation: Mutation) -> None:
    ident = identity("a")
    viewer, host = TunnelInitiator(ident.host_id), ident.responder()
    genuine = viewer.start()
    changed = mutation.apply(genuine)
    if changed == genuine:
        return
    try:
        host.receive(changed)
        viewer.receive(host.data_to_send()[0])
        host.receive(viewer.data_to_send()[0])
    except TunnelError:
        return
    raise AssertionError(f"a changed ClientHello completed a tunnel: {mutation}")


@given(st.binary(max_size=400))
@FAST
def test_any_bytes_to_a_fresh_host_are_refused_cleanly(data: bytes) -> None:
    host = identity("a").responder()
    try:
        host.receive(data)
    except TunnelError as exc:
        assert "\n" not in exc.reason and host.state is State.CLOSED
    else:  # only a well-formed ClientHello for this host gets an answer
        assert len(host.data_to_send()) == 1


@given(st.binary(max_size=400))
@FAST
def test_any_bytes_to_a_waiting_viewer_are_refused_cleanly(data: bytes) -> None:
    viewer = TunnelInitiator(identity("a").host_id)
    viewer.start()
    try:
        event = viewer.receive(data)
    except TunnelError as exc:
        assert "\n" not in exc.reason and viewer.state is State.CLOSED
    else:  # pragma: no cover - would need the host's signature
        assert isinstance(event, Established)
        raise AssertionError("random bytes were accepted as a ServerHello")


@given(st.binary(max_size=400), st.booleans())
@FAST
def test_any_bytes_to_an_open_tunnel_are_refused_cleanly(data: bytes, to_host: bool) -> None:
    viewer, host = pair()
    end = host if to_host else viewer
    try:
        end.receive(data)
    except TunnelError as exc:
        assert "\n" not in exc.reason and end.state is State.CLOSED
    else:  # pragma: no cover - would need the record key
        raise AssertionError("random bytes were accepted as a record")

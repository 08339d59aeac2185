"""The relay's per-connection state machines, driven against each other with a fake clock."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.protocol.errors import CloseCode
from rdesk.relay import proof
from rdesk.relay.messages import (
    NONCE_BYTES,
    Challenge,
    Connect,
    Data,
    Heartbeat,
    Move,
    Prove,
    Register,
    Registered,
    RelayProtocolError,
    Rendezvous,
    Spliced,
    encode,
)
from rdesk.relay.peers import HostLinkMachine, ViewerLinkMachine
from rdesk.relay.protocol import (
    RelayDataMachine,
    RelayHostMachine,
    RelayRefused,
    RelayViewerMachine,
)
from tests.relay.keys import HostKey, shared_host_key

FP = "SHA256:relay-one"
NONCE = bytes(range(NONCE_BYTES))
SESSION = "s" * 22
KEY = shared_host_key(0)
OTHER = shared_host_key(1)


def _relay(now: float = 0.0, token_ok: bool = True) -> RelayHostMachine:
    return RelayHostMachine(now, nonce=NONCE, relay_fingerprint=FP,
                            enrol=lambda token: None if token_ok else "enrolment token refused")


def _link(key: HostKey = KEY, fp: str = FP, now: float = 0.0) -> HostLinkMachine:
    return HostLinkMachine(now, host_id=key.id, spki=key.spki, token="t", relay_fingerprint=fp,
                           sign=key.sign)


def test_host_registers_with_a_proof_over_the_nonce_and_relay_fingerprint() -> None:
    relay, link = _relay(), _link()
    (challenge,) = relay.receive(encode(link.start(0.0)), 0.0).send
    assert challenge == Challenge(NONCE)
    (prove,) = link.receive(encode(challenge), 0.0).send
    event = relay.receive(encode(prove), 0.0).event
    assert isinstance(event, Register) and event.id == KEY.id and event.spki == KEY.spki
    assert link.receive(encode(relay.accept(0.0)), 0.0).event == Registered(KEY.id, 20.0)
    assert relay.phase.value == link.phase.value == "registered"


def test_a_proof_made_for_another_relay_is_refused() -> None:
    relay, link = _relay(), _link(fp="SHA256:relay-two")
    (challenge,) = relay.receive(encode(link.start(0.0)), 0.0).send
    (prove,) = link.receive(encode(challenge), 0.0).send
    with pytest.raises(RelayProtocolError, match="proof of key ownership failed"):
        relay.receive(encode(prove), 0.0)
    assert relay.closed


def test_an_id_claimed_with_a_foreign_key_is_refused() -> None:
    relay = _relay()
    with pytest.raises(RelayProtocolError, match="the ID is not the hash of this key") as info:
        relay.receive(encode(Register(KEY.id, OTHER.spki, None, 1)), 0.0)
    assert info.value.code == CloseCode.POLICY


def test_a_key_that_is_not_p256_is_refused() -> None:
    relay = _relay()
    with pytest.raises(RelayProtocolError, match="not an ECDSA P-256 key"):
        relay.receive(encode(Register(KEY.id, b"\x30\x03\x02\x01\x01", None, 1)), 0.0)


def test_a_refused_token_is_refused_before_any_challenge() -> None:
    relay = _relay(token_ok=False)
    with pytest.raises(RelayProtocolError, match="enrolment token refused"):
        relay.receive(encode(_link().start(0.0)), 0.0)


def test_the_host_link_raises_the_relays_refusal() -> None:
    link = _link()
    link.start(0.0)
    with pytest.raises(RelayRefused, match="relay is full"):
        link.receive(json.dumps({"t": "refused", "reason": "relay is full"}), 0.0)
    assert link.closed


def test_heartbeats_keep_the_registration_and_their_absence_expires_it() -> None:
    relay, link = _relay(), _link()
    relay.receive(encode(link.start(0.0)), 0.0)
    (prove,) = link.receive(encode(Challenge(NONCE)), 0.0).send
    relay.receive(encode(prove), 0.0)
    link.receive(encode(relay.accept(0.0)), 0.0)
    assert link.deadline() == 20.0 and relay.deadline() == 60.0
    assert link.check_timer(19.9).send == ()
    (beat,) = link.check_timer(20.0).send
    assert beat == Heartbeat()
    (ack,) = relay.receive(encode(beat), 21.0).send
    link.receive(encode(ack), 21.0)
    assert relay.deadline() == 81.0
    relay.check_timer(80.9)
    with pytest.raises(RelayProtocolError, match="no heartbeat for 60 s") as info:
        relay.check_timer(81.0)
    assert info.value.code == CloseCode.UNRESPONSIVE


def test_the_host_gives_up_on_a_relay_that_stops_acking() -> None:
    link = _link()
    link.start(0.0)
    link.receive(encode(Challenge(NONCE)), 0.0)
    link.receive(encode(Registered(KEY.id, 5)), 0.0)
    assert link.check_timer(5.0).send == (Heartbeat(),)
    assert link.check_timer(9.0).send == ()
    with pytest.raises(RelayProtocolError, match="stopped answering heartbeats"):
        link.check_timer(10.0)


def test_handshake_timeouts() -> None:
    relay = _relay(now=100.0)
    relay.check_timer(109.0)
    with pytest.raises(RelayProtocolError, match="timed out while awaiting register") as info:
        relay.check_timer(110.0)
    assert info.value.code == CloseCode.HANDSHAKE_TIMEOUT
    viewer = RelayViewerMachine(0.0, rendezvous_timeout=5.0)
    viewer.receive(encode(Connect(KEY.id, 1)), 1.0)
    with pytest.raises(RelayProtocolError, match="the host did not answer in time"):
        viewer.check_timer(6.0)


def test_rendezvous_and_move_reach_the_host() -> None:
    relay, link = _relay(), _link()
    relay.receive(encode(link.start(0.0)), 0.0)
    (prove,) = link.receive(encode(Challenge(NONCE)), 0.0).send
    relay.receive(encode(prove), 0.0)
    link.receive(encode(relay.accept(0.0)), 0.0)
    assert link.receive(encode(relay.rendezvous(SESSION, 1.0)), 1.0).event == Rendezvous(SESSION)
    move = relay.move("relay is shutting down", 2.0)
    assert link.receive(encode(move), 2.0).event == Move("relay is shutting down")
    assert relay.closed and link.closed


def test_data_connection_binds_only_with_the_registered_hosts_proof() -> None:
    data = _link().data_message(SESSION)
    relay = RelayDataMachine(0.0, relay_fingerprint=FP)
    assert relay.receive(encode(data), 0.0).event == data
    relay.bind(KEY.id, KEY.spki, 0.0)
    assert relay.phase.value == "splicing"

    forged = Data(KEY.id, SESSION, _link(key=OTHER).data_message(SESSION).sig)
    for expected, spki, reason in [(KEY.id, KEY.spki, "proof of key ownership failed"),
                                   (None, None, "no such rendezvous"),
                                   (OTHER.id, OTHER.spki, "the rendezvous is for another ID")]:
        relay = RelayDataMachine(0.0, relay_fingerprint=FP)
        relay.receive(encode(forged), 0.0)
        with pytest.raises(RelayProtocolError, match=reason):
            relay.bind(expected, spki, 0.0)


def test_viewer_connect_then_spliced() -> None:
    viewer, relay = ViewerLinkMachine(0.0, KEY.id), RelayViewerMachine(0.0)
    event = relay.receive(encode(viewer.start(0.0)), 0.0).event
    assert event == Connect(KEY.id, 1)
    assert viewer.receive(encode(relay.spliced(0.5)), 0.5).event == Spliced()
    refused = ViewerLinkMachine(0.0, KEY.id)
    refused.start(0.0)
    with pytest.raises(RelayRefused, match="unknown or offline ID"):
        refused.receive(encode(RelayViewerMachine(0.0).refuse("unknown or offline ID")), 0.0)


def test_a_message_out_of_order_is_refused_and_the_machine_stays_closed() -> None:
    relay = _relay()
    with pytest.raises(RelayProtocolError, match="unexpected prove while awaiting register"):
        relay.receive(encode(Prove(b"\0" * 64)), 0.0)
    with pytest.raises(RelayProtocolError, match="already closed"):
        relay.receive(encode(_link().start(0.0)), 0.0)


TEMPLATES = [encode(m) for m in (
    Register(KEY.id, KEY.spki, None, 1), Challenge(NONCE), Prove(b"\1" * 64), Heartbeat(),
    Registered(KEY.id, 20), Rendezvous(SESSION), Move("x"), Connect(KEY.id, 1), Spliced(),
    Data(KEY.id, SESSION, b"\2" * 64),
)]
inputs = st.lists(st.one_of(st.sampled_from(TEMPLATES), st.text(max_size=40),
                            st.binary(max_size=40)), max_size=8)


@settings(max_examples=200, deadline=None)
@given(inputs, st.lists(st.floats(0, 100), min_size=8, max_size=8))
def test_any_sequence_is_accepted_or_refused_cleanly(seq: list[str | bytes],
                                                     gaps: list[float]) -> None:
    machines = [_relay(), _link(), RelayDataMachine(0.0, relay_fingerprint=FP),
                RelayViewerMachine(0.0), ViewerLinkMachine(0.0, KEY.id)]
    machines[1].start(0.0)
    machines[4].start(0.0)
    for machine in machines:
        now = 0.0
        for data, gap in zip(seq, gaps, strict=False):
            now += gap
            try:
                machine.check_timer(now)
                machine.receive(data, now)
            except RelayProtocolError as exc:
                assert machine.closed and exc.reason and "\n" not in exc.reason
                with pytest.raises(RelayProtocolError):
                    machine.receive(TEMPLATES[3], now)
                break


def test_signatures_are_raw_64_bytes_and_bound_to_their_purpose() -> None:
    signed = proof.register_input(NONCE, FP, KEY.id)
    sig = KEY.sign(signed)
    assert len(sig) == 64 and proof.verify(KEY.spki, sig, signed)
    assert not proof.verify(KEY.spki, sig, proof.data_input(SESSION, FP, KEY.id))
    assert not proof.verify(OTHER.spki, sig, signed)
    assert not proof.verify(b"junk", sig, signed)


def test_a_peer_cannot_send_what_only_the_relay_sends() -> None:
    viewer = RelayViewerMachine(0.0)
    viewer.receive(encode(Connect(KEY.id, 1)), 0.0)
    with pytest.raises(RelayProtocolError, match="unexpected spliced while awaiting the host"):
        viewer.receive(encode(Spliced()), 0.0)
    for message in (Rendezvous(SESSION), Move("x"), Registered(KEY.id, 20)):
        relay, link = _relay(), _link()
        relay.receive(encode(link.start(0.0)), 0.0)
        (prove,) = link.receive(encode(Challenge(NONCE)), 0.0).send
        relay.receive(encode(prove), 0.0)
        relay.accept(0.0)
        with pytest.raises(RelayProtocolError, match=f"unexpected {message.T} while registered"):
            relay.receive(encode(message), 0.0)

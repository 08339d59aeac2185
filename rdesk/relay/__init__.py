"""``rdesk relay``: the rendezvous server that lets a viewer reach a host behind NAT by its ID.

Sans-I/O pieces: :mod:`~rdesk.relay.messages` (the control messages and their codec),
:mod:`~rdesk.relay.protocol` (per-connection state machines), :mod:`~rdesk.relay.proof` (the
host's proofs of key ownership), :mod:`~rdesk.relay.directory`, :mod:`~rdesk.relay.tokens` and
:mod:`~rdesk.relay.ratelimit`. I/O: :mod:`~rdesk.relay.server` and :mod:`~rdesk.relay.main`.
"""

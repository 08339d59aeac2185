"""``rdesk relay``: the rendezvous server that lets a viewer reach a host behind NAT by its ID.

Sans-I/O: :mod:`~rdesk.relay.messages` (control messages and their codec),
:mod:`~rdesk.relay.protocol` (the relay's per-connection state machines),
:mod:`~rdesk.relay.peers` (the host's and the viewer's), :mod:`~rdesk.relay.proof` (the host's
proofs of key ownership), :mod:`~rdesk.relay.directory`, :mod:`~rdesk.relay.tokens`,
:mod:`~rdesk.relay.ratelimit`, :mod:`~rdesk.relay.config`.
I/O: :mod:`~rdesk.relay.server` with :mod:`~rdesk.relay.hosts`, :mod:`~rdesk.relay.splice`,
:mod:`~rdesk.relay.routing`, :mod:`~rdesk.relay.redisdir` (a shared directory, over
:mod:`~rdesk.relay.resp`) and :mod:`~rdesk.relay.conn`; :mod:`~rdesk.relay.audit`;
:mod:`~rdesk.relay.run` (one instance's life; the verb's flags are :mod:`rdesk.cli.relayd`).
"""

"""File transfer on the host: the confined folder (folder.py) and each viewer's room (room.py).

See docs/transfer.md for the policy, the limits and the threat model.
"""

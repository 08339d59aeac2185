"""The session recording format, written by the host and read by ``rdesk play``."""

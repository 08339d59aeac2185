"""rdesk: a secure remote desktop host and its viewers, over TLS websockets."""

__all__ = ["__version__"]

__version__ = "0.1.0"

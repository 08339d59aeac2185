"""Injecting the controlling viewer's keyboard and mouse into the host's display."""

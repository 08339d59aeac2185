"""Serving viewers: listening and routing, one connection object per viewer, admission, the
update sender, control arbitration, the browser page, the host console."""
